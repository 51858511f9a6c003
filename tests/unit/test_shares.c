/*
 * Shares (vmm/shares.c): resolving --share directories (paths, tags, --run's root share) and
 * starting a real virtiofsd per share, spoken to over vhost-user (devices/vhost_user) on the
 * socket shares_start connected; the daemon's read-only mount; shares_stop leaving no process
 * and no socket directory; daemons that exit at once, never answer, or cannot be executed; and
 * the unprivileged way (vmm not root: virtiofsd as root of a user namespace).
 *
 * The daemon tests are skipped (saying why) when no virtiofsd is installed. Check runs each test
 * in a process of its own, so a test may drop to an unprivileged user (skipped under
 * CK_FORK=no).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "devices/vhost_user/vhost_user.h"
#include "devices/virtio/virtio.h"
#include "tests/unit/unit.h"
#include "vmm/config.h"
#include "vmm/shares.h"

#define NOBODY 65534

/* Big structs (PATH_MAX strings): one of each per test process. */
static struct vm_config cfg;
static struct shares shares;
static char base[PATH_MAX / 2]; /* a fresh temporary directory, realpath'ed */

static void setup(void)
{
	char tmpl[] = "/tmp/vmm-shares-XXXXXX", path[PATH_MAX];

	memset(&cfg, 0, sizeof(cfg));
	memset(&shares, 0, sizeof(shares));
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	ck_assert_ptr_nonnull(realpath(tmpl, path));
	ck_assert_uint_lt(strlen(path), sizeof(base));
	memcpy(base, path, strlen(path) + 1);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", base);
}

/* @base/@rel as a directory; returns its path. */
static const char *make_dir(const char *rel)
{
	static char path[4][PATH_MAX];
	static unsigned next;
	char *p = path[next++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", base, rel);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	return p;
}

/* Adds --share @spec to cfg. */
static void add_share(const char *spec)
{
	char err[256] = "";

	ck_assert_msg(config_parse_share(spec, &cfg.shares[cfg.nr_shares], err, sizeof(err)) == 0,
	              "%s: %s", spec, err);
	cfg.nr_shares++;
}

static int resolve(char *err)
{
	return shares_resolve(&shares, &cfg, err, 300);
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- resolving ---------------------------------------------------------------------------- */

START_TEST(relative_path)
{
	char err[300] = "", want[PATH_MAX + 8];

	make_dir("data");
	ck_assert_int_eq(chdir(base), 0);
	add_share("data");
	ck_assert_int_eq(resolve(err), 0);
	ck_assert_uint_eq(shares.nr, 1);
	snprintf(want, sizeof(want), "%s/data", base);
	ck_assert_str_eq(shares.items[0].host, want);
	ck_assert_str_eq(shares.items[0].guest, want);
	ck_assert_str_eq(shares.items[0].tag, "data");
	ck_assert(!shares.items[0].read_only);
	ck_assert_int_eq(shares.items[0].sock, -1);
	/* ./data/../data/ is the same directory */
	memset(&cfg, 0, sizeof(cfg));
	add_share("./data/../data/,ro,tag=mine");
	ck_assert_int_eq(resolve(err), 0);
	ck_assert_str_eq(shares.items[0].host, want);
	ck_assert_str_eq(shares.items[0].tag, "mine");
	ck_assert(shares.items[0].read_only);
	shares_stop(&shares, NULL);
}
END_TEST

START_TEST(missing_dir)
{
	char err[300] = "";

	add_share("/nonexistent/vmm-share");
	ck_assert_int_eq(resolve(err), -ENOENT);
	ck_assert_str_eq(err, "--share /nonexistent/vmm-share: No such file or directory");
	shares_stop(&shares, NULL);
}
END_TEST

START_TEST(not_a_dir)
{
	char err[300] = "", file[PATH_MAX + 8], want[PATH_MAX + 64];
	int fd;

	snprintf(file, sizeof(file), "%s/file", base);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	add_share(file);
	ck_assert_int_eq(resolve(err), -ENOTDIR);
	snprintf(want, sizeof(want), "--share %s: not a directory", file);
	ck_assert_str_eq(err, want);
	shares_stop(&shares, NULL);
}
END_TEST

/* Without --run: the basename, "root" for /; a name too long for a tag needs tag=. */
START_TEST(default_tags)
{
	char err[300] = "";
	char long_name[CONFIG_TAG_MAX + 2];

	make_dir("photos");
	add_share("/");
	add_share(make_dir("photos/2024"));
	ck_assert_int_eq(resolve(err), 0);
	ck_assert_uint_eq(shares.nr, 2);
	ck_assert_str_eq(shares.items[0].host, "/");
	ck_assert_str_eq(shares.items[0].tag, "root");
	ck_assert_str_eq(shares.items[1].tag, "2024");

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	memset(&cfg, 0, sizeof(cfg));
	add_share(make_dir(long_name));
	ck_assert_int_eq(resolve(err), -EINVAL);
	ck_assert_msg(strstr(err, "longer than 36 bytes: give a tag="), "%s", err);
	shares_stop(&shares, NULL);
}
END_TEST

START_TEST(duplicate_tags)
{
	char err[300] = "";

	make_dir("a");
	make_dir("b");
	add_share(make_dir("a/data"));
	add_share(make_dir("b/data"));
	ck_assert_int_eq(resolve(err), -EINVAL);
	ck_assert_msg(strstr(err, "both have the tag 'data': give a tag="), "%s", err);
	ck_assert_msg(strstr(err, "/a/data and ") && strstr(err, "/b/data"), "%s", err);

	memset(&cfg, 0, sizeof(cfg));
	add_share(make_dir("c"));
	add_share(make_dir("d"));
	cfg.shares[1] = cfg.shares[0];
	snprintf(cfg.shares[1].tag, sizeof(cfg.shares[1].tag), "c");
	ck_assert_int_eq(resolve(err), -EINVAL);
	shares_stop(&shares, NULL);
}
END_TEST

/* --run: the host's / first (vmm-root, read-only), then the shares, tagged vmm-shareN. */
START_TEST(run_mode)
{
	char err[300] = "", dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", make_dir("work"));
	cfg.run_cmd = "true";
	add_share(dir);
	add_share("/:/host,ro");
	ck_assert_int_eq(resolve(err), 0);
	ck_assert_uint_eq(shares.nr, 3);
	ck_assert_str_eq(shares.items[0].tag, CONFIG_ROOT_TAG);
	ck_assert_str_eq(shares.items[0].host, "/");
	ck_assert_str_eq(shares.items[0].guest, "/");
	ck_assert(shares.items[0].read_only);
	ck_assert_str_eq(shares.items[1].tag, "vmm-share0");
	ck_assert_str_eq(shares.items[1].host, dir);
	ck_assert_str_eq(shares.items[1].guest, dir);
	ck_assert(!shares.items[1].read_only);
	ck_assert_str_eq(shares.items[2].tag, "vmm-share1");
	ck_assert_str_eq(shares.items[2].host, "/");
	ck_assert_str_eq(shares.items[2].guest, "/host");
	ck_assert(shares.items[2].read_only);
	for (unsigned i = 0; i < shares.nr; i++)
		ck_assert_int_eq(shares.items[i].sock, -1);
	shares_stop(&shares, NULL);
}
END_TEST

/* Stopping shares that were only resolved (or never) touches no fd: fd 0 stays open. */
START_TEST(stop_without_daemons)
{
	char err[300] = "";

	if (fcntl(0, F_GETFD) < 0)
		ck_assert_int_eq(open("/dev/null", O_RDONLY), 0);
	shares_stop(&shares, NULL);
	cfg.run_cmd = "true";
	add_share("/nonexistent/vmm-share");
	ck_assert_int_eq(shares_start(&shares, &cfg, err, sizeof(err)), -ENOENT);
	shares_stop(&shares, NULL);
	shares_stop(&shares, NULL);
	ck_assert_int_ge(fcntl(0, F_GETFD), 0);
}
END_TEST

/* ---- with a daemon ---------------------------------------------------------------------- */

/* Whether a virtiofsd is installed (else the test is skipped, saying so). */
static bool have_virtiofsd(void)
{
	char path[PATH_MAX];
	struct vm_config none = {0};

	if (shares_find_daemon(&none, path, sizeof(path)) == 0)
		return true;
	printf("skipped: no virtiofsd (/usr/lib/qemu/virtiofsd, qemu-system-common)\n");
	return false;
}

/* Speaks vhost-user to @sh's daemon (@vu takes the socket): features, protocol, owner. */
static void negotiate(struct share *sh, struct vhost_user *vu)
{
	int ret = vhost_user_init(vu, sh->sock, 5000);

	sh->sock = -1; /* vu's now */
	ck_assert_msg(ret == 0, "%s", vhost_user_error(vu));
	ret = vhost_user_negotiate(vu, VHOST_USER_PROTOCOL_SUPPORTED);
	ck_assert_msg(ret == 0, "%s: %s", sh->tag, vhost_user_error(vu));
	ck_assert(vu->features >> VIRTIO_F_VERSION_1 & 1);
	ck_assert(vu->protocol);
}

/* The number of entries of @dir other than . and .. */
static unsigned dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	unsigned n = 0;

	ck_assert_ptr_nonnull(d);
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

/* The mount options of the root of @pid (chroot'ed into its share), e.g. "ro,nosuid". */
static void root_mount_options(pid_t pid, char *opts, size_t len)
{
	char path[64], line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)pid);
	f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	opts[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		char mount_point[512], options[256];

		/* id parent major:minor root mount-point options ... */
		if (sscanf(line, "%*d %*d %*s %*s %511s %255s", mount_point, options) == 2 &&
		    !strcmp(mount_point, "/"))
			snprintf(opts, len, "%s", options);
	}
	fclose(f);
}

/* Every daemon gone (reaped: not even a zombie) and the socket directory removed. */
static void check_stopped(const pid_t *pids, unsigned n, const char *sock_dir)
{
	struct stat st;

	for (unsigned i = 0; i < n; i++) {
		ck_assert_int_eq(kill(pids[i], 0), -1);
		ck_assert_int_eq(errno, ESRCH);
		ck_assert_int_eq(waitpid(pids[i], NULL, WNOHANG), -1);
		ck_assert_int_eq(errno, ECHILD);
	}
	ck_assert_int_eq(stat(sock_dir, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
}

/*
 * Starts the shares of cfg, negotiates with each daemon, checks each one's root mount is
 * read-only exactly for the read-only shares, then stops them all.
 */
static void start_negotiate_stop(void)
{
	struct vhost_user vu[SHARES_MAX];
	pid_t pids[SHARES_MAX] = {0};
	char err[600] = "", sock_dir[sizeof(shares.sock_dir)], opts[256];
	unsigned n;
	int ret = shares_start(&shares, &cfg, err, sizeof(err));

	ck_assert_msg(ret == 0, "%d %s", ret, err);
	n = shares.nr;
	snprintf(sock_dir, sizeof(sock_dir), "%s", shares.sock_dir);
	ck_assert_uint_eq(dir_entries(sock_dir), 0); /* the sockets' names are gone */
	for (unsigned i = 0; i < n; i++) {
		struct share *sh = &shares.items[i];

		ck_assert_int_ge(sh->sock, 0);
		ck_assert_int_gt(sh->daemon.pid, 0);
		pids[i] = sh->daemon.pid;
		negotiate(sh, &vu[i]);
		/* chroot'ed: a read-only share is a mount at the root, a writable one need not be
		 */
		root_mount_options(pids[i], opts, sizeof(opts));
		if (sh->read_only || opts[0])
			ck_assert_msg(!strncmp(opts, sh->read_only ? "ro" : "rw", 2), "%s: '%s'",
			              sh->tag, opts);
		ck_assert(!child_exited(&sh->daemon));
	}
	shares_stop(&shares, NULL);
	check_stopped(pids, n, sock_dir);
	for (unsigned i = 0; i < n; i++)
		vhost_user_close(&vu[i]);
}

/* A writable share, a read-only one, and one whose tag is not a file name. */
START_TEST(start_shares)
{
	char spec[PATH_MAX];

	if (!have_virtiofsd())
		return;
	add_share(make_dir("rw"));
	add_share(make_dir("ro"));
	cfg.shares[1].read_only = true;
	snprintf(spec, sizeof(spec), "%s,tag=../odd/tag", make_dir("odd"));
	add_share(spec);
	start_negotiate_stop();
}
END_TEST

START_TEST(start_run_mode)
{
	if (!have_virtiofsd())
		return;
	cfg.run_cmd = "true";
	add_share(make_dir("work"));
	start_negotiate_stop();
}
END_TEST

/* A daemon stopped while the front-end still holds its connection. */
START_TEST(stop_while_connected)
{
	char err[600] = "";
	struct vhost_user vu;
	pid_t pid;
	long start;

	if (!have_virtiofsd())
		return;
	add_share(make_dir("data"));
	ck_assert_msg(shares_start(&shares, &cfg, err, sizeof(err)) == 0, "%s", err);
	pid = shares.items[0].daemon.pid;
	negotiate(&shares.items[0], &vu);
	start = now_ms();
	shares_stop(&shares, NULL);
	ck_assert_int_lt(now_ms() - start, 3000);
	ck_assert_int_eq(kill(pid, 0), -1);
	vhost_user_close(&vu);
}
END_TEST

struct watch_state {
	struct event_loop loop;
	struct share *ended;
	char what[300];
};

static void on_daemon_exit(void *opaque, struct share *sh)
{
	struct watch_state *w = opaque;

	w->ended = sh;
	child_describe(&sh->daemon, w->what, sizeof(w->what));
	event_loop_stop(&w->loop);
}

static void on_guard(void *opaque, uint32_t events)
{
	struct watch_state *w = opaque;

	(void)events;
	event_loop_stop(&w->loop);
}

/* A daemon that dies is reported on the loop, with the share it served. */
START_TEST(watch_daemon_death)
{
	struct watch_state w = {0};
	struct itimerspec later = {.it_value.tv_sec = 10};
	struct event_source guard = {.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC),
	                             .handler = on_guard,
	                             .opaque = &w};
	char err[600] = "";

	if (!have_virtiofsd())
		return;
	add_share(make_dir("one"));
	add_share(make_dir("two"));
	ck_assert_msg(shares_start(&shares, &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(event_loop_init(&w.loop), 0);
	ck_assert_int_eq(timerfd_settime(guard.fd, 0, &later, NULL), 0);
	ck_assert_int_eq(event_loop_add(&w.loop, &guard, EPOLLIN), 0);
	ck_assert_int_eq(shares_watch(&shares, &w.loop, on_daemon_exit, &w), 0);
	ck_assert_int_eq(kill(shares.items[1].daemon.pid, SIGKILL), 0);
	ck_assert_int_eq(event_loop_run(&w.loop), 0);
	ck_assert_ptr_eq(w.ended, &shares.items[1]);
	/* and its last output line if it had written one ("virtio_loop: Entry") */
	ck_assert_msg(!strncmp(w.what, "virtiofsd (two) was killed by signal 9", 38), "%s", w.what);
	shares_stop(&shares, &w.loop);
	close(guard.fd);
	event_loop_free(&w.loop);
}
END_TEST

/* An executable script at @base/@name with @body. */
static const char *make_script(const char *name, const char *body)
{
	static char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", base, name);
	f = fopen(path, "we");
	ck_assert_ptr_nonnull(f);
	fputs(body, f);
	fclose(f);
	ck_assert_int_eq(chmod(path, 0755), 0);
	return path;
}

/*
 * A "virtiofsd" that exits at once: shares_start fails with its last words, or (when it was
 * still alive at connect) the negotiation fails at once. Either way, no hang.
 */
static void daemon_exits(const char *daemon, const char *last_words)
{
	char err[600] = "", sock_dir[sizeof(shares.sock_dir)];
	struct vhost_user vu;
	long start = now_ms();
	int ret;

	memset(&shares, 0, sizeof(shares));
	cfg.virtiofsd = daemon;
	ret = shares_start(&shares, &cfg, err, sizeof(err));
	snprintf(sock_dir, sizeof(sock_dir), "%s", shares.sock_dir);
	if (ret) {
		ck_assert_int_eq(ret, -ECONNREFUSED);
		ck_assert_msg(strstr(err, "virtiofsd (") && strstr(err, "exited with status 1") &&
		                      (!last_words || strstr(err, last_words)),
		              "%s", err);
	} else {
		ck_assert_int_eq(vhost_user_init(&vu, shares.items[0].sock, 5000), 0);
		shares.items[0].sock = -1;
		ck_assert_int_eq(vhost_user_negotiate(&vu, VHOST_USER_PROTOCOL_SUPPORTED), -EIO);
		vhost_user_close(&vu);
	}
	ck_assert_int_lt(now_ms() - start, 3000);
	shares_stop(&shares, NULL);
	check_stopped(NULL, 0, sock_dir);
}

START_TEST(daemon_exits_at_once)
{
	add_share(make_dir("data"));
	daemon_exits("/bin/false", NULL);
	daemon_exits(make_script("fake-virtiofsd",
	                         "#!/bin/sh\necho 'fake-virtiofsd: cannot serve' >&2\nexit 1\n"),
	             "exited with status 1: fake-virtiofsd: cannot serve");
}
END_TEST

/* A "virtiofsd" that accepts nothing: the front-end's timeout, then shares_stop ends it. */
START_TEST(daemon_never_answers)
{
	char err[600] = "", sock_dir[sizeof(shares.sock_dir)];
	struct vhost_user vu;
	long start;
	pid_t pid;

	add_share(make_dir("data"));
	cfg.virtiofsd = make_script("silent", "#!/bin/sh\nexec sleep 100\n");
	ck_assert_msg(shares_start(&shares, &cfg, err, sizeof(err)) == 0, "%s", err);
	pid = shares.items[0].daemon.pid;
	snprintf(sock_dir, sizeof(sock_dir), "%s", shares.sock_dir);
	ck_assert_int_eq(vhost_user_init(&vu, shares.items[0].sock, 300), 0);
	shares.items[0].sock = -1;
	start = now_ms();
	ck_assert_int_eq(vhost_user_negotiate(&vu, VHOST_USER_PROTOCOL_SUPPORTED), -ETIMEDOUT);
	ck_assert_int_lt(now_ms() - start, 2000);
	start = now_ms();
	shares_stop(&shares, NULL);
	ck_assert_int_lt(now_ms() - start, 2000);
	check_stopped(&pid, 1, sock_dir);
	vhost_user_close(&vu);
}
END_TEST

/* A "virtiofsd" that cannot be executed: the exec error, and no socket left behind. */
START_TEST(daemon_not_a_program)
{
	char err[600] = "", sock_dir[sizeof(shares.sock_dir)];

	add_share(make_dir("data"));
	cfg.virtiofsd = make_script("not-a-program", "no shebang here\n");
	ck_assert_int_eq(shares_start(&shares, &cfg, err, sizeof(err)), -ENOEXEC);
	ck_assert_msg(strstr(err, "virtiofsd (data): ") && strstr(err, "Exec format error"), "%s",
	              err);
	snprintf(sock_dir, sizeof(sock_dir), "%s", shares.sock_dir);
	ck_assert_uint_eq(dir_entries(sock_dir), 0);
	shares_stop(&shares, NULL);
	check_stopped(NULL, 0, sock_dir);

	cfg.virtiofsd = "/nonexistent/virtiofsd";
	ck_assert_int_eq(shares_start(&shares, &cfg, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "--virtiofsd /nonexistent/virtiofsd: not an executable file");
	shares_stop(&shares, NULL);
}
END_TEST

/*
 * vmm not root: virtiofsd runs as root of a user namespace of its own (--rlimit-nofile=0,
 * sandbox=chroot) and serves --run's read-only / as well as a writable share.
 */
START_TEST(unprivileged)
{
	const char *mode = getenv("CK_FORK");
	pid_t pid;
	int status;

	if (!have_virtiofsd())
		return;
	if (mode && !strcmp(mode, "no")) {
		printf("skipped: needs Check's fork mode\n");
		return;
	}
	cfg.run_cmd = "true";
	add_share(make_dir("work"));
	/* nobody's, so that nobody can use them and teardown remove them */
	ck_assert_int_eq(chown(cfg.shares[0].host, NOBODY, NOBODY), 0);
	ck_assert_int_eq(chown(base, NOBODY, NOBODY), 0);
	/* As if exec'ed by nobody: dumpable (changing ids cleared it), or uid_map is root's. */
	if (geteuid() == 0 && (setgroups(0, NULL) || setresgid(NOBODY, NOBODY, NOBODY) ||
	                       setresuid(NOBODY, NOBODY, NOBODY) || prctl(PR_SET_DUMPABLE, 1))) {
		printf("skipped: cannot become nobody: %s\n", strerror(errno));
		return;
	}
	pid = fork();
	if (pid == 0)
		_exit(unshare(CLONE_NEWUSER) ? 1 : 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		printf("skipped: this host forbids unprivileged user namespaces\n");
		return;
	}
	unsetenv("XDG_RUNTIME_DIR"); /* root's, perhaps: the sockets go to /tmp */
	start_negotiate_stop();
}
END_TEST

static Suite *shares_suite(void)
{
	Suite *s = suite_create("shares");
	TCase *resolving = tcase_create("resolve");
	TCase *daemons = tcase_create("daemons");

	tcase_add_checked_fixture(resolving, setup, teardown);
	tcase_add_test(resolving, relative_path);
	tcase_add_test(resolving, missing_dir);
	tcase_add_test(resolving, not_a_dir);
	tcase_add_test(resolving, default_tags);
	tcase_add_test(resolving, duplicate_tags);
	tcase_add_test(resolving, run_mode);
	tcase_add_test(resolving, stop_without_daemons);
	suite_add_tcase(s, resolving);

	tcase_set_timeout(daemons, 20);
	tcase_add_checked_fixture(daemons, setup, teardown);
	tcase_add_test(daemons, start_shares);
	tcase_add_test(daemons, start_run_mode);
	tcase_add_test(daemons, stop_while_connected);
	tcase_add_test(daemons, watch_daemon_death);
	tcase_add_test(daemons, daemon_exits_at_once);
	tcase_add_test(daemons, daemon_never_answers);
	tcase_add_test(daemons, daemon_not_a_program);
	tcase_add_test(daemons, unprivileged);
	suite_add_tcase(s, daemons);
	return s;
}

int main(void)
{
	/* As vmm does: a daemon gone is EPIPE on its socket, not the end of the process. */
	signal(SIGPIPE, SIG_IGN);
	return unit_run(shares_suite());
}
