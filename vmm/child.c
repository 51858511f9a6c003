/*
 * Helper processes: see child.h. Between fork and exec the child only sets itself up and
 * execs; whatever fails there is written to a close-on-exec pipe, so the parent learns either
 * "exec'ed" (EOF) or the reason, and can say it in one line.
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

/* In the child: reports "@what: errno" on the pipe and exits. */
static _Noreturn void child_fail(int pipe_fd, const char *what)
{
	char msg[256];
	int len = snprintf(msg, sizeof(msg), "%s: %s", what, strerror(errno));

	if (len > 0 && write(pipe_fd, msg, MIN((size_t)len, sizeof(msg) - 1)) < 0)
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

/* In the child: become root of a new user namespace with our own ids mapped. */
static void enter_user_namespace(int pipe_fd)
{
	char map[64];
	uid_t uid = getuid();
	gid_t gid = getgid();

	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		child_fail(pipe_fd, "cannot create a user namespace (unshare)");
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
	if (write_file("/proc/self/setgroups", "deny") < 0 ||
	    write_file("/proc/self/uid_map", map) < 0)
		child_fail(pipe_fd, "cannot map the user id into the user namespace");
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

int child_spawn(struct child *c, const char *name, const struct child_spec *spec, char *err,
                size_t errlen)
{
	int pipe_fds[2];
	char msg[256];
	pid_t parent = getpid();
	ssize_t n;

	*c = (struct child){.pidfd = -1, .log_fd = -1, .watch.fd = -1};
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->log_fd = memfd_create("vmm-child-output", MFD_CLOEXEC);
	if (c->log_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "%s: cannot start: %s", name, strerror(errno));
		return -errno;
	}
	c->pid = fork();
	if (c->pid == 0) {
		close(pipe_fds[0]);
		run_child(spec, c->log_fd, pipe_fds[1], parent);
	}
	close(pipe_fds[1]);
	if (c->pid < 0) {
		int ret = -errno;

		close(pipe_fds[0]);
		c->pid = 0;
		snprintf(err, errlen, "%s: cannot start (fork): %s", name, strerror(-ret));
		return ret;
	}
	do
		n = read(pipe_fds[0], msg, sizeof(msg) - 1);
	while (n < 0 && errno == EINTR);
	close(pipe_fds[0]);
	if (n > 0) {
		msg[n] = '\0';
		waitpid(c->pid, &c->status, 0);
		c->pid = 0;
		snprintf(err, errlen, "%s: %s", name, msg);
		return -ENOEXEC;
	}
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (c->pidfd < 0) {
		int ret = -errno;

		snprintf(err, errlen, "%s: pidfd_open: %s", name, strerror(-ret));
		child_stop(c, NULL, 0);
		return ret;
	}
	return 0;
}

static void on_child_exit(void *opaque, uint32_t events)
{
	struct child *c = opaque;

	(void)events;
	if (!child_exited(c))
		return;
	if (c->on_exit)
		c->on_exit(c->opaque, c);
}

int child_watch(struct child *c, struct event_loop *loop, void (*on_exit)(void *, struct child *),
                void *opaque)
{
	c->on_exit = on_exit;
	c->opaque = opaque;
	c->watch = (struct event_source){.fd = c->pidfd, .handler = on_child_exit, .opaque = c};
	return event_loop_add(loop, &c->watch, EPOLLIN);
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
	off_t size = c->log_fd >= 0 ? lseek(c->log_fd, 0, SEEK_END) : -1;
	off_t from = size > (off_t)sizeof(tail) - 1 ? size - (off_t)sizeof(tail) + 1 : 0;
	ssize_t n = size > 0 ? pread(c->log_fd, tail, sizeof(tail) - 1, from) : 0;
	char *end, *start;

	buf[0] = '\0';
	if (n <= 0)
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

void child_stop(struct child *c, struct event_loop *loop, unsigned grace_ms)
{
	if (loop && c->watch.fd >= 0) {
		event_loop_del(loop, &c->watch);
		c->watch.fd = -1;
	}
	if (c->pid) {
		struct pollfd p = {.fd = c->pidfd, .events = POLLIN};

		kill(c->pid, SIGTERM);
		if (c->pidfd < 0 || poll(&p, 1, (int)grace_ms) <= 0)
			kill(c->pid, SIGKILL);
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
