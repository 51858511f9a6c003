/*
 * Helper processes: see child.h. Between fork and exec the child only sets itself up and
 * execs; whatever fails there is written to a close-on-exec pipe (the errno, then the reason),
 * so the parent learns either "exec'ed" (EOF) or why not, and can say it in one line.
 */
#include "vmm/child.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/log.h"

/* The child's report of a failure before exec: its errno, then "what: reason". */
struct spawn_failure {
	int error;
	char msg[252];
};

/* In the child: reports errno and "@what: strerror" on the pipe and exits. */
static _Noreturn void child_fail(int pipe_fd, const char *what)
{
	struct spawn_failure f = {.error = errno};

	snprintf(f.msg, sizeof(f.msg), "%s: %s", what, strerror(f.error));
	if (write(pipe_fd, &f, sizeof(f)) < 0)
		_exit(127);
	_exit(127);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/*
 * In the child: become root of a new user namespace with our own ids mapped (the effective
 * ones: only those may be mapped without privilege).
 */
static void enter_user_namespace(int pipe_fd)
{
	char map[64];
	uid_t uid = geteuid();
	gid_t gid = getegid();

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		child_fail(pipe_fd,
		           "cannot create a user namespace to run without root (are "
		           "unprivileged user namespaces disabled? else run as root); unshare");
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
	if (write_file("/proc/self/setgroups", "deny") < 0 ||
	    write_file("/proc/self/uid_map", map) < 0)
		child_fail(pipe_fd,
		           "cannot map the user id into the user namespace (are unprivileged "
		           "user namespaces restricted? else run as root)");
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)gid);
	if (write_file("/proc/self/gid_map", map) < 0)
		child_fail(pipe_fd, "cannot map the group id into the user namespace");
}

/* In the child's own mount namespace: @dir and every mount below it become read-only. */
static void make_read_only(int pipe_fd, const char *dir)
{
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(pipe_fd, "cannot make the mounts private");
	if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(pipe_fd, "cannot bind-mount the shared directory");
	if (syscall(SYS_mount_setattr, AT_FDCWD, dir, AT_RECURSIVE, &attr, sizeof(attr)) == 0)
		return;
	/* Before Linux 5.12: only the top mount can be made read-only. */
	if (mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
		child_fail(pipe_fd, "cannot make the shared directory read-only");
}

static _Noreturn void run_child(const struct child_spec *spec, int log_fd, int pipe_fd,
                                pid_t parent)
{
	sigset_t none;
	int null_fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
	    dup2(log_fd, STDERR_FILENO) < 0)
		child_fail(pipe_fd, "cannot set up stdin/stdout/stderr");
	if (spec->pass_fd >= 0) {
		if (spec->pass_fd == CHILD_PASSED_FD)
			fcntl(CHILD_PASSED_FD, F_SETFD, 0);
		else if (dup2(spec->pass_fd, CHILD_PASSED_FD) < 0)
			child_fail(pipe_fd, "cannot pass the socket");
	}
	if (spec->user_namespace)
		enter_user_namespace(pipe_fd);
	else if (spec->read_only_dir && unshare(CLONE_NEWNS) < 0)
		child_fail(pipe_fd, "cannot create a mount namespace (unshare)");
	if (spec->read_only_dir)
		make_read_only(pipe_fd, spec->read_only_dir);
	execv(spec->path, spec->argv);
	child_fail(pipe_fd, spec->path);
}

/* A failed spawn: @c is left stopped (no process, no fd), @err says why. Returns @ret. */
static int spawn_failed(struct child *c, int ret, char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: %s", c->name, what);
	child_stop(c, NULL, 0);
	return ret;
}

int child_spawn(struct child *c, const char *name, const struct child_spec *spec, char *err,
                size_t errlen)
{
	struct spawn_failure f;
	char what[300];
	int pipe_fds[2], ret;
	pid_t parent = getpid();
	ssize_t n;

	*c = (struct child){.spawned = true, .pidfd = -1, .log_fd = -1, .watch.fd = -1};
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->log_fd = memfd_create("vmm-child-output", MFD_CLOEXEC);
	if (c->log_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) < 0) {
		ret = -errno;
		snprintf(what, sizeof(what), "cannot start: %s", strerror(-ret));
		return spawn_failed(c, ret, err, errlen, what);
	}
	c->pid = fork();
	if (c->pid == 0) {
		close(pipe_fds[0]);
		run_child(spec, c->log_fd, pipe_fds[1], parent);
	}
	ret = -errno;
	close(pipe_fds[1]);
	if (c->pid < 0) {
		close(pipe_fds[0]);
		c->pid = 0;
		snprintf(what, sizeof(what), "cannot start (fork): %s", strerror(-ret));
		return spawn_failed(c, ret, err, errlen, what);
	}
	do
		n = read(pipe_fds[0], &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(pipe_fds[0]);
	if (n > 0) {
		/* One write of less than PIPE_BUF: all of it, or the child died mid-way. */
		while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
		if (n != sizeof(f) || f.error <= 0)
			return spawn_failed(c, -ENOEXEC, err, errlen, "died before exec");
		f.msg[sizeof(f.msg) - 1] = '\0';
		return spawn_failed(c, -f.error, err, errlen, f.msg);
	}
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (c->pidfd < 0) {
		ret = -errno;
		snprintf(what, sizeof(what), "pidfd_open: %s", strerror(-ret));
		return spawn_failed(c, ret, err, errlen, what);
	}
	return 0;
}

/* The pidfd is readable: the child ended. It stays readable, so it is unwatched here. */
static void on_child_exit(void *opaque, uint32_t events)
{
	struct child *c = opaque;

	(void)events;
	if (!child_exited(c))
		return;
	event_loop_del(c->loop, &c->watch);
	c->watch.fd = -1;
	if (c->on_exit)
		c->on_exit(c->opaque, c);
}

int child_watch(struct child *c, struct event_loop *loop, void (*on_exit)(void *, struct child *),
                void *opaque)
{
	int ret;

	if (!c->pid || c->pidfd < 0)
		return -ESRCH;
	c->on_exit = on_exit;
	c->opaque = opaque;
	c->loop = loop;
	c->watch = (struct event_source){.fd = c->pidfd, .handler = on_child_exit, .opaque = c};
	ret = event_loop_add(loop, &c->watch, EPOLLIN);
	if (ret)
		c->watch.fd = -1;
	return ret;
}

bool child_exited(struct child *c)
{
	if (!c->pid)
		return true;
	if (waitpid(c->pid, &c->status, WNOHANG) != c->pid)
		return false;
	c->pid = 0;
	return true;
}

/* The last non-empty line of the child's output, into @buf ("" when none). */
static void last_line(const struct child *c, char *buf, size_t len)
{
	char tail[512];
	off_t size = c->spawned && c->log_fd >= 0 ? lseek(c->log_fd, 0, SEEK_END) : -1;
	off_t from = size > (off_t)sizeof(tail) - 1 ? size - (off_t)sizeof(tail) + 1 : 0;
	ssize_t n = size > 0 ? pread(c->log_fd, tail, sizeof(tail) - 1, from) : 0;
	char *end, *start;

	buf[0] = '\0';
	if (!c->spawned || n <= 0)
		return;
	tail[n] = '\0';
	end = tail + n;
	while (end > tail && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		*--end = '\0';
	start = strrchr(tail, '\n');
	start = start ? start + 1 : tail;
	len = MIN(len - 1, strlen(start));
	memcpy(buf, start, len);
	buf[len] = '\0';
}

void child_describe(struct child *c, char *buf, size_t len)
{
	char line[256], state[64];
	bool ended = child_exited(c);

	if (!ended)
		snprintf(state, sizeof(state), "is running");
	else if (WIFEXITED(c->status))
		snprintf(state, sizeof(state), "exited with status %d", WEXITSTATUS(c->status));
	else if (WIFSIGNALED(c->status))
		snprintf(state, sizeof(state), "was killed by signal %d", WTERMSIG(c->status));
	else
		snprintf(state, sizeof(state), "ended");
	last_line(c, line, sizeof(line));
	snprintf(buf, len, "%s %s%s%s", c->name, state, line[0] ? ": " : "", line);
}

/*
 * Through the pidfd, which can only ever reach this child (the sandbox allows no kill(2)); by
 * pid only when spawning failed before the pidfd existed, which is still before the sandbox.
 */
static void signal_child(const struct child *c, int sig)
{
	if (c->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, c->pidfd, sig, NULL, 0);
	else
		kill(c->pid, sig);
}

void child_stop(struct child *c, struct event_loop *loop, unsigned grace_ms)
{
	if (!c->spawned)
		return;
	loop = c->loop ? c->loop : loop;
	if (loop && c->watch.fd >= 0) {
		event_loop_del(loop, &c->watch);
		c->watch.fd = -1;
	}
	if (c->pid) {
		struct pollfd p = {.fd = c->pidfd, .events = POLLIN};
		int r = -1;

		if (grace_ms) {
			signal_child(c, SIGTERM);
			while (c->pidfd >= 0 && (r = poll(&p, 1, (int)grace_ms)) < 0 &&
			       errno == EINTR)
				;
		}
		if (r <= 0)
			signal_child(c, SIGKILL);
		while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
	}
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->log_fd >= 0)
		close(c->log_fd);
	c->pidfd = c->log_fd = -1;
}
