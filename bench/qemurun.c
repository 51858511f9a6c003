/*
 * bench/qemurun.c: runs a `vmm --run` initramfs under QEMU for bench/run, doing the job vmm
 * does around its guest: it starts virtiofsd for the host's / (the way vmm/shares.c does: a
 * listening socket passed as --fd, -o sandbox=chroot, -o cache=auto), starts QEMU, forwards
 * the command's output and ends QEMU once the init reported the exit status on its port.
 *
 *   qemurun -s SOCK [-b BYTES] [-t SECS] [-l LOG] [-d VIRTIOFSD] -- QEMU [ARGS...]
 *
 * The caller's QEMU arguments connect to the helper's descriptors, which QEMU gets as
 *   fd 3  the write end of a pipe for the vmm.status port (-chardev file,path=/proc/self/fd/3)
 *   fd 4  the write end of a pipe for the vmm.stdout port (.../fd/4)
 *   fd 5  this helper's stderr, for the vmm.stderr port (.../fd/5)
 * and a vhost-user socket at SOCK (-chardev socket,path=SOCK), where virtiofsd listens before
 * QEMU starts. QEMU's and virtiofsd's own messages go to LOG (default /dev/null).
 *
 * What arrives on the stdout pipe is copied to this helper's stdout (splice where it can).
 * The status port carries "ready", then "exit N" or "error MSG" (guest-firmware/init/init.c).
 * QEMU does not tell when its virtio-serial buffers are empty (it writes a port's data without
 * blocking and keeps the rest while the reader is behind), so the run is over once "exit N"
 * arrived and at least BYTES bytes (default 0) came from the stdout port: then QEMU gets
 * SIGKILL (its guest has nothing left to do), and virtiofsd, as vmm stops it, SIGTERM with
 * a grace of one second before SIGKILL. Exit status: N; 125 after "error MSG"; 120 when QEMU
 * ends before "exit N" and the BYTES; 124 after SECS seconds; 1 when the helper itself fails.
 * Single-threaded. Built statically by bench/run (with aarch64-linux-gnu-gcc for an arm64 L1).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STATUS_FD       3
#define STDOUT_FD       4
#define STDERR_FD       5
#define DAEMON_FD       3
#define DAEMON_GRACE_MS 1000
#define STATUS_ERROR    125
#define STATUS_VM_ENDED 120
#define STATUS_TIMEOUT  124
#define DEFAULT_DAEMON  "/usr/lib/qemu/virtiofsd"
#define COPY_CHUNK      (1 << 20)

extern char **environ;

struct run {
	pid_t qemu, daemon;
	int qemu_pidfd;
	int status_rd, out_rd;
	long long out_bytes, want_bytes;
	char line[512];
	size_t line_len;
	int exit_status;  /* -1 until the status port said "exit N" or "error" */
	bool init_failed; /* the init said "error MSG" (or a malformed "exit") */
	const char *log;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(void)
{
	fprintf(stderr, "usage: qemurun -s SOCK [-b BYTES] [-t SECS] [-l LOG] [-d VIRTIOFSD] -- "
	                "QEMU [ARGS...]\n");
	exit(2);
}

/* A listening socket at @path (replacing a stale one); returns the fd or -1. */
static int listen_at(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Moves @fd (close-on-exec) above the descriptors a child gets (so that moving one there
 * cannot overwrite another still to move); returns the new fd, or -1 (also for @fd < 0).
 */
static int high_fd(int fd)
{
	int moved;

	if (fd < 0)
		return -1;
	moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	close(fd);
	return moved;
}

/*
 * Spawns @argv with stdin on /dev/null, stdout and stderr on @log, and @n descriptors moved:
 * @from[i] becomes @to[i] (dup2 clears close-on-exec). Returns the pid or -1.
 */
static pid_t spawn(char *const argv[], const char *log, const int *from, const int *to, int n)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int err;

	posix_spawn_file_actions_init(&fa);
	for (int i = 0; i < n; i++)
		posix_spawn_file_actions_adddup2(&fa, from[i], to[i]);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	err = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err) {
		fprintf(stderr, "qemurun: cannot run %s: %s\n", argv[0], strerror(err));
		return -1;
	}
	return pid;
}

/* Copies what the stdout pipe holds to our stdout; returns 0, or -1 at EOF or on error. */
static int forward_stdout(struct run *r)
{
	static char buf[65536];
	ssize_t n = splice(r->out_rd, NULL, 1, NULL, COPY_CHUNK, SPLICE_F_MOVE);

	if (n < 0 && errno == EINVAL) { /* stdout is not something splice writes to */
		n = read(r->out_rd, buf, sizeof(buf));
		for (ssize_t done = 0, w; n > 0 && done < n; done += w) {
			w = write(1, buf + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR)
				w = 0;
			else if (w < 0)
				return -1;
		}
	}
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	r->out_bytes += n;
	return 0;
}

/* Takes one line from the status port: "exit N" or "error MSG" end the run. */
static void status_line(struct run *r, char *line)
{
	char *end;
	long n;

	if (!strncmp(line, "exit ", 5)) {
		n = strtol(line + 5, &end, 10);
		if (*end || end == line + 5 || n < 0 || n > 255) {
			fprintf(stderr, "qemurun: a malformed status line: %s\n", line);
			r->init_failed = true;
		}
		r->exit_status = r->init_failed ? STATUS_ERROR : (int)n;
	} else if (!strncmp(line, "error ", 6)) {
		fprintf(stderr, "qemurun: the init failed: %s\n", line + 6);
		r->init_failed = true;
		r->exit_status = STATUS_ERROR;
	}
}

/* Reads the status pipe; returns 0, or -1 at EOF or on error. */
static int read_status(struct run *r)
{
	ssize_t n = read(r->status_rd, r->line + r->line_len, sizeof(r->line) - 1 - r->line_len);
	char *nl;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	r->line_len += (size_t)n;
	r->line[r->line_len] = '\0';
	while ((nl = strchr(r->line, '\n'))) {
		*nl = '\0';
		status_line(r, r->line);
		r->line_len -= (size_t)(nl + 1 - r->line);
		memmove(r->line, nl + 1, r->line_len + 1);
	}
	if (r->line_len == sizeof(r->line) - 1) /* a line longer than any the init writes */
		r->line_len = 0;
	return 0;
}

static void stop_daemon(pid_t pid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	struct pollfd p = {.fd = pidfd, .events = POLLIN};

	kill(pid, SIGTERM);
	if (pidfd < 0 || poll(&p, 1, DAEMON_GRACE_MS) <= 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (pidfd >= 0)
		close(pidfd);
}

static bool run_over(const struct run *r)
{
	return r->init_failed || (r->exit_status >= 0 && r->out_bytes >= r->want_bytes);
}

/* Waits for the end of the run; returns the exit status. */
static int supervise(struct run *r, int timeout_s)
{
	long long deadline = timeout_s > 0 ? now_ms() + timeout_s * 1000LL : -1;

	for (;;) {
		struct pollfd p[3] = {
		        {.fd = r->out_rd, .events = POLLIN},
		        {.fd = r->status_rd, .events = POLLIN},
		        {.fd = r->qemu_pidfd, .events = POLLIN},
		};
		int wait_ms = -1;

		if (run_over(r))
			return r->exit_status;
		if (deadline >= 0) {
			long long left = deadline - now_ms();

			if (left <= 0) {
				fprintf(stderr,
				        "qemurun: timed out after %d s (%s; %lld of %lld bytes "
				        "out)\n",
				        timeout_s,
				        r->exit_status >= 0 ? "exit status in" : "no exit status",
				        r->out_bytes, r->want_bytes);
				return STATUS_TIMEOUT;
			}
			wait_ms = (int)left;
		}
		if (poll(p, 3, wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			perror("qemurun: poll");
			return 1;
		}
		if ((p[0].revents & (POLLIN | POLLHUP)) && forward_stdout(r) < 0)
			r->out_rd = -1; /* poll() skips a negative fd */
		if ((p[1].revents & (POLLIN | POLLHUP)) && read_status(r) < 0)
			r->status_rd = -1;
		if (p[2].revents & POLLIN) {
			if (run_over(r))
				return r->exit_status;
			if (r->exit_status >= 0)
				fprintf(stderr,
				        "qemurun: QEMU ended with %lld of %lld bytes out (its "
				        "messages: %s)\n",
				        r->out_bytes, r->want_bytes, r->log);
			else
				fprintf(stderr,
				        "qemurun: QEMU ended before the command's exit status (its "
				        "messages: %s)\n",
				        r->log);
			return r->exit_status == STATUS_ERROR ? STATUS_ERROR : STATUS_VM_ENDED;
		}
	}
}

int main(int argc, char **argv)
{
	const char *sock = NULL, *daemon = DEFAULT_DAEMON;
	struct run r = {.exit_status = -1, .log = "/dev/null", .qemu_pidfd = -1};
	int timeout_s = 0, opt, st[2], out[2], listen_fd, err_fd, status;

	while ((opt = getopt(argc, argv, "+s:b:t:l:d:")) != -1) {
		switch (opt) {
		case 's':
			sock = optarg;
			break;
		case 'b':
			r.want_bytes = atoll(optarg);
			break;
		case 't':
			timeout_s = atoi(optarg);
			break;
		case 'l':
			r.log = optarg;
			break;
		case 'd':
			daemon = optarg;
			break;
		default:
			usage();
		}
	}
	if (!sock || optind >= argc)
		usage();
	signal(SIGPIPE, SIG_IGN);

	listen_fd = high_fd(listen_at(sock));
	if (listen_fd < 0) {
		fprintf(stderr, "qemurun: socket %s: %s\n", sock, strerror(errno));
		return 1;
	}
	{
		char *dargv[] = {(char *)daemon,   "--fd=3", "-o",         "source=/", "-o",
		                 "sandbox=chroot", "-o",     "cache=auto", NULL};
		int from[] = {listen_fd}, to[] = {DAEMON_FD};

		r.daemon = spawn(dargv, r.log, from, to, 1);
	}
	close(listen_fd);
	if (r.daemon < 0)
		return 1;

	if (pipe2(st, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || (st[1] = high_fd(st[1])) < 0 ||
	    (out[1] = high_fd(out[1])) < 0 ||
	    (err_fd = high_fd(fcntl(2, F_DUPFD_CLOEXEC, 0))) < 0) {
		perror("qemurun: pipe");
		stop_daemon(r.daemon);
		return 1;
	}
	{
		int from[] = {st[1], out[1], err_fd}, to[] = {STATUS_FD, STDOUT_FD, STDERR_FD};

		r.qemu = spawn(argv + optind, r.log, from, to, 3);
	}
	close(st[1]);
	close(out[1]);
	close(err_fd);
	r.status_rd = st[0];
	r.out_rd = out[0]; /* blocking: read or spliced only when poll() says it has data */
	fcntl(r.status_rd, F_SETFL, O_NONBLOCK);
	if (r.qemu > 0)
		r.qemu_pidfd = (int)syscall(SYS_pidfd_open, r.qemu, 0);
	if (r.qemu <= 0 || r.qemu_pidfd < 0) {
		if (r.qemu > 0) {
			perror("qemurun: pidfd_open");
			kill(r.qemu, SIGKILL);
			waitpid(r.qemu, NULL, 0);
		}
		stop_daemon(r.daemon);
		return 1;
	}

	status = supervise(&r, timeout_s);
	kill(r.qemu, SIGKILL);
	while (waitpid(r.qemu, NULL, 0) < 0 && errno == EINTR)
		;
	stop_daemon(r.daemon);
	unlink(sock);
	return status;
}
