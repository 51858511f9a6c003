#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "arch/arch.h"
#include "vmm/log.h"
#include "vmm/run.h"
#include "vmm/sandbox.h"

#define EXIT_STATUS_SIGNAL 1

static const struct {
	int cap;
	const char *name;
} required_caps[] = {
        {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
        {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
        {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
        {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
        ARCH_REQUIRED_CAPS,
};

static int open_kvm(struct vm *vm)
{
	const char *path = getenv("VMM_KVM_DEVICE");
	int version, err;

	if (!path || !*path)
		path = "/dev/kvm";
	vm->kvm_fd = open(path, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		err = errno;
		if (err == ENOENT)
			log_error("%s: %s: " ARCH_NO_KVM_HINT, path, strerror(err));
		else if (err == EACCES || err == EPERM)
			log_error("%s: %s: add yourself to the 'kvm' group (sudo usermod -aG kvm "
			          "$USER, then log in again) or run as root",
			          path, strerror(err));
		else
			log_error("%s: %s", path, strerror(err));
		return -err;
	}
	version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version < 0) {
		err = errno;
		log_error("%s: not a KVM device (KVM_GET_API_VERSION: %s)", path, strerror(err));
		return -err;
	}
	if (version != KVM_API_VERSION) {
		log_error("%s: KVM API version %d, vmm needs %d", path, version, KVM_API_VERSION);
		return -ENOTSUP;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(required_caps); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			log_error("%s: this KVM lacks %s", path, required_caps[i].name);
			return -ENOTSUP;
		}
	}
	return 0;
}

static int check_cpus(struct vm *vm)
{
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 4;
	if (vm->config->cpus > (unsigned)max) {
		log_error("--cpus %u: this host's KVM allows at most %d vCPUs", vm->config->cpus,
		          max);
		return -EINVAL;
	}
	return 0;
}

/* Host RAM plus swap, in bytes, from /proc/meminfo; 0 when unknown. */
static uint64_t host_memory_bytes(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kib, total = 0;
	char key[64];

	if (!f)
		return 0;
	while (fscanf(f, "%63s %llu kB\n", key, &kib) == 2) {
		if (strcmp(key, "MemTotal:") == 0 || strcmp(key, "SwapTotal:") == 0)
			total += kib * KIB;
	}
	fclose(f);
	return total;
}

static int setup_memory(struct vm *vm)
{
	uint64_t host = host_memory_bytes();
	int ret;

	if (host && vm->config->mem_size > host) {
		log_error("--mem %llu MiB is more than this host can back (%llu MiB of RAM and "
		          "swap)",
		          (unsigned long long)(vm->config->mem_size / MIB),
		          (unsigned long long)(host / MIB));
		return -ENOMEM;
	}
	/* A vhost-user back-end (virtiofsd) maps guest RAM too. */
	vm->mem.shared = vm->config->run_cmd || vm->config->nr_shares;
	ret = arch_memory_init(&vm->mem, vm->config->mem_size);
	if (!ret && vm->restore) {
		char err[600];

		ret = snapshot_map_ram(&vm->mem, vm->config->restore_dir, err, sizeof(err));
		if (ret) {
			log_error("--restore %s: %s", vm->config->restore_dir, err);
			return ret;
		}
		log_debug("--restore: guest RAM %s", vm->mem.shared ? "copied into shared memory"
		                                                    : "mapped from the snapshot");
	}
	if (!ret && vm->mem.huge_pages_off && !vm->restore)
		log_info("guest RAM in 4 KiB pages (more exits when nested): %s",
		         vm->mem.huge_pages_off);
	if (ret) {
		log_error("cannot map %llu MiB of guest memory: %s",
		          (unsigned long long)(vm->config->mem_size / MIB), strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		const struct mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region slot = {
		        .slot = i,
		        .guest_phys_addr = r->gpa,
		        .memory_size = r->size,
		        .userspace_addr = (uintptr_t)r->host,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
			log_error("KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int create_vcpus(struct vm *vm)
{
	int ret;

	vm->vcpus = calloc(vm->config->cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (unsigned i = 0; i < vm->config->cpus; i++) {
		ret = vcpu_create(vm, i, &vm->vcpus[i]);
		if (ret) {
			log_error("cannot create vCPU %u: %s", i, strerror(-ret));
			return ret;
		}
		vm->nr_vcpus++;
		ret = arch_vcpu_init(&vm->vcpus[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static void share_daemon_exited(void *opaque, struct share *share)
{
	char what[400], why[480];

	child_describe(&share->daemon, what, sizeof(what));
	snprintf(why, sizeof(why), "--share %.60s: %s", share->host, what);
	vm_request_stop(opaque, EXIT_VMM_ERROR, why);
}

/* The virtiofsd of every share, watched from now on. */
static int start_shares(struct vm *vm)
{
	char err[600];
	int ret = shares_start(&vm->shares, vm->config, err, sizeof(err));

	if (ret) {
		log_error("%s", err);
		return ret;
	}
	ret = shares_watch(&vm->shares, &vm->loop, share_daemon_exited, vm);
	if (ret)
		log_error("cannot watch virtiofsd: %s", strerror(-ret));
	return ret;
}

/*
 * --run boots a stock kernel; a PVM host's KVM (a cloud VM's nested virtualization without
 * VT-x/SVM) runs only PVM-aware ones, crawling through anything else: say so up front.
 */
static int check_run_host(struct vm *vm)
{
	const char *allow = getenv("VMM_ALLOW_PVM");

	if (!config_test_run(vm->config) || (allow && !strcmp(allow, "1")) ||
	    access("/sys/module/kvm_pvm", F_OK))
		return 0;
	log_error("--run: this host's KVM is PVM (kvm_pvm), which cannot run stock Linux kernels "
	          "(VMM_ALLOW_PVM=1 tries anyway)");
	return -ENOTSUP;
}

/*
 * In place of loading a kernel: every part's state from the snapshot. Then, for a --save-ready
 * snapshot restored with --run, the run's virtio-fs devices (they have no state to load).
 */
static int restore_state(struct vm *vm)
{
	char err[600];
	int ret = snapshot_load_parts(&vm->snapshot, vm->restore, err, sizeof(err));

	if (ret) {
		log_error("--restore %s: %s", vm->config->restore_dir, err);
		return ret;
	}
	log_debug("--restore: vCPU and device state loaded");
	if (vm->shares.nr)
		ret = devices_create_shares(vm);
	return ret;
}

static int vm_build(struct vm *vm)
{
	int ret = check_run_host(vm);

	if (!ret)
		ret = open_kvm(vm);

	if (ret || (ret = check_cpus(vm)))
		return ret;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		log_error("KVM_CREATE_VM: %s", strerror(errno));
		return -errno;
	}
	vm->vcpu_mmap_size = (size_t)ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	ret = setup_memory(vm);
	if (ret)
		return ret;
	ret = event_loop_init(&vm->loop);
	if (ret) {
		log_error("cannot create the event loop: %s", strerror(-ret));
		return ret;
	}
	ret = start_shares(vm);
	if (!ret)
		ret = vm_control_open(vm);
	if (!ret && config_test_run(vm->config)) {
		ret = run_create(vm, &vm->run);
		vm->console_write = run_console_write;
		vm->console_opaque = vm->run;
	}
	if (ret)
		return ret;
	/* vCPUs before devices: an arm64 GIC is finished once its vCPUs exist, before irqfds. */
	ret = arch_vm_init(vm);
	if (!ret)
		ret = create_vcpus(vm);
	if (!ret)
		ret = devices_create(vm);
	if (!ret)
		ret = vm->restore ? restore_state(vm) : arch_vm_load(vm);
	if (ret)
		return ret;
	if (!vm->restore)
		log_debug("the kernel is loaded");
	ret = coalesced_io_start(&vm->coalesced, vm->kvm_fd, vm->vm_fd, vm->vcpus[0].run,
	                         vm->vcpu_mmap_size);
	if (ret)
		log_error("KVM_REGISTER_COALESCED_MMIO: %s", strerror(-ret));
	return ret;
}

int vm_create(const struct vm_config *config, const struct snapshot_config *restore,
              struct vm **out)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	int ret;

	if (!vm) {
		log_error("out of memory");
		return -ENOMEM;
	}
	vm->config = config;
	vm->restore = restore;
	vm->console_write = chardev_write_cb;
	vm->console_opaque = &vm->console;
	vm->kvm_fd = vm->vm_fd = vm->statm_fd = -1;
	vm->loop.epoll_fd = -1;
	vm->stop_event.fd = vm->signals.fd = vm->timer.fd = -1;
	pthread_mutex_init(&vm->stop_lock, NULL);
	ret = vm_pause_init(&vm->pause);
	if (ret) {
		log_error("cannot set up pausing: %s", strerror(-ret));
		free(vm);
		return ret;
	}
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");
	coalesced_io_init(&vm->coalesced, &vm->pio);
	ret = vm_build(vm);
	if (ret) {
		vm_destroy(vm);
		return ret;
	}
	*out = vm;
	return 0;
}

/* The first stop request wins: its status, and whether it was a guest crash. */
static void request_stop(struct vm *vm, int status, const char *why, bool crashed)
{
	uint64_t one = 1;
	bool first;

	pthread_mutex_lock(&vm->stop_lock);
	first = !vm->stopping;
	if (first) {
		vm->exit_status = status;
		vm->crashed = crashed;
		__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&vm->stop_lock);
	if (!first)
		return;
	vm_pause_wake(&vm->pause);
	if (why)
		log_error("%s", why);
	if (write(vm->stop_event.fd, &one, sizeof(one)) < 0)
		log_debug("stop eventfd: %s", strerror(errno));
}

void vm_request_stop(struct vm *vm, int status, const char *why)
{
	request_stop(vm, status, why, false);
}

void vm_request_stop_crashed(struct vm *vm, const char *why)
{
	request_stop(vm, EXIT_VMM_ERROR, why, true);
}

static void on_stop(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;

	(void)events;
	event_loop_stop(&vm->loop);
}

static void on_signal(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo info;

	(void)events;
	if (read(vm->signals.fd, &info, sizeof(info)) != sizeof(info))
		return;
	log_info("stopping on signal %u", info.ssi_signo);
	vm_request_stop(vm, EXIT_STATUS_SIGNAL, NULL);
}

static void on_timeout(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	char why[64];

	(void)events;
	snprintf(why, sizeof(why), "--timeout: stopping the guest after %u s",
	         vm->config->timeout_sec);
	vm_request_stop(vm, EXIT_TIMEOUT, why);
}

static size_t console_deliver(void *opaque, const uint8_t *buf, size_t len)
{
	struct vm *vm = opaque;

	if (vm->run)
		return run_stdin(vm->run, buf, len);
	if (vm->config->console == CONSOLE_VIRTIO)
		return devices_console_input(vm, buf, len);
	return arch_console_input(vm, buf, len);
}

static void console_quit(void *opaque)
{
	vm_request_stop(opaque, 0, NULL);
}

static void console_eof(void *opaque)
{
	struct vm *vm = opaque;

	if (vm->run)
		run_stdin_eof(vm->run);
}

static const struct chardev_ops console_ops = {
        .deliver = console_deliver,
        .quit = console_quit,
        .eof = console_eof,
};

static int watch(struct vm *vm, struct event_source *src, int fd, event_handler_fn handler)
{
	*src = (struct event_source){.fd = fd, .handler = handler, .opaque = vm};
	return fd < 0 ? -errno : event_loop_add(&vm->loop, src, EPOLLIN);
}

/*
 * The main thread's sources: a stop eventfd, SIGINT/SIGTERM through a signalfd (blocked in
 * every thread, so vCPU threads inherit the mask), the timeout timer, and the console.
 */
static int setup_event_loop(struct vm *vm)
{
	sigset_t mask;
	int ret;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sigdelset(&mask, SIGUSR1);
	signal(SIGPIPE, SIG_IGN);
	ret = watch(vm, &vm->stop_event, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), on_stop);
	if (!ret)
		ret = watch(vm, &vm->signals, signalfd(-1, &mask, SFD_CLOEXEC), on_signal);
	if (!ret && vm->config->timeout_sec) {
		struct itimerspec when = {.it_value.tv_sec = vm->config->timeout_sec};
		ret = watch(vm, &vm->timer, timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC),
		            on_timeout);
		if (!ret && timerfd_settime(vm->timer.fd, 0, &when, NULL) < 0)
			ret = -errno;
	}
	if (!ret)
		ret = coalesced_io_watch(&vm->coalesced, &vm->loop);
	/* --run: stdin is the command's, as it is (no raw mode, no Ctrl-A escape). */
	if (!ret)
		ret = chardev_init(&vm->console, STDIN_FILENO, STDOUT_FILENO, &vm->loop,
		                   &console_ops, vm, vm->run ? 0 : CHARDEV_TERMINAL);
	if (!ret && vm->console.raw_mode_set)
		sandbox_set_terminal(vm->console.in_fd, &vm->console.saved_termios);
	if (!ret && vm->run)
		ret = run_start(vm->run);
	return ret;
}

/*
 * --stats: each queue pair's packets and bytes; bytes per transmitted packet show how large
 * the guest's TSO frames were.
 */
static void print_net_stats(struct virtio_net *n, unsigned nic)
{
	for (unsigned p = 0; p < n->nr_pairs; p++) {
		struct virtio_net_stats s;

		virtio_net_get_stats(n, p, &s);
		fprintf(stderr,
		        "vmm: stats: NIC %u pair %u: rx %llu packets %llu bytes, tx %llu packets "
		        "(%llu TSO) %llu bytes (%llu per packet, largest %llu), dropped rx %llu tx "
		        "%llu\n",
		        nic, p, (unsigned long long)s.rx_packets, (unsigned long long)s.rx_bytes,
		        (unsigned long long)s.tx_packets, (unsigned long long)s.tx_gso_packets,
		        (unsigned long long)s.tx_bytes,
		        (unsigned long long)(s.tx_packets ? s.tx_bytes / s.tx_packets : 0),
		        (unsigned long long)s.tx_max_bytes, (unsigned long long)s.rx_dropped,
		        (unsigned long long)s.tx_dropped);
	}
}

int vm_run(struct vm *vm)
{
	int ret = setup_event_loop(vm);

	clock_gettime(CLOCK_MONOTONIC, &vm->started);
	if (!ret)
		ret = vcpu_signals_init();
	if (ret) {
		log_error("cannot set up the event loop: %s", strerror(-ret));
		return 1;
	}
	for (unsigned i = 0; i < vm->nr_vcpus && !ret; i++)
		ret = vcpu_start(&vm->vcpus[i]);
	if (ret)
		vm_request_stop(vm, 1, "cannot start the vCPU threads");
	/* Only now: a filter is inherited by the threads created after it (see sandbox.h). */
	else if (sandbox_thread_enter(SANDBOX_MAIN))
		vm_request_stop(vm, 1, "seccomp: cannot filter the event-loop thread");
	else
		log_debug("the vCPUs run");
	ret = event_loop_run(&vm->loop);
	if (ret)
		vm_request_stop(vm, 1, "event loop failed");
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(&vm->vcpus[i]);
	/* Writes still queued (the last characters of polled console output): out they go. */
	coalesced_io_flush(&vm->coalesced);
	chardev_destroy(&vm->console);
	if (vm->config->stats) {
		vcpu_print_exit_stats(vm);
		bus_print_hits(&vm->pio, "pio", 12);
		bus_print_hits(&vm->mmio, "mmio", 12);
		if (vm->coalesced.replayed)
			fprintf(stderr, "vmm: stats: %llu coalesced port writes (no exit)\n",
			        (unsigned long long)vm->coalesced.replayed);
		for (unsigned i = 0; i < vm->devices.nr_nets; i++)
			print_net_stats(&vm->devices.nets[i], i);
		for (unsigned i = 0; i < CONFIG_MAX_NETS; i++) {
			struct user_net *u = vm->devices.user_nets[i];

			if (u)
				fprintf(stderr,
				        "vmm: stats: NIC %u (user network): %llu guest frames "
				        "dropped\n",
				        i, (unsigned long long)user_net_dropped(u));
		}
		if (vm->mem.huge_pages_off)
			fprintf(stderr, "vmm: stats: guest RAM in 4 KiB pages: %s\n",
			        vm->mem.huge_pages_off);
	}
	if (vm->run)
		return run_finish(vm->run, vm->exit_status, vm->crashed);
	return vm->exit_status;
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		vcpu_kick(&vm->vcpus[i]);
		vcpu_join(&vm->vcpus[i]);
	}
	chardev_destroy(&vm->console);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	run_destroy(vm->run);
	devices_destroy(vm);
	shares_stop(&vm->shares, &vm->loop);
	vm_control_close(vm);
	arch_vm_destroy(vm);
	close_fd(vm->stop_event.fd);
	close_fd(vm->signals.fd);
	close_fd(vm->timer.fd);
	event_loop_free(&vm->loop);
	bus_free(&vm->pio);
	bus_free(&vm->mmio);
	coalesced_io_destroy(&vm->coalesced);
	guest_memory_free(&vm->mem);
	snapshot_parts_free(&vm->snapshot);
	close_fd(vm->vm_fd);
	close_fd(vm->kvm_fd);
	pthread_mutex_destroy(&vm->stop_lock);
	vm_pause_destroy(&vm->pause);
	free(vm);
}
