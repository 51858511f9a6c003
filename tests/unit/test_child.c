/*
 * Helper processes (vmm/child.c) with real programs: /bin/true, sh scripts, a missing path. Exit
 * statuses and the last output line in child_describe, the passed fd, the read-only directory
 * of the child's own mount namespace (as root, and as an unprivileged user through a user
 * namespace), the exit watch on an event loop, and child_stop's SIGTERM then SIGKILL.
 *
 * Check runs each test in a process of its own, so a test may drop to an unprivileged user or
 * enter a mount namespace; those tests are skipped under CK_FORK=no.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/child.h"
#include "vmm/event_loop.h"

#define NOBODY 65534

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Spawns "sh -c @script" with @spec's other fields; asserts it started. */
static void spawn_sh(struct child *c, const char *script, struct child_spec spec)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	char err[300] = "";
	int ret;

	spec.path = "/bin/sh";
	spec.argv = argv;
	ret = child_spawn(c, "sh", &spec, err, sizeof(err));
	ck_assert_msg(ret == 0, "spawn: %d %s", ret, err);
}

/* Waits up to 5 s for @c to end; asserts it did. */
static void wait_exited(struct child *c)
{
	long deadline = now_ms() + 5000;

	while (!child_exited(c) && now_ms() < deadline)
		usleep(2000);
	ck_assert(child_exited(c));
}

/* Whether a process of its own per test can be changed for good (Check's default fork mode). */
static bool forked(void)
{
	const char *mode = getenv("CK_FORK");

	if (mode && !strcmp(mode, "no")) {
		printf("skipped: needs Check's fork mode\n");
		return false;
	}
	return true;
}

/*
 * Becomes nobody for the rest of this test's process, as if exec'ed by nobody (dumpable again:
 * changing ids cleared that, which leaves /proc/self, uid_map included, to root); false (with
 * why) if this cannot be.
 */
static bool drop_to_nobody(void)
{
	if (geteuid() != 0)
		return true;
	if (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
	    setresuid(NOBODY, NOBODY, NOBODY) || prctl(PR_SET_DUMPABLE, 1)) {
		printf("skipped: cannot become nobody: %s\n", strerror(errno));
		return false;
	}
	return true;
}

/* Whether this (unprivileged) process may create user namespaces; prints why not. */
static bool user_namespaces_allowed(void)
{
	pid_t pid = fork();
	int status;

	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER | CLONE_NEWNS) ? 1 : 0);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status)) {
		printf("skipped: this host forbids unprivileged user namespaces\n");
		return false;
	}
	return true;
}

START_TEST(spawn_true)
{
	char *argv[] = {"true", NULL};
	struct child_spec spec = {.path = "/bin/true", .argv = argv, .pass_fd = -1};
	struct child c;
	char err[256] = "", what[256];

	ck_assert_int_eq(child_spawn(&c, "true", &spec, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	ck_assert_int_gt(c.pid, 0);
	wait_exited(&c);
	ck_assert_int_eq(c.pid, 0);
	child_describe(&c, what, sizeof(what));
	ck_assert_str_eq(what, "true exited with status 0");
	child_stop(&c, NULL, 100);
}
END_TEST

START_TEST(spawn_missing)
{
	char *argv[] = {"nope", NULL};
	struct child_spec spec = {
	        .path = "/nonexistent/vmm-test-nope", .argv = argv, .pass_fd = -1};
	struct child c;
	char err[256] = "";

	ck_assert_int_eq(child_spawn(&c, "helper", &spec, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "helper: /nonexistent/vmm-test-nope: No such file or directory");
	ck_assert_int_eq(c.pid, 0);
	ck_assert_int_eq(c.pidfd, -1);
	ck_assert_int_eq(c.log_fd, -1);
	ck_assert(child_exited(&c));
	child_stop(&c, NULL, 100);
}
END_TEST

/* A file without "#!" is not executable as a program: the child's own errno, ENOEXEC. */
START_TEST(spawn_not_a_program)
{
	char path[] = "/tmp/vmm-child-XXXXXX";
	char *argv[] = {path, NULL};
	struct child_spec spec = {.path = path, .argv = argv, .pass_fd = -1};
	struct child c;
	char err[256] = "";
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "echo hi\n", 8), 8);
	ck_assert_int_eq(fchmod(fd, 0755), 0);
	close(fd);
	ck_assert_int_eq(child_spawn(&c, "helper", &spec, err, sizeof(err)), -ENOEXEC);
	ck_assert_msg(strstr(err, path) && strstr(err, "Exec format error"), "%s", err);
	unlink(path);
}
END_TEST

START_TEST(exit_status_and_output)
{
	struct child c;
	char what[256];

	spawn_sh(&c, "echo first; echo hello >&2; exit 3", (struct child_spec){.pass_fd = -1});
	wait_exited(&c);
	child_describe(&c, what, sizeof(what));
	ck_assert_str_eq(what, "sh exited with status 3: hello");
	child_stop(&c, NULL, 100);
}
END_TEST

START_TEST(describe_running_and_killed)
{
	struct child c;
	char what[256];
	long start;

	spawn_sh(&c, "echo started; exec sleep 100", (struct child_spec){.pass_fd = -1});
	ck_assert(!child_exited(&c));
	child_describe(&c, what, sizeof(what));
	ck_assert_msg(!strncmp(what, "sh is running", 13), "%s", what);
	start = now_ms();
	child_stop(&c, NULL, 2000);
	ck_assert_int_lt(now_ms() - start, 1500); /* SIGTERM was enough */
	ck_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGTERM);
	ck_assert_int_eq(c.pid, 0);
}
END_TEST

/* The passed fd is fd 3 in the child, whatever its number here. */
START_TEST(pass_fd)
{
	struct child c;
	char buf[64] = "";
	int fds[2];
	ssize_t n;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	spawn_sh(&c, "echo through-fd-3 >&3", (struct child_spec){.pass_fd = fds[1]});
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	ck_assert_int_eq(n, 13);
	ck_assert_str_eq(buf, "through-fd-3\n");
	wait_exited(&c);
	ck_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
	close(fds[0]);
	child_stop(&c, NULL, 100);
}
END_TEST

/*
 * A close-on-exec fd already at 3 is passed as it is. Check keeps its own fd 3 in the test's
 * process: no assertion until it is back.
 */
START_TEST(pass_fd_already_3)
{
	char *argv[] = {"sh", "-c", "echo at-3 >&3", NULL};
	struct child_spec spec = {.path = "/bin/sh", .argv = argv, .pass_fd = CHILD_PASSED_FD};
	struct child c;
	char buf[64] = "", err[300] = "";
	int fds[2], saved, moved, ret = -1;

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	saved = fcntl(CHILD_PASSED_FD, F_DUPFD_CLOEXEC, 100);
	moved = dup3(fds[1], CHILD_PASSED_FD, O_CLOEXEC);
	if (moved == CHILD_PASSED_FD)
		ret = child_spawn(&c, "sh", &spec, err, sizeof(err));
	if (saved >= 0) {
		dup3(saved, CHILD_PASSED_FD, O_CLOEXEC);
		close(saved);
	} else
		close(CHILD_PASSED_FD);
	close(fds[1]);
	ck_assert_int_eq(moved, CHILD_PASSED_FD);
	ck_assert_msg(ret == 0, "%s", err);
	ck_assert_int_eq(read(fds[0], buf, sizeof(buf) - 1), 5);
	ck_assert_str_eq(buf, "at-3\n");
	wait_exited(&c);
	ck_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
	close(fds[0]);
	child_stop(&c, NULL, 100);
}
END_TEST

/*
 * The child cannot write to @dir (nor, when @sub is set, to the mount @sub below it), and the
 * parent still can: the read-only mount is in the child's namespace only.
 */
static void check_read_only(const char *dir, const char *sub, bool user_namespace)
{
	char script[600], path[400], what[300];
	struct child c;

	snprintf(script, sizeof(script),
	         "touch %s/x && echo wrote-x; mkdir %s/d && echo made-d; %s%s%s exit 0", dir, dir,
	         sub ? "touch " : "", sub ? sub : "", sub ? "/x && echo wrote-sub-x;" : "");
	spawn_sh(&c, script,
	         (struct child_spec){
	                 .pass_fd = -1, .read_only_dir = dir, .user_namespace = user_namespace});
	wait_exited(&c);
	child_describe(&c, what, sizeof(what));
	ck_assert_msg(strstr(what, "Read-only file system"), "%s", what);
	ck_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
	snprintf(path, sizeof(path), "%s/x", dir);
	ck_assert_int_eq(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/d", dir);
	ck_assert_int_eq(access(path, F_OK), -1);
	if (sub) {
		snprintf(path, sizeof(path), "%s/x", sub);
		ck_assert_int_eq(access(path, F_OK), -1);
	}
	/* The output had none of the "wrote" lines. */
	ck_assert_msg(!strstr(what, "wrote") && !strstr(what, "made"), "%s", what);
	child_stop(&c, NULL, 100);

	/* Writable here. */
	snprintf(path, sizeof(path), "%s/y", dir);
	ck_assert_int_eq(mknod(path, S_IFREG | 0600, 0), 0);
	ck_assert_int_eq(unlink(path), 0);
}

/* As root: a mount namespace of the child's own; as another user: a user namespace too. */
START_TEST(read_only_dir)
{
	char dir[] = "/tmp/vmm-child-XXXXXX";
	bool user_namespace = geteuid() != 0;

	if (user_namespace && !user_namespaces_allowed())
		return;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	check_read_only(dir, NULL, user_namespace);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Mounts below the directory are read-only too (as root: a tmpfs in this test's namespace). */
START_TEST(read_only_dir_recursive)
{
	char dir[] = "/tmp/vmm-child-XXXXXX", sub[64];

	if (geteuid() != 0) {
		printf("skipped: mounting a tmpfs needs root\n");
		return;
	}
	if (!forked())
		return;
	ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
	ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	ck_assert_int_eq(mount("tmpfs", sub, "tmpfs", 0, "size=64k"), 0);
	check_read_only(dir, sub, false);
	ck_assert_int_eq(umount(sub), 0);
	ck_assert_int_eq(rmdir(sub), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* The way vmm runs virtiofsd when it is not root: as root of a user namespace of its own. */
START_TEST(user_namespace_unprivileged)
{
	char dir[] = "/tmp/vmm-child-XXXXXX", what[300];
	struct child c;

	if (!forked())
		return;
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chown(dir, NOBODY, NOBODY), 0);
	if (!drop_to_nobody() || !user_namespaces_allowed()) {
		rmdir(dir);
		return;
	}
	/* Root in there, mapped to nobody outside. */
	spawn_sh(&c, "echo uid=$(id -u) gid=$(id -g)",
	         (struct child_spec){.pass_fd = -1, .user_namespace = true});
	wait_exited(&c);
	child_describe(&c, what, sizeof(what));
	ck_assert_str_eq(what, "sh exited with status 0: uid=0 gid=0");
	child_stop(&c, NULL, 100);
	check_read_only(dir, NULL, true);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* Without a user namespace, an unprivileged user cannot have a private mount namespace. */
START_TEST(read_only_dir_needs_privilege)
{
	char *argv[] = {"true", NULL};
	struct child_spec spec = {
	        .path = "/bin/true", .argv = argv, .pass_fd = -1, .read_only_dir = "/tmp"};
	struct child c;
	char err[256] = "";

	if (!forked() || !drop_to_nobody())
		return;
	ck_assert_int_eq(child_spawn(&c, "helper", &spec, err, sizeof(err)), -EPERM);
	ck_assert_str_eq(err, "helper: cannot create a mount namespace (unshare): Operation not "
	                      "permitted");
}
END_TEST

struct watch_state {
	struct event_loop loop;
	struct child *child;
	int timer_fd; /* stops the loop: 10 s at first, 300 ms after the first on_exit */
	unsigned exits;
	int status;
};

static void on_exit_cb(void *opaque, struct child *c)
{
	struct watch_state *w = opaque;
	struct itimerspec soon = {.it_value.tv_nsec = 300 * 1000000};

	ck_assert_ptr_eq(c, w->child);
	ck_assert_int_eq(c->pid, 0); /* reaped */
	w->status = c->status;
	if (!w->exits++ && w->timer_fd >= 0)
		ck_assert_int_eq(timerfd_settime(w->timer_fd, 0, &soon, NULL), 0);
}

static void on_timer(void *opaque, uint32_t events)
{
	struct watch_state *w = opaque;

	(void)events;
	event_loop_stop(&w->loop);
}

/*
 * on_exit runs once on the loop when the child ends, and the loop goes on for 300 ms more
 * without calling it again (the pidfd stays readable: it must have been unwatched).
 */
START_TEST(watch)
{
	struct watch_state w = {0};
	struct itimerspec later = {.it_value.tv_sec = 10};
	struct event_source timer = {.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC),
	                             .handler = on_timer,
	                             .opaque = &w};
	struct child c;

	ck_assert_int_eq(event_loop_init(&w.loop), 0);
	ck_assert_int_ge(timer.fd, 0);
	w.timer_fd = timer.fd;
	spawn_sh(&c, "sleep 0.1; exit 7", (struct child_spec){.pass_fd = -1});
	w.child = &c;
	ck_assert_int_eq(child_watch(&c, &w.loop, on_exit_cb, &w), 0);
	ck_assert_int_eq(timerfd_settime(timer.fd, 0, &later, NULL), 0);
	ck_assert_int_eq(event_loop_add(&w.loop, &timer, EPOLLIN), 0);
	ck_assert_int_eq(event_loop_run(&w.loop), 0);
	ck_assert_uint_eq(w.exits, 1);
	ck_assert(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 7);
	ck_assert_int_eq(c.watch.fd, -1);
	child_stop(&c, &w.loop, 100);
	close(timer.fd);
	event_loop_free(&w.loop);
}
END_TEST

/* child_stop of a watched child unwatches it: on_exit is not called for it. */
START_TEST(watch_then_stop)
{
	struct watch_state w = {.timer_fd = -1};
	struct child c;

	ck_assert_int_eq(event_loop_init(&w.loop), 0);
	spawn_sh(&c, "exec sleep 100", (struct child_spec){.pass_fd = -1});
	w.child = &c;
	ck_assert_int_eq(child_watch(&c, &w.loop, on_exit_cb, &w), 0);
	child_stop(&c, &w.loop, 1000);
	ck_assert_int_eq(c.watch.fd, -1);
	ck_assert_uint_eq(w.exits, 0);
	event_loop_free(&w.loop);
}
END_TEST

/* Starts @c as a child that ignores SIGTERM, returning once its trap is set. */
static void spawn_ignoring_term(struct child *c)
{
	char buf[16] = "";
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	/* "ready" once the trap is set; exec: the one process ignores TERM, no shell left over. */
	spawn_sh(c, "trap '' TERM; echo ready >&3; exec sleep 100",
	         (struct child_spec){.pass_fd = fds[1]});
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], buf, sizeof(buf) - 1), 6);
	close(fds[0]);
}

/* No grace: SIGKILL at once, no SIGTERM first (a child ignoring TERM does not hold it up). */
START_TEST(stop_without_grace)
{
	struct child c;
	long start;

	spawn_ignoring_term(&c);
	start = now_ms();
	child_stop(&c, NULL, 0);
	ck_assert_int_lt(now_ms() - start, 1000);
	ck_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL);
	ck_assert_int_eq(c.pid, 0);
}
END_TEST

/* A child that ignores SIGTERM is killed once the grace time is over. */
START_TEST(stop_ignoring_term)
{
	const unsigned grace = 300;
	struct child c;
	char what[256];
	long start, took;

	spawn_ignoring_term(&c);
	start = now_ms();
	child_stop(&c, NULL, grace);
	took = now_ms() - start;
	ck_assert_int_ge(took, grace - 10);
	ck_assert_int_lt(took, grace + 1000);
	ck_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL);
	child_describe(&c, what, sizeof(what));
	ck_assert_str_eq(what, "sh was killed by signal 9");
}
END_TEST

/* Stop twice, and stop a struct never started (zeroed): nothing happens, fd 0 is left alone. */
START_TEST(stop_twice_and_never_started)
{
	struct child never, c;

	if (fcntl(0, F_GETFD) < 0)
		ck_assert_int_eq(open("/dev/null", O_RDONLY), 0);
	memset(&never, 0, sizeof(never));
	child_stop(&never, NULL, 100);
	child_stop(&never, NULL, 100);
	ck_assert(child_exited(&never));
	ck_assert_int_ge(fcntl(0, F_GETFD), 0);

	spawn_sh(&c, "exec sleep 100", (struct child_spec){.pass_fd = -1});
	child_stop(&c, NULL, 1000);
	ck_assert_int_eq(c.pid, 0);
	ck_assert_int_eq(c.pidfd, -1);
	ck_assert_int_eq(c.log_fd, -1);
	child_stop(&c, NULL, 1000);
	ck_assert(child_exited(&c));
	ck_assert_int_ge(fcntl(0, F_GETFD), 0);
}
END_TEST

static Suite *child_suite(void)
{
	Suite *s = suite_create("child");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, spawn_true);
	tcase_add_test(tc, spawn_missing);
	tcase_add_test(tc, spawn_not_a_program);
	tcase_add_test(tc, exit_status_and_output);
	tcase_add_test(tc, describe_running_and_killed);
	tcase_add_test(tc, pass_fd);
	tcase_add_test(tc, pass_fd_already_3);
	tcase_add_test(tc, read_only_dir);
	tcase_add_test(tc, read_only_dir_recursive);
	tcase_add_test(tc, user_namespace_unprivileged);
	tcase_add_test(tc, read_only_dir_needs_privilege);
	tcase_add_test(tc, watch);
	tcase_add_test(tc, watch_then_stop);
	tcase_add_test(tc, stop_ignoring_term);
	tcase_add_test(tc, stop_without_grace);
	tcase_add_test(tc, stop_twice_and_never_started);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(child_suite());
}
