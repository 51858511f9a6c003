/*
 * The sandbox (vmm/sandbox.c), each case in a child forked for it (a filter or a capability
 * drop cannot be undone): what each thread kind's filter allows, the one-line message and exit
 * status 1 for a forbidden syscall (also a forbidden ioctl request and an executable mapping),
 * the terminal restored before that exit, per-thread filters (a thread's filter does not reach
 * the main thread until it installs its own), the capabilities after the drop (empty; run as
 * root, the bounding set too), no_new_privs, and --seccomp off.
 *
 * A child reports a failed check on stderr and exits with a status of its own; the parent
 * asserts on both.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "devices/virtio/blk_uring.h"
#include "tests/unit/unit.h"
#include "vmm/child.h"
#include "vmm/event_loop.h"
#include "vmm/out_stream.h"
#include "vmm/sandbox.h"

#define FAILED_CHECK 99 /* a child's own check failed (what, on its stderr) */

/* In a child: reports @what and exits FAILED_CHECK unless @ok. */
#define EXPECT(ok, what)                                                                           \
	do {                                                                                       \
		if (!(ok)) {                                                                       \
			fprintf(stderr, "check failed: %s (errno %d)\n", what, errno);             \
			_exit(FAILED_CHECK);                                                       \
		}                                                                                  \
	} while (0)

/* Runs @fn in a child whose stderr goes to @out; returns its wait status. */
static int run_child(void (*fn)(void), char *out, size_t outlen)
{
	int fds[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], STDERR_FILENO);
		fn();
		_exit(0);
	}
	close(fds[1]);
	while (len < outlen - 1 && (n = read(fds[0], out + len, outlen - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return status;
}

/* Asserts that the child exited 0. */
static void expect_clean(void (*fn)(void))
{
	char out[512];
	int status = run_child(fn, out, sizeof(out));

	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x, stderr: %s",
	              status, out);
}

/* Asserts that the child ended with exactly the line for @syscall made on a @kind thread. */
static void expect_forbidden(void (*fn)(void), const char *kind, const char *syscall)
{
	char out[512], want[256];
	int status = run_child(fn, out, sizeof(out));

	snprintf(want, sizeof(want), "vmm: seccomp: %s thread made a forbidden syscall: %s (%d)\n",
	         kind, syscall, seccomp_syscall_resolve_name(syscall));
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 1, "status 0x%x, stderr: %s",
	              status, out);
	ck_assert_str_eq(out, want);
}

/* The value of @key in a /proc status file already open as @fd (read from its start). */
static bool status_field(int fd, const char *key, char *val, size_t len)
{
	char buf[4096], *p;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (p = buf; p; p = strchr(p, '\n')) {
		size_t klen = strlen(key);

		p += *p == '\n';
		if (!strncmp(p, key, klen) && p[klen] == ':') {
			p += klen + 1;
			p += strspn(p, " \t");
			snprintf(val, len, "%.*s", (int)strcspn(p, "\n"), p);
			return true;
		}
	}
	return false;
}

static bool field_is(int fd, const char *key, const char *want)
{
	char val[64];

	return status_field(fd, key, val, sizeof(val)) && !strcmp(val, want);
}

static void enter(bool seccomp)
{
	char err[256] = "";

	if (sandbox_enter(seccomp, err, sizeof(err))) {
		fprintf(stderr, "sandbox_enter: %s\n", err);
		_exit(FAILED_CHECK);
	}
}

/* ---- capabilities and no_new_privs ------------------------------------------------------ */

static void caps_child(void)
{
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC), locked;
	bool had_setpcap = geteuid() == 0 && !field_is(fd, "CapBnd", "0000000000000000");
	char path[] = "/tmp/vmm-test-sandbox-XXXXXX";

	EXPECT(fd >= 0, "open /proc/self/status");
	locked = mkstemp(path);
	EXPECT(locked >= 0 && fchmod(locked, 0) == 0 && close(locked) == 0, "a mode 000 file");
	enter(false);
	EXPECT(field_is(fd, "CapEff", "0000000000000000"), "CapEff empty");
	EXPECT(field_is(fd, "CapPrm", "0000000000000000"), "CapPrm empty");
	EXPECT(field_is(fd, "CapInh", "0000000000000000"), "CapInh empty");
	EXPECT(field_is(fd, "CapAmb", "0000000000000000"), "CapAmb empty");
	if (had_setpcap)
		EXPECT(field_is(fd, "CapBnd", "0000000000000000"), "CapBnd empty");
	EXPECT(field_is(fd, "NoNewPrivs", "1"), "no_new_privs set");
	EXPECT(field_is(fd, "Seccomp", "0"), "no filter without sandbox_thread_enter");
	/* Without CAP_DAC_OVERRIDE, not even root opens a file of mode 000. */
	locked = open(path, O_RDONLY);
	unlink(path);
	EXPECT(locked < 0 && errno == EACCES, "a mode 000 file refused");
}

START_TEST(capabilities_dropped)
{
	expect_clean(caps_child);
}
END_TEST

/* ---- --seccomp off ---------------------------------------------------------------------- */

static void off_child(void)
{
	int fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);

	EXPECT(fd >= 0, "open status");
	enter(false);
	EXPECT(sandbox_thread_enter(SANDBOX_VCPU) == 0, "thread enter is a no-op");
	EXPECT(field_is(fd, "Seccomp", "0"), "Seccomp 0");
	EXPECT(field_is(fd, "NoNewPrivs", "1"), "no_new_privs set anyway");
	EXPECT(open("/dev/null", O_RDONLY) >= 0, "open allowed");
	EXPECT(socket(AF_UNIX, SOCK_STREAM, 0) >= 0, "socket allowed");
}

START_TEST(seccomp_off)
{
	expect_clean(off_child);
}
END_TEST

/* ---- vCPU threads ----------------------------------------------------------------------- */

static void enter_kind(enum sandbox_thread_kind kind)
{
	enter(true);
	EXPECT(sandbox_thread_enter(kind) == 0, "sandbox_thread_enter");
}

/* What a vCPU thread does at run time: all of it allowed (errors from the kernel are fine). */
static void vcpu_allowed_child(void)
{
	int status = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	struct timespec ts;
	uint64_t one = 1;
	uint8_t rnd[16];
	sigset_t set;
	void *p;
	int efd;

	enter_kind(SANDBOX_VCPU);
	EXPECT(field_is(status, "Seccomp", "2"), "Seccomp 2");
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	EXPECT(efd >= 0, "eventfd");
	EXPECT(write(efd, &one, sizeof(one)) == sizeof(one), "write");
	EXPECT(read(efd, &one, sizeof(one)) == sizeof(one), "read");
	EXPECT(ioctl(efd, KVM_RUN, 0) < 0 && errno == ENOTTY, "KVM_RUN reaches the kernel");
	EXPECT(ioctl(efd, KVM_IOEVENTFD, NULL) < 0 && errno == ENOTTY, "KVM_IOEVENTFD");
	EXPECT(ioctl(efd, KVM_IRQFD, NULL) < 0 && errno == ENOTTY, "KVM_IRQFD");
	EXPECT(ioctl(efd, KVM_IRQ_LINE, NULL) < 0 && errno == ENOTTY, "KVM_IRQ_LINE");
	EXPECT(ioctl(efd, KVM_SET_GSI_ROUTING, NULL) < 0 && errno == ENOTTY, "GSI_ROUTING");
	EXPECT(ioctl(efd, TUNSETOFFLOAD, 0) < 0 && errno == ENOTTY, "TUNSETOFFLOAD");
	EXPECT(epoll_ctl(-1, EPOLL_CTL_DEL, efd, NULL) < 0 && errno == EBADF, "epoll_ctl");
	EXPECT(getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) == sizeof(rnd), "getrandom");
	EXPECT(close(efd) == 0, "close");
	p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	EXPECT(p != MAP_FAILED && munmap(p, 1 << 20) == 0, "mmap/munmap");
	p = malloc(8 << 20); /* mmap'ed by malloc */
	EXPECT(p != NULL, "malloc");
	free(p);
	EXPECT(clock_gettime(CLOCK_MONOTONIC, &ts) == 0, "clock_gettime");
	sigemptyset(&set);
	EXPECT(pthread_sigmask(SIG_BLOCK, &set, NULL) == 0, "sigprocmask");
	fprintf(stderr, "%s", ""); /* stdio on stderr */
}

START_TEST(vcpu_allows_its_list)
{
	expect_clean(vcpu_allowed_child);
}
END_TEST

static void vcpu_open_child(void)
{
	enter_kind(SANDBOX_VCPU);
	open("/etc/hostname", O_RDONLY);
}

static void vcpu_bad_ioctl_child(void)
{
	enter_kind(SANDBOX_VCPU);
	ioctl(0, KVM_CREATE_VM, 0);
}

static void vcpu_exec_map_child(void)
{
	enter_kind(SANDBOX_VCPU);
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void vcpu_fork_child(void)
{
	enter_kind(SANDBOX_VCPU);
	syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

START_TEST(vcpu_forbidden_named)
{
	expect_forbidden(vcpu_open_child, "vcpu", "openat");
	expect_forbidden(vcpu_bad_ioctl_child, "vcpu", "ioctl");
	expect_forbidden(vcpu_exec_map_child, "vcpu", "mmap");
	expect_forbidden(vcpu_fork_child, "vcpu", "clone");
}
END_TEST

/* ---- the event-loop thread -------------------------------------------------------------- */

static void main_allowed_child(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int status = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC);
	struct epoll_event ev;
	struct termios t;
	struct pollfd p = {.fd = ep, .events = POLLIN};
	int self = (int)syscall(SYS_pidfd_open, getpid(), 0);

	EXPECT(ep >= 0 && self >= 0, "epoll_create1, pidfd_open");
	enter_kind(SANDBOX_MAIN);
	EXPECT(field_is(status, "Seccomp", "2"), "Seccomp 2");
	EXPECT(epoll_wait(ep, &ev, 1, 0) == 0, "epoll_wait");
	EXPECT(poll(&p, 1, 0) == 0, "poll");
	EXPECT(syscall(SYS_pidfd_send_signal, self, 0, NULL, 0) == 0, "pidfd_send_signal");
	EXPECT(pthread_kill(pthread_self(), 0) == 0, "tgkill to its own threads");
	EXPECT(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "waitpid");
	EXPECT(tcgetattr(ep, &t) < 0, "TCGETS reaches the kernel");
	EXPECT(rmdir("/nonexistent-vmm-test") < 0 && errno == ENOENT, "rmdir");
	EXPECT(lseek(status, 0, SEEK_SET) == 0, "lseek");
	EXPECT(ioctl(ep, KVM_IOEVENTFD, NULL) < 0, "KVM_IOEVENTFD reaches the kernel");
}

START_TEST(main_allows_its_list)
{
	expect_clean(main_allowed_child);
}
END_TEST

static void main_socket_child(void)
{
	enter_kind(SANDBOX_MAIN);
	socket(AF_INET, SOCK_STREAM, 0);
}

static void main_tgkill_child(void)
{
	pid_t parent = getppid(); /* another process: its threads are out of reach */

	enter_kind(SANDBOX_MAIN);
	syscall(SYS_tgkill, parent, parent, 0);
}

/* kill(2) reaches any process of the user; virtiofsd is stopped through its pidfd instead. */
static void main_kill_child(void)
{
	pid_t parent = getppid();

	enter_kind(SANDBOX_MAIN);
	kill(parent, 0);
}

static void main_kvm_run_child(void)
{
	enter_kind(SANDBOX_MAIN);
	ioctl(0, KVM_RUN, 0);
}

START_TEST(main_forbidden_named)
{
	expect_forbidden(main_socket_child, "event-loop", "socket");
	expect_forbidden(main_kvm_run_child, "event-loop", "ioctl");
	expect_forbidden(main_tgkill_child, "event-loop", "tgkill");
	expect_forbidden(main_kill_child, "event-loop", "kill");
}
END_TEST

/* ---- output writers --------------------------------------------------------------------- */

static void writer_allowed_child(void)
{
	struct pollfd p = {.fd = STDERR_FILENO, .events = POLLOUT};

	enter_kind(SANDBOX_WRITER);
	EXPECT(poll(&p, 1, 0) == 1, "poll");
	EXPECT(write(STDERR_FILENO, "", 0) == 0, "write");
}

static void writer_read_child(void)
{
	char c;

	enter_kind(SANDBOX_WRITER);
	if (read(STDIN_FILENO, &c, 1) < 0)
		_exit(FAILED_CHECK);
}

static void writer_eventfd_child(void)
{
	enter_kind(SANDBOX_WRITER);
	eventfd(0, 0);
}

START_TEST(writer_filter)
{
	expect_clean(writer_allowed_child);
	expect_forbidden(writer_read_child, "output writer", "read");
	expect_forbidden(writer_eventfd_child, "output writer", "eventfd2");
}
END_TEST

/* ---- per-thread filters ----------------------------------------------------------------- */

struct thread_probe {
	int started, go; /* eventfds */
	pid_t tid;
};

static void *writer_thread(void *opaque)
{
	struct thread_probe *t = opaque;
	uint64_t v = 1;

	t->tid = gettid();
	if (sandbox_thread_enter(SANDBOX_WRITER))
		_exit(FAILED_CHECK);
	if (write(t->started, &v, sizeof(v)) != sizeof(v))
		_exit(FAILED_CHECK);
	/* Waits until the main thread has looked; then exits (allowed). */
	if (poll(&(struct pollfd){.fd = t->go, .events = POLLIN}, 1, -1) != 1)
		_exit(FAILED_CHECK);
	return NULL;
}

static void threads_child(void)
{
	struct thread_probe t = {.started = eventfd(0, EFD_CLOEXEC), .go = eventfd(0, EFD_CLOEXEC)};
	char path[64];
	pthread_t th;
	uint64_t v;
	int self = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC), other;

	enter(true);
	EXPECT(pthread_create(&th, NULL, writer_thread, &t) == 0, "pthread_create");
	EXPECT(read(t.started, &v, sizeof(v)) == sizeof(v), "thread started");
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)t.tid);
	other = open(path, O_RDONLY | O_CLOEXEC);
	EXPECT(other >= 0, "open the thread's status");
	EXPECT(field_is(other, "Seccomp", "2"), "the writer thread is filtered");
	EXPECT(field_is(self, "Seccomp", "0"), "the main thread is not, yet");
	v = 1;
	EXPECT(write(t.go, &v, sizeof(v)) == sizeof(v), "let the thread end");
	EXPECT(pthread_join(th, NULL) == 0, "join");
	EXPECT(sandbox_thread_enter(SANDBOX_MAIN) == 0, "main enters");
	EXPECT(field_is(self, "Seccomp", "2"), "now the main thread is filtered");
	EXPECT(field_is(self, "CapEff", "0000000000000000"), "CapEff 0");
}

START_TEST(filters_per_thread)
{
	expect_clean(threads_child);
}
END_TEST

/* ---- real modules under their threads' filters ------------------------------------------ */

struct uring_run {
	struct event_loop loop;
	unsigned done;
	int failed;
};

static void uring_complete(void *opaque, void *cookie, int result)
{
	struct uring_run *r = opaque;

	(void)cookie;
	if (result < 0)
		r->failed = result;
	if (++r->done == 4)
		event_loop_stop(&r->loop);
}

/* blk's io_uring backend: set up before, then I/O, completions and teardown on a filtered
 * event-loop thread (io_uring_enter, the eventfd, liburing's unmapping). */
static void uring_child(void)
{
	static uint8_t data[8192], back[8192];
	struct iovec wv = {data, sizeof(data)}, rv = {back, sizeof(back)};
	char path[] = "/tmp/vmm-test-sandbox-XXXXXX";
	struct uring_run r = {0};
	struct blk_uring *u;
	struct blk_backend *be;
	int fd = mkstemp(path);

	EXPECT(fd >= 0 && ftruncate(fd, 1 << 20) == 0, "image");
	unlink(path);
	EXPECT(event_loop_init(&r.loop) == 0, "event loop");
	if (blk_uring_create(&u, fd, 16, &r.loop) < 0)
		return; /* no io_uring here: nothing to check */
	be = blk_uring_backend(u);
	be->complete = uring_complete;
	be->opaque = &r;
	memset(data, 0x5a, sizeof(data));
	enter_kind(SANDBOX_MAIN);
	EXPECT(be->ops->submit_rw(be, true, &wv, 1, 0, NULL) == 0, "write");
	EXPECT(be->ops->submit_flush(be, NULL) == 0, "flush");
	EXPECT(be->ops->submit_fallocate(be, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 65536,
	                                 4096, NULL) == 0,
	       "fallocate");
	EXPECT(be->ops->submit_rw(be, false, &rv, 1, 8192, NULL) == 0, "read");
	EXPECT(event_loop_run(&r.loop) == 0 && r.done == 4 && !r.failed, "completions");
	blk_uring_destroy(u);
	event_loop_free(&r.loop);
	EXPECT(close(fd) == 0, "close");
}

START_TEST(blk_uring_under_event_loop_filter)
{
	expect_clean(uring_child);
}
END_TEST

/* A helper process (virtiofsd's path): watched, described and stopped by a filtered thread. */
static void helper_child(void)
{
	char *argv[] = {"sh", "-c", "echo started; exec sleep 30", NULL};
	struct child_spec spec = {.path = "/bin/sh", .argv = argv, .pass_fd = -1};
	char err[300], what[400];
	struct child c;

	EXPECT(child_spawn(&c, "helper", &spec, err, sizeof(err)) == 0, err);
	enter_kind(SANDBOX_MAIN);
	EXPECT(!child_exited(&c), "running");
	child_describe(&c, what, sizeof(what));
	EXPECT(strstr(what, "is running") != NULL, what);
	child_stop(&c, NULL, 2000);
	EXPECT(child_exited(&c), "stopped");
}

START_TEST(helper_stopped_under_event_loop_filter)
{
	expect_clean(helper_child);
}
END_TEST

static void no_space(void *opaque)
{
	(void)opaque;
}

/* An output stream: its writer thread filters itself; the taker and the close are filtered. */
static void stream_child(void)
{
	static const char text[] = "through the filtered writer\n";
	struct event_loop loop;
	struct out_stream s;
	char back[64] = "";
	int fds[2];

	EXPECT(pipe(fds) == 0 && event_loop_init(&loop) == 0, "pipe, loop");
	enter(true);
	EXPECT(out_stream_init(&s, fds[1], &loop, no_space, NULL) == 0, "out_stream_init");
	EXPECT(sandbox_thread_enter(SANDBOX_MAIN) == 0, "main enters");
	EXPECT(out_stream_take(&s, (const uint8_t *)text, sizeof(text) - 1) == sizeof(text) - 1,
	       "take");
	out_stream_set_blocking(&s);
	out_stream_close(&s);
	EXPECT(read(fds[0], back, sizeof(back) - 1) == sizeof(text) - 1 && !strcmp(back, text),
	       "written");
	event_loop_free(&loop);
}

START_TEST(out_stream_under_writer_filter)
{
	expect_clean(stream_child);
}
END_TEST

/* ---- the terminal ----------------------------------------------------------------------- */

static int tty_fd = -1;

static void tty_child(void)
{
	struct termios saved, raw;

	EXPECT(tcgetattr(tty_fd, &saved) == 0, "tcgetattr");
	raw = saved;
	cfmakeraw(&raw);
	EXPECT(tcsetattr(tty_fd, TCSANOW, &raw) == 0, "raw mode");
	sandbox_set_terminal(tty_fd, &saved);
	enter_kind(SANDBOX_VCPU);
	open("/etc/hostname", O_RDONLY);
}

START_TEST(terminal_restored_on_forbidden_syscall)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	struct termios before, after;

	ck_assert_int_ge(master, 0);
	ck_assert_int_eq(grantpt(master), 0);
	ck_assert_int_eq(unlockpt(master), 0);
	tty_fd = open(ptsname(master), O_RDWR | O_NOCTTY);
	ck_assert_int_ge(tty_fd, 0);
	ck_assert_int_eq(tcgetattr(tty_fd, &before), 0);
	ck_assert(before.c_lflag & ICANON);
	expect_forbidden(tty_child, "vcpu", "openat");
	ck_assert_int_eq(tcgetattr(tty_fd, &after), 0);
	ck_assert_int_eq(after.c_lflag, before.c_lflag);
	ck_assert_int_eq(after.c_iflag, before.c_iflag);
	close(tty_fd);
	close(master);
}
END_TEST

START_TEST(kind_names)
{
	ck_assert_str_eq(sandbox_kind_name(SANDBOX_VCPU), "vcpu");
	ck_assert_str_eq(sandbox_kind_name(SANDBOX_MAIN), "event-loop");
	ck_assert_str_eq(sandbox_kind_name(SANDBOX_WRITER), "output writer");
	ck_assert_str_eq(sandbox_kind_name(SANDBOX_NR_KINDS), "unknown");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, capabilities_dropped);
	tcase_add_test(tc, seccomp_off);
	/* The filters themselves: not in an AddressSanitizer build (see sandbox.h). */
	if (SANDBOX_FILTERS_AVAILABLE) {
		tcase_add_test(tc, vcpu_allows_its_list);
		tcase_add_test(tc, vcpu_forbidden_named);
		tcase_add_test(tc, main_allows_its_list);
		tcase_add_test(tc, main_forbidden_named);
		tcase_add_test(tc, writer_filter);
		tcase_add_test(tc, filters_per_thread);
		tcase_add_test(tc, terminal_restored_on_forbidden_syscall);
		tcase_add_test(tc, blk_uring_under_event_loop_filter);
		tcase_add_test(tc, helper_stopped_under_event_loop_filter);
		tcase_add_test(tc, out_stream_under_writer_filter);
	}
	tcase_add_test(tc, kind_names);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
