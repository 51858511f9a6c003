/*
 * The test-run init (vmm --kernel K --run CMD): pid 1 of the guest, embedded in vmm (embed.py,
 * init_blob.h) and written into the initramfs vmm generates, with the /vmm/ files of config.h.
 * It loads the modules, opens the vmm.status console port, mounts the host's / as the root
 * (mounts.c), runs CMD with /bin/sh -c on the vmm.stdin/stdout/stderr ports, reports on the
 * status port and powers off:
 *   waiting\n      (--save-ready) vmm snapshots the guest here, and sends the run's files
 *                  once it restored the snapshot (ready.c)
 *   ready\n        everything is mounted, the command starts
 *   exit N\n       the command ended: its exit status, or 128 + the signal that killed it
 *   error MSG\n    a step failed (MSG is one line); nothing more follows
 * Failures before the status port is open go to /dev/kmsg as "vmm-init: MSG". The status port
 * stays open for the whole run: a port has one opener, so no guest program can fake a status.
 * One process, one thread; the only state is the struct init on main()'s stack.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "guest-firmware/init/init.h"

#define PORTS_DIR "/sys/class/virtio-ports"

/* pid 1 ignores these; the command gets them back at their defaults. */
static const int ignored_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};

int init_errf(struct init *in, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(in->err, sizeof(in->err), fmt, ap);
	va_end(ap);
	return ret;
}

int init_syserr(struct init *in, const char *fmt, ...)
{
	int err = errno ? errno : EIO;
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(in->err, sizeof(in->err), fmt, ap);
	va_end(ap);
	len = strlen(in->err);
	snprintf(in->err + len, sizeof(in->err) - len, ": %s", strerror(err));
	return -err;
}

long long init_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void init_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL); /* an early wake-up only makes a poll loop poll sooner */
}

/* Replaces control characters, so that a message (it may quote file bytes) stays one line. */
static void one_line(char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes one formatted line to the status port. */
static int status_line(struct init *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int status_line(struct init *in, const char *fmt, ...)
{
	char line[sizeof(in->err) + 16];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(line)) { /* cut short: keep the newline */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	return write_all(in->status_fd, line, (size_t)n);
}

/* Logs @msg on /dev/kmsg (or /dev/console) as "vmm-init: @msg". */
static void kmsg_line(const char *msg)
{
	char line[600];
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	int n;

	/* <3>: KERN_ERR, shown on the console even with "quiet". */
	n = snprintf(line, sizeof(line), "%svmm-init: %s\n", fd >= 0 ? "<3>" : "", msg);
	if (fd < 0)
		fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	write_all(fd, line, (size_t)n);
	close(fd);
}

static void __attribute__((noreturn)) power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	for (;;) /* pid 1 must not exit: that panics the kernel */
		pause();
}

/*
 * vmm ends the VM once it has taken all the output the command queued; powering off first
 * could lose some (the ports' buffers go with the devices). So wait on the status port: vmm
 * sends nothing, and if the read ever returns, power off after all.
 */
static int await_end(struct init *in)
{
	char byte;

	while (read(in->status_fd, &byte, 1) < 0 && errno == EINTR)
		;
	return 0;
}

/* The one place a failed step is reported: on the status port if open, else on kmsg. */
static void __attribute__((noreturn)) fail(struct init *in)
{
	one_line(in->err);
	if (in->status_fd < 0 || status_line(in, "error %s\n", in->err) < 0)
		kmsg_line(in->err);
	else
		await_end(in); /* vmm ends the VM once it has the message */
	power_off();
}

/* Appends "@label0x@value" in hex to @buf at @len (async-signal-safe). */
static size_t put_hex(char *buf, size_t len, const char *label, unsigned long long value)
{
	char digits[16];
	int n = 0;

	while (*label)
		buf[len++] = *label++;
	buf[len++] = '0';
	buf[len++] = 'x';
	do {
		digits[n++] = "0123456789abcdef"[value & 0xf];
		value >>= 4;
	} while (value);
	while (n)
		buf[len++] = digits[--n];
	return len;
}

/*
 * pid 1 crashing panics the kernel with no word of where: first say it on kmsg at KERN_CRIT
 * (shown with quiet, so it is among the kernel's last messages vmm prints), then die of the
 * signal as before (SA_RESETHAND). Only async-signal-safe calls.
 */
int main(void);

static void crashed(int sig, siginfo_t *si, void *ctx)
{
	const ucontext_t *uc = ctx;
	unsigned long long pc = 0;
	char line[160] = "<2>vmm-init: crashed";
	size_t len = strlen(line);
	int fd;

#if defined(__x86_64__)
	pc = (unsigned long long)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	pc = uc->uc_mcontext.pc;
#endif
	len = put_hex(line, len, ": signal ", (unsigned long long)sig);
	len = put_hex(line, len, " code ", (unsigned long long)(unsigned)si->si_code);
	len = put_hex(line, len, " address ", (unsigned long long)(uintptr_t)si->si_addr);
	len = put_hex(line, len, " pc ", pc);
	len = put_hex(line, len, " (main at ", (unsigned long long)(uintptr_t)main);
	line[len++] = ')';
	line[len++] = '\n';
	fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = write(fd, line, len);

		(void)n; /* nothing else to tell it to */
		close(fd);
	}
	raise(sig);
}

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};

static int ignore_signals(struct init *in)
{
	struct sigaction crash = {.sa_sigaction = crashed,
	                          .sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER};

	for (size_t i = 0; i < sizeof(crash_signals) / sizeof(crash_signals[0]); i++) {
		if (sigaction(crash_signals[i], &crash, NULL) < 0)
			return init_syserr(in, "sigaction %d", crash_signals[i]);
	}
	struct sigaction sa = {.sa_handler = SIG_IGN};

	for (size_t i = 0; i < sizeof(ignored_signals) / sizeof(ignored_signals[0]); i++) {
		if (sigaction(ignored_signals[i], &sa, NULL) < 0)
			return init_syserr(in, "sigaction %d", ignored_signals[i]);
	}
	return 0;
}

/*
 * The kernel starts init with fds 0-2 on /dev/console, or closed when the initramfs has no
 * /dev/console. Fill the closed ones with /dev/null, so that every fd opened later is above 2
 * and the child's dup2()s onto 0-2 cannot clobber one.
 */
static int std_fds(struct init *in)
{
	for (;;) {
		int fd = open("/dev/null", O_RDWR);

		if (fd < 0)
			return init_syserr(in, "open /dev/null");
		if (fd > 2) {
			close(fd);
			return 0;
		}
	}
}

/* Reads @path whole into a NUL-terminated heap buffer (kept for the run); over @max is -EFBIG. */
static int read_file(struct init *in, const char *path, size_t max, char **out, size_t *out_len)
{
	char *buf = malloc(max + 2);
	size_t len = 0;
	int fd;

	if (!buf)
		return init_errf(in, -ENOMEM, "%s: out of memory", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return init_syserr(in, "open %s", path);
	}
	while (len <= max) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int ret = init_syserr(in, "read %s", path);

			close(fd);
			free(buf);
			return ret;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len > max) {
		free(buf);
		return init_errf(in, -EFBIG, "%s: longer than %zu bytes", path, max);
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

static int read_modules(struct init *in)
{
	size_t len;
	char *buf;
	int ret = read_file(in, INIT_MODULES_FILE, INIT_MODULES_FILE_MAX, &buf, &len);

	if (ret)
		return ret;
	return init_parse_modules(buf, len, in->modules, INIT_MAX_MODULES, &in->nr_modules, in->err,
	                          sizeof(in->err));
}

static int load_modules(struct init *in)
{
	for (unsigned i = 0; i < in->nr_modules; i++) {
		const char *path = in->modules[i];
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		long ret;
		int err;

		if (fd < 0)
			return init_syserr(in, "open module %s", path);
		do {
			ret = syscall(SYS_finit_module, fd, "", init_module_flags(path));
			err = errno;
		} while (ret < 0 && err == EINTR);
		close(fd);
		if (ret < 0 && err != EEXIST) {
			errno = err;
			return init_syserr(in, "load module %s", path);
		}
	}
	return 0;
}

/*
 * Finds the console port named @name: /sys/class/virtio-ports/vportNpM/name holds it (with a
 * newline) once the host named the port. Fills @dev with /dev/vportNpM. Returns 0 or -ENOENT.
 */
static int find_port(const char *name, char *dev, size_t devlen)
{
	DIR *dir = opendir(PORTS_DIR);
	struct dirent *e;
	int ret = -ENOENT;

	if (!dir)
		return -ENOENT;
	while (ret && (e = readdir(dir))) {
		char path[128], text[64];
		ssize_t n;
		int fd;

		if (strncmp(e->d_name, "vport", 5) != 0 || strlen(e->d_name) > 32)
			continue;
		snprintf(path, sizeof(path), PORTS_DIR "/%s/name", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
		if (n <= 0)
			continue;
		text[n] = '\0';
		text[strcspn(text, "\n")] = '\0';
		if (strcmp(text, name) == 0) {
			snprintf(dev, devlen, "/dev/%s", e->d_name);
			ret = 0;
		}
	}
	closedir(dir);
	return ret;
}

/* Waits up to INIT_WAIT_MS for the port @name, then opens it with @flags into *@fd. */
static int open_port(struct init *in, const char *name, int flags, int *fd)
{
	long long deadline = init_now_ms() + INIT_WAIT_MS;
	char dev[64];

	for (;;) {
		if (find_port(name, dev, sizeof(dev)) == 0) {
			*fd = open(dev, flags | O_CLOEXEC);
			if (*fd >= 0)
				return 0;
			if (errno != ENOENT)
				return init_syserr(in, "open %s (port %s)", dev, name);
		}
		if (init_now_ms() >= deadline)
			return init_errf(in, -ETIMEDOUT,
			                 "no virtio-console port named %s after %d s", name,
			                 INIT_WAIT_MS / 1000);
		init_sleep_ms(10);
	}
}

static int open_status_port(struct init *in)
{
	/* Read-write: after the exit status, the init waits on it for vmm to end the VM. */
	return open_port(in, INIT_PORT_STATUS, O_RDWR, &in->status_fd);
}

static int read_run_config(struct init *in)
{
	char *mounts, *term = NULL;
	size_t len;
	int ret = read_file(in, INIT_MOUNTS_FILE, INIT_MOUNTS_FILE_MAX, &mounts, &len);

	if (!ret)
		ret = init_parse_mounts(mounts, len, in->mounts, INIT_MAX_MOUNTS, &in->nr_mounts,
		                        in->err, sizeof(in->err));
	if (!ret)
		ret = read_file(in, INIT_CWD_FILE, INIT_CWD_FILE_MAX, &in->cwd, &len);
	if (!ret)
		ret = init_check_cwd(in->cwd, len, in->err, sizeof(in->err));
	if (!ret)
		ret = read_file(in, INIT_CMD_FILE, INIT_CMD_FILE_MAX, &in->cmd, &len);
	if (!ret)
		ret = init_check_cmd(in->cmd, len, in->err, sizeof(in->err));
	if (ret)
		return ret;
	ret = read_file(in, INIT_TERM_FILE, INIT_TERM_FILE_MAX, &term, &len);
	if (ret == -ENOENT) {
		in->term = INIT_DEFAULT_TERM;
		return 0;
	}
	if (!ret)
		ret = init_check_term(term, len, in->err, sizeof(in->err));
	in->term = term;
	return ret;
}

static int open_io_ports(struct init *in)
{
	int ret = open_port(in, INIT_PORT_STDIN, O_RDONLY, &in->io_fd[INIT_STDIN]);

	if (!ret)
		ret = open_port(in, INIT_PORT_STDOUT, O_WRONLY, &in->io_fd[INIT_STDOUT]);
	if (!ret)
		ret = open_port(in, INIT_PORT_STDERR, O_WRONLY, &in->io_fd[INIT_STDERR]);
	return ret;
}

static int report_ready(struct init *in)
{
	int ret = status_line(in, "ready\n");

	if (ret)
		return init_errf(in, ret, "write to the status port: %s", strerror(-ret));
	return 0;
}

/* The child: the ports on 0-2, a new session, default signals, the cwd; then /bin/sh -c. */
static void __attribute__((noreturn)) exec_command(const struct init *in)
{
	static char path_env[] =
	        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	static char home_env[] = "HOME=/root";
	char term_env[sizeof("TERM=") + INIT_TERM_MAX];
	char *const argv[] = {"sh", "-c", in->cmd, NULL};
	char *const envp[] = {path_env, home_env, term_env, NULL};
	sigset_t none;

	for (size_t i = 0; i < sizeof(ignored_signals) / sizeof(ignored_signals[0]); i++)
		signal(ignored_signals[i], SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	/* The ports are above 2 (std_fds()); dup2() clears their close-on-exec. */
	for (int i = 0; i < INIT_NR_IO; i++) {
		if (dup2(in->io_fd[i], i) < 0) {
			kmsg_line("dup2 of a console port failed");
			_exit(127);
		}
	}
	if (chdir(in->cwd) < 0) {
		char shown[INIT_PATH_MAX];
		int err = errno;

		snprintf(shown, sizeof(shown), "%s", in->cwd);
		one_line(shown);
		dprintf(2, "vmm-init: cannot enter %s in the guest (%s); running in /\n", shown,
		        strerror(err));
		if (chdir("/") < 0)
			_exit(127);
	}
	snprintf(term_env, sizeof(term_env), "TERM=%s", in->term);
	execve("/bin/sh", argv, envp);
	dprintf(2, "vmm-init: cannot run /bin/sh: %s\n", strerror(errno));
	_exit(127);
}

/* Starts the command and reaps every child (orphans come to pid 1) until the command ends. */
static int run_command(struct init *in)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return init_syserr(in, "fork");
	if (pid == 0)
		exec_command(in);
	for (;;) {
		pid_t done = waitpid(-1, &status, 0);

		if (done == pid)
			break;
		if (done < 0 && errno != EINTR)
			return init_syserr(in, "waitpid");
	}
	in->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return 0;
}

static int report_exit(struct init *in)
{
	int ret;

	for (int i = 0; i < INIT_NR_IO; i++) {
		close(in->io_fd[i]);
		in->io_fd[i] = -1;
	}
	sync(); /* what the command wrote to rw shares is on the host before vmm says done */
	ret = status_line(in, "exit %d\n", in->exit_status);
	if (ret)
		return init_errf(in, ret, "write to the status port: %s", strerror(-ret));
	return 0;
}

/*
 * The steps in order; the first failure goes to fail(). The status port opens right after the
 * modules load, before anything is mounted, so that every later failure is reported on it.
 */
static int (*const steps[])(struct init *) = {
        ignore_signals,   /* SIGINT, SIGTERM, SIGHUP, SIGPIPE; a crash says where */
        mnt_early,        /* proc, sysfs, devtmpfs in the initramfs */
        std_fds,          /* fds 0-2 open */
        read_modules,     /* /vmm/modules */
        load_modules,     /* finit_module() each */
        open_status_port, /* vmm.status: failures are reported there from now on */
        ready_wait,       /* --save-ready: "waiting", then the run's files from vmm */
        read_run_config,  /* /vmm/mounts, cwd, cmd, term */
        mnt_root,         /* the host's / (read-only) under an overlay on /newroot */
        mnt_writable,     /* tmpfs on /tmp and /run */
        mnt_kernel_fs,    /* /proc, /sys, /dev into /newroot */
        mnt_switch_root,  /* /newroot becomes / */
        mnt_shares,       /* the other virtio-fs tags */
        open_io_ports,    /* vmm.stdin, vmm.stdout, vmm.stderr */
        report_ready,     /* "ready" */
        run_command,      /* /bin/sh -c CMD, until it ends */
        report_exit,      /* "exit N" */
        await_end,        /* vmm ends the VM */
};

int main(void)
{
	struct init in = {.status_fd = -1, .io_fd = {-1, -1, -1}};

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (steps[i](&in) < 0)
			fail(&in);
	}
	power_off();
}
