/*
 * Least privilege after set-up: see sandbox.h.
 *
 * The allow-lists follow what each thread kind does once the guest runs:
 * - every thread: futex, write (logging, the SIGSYS line), memory management without
 *   PROT_EXEC, signal return and masks, clocks, exit;
 * - vCPU and event-loop threads run device code (a register write on a vCPU thread may
 *   activate a queue, notify it or reset the device): reads and writes on open fds, io_uring
 *   submission, eventfds, epoll_ctl, timerfd_settime, vhost-user messages, getrandom, and the
 *   KVM_IRQ_LINE, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING, TUNSETOFFLOAD and TUNSETQUEUE
 *   ioctls (and KVM_SET_USER_MEMORY_REGION while PCI config space is mapped read-only: a config
 *   write may have to unmap it; KVM_(UN)REGISTER_COALESCED_MMIO with a UART whose THR
 *   writes may be coalesced: its MCR writes (loopback) decide);
 * - vCPU threads: KVM_RUN, and the register reads that describe a crash;
 * - the event-loop thread: epoll_wait, signals to vCPU threads (tgkill, own process only) and
 *   to helper processes (pidfd_send_signal: only children vmm holds a pidfd of), reaping
 *   them, the terminal (TCGETS/TCSETS*), and the teardown (rmdir of virtiofsd's socket dir);
 * - output writers: write and poll on their fd;
 * - with --net user, the event-loop thread also runs libslirp, a network stack seen from
 *   userspace: sockets of its own (create, connect, accept, options, send, receive) and
 *   read-only opens (libslirp reads /etc/resolv.conf for the host's DNS server);
 * - with --vsock, the event-loop thread also creates, connects and accepts Unix stream sockets;
 * - with --api-socket, it also accepts clients and asks which guest RAM is resident (mincore).
 * Nothing else may open a file or create a socket; nothing may map executable memory, fork or
 * exec.
 *
 * Filters are compiled once (sandbox_enter, main thread) into BPF programs kept in memory, so
 * that a thread installs its own with one prctl and nothing can fail half-way there. The
 * SIGSYS handler formats its line with async-signal-safe code from names resolved beforehand.
 * That state is process-wide (a signal handler is too): written before any other thread
 * exists, read-only afterwards.
 */
#include "vmm/sandbox.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/arch.h"
#include "vmm/config.h"
#include "vmm/log.h"

/* Syscall numbers below this are named in the SIGSYS line; others are given as numbers. */
#define NAMED_SYSCALLS 1024

/* One allowed syscall, optionally only when (argument @arg & @mask) == @value. */
struct allow {
	const char *name;
	bool checked;
	unsigned arg;
	scmp_datum_t mask, value;
};

// clang-format off
#define ALLOW(n)             {.name = n}
#define ALLOW_IF(n, a, m, v) {.name = n, .checked = true, .arg = a, .mask = m, .value = v}
// clang-format on
#define ALLOW_NO_EXEC(n) ALLOW_IF(n, 2, PROT_EXEC, 0)

static const struct allow common_syscalls[] = {
        ALLOW("futex"),
        ALLOW("write"),
        ALLOW("rt_sigreturn"),
        ALLOW("rt_sigprocmask"),
        ALLOW("restart_syscall"),
        ALLOW("exit"),
        ALLOW("exit_group"),
        ALLOW_NO_EXEC("mmap"),
        ALLOW_NO_EXEC("mprotect"),
        ALLOW("munmap"),
        ALLOW("mremap"),
        ALLOW("madvise"),
        ALLOW("brk"),
        ALLOW("clock_gettime"),
        ALLOW("clock_nanosleep"),
        ALLOW("nanosleep"),
        ALLOW("gettimeofday"),
        ALLOW("time"),
        ALLOW("sched_yield"),
        ALLOW("sched_getaffinity"), /* malloc sizing its arenas on a thread's first use */
        ALLOW("getpid"),
        ALLOW("gettid"),
        ALLOW("fstat"),
        ALLOW_IF("newfstatat", 3, AT_EMPTY_PATH, AT_EMPTY_PATH), /* glibc's fstat */
        /* The SIGSYS handler restores the terminal: glibc's tcsetattr reads it back. */
        ALLOW_IF("ioctl", 1, 0xffffffff, TCSETS),
        ALLOW_IF("ioctl", 1, 0xffffffff, TCGETS),
};

static const struct allow device_syscalls[] = {
        ALLOW("read"),     ALLOW("readv"),     ALLOW("pread64"),         ALLOW("preadv"),
        ALLOW("writev"),   ALLOW("pwrite64"),  ALLOW("pwritev"),         ALLOW("close"),
        ALLOW("eventfd2"), ALLOW("epoll_ctl"), ALLOW("timerfd_settime"), ALLOW("io_uring_enter"),
        ALLOW("sendmsg"),  ALLOW("recvmsg"),   ALLOW("getrandom"),
};

static const struct allow main_syscalls[] = {
        ALLOW("epoll_wait"),
        ALLOW("epoll_pwait"),
        ALLOW("poll"),
        ALLOW("ppoll"),
        ALLOW("pidfd_send_signal"), /* stopping virtiofsd: only a child vmm holds a pidfd of */
        ALLOW("wait4"),
        ALLOW("waitid"),
        ALLOW("lseek"), /* a helper's output, for its last line */
        ALLOW("rmdir"),
        ALLOW_IF("unlinkat", 2, ~(scmp_datum_t)0, AT_REMOVEDIR), /* rmdir on arm64 */
};

static const struct allow writer_syscalls[] = {
        ALLOW("poll"),
        ALLOW("ppoll"),
};

/* --vsock: the event-loop thread accepts and makes Unix stream connections (vsock.h). */
static const struct allow unix_socket_syscalls[] = {
        ALLOW_IF("socket", 0, ~(scmp_datum_t)0, AF_UNIX),
        ALLOW("connect"),
        ALLOW("accept4"),
        ALLOW("shutdown"),
};

/*
 * --api-socket: the event-loop thread accepts clients, asks what guest RAM is resident, and
 * writes snapshots (a directory, its files created, synced and renamed into place).
 */
static const struct allow api_syscalls[] = {
        ALLOW("accept4"),  ALLOW("mincore"),  ALLOW("mkdir"),     ALLOW("mkdirat"),
        ALLOW("openat"),   ALLOW("open"),     ALLOW("ftruncate"), ALLOW("fsync"),
        ALLOW("rename"),   ALLOW("renameat"), ALLOW("renameat2"), ALLOW("unlink"),
        ALLOW("unlinkat"),
};

/* A snapshot reads the vCPUs' and the VM's state from KVM (every vCPU parked;
 * ARCH_SNAPSHOT_IOCTLS). */
static const unsigned long api_ioctls[] = {ARCH_SNAPSHOT_IOCTLS};

/* Read-only opens: no write access, creation, truncation or O_PATH handles. */
#define OPEN_WRITE_FLAGS (O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_PATH | O_TMPFILE)

/* --net user: libslirp on the event-loop thread (its reads, writes and polls are the loop's). */
static const struct allow user_net_syscalls[] = {
        ALLOW("socket"),
        ALLOW("connect"),
        ALLOW("bind"),
        ALLOW("listen"),
        ALLOW("accept"),
        ALLOW("accept4"),
        ALLOW("shutdown"),
        ALLOW("getsockname"),
        ALLOW("getpeername"),
        ALLOW("setsockopt"),
        ALLOW("getsockopt"),
        ALLOW("sendto"),
        ALLOW("recvfrom"),
        ALLOW("fcntl"),
        ALLOW("stat"),
        ALLOW("newfstatat"),
        ALLOW("statx"),
        ALLOW_IF("openat", 2, OPEN_WRITE_FLAGS, 0),
        ALLOW_IF("open", 1, OPEN_WRITE_FLAGS, 0),
};

/* ioctl requests, besides TCSETS and TCGETS which every thread may make. */
static const unsigned long device_ioctls[] = {
        KVM_IRQ_LINE, KVM_IRQFD, KVM_IOEVENTFD, KVM_SET_GSI_ROUTING, TUNSETOFFLOAD, TUNSETQUEUE,
};

/* With the PCI host's ECAM copy mapped: unmapping it (pci_device_trap_config_reads). */
static const unsigned long memslot_ioctls[] = {KVM_SET_USER_MEMORY_REGION};
/* With a UART whose THR writes may be coalesced: switching that zone. */
static const unsigned long coalesced_zone_ioctls[] = {KVM_REGISTER_COALESCED_MMIO,
                                                      KVM_UNREGISTER_COALESCED_MMIO};

/* KVM_RUN, and the registers that describe a crash (x86: REGS and SREGS; arm64: ONE_REG). */
static const unsigned long vcpu_ioctls[] = {
        KVM_RUN,
        KVM_GET_REGS,
        KVM_GET_SREGS,
        KVM_GET_ONE_REG,
};

static const unsigned long main_ioctls[] = {TCSETSW, TCSETSF};

/* libslirp asks a socket how much it may read, and may make one non-blocking. */
static const unsigned long user_net_ioctls[] = {FIONREAD, FIONBIO};

#define LIST(a) a, ARRAY_SIZE(a)

static const struct kind {
	const char *name;
	bool runs_devices;
	bool kicks_threads; /* tgkill, to this process's threads only */
	const struct allow *syscalls;
	size_t nr_syscalls;
	const unsigned long *ioctls;
	size_t nr_ioctls;
} kinds[SANDBOX_NR_KINDS] = {
        [SANDBOX_MAIN] = {"event-loop", true, true, LIST(main_syscalls), LIST(main_ioctls)},
        [SANDBOX_VCPU] = {"vcpu", true, false, NULL, 0, LIST(vcpu_ioctls)},
        [SANDBOX_WRITER] = {"output writer", false, false, LIST(writer_syscalls), NULL, 0},
};

/* Process-wide: filled by sandbox_enter before other threads exist, then only read. */
static struct {
	bool armed;
	uint32_t native_arch;
	struct sock_fprog progs[SANDBOX_NR_KINDS];
	char *names[NAMED_SYSCALLS];
	bool unix_sockets; /* sandbox_allow_unix_sockets was called */
	bool user_net;     /* sandbox_allow_user_net was called */
	bool api;          /* sandbox_allow_api was called */
	bool memslots;     /* sandbox_allow_memslot_removal was called */
	bool coalesced;    /* sandbox_allow_coalesced_zone_changes was called */
	bool restore_tty;
	int tty_fd;
	struct termios tty_saved;
} state;

/* The calling thread's kind, for the SIGSYS line. */
static _Thread_local const char *thread_kind;

const char *sandbox_kind_name(enum sandbox_thread_kind kind)
{
	return kind < SANDBOX_NR_KINDS ? kinds[kind].name : "unknown";
}

/* ---- capabilities ----------------------------------------------------------------------- */

static int drop_capabilities(char *err, size_t errlen)
{
	capng_select_t what = CAPNG_SELECT_CAPS | CAPNG_SELECT_AMBIENT;
	int ret;

	if (capng_get_caps_process() < 0) {
		snprintf(err, errlen, "cannot read this process's capabilities");
		return -EPERM;
	}
	/* Without CAP_SETPCAP the bounding set stays: no_new_privs keeps it from mattering. */
	if (capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP))
		what |= CAPNG_SELECT_BOUNDS;
	capng_clear(CAPNG_SELECT_ALL);
	ret = capng_apply(what);
	if (ret < 0) {
		snprintf(err, errlen, "cannot drop capabilities (capng_apply: %d)", ret);
		return -EPERM;
	}
	if (capng_get_caps_process() < 0 ||
	    capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE) {
		snprintf(err, errlen, "capabilities remain after dropping them all");
		return -EPERM;
	}
	return 0;
}

/* ---- filters ---------------------------------------------------------------------------- */

/* Adds @a; a syscall this arch does not have (poll on arm64) is skipped. */
static int add_allow(scmp_filter_ctx ctx, const struct allow *a, char *err, size_t errlen)
{
	struct scmp_arg_cmp cmp = {
	        .arg = a->arg, .op = SCMP_CMP_MASKED_EQ, .datum_a = a->mask, .datum_b = a->value};
	int nr = seccomp_syscall_resolve_name(a->name);
	int ret;

	if (nr == __NR_SCMP_ERROR) {
		snprintf(err, errlen, "seccomp: libseccomp does not know syscall %s", a->name);
		return -EINVAL;
	}
	if (nr < 0)
		return 0;
	ret = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, a->checked ? 1 : 0, &cmp);
	if (ret < 0)
		snprintf(err, errlen, "seccomp: cannot allow %s: %s", a->name, strerror(-ret));
	return ret;
}

static int add_allows(scmp_filter_ctx ctx, const struct allow *list, size_t n, char *err,
                      size_t errlen)
{
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++)
		ret = add_allow(ctx, &list[i], err, errlen);
	return ret;
}

static int add_ioctls(scmp_filter_ctx ctx, const unsigned long *reqs, size_t n, char *err,
                      size_t errlen)
{
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		struct allow a = ALLOW_IF("ioctl", 1, 0xffffffff, reqs[i]);

		ret = add_allow(ctx, &a, err, errlen);
	}
	return ret;
}

/* The BPF program of @ctx, copied out through a memfd (libseccomp exports to an fd). */
static int export_program(scmp_filter_ctx ctx, struct sock_fprog *out)
{
	int fd = memfd_create("vmm-seccomp", MFD_CLOEXEC);
	struct sock_filter *insns = NULL;
	struct stat st;
	int ret;

	if (fd < 0)
		return -errno;
	ret = seccomp_export_bpf(ctx, fd);
	if (!ret && fstat(fd, &st) < 0)
		ret = -errno;
	if (!ret && (st.st_size <= 0 || st.st_size % (off_t)sizeof(*insns) ||
	             st.st_size / (off_t)sizeof(*insns) > BPF_MAXINSNS))
		ret = -E2BIG;
	if (!ret && !(insns = malloc((size_t)st.st_size)))
		ret = -ENOMEM;
	if (!ret && pread(fd, insns, (size_t)st.st_size, 0) != st.st_size)
		ret = -EIO;
	close(fd);
	if (ret) {
		free(insns);
		return ret;
	}
	out->filter = insns;
	out->len = (unsigned short)(st.st_size / (off_t)sizeof(*insns));
	return 0;
}

static int compile(const struct kind *k, struct sock_fprog *out, char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	int ret;

	if (!ctx) {
		snprintf(err, errlen, "seccomp: cannot create a filter");
		return -ENOMEM;
	}
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP);
	if (ret < 0)
		snprintf(err, errlen, "seccomp: %s", strerror(-ret));
	if (!ret)
		ret = add_allows(ctx, LIST(common_syscalls), err, errlen);
	if (!ret && k->runs_devices)
		ret = add_allows(ctx, LIST(device_syscalls), err, errlen);
	if (!ret && k->runs_devices)
		ret = add_ioctls(ctx, LIST(device_ioctls), err, errlen);
	if (!ret && k->runs_devices && state.memslots)
		ret = add_ioctls(ctx, LIST(memslot_ioctls), err, errlen);
	if (!ret && k->runs_devices && state.coalesced)
		ret = add_ioctls(ctx, LIST(coalesced_zone_ioctls), err, errlen);
	if (!ret)
		ret = add_allows(ctx, k->syscalls, k->nr_syscalls, err, errlen);
	if (!ret && k == &kinds[SANDBOX_MAIN] && state.unix_sockets)
		ret = add_allows(ctx, LIST(unix_socket_syscalls), err, errlen);
	if (!ret && k == &kinds[SANDBOX_MAIN] && state.api)
		ret = add_allows(ctx, LIST(api_syscalls), err, errlen);
	if (!ret && k == &kinds[SANDBOX_MAIN] && state.api)
		ret = add_ioctls(ctx, LIST(api_ioctls), err, errlen);
	if (!ret && k == &kinds[SANDBOX_MAIN] && state.user_net) {
		ret = add_allows(ctx, LIST(user_net_syscalls), err, errlen);
		if (!ret)
			ret = add_ioctls(ctx, LIST(user_net_ioctls), err, errlen);
	}
	if (!ret)
		ret = add_ioctls(ctx, k->ioctls, k->nr_ioctls, err, errlen);
	if (!ret && k->kicks_threads) {
		struct allow kick = ALLOW_IF("tgkill", 0, ~(scmp_datum_t)0, (scmp_datum_t)getpid());

		ret = add_allow(ctx, &kick, err, errlen);
	}
	if (!ret) {
		ret = export_program(ctx, out);
		if (ret)
			snprintf(err, errlen, "seccomp: %s filter: %s", k->name, strerror(-ret));
	}
	seccomp_release(ctx);
	return ret;
}

/* ---- the SIGSYS line -------------------------------------------------------------------- */

static size_t put_str(char *buf, size_t pos, size_t size, const char *s)
{
	while (*s && pos < size)
		buf[pos++] = *s++;
	return pos;
}

static size_t put_uint(char *buf, size_t pos, size_t size, unsigned long v)
{
	char digits[24];
	size_t n = 0;

	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10) && n < sizeof(digits));
	while (n && pos < size)
		buf[pos++] = digits[--n];
	return pos;
}

/* Async-signal-safe: restores the terminal, writes one line, ends vmm. */
static void on_sigsys(int sig, siginfo_t *info, void *ucontext)
{
	unsigned nr = (unsigned)info->si_syscall;
	const char *name = nr < NAMED_SYSCALLS && state.names[nr] ? state.names[nr] : "unknown";
	char line[200];
	size_t n;
	ssize_t written;

	(void)sig;
	(void)ucontext;
	if (info->si_arch != state.native_arch)
		name = "a syscall of another ABI";
	if (state.restore_tty)
		tcsetattr(state.tty_fd, TCSANOW, &state.tty_saved);
	n = put_str(line, 0, sizeof(line) - 1, "vmm: seccomp: ");
	n = put_str(line, n, sizeof(line) - 1, thread_kind ? thread_kind : "unfiltered");
	n = put_str(line, n, sizeof(line) - 1, " thread made a forbidden syscall: ");
	n = put_str(line, n, sizeof(line) - 1, name);
	n = put_str(line, n, sizeof(line) - 1, " (");
	n = put_uint(line, n, sizeof(line) - 1, nr);
	n = put_str(line, n, sizeof(line) - 1, ")");
	line[n++] = '\n';
	written = write(STDERR_FILENO, line, n);
	(void)written;
	_exit(EXIT_VMM_ERROR);
}

/* Names every syscall number up to NAMED_SYSCALLS now, while malloc may still be called. */
static void resolve_names(void)
{
	for (int nr = 0; nr < NAMED_SYSCALLS; nr++)
		state.names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
}

/* ---- entry points ----------------------------------------------------------------------- */

static int arm_filters(char *err, size_t errlen)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
	int ret = 0;

	for (unsigned k = 0; k < SANDBOX_NR_KINDS && !ret; k++)
		ret = compile(&kinds[k], &state.progs[k], err, errlen);
	if (ret)
		return ret;
	resolve_names();
	state.native_arch = seccomp_arch_native();
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		ret = -errno;
		snprintf(err, errlen, "seccomp: SIGSYS handler: %s", strerror(-ret));
		return ret;
	}
	state.armed = true;
	return 0;
}

int sandbox_enter(bool seccomp, char *err, size_t errlen)
{
	int ret = drop_capabilities(err, errlen);

	if (ret)
		return ret;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(-ret));
		return ret;
	}
	if (seccomp && !SANDBOX_FILTERS_AVAILABLE) {
		log_info("seccomp: off in this AddressSanitizer build (see sandbox.h)");
		return 0;
	}
	return seccomp ? arm_filters(err, errlen) : 0;
}

int sandbox_thread_enter(enum sandbox_thread_kind kind)
{
	sigset_t sys;

	if (!state.armed)
		return 0;
	if (kind >= SANDBOX_NR_KINDS)
		return -EINVAL;
	/* A trap with SIGSYS blocked would kill vmm without a word. */
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	thread_kind = kinds[kind].name;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &state.progs[kind], 0, 0) < 0) {
		thread_kind = NULL;
		return -errno;
	}
	return 0;
}

void sandbox_allow_user_net(void)
{
	state.user_net = true;
}

void sandbox_allow_unix_sockets(void)
{
	state.unix_sockets = true;
}

void sandbox_allow_memslot_removal(void)
{
	state.memslots = true;
}

void sandbox_allow_coalesced_zone_changes(void)
{
	state.coalesced = true;
}

void sandbox_allow_api(void)
{
	state.api = true;
}

void sandbox_set_terminal(int fd, const struct termios *saved)
{
	state.tty_fd = fd;
	state.tty_saved = *saved;
	state.restore_tty = true;
}
