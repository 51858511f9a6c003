#include "vmm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/arch.h"
#include "vmm/log.h"
#include "vmm/sandbox.h"
#include "vmm/vm.h"

/* The signal that kicks a vCPU thread out of KVM_RUN; its handler does nothing. */
#define VCPU_KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_signals_init(void)
{
	struct sigaction sa = {.sa_handler = kick_handler};

	sigemptyset(&sa.sa_mask);
	return sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

int vcpu_create(struct vm *vm, unsigned id, struct vcpu *vcpu)
{
	void *run;

	*vcpu = (struct vcpu){.vm = vm, .id = id, .fd = -1};
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0)
		return -errno;
	run = mmap(NULL, vm->vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (run == MAP_FAILED) {
		int err = -errno;
		close(vcpu->fd);
		vcpu->fd = -1;
		return err;
	}
	vcpu->run = run;
	return 0;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->vm->vcpu_mmap_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

/* Port I/O, including string I/O (count > 1): each element is one bus access. */
static int handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (bus_access(&vcpu->vm->pio, run->io.port, data, run->io.size, is_write) ==
		    -ENOENT) {
			if (!is_write)
				memset(data, 0xff, run->io.size);
			log_ratelimited(LOG_DEBUG, "unclaimed port %s 0x%x size %u",
			                is_write ? "write" : "read", run->io.port, run->io.size);
		}
	}
	return VCPU_CONTINUE;
}

static int handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	unsigned len = MIN(run->mmio.len, sizeof(run->mmio.data));

	if (bus_access(&vcpu->vm->mmio, run->mmio.phys_addr, run->mmio.data, len,
	               run->mmio.is_write) == -ENOENT) {
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0xff, len);
		log_ratelimited(LOG_DEBUG, "unclaimed MMIO %s 0x%llx size %u",
		                run->mmio.is_write ? "write" : "read",
		                (unsigned long long)run->mmio.phys_addr, len);
	}
	return VCPU_CONTINUE;
}

static int handle_system_event(struct vcpu *vcpu)
{
	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_stop(vcpu->vm, 0, NULL);
		return VCPU_EXIT;
	default:
		vm_request_stop_crashed(vcpu->vm, "guest crashed (system event)");
		return VCPU_EXIT;
	}
}

/* Stops the VM with status 1 for a guest crash, saying where the vCPU was. */
static int crashed(struct vcpu *vcpu, const char *what)
{
	char where[160], why[320];

	arch_vcpu_describe(vcpu, where, sizeof(where));
	snprintf(why, sizeof(why), "%s on vCPU %u%s%s", what, vcpu->id, where[0] ? " at " : "",
	         where);
	vm_request_stop_crashed(vcpu->vm, why);
	return VCPU_EXIT;
}

static int handle_shutdown(struct vcpu *vcpu)
{
	return crashed(vcpu, "guest triple fault: the guest crashed");
}

static int handle_internal_error(struct vcpu *vcpu)
{
	char what[64];

	snprintf(what, sizeof(what), "KVM internal error (suberror %u)",
	         vcpu->run->internal.suberror);
	return crashed(vcpu, what);
}

static int handle_fail_entry(struct vcpu *vcpu)
{
	char what[80];

	snprintf(what, sizeof(what), "KVM could not enter the guest (hardware reason 0x%llx)",
	         (unsigned long long)vcpu->run->fail_entry.hardware_entry_failure_reason);
	return crashed(vcpu, what);
}

static int handle_hlt(struct vcpu *vcpu)
{
	/* Only reached without an in-kernel local APIC; treat as the guest powering off. */
	vm_request_stop(vcpu->vm, 0, NULL);
	return VCPU_EXIT;
}

typedef int (*exit_handler_fn)(struct vcpu *vcpu);

static const exit_handler_fn exit_handlers[] = {
        [KVM_EXIT_IO] = handle_io,
        [KVM_EXIT_MMIO] = handle_mmio,
        [KVM_EXIT_HLT] = handle_hlt,
        [KVM_EXIT_SHUTDOWN] = handle_shutdown,
        [KVM_EXIT_FAIL_ENTRY] = handle_fail_entry,
        [KVM_EXIT_INTERNAL_ERROR] = handle_internal_error,
        [KVM_EXIT_SYSTEM_EVENT] = handle_system_event,
};

static int handle_unknown_exit(struct vcpu *vcpu)
{
	char why[64];

	snprintf(why, sizeof(why), "vCPU %u: unhandled KVM exit reason %u", vcpu->id,
	         vcpu->run->exit_reason);
	vm_request_stop(vcpu->vm, 1, why);
	return VCPU_EXIT;
}

static int dispatch_exit(struct vcpu *vcpu)
{
	uint32_t reason = vcpu->run->exit_reason;

	/* Relaxed atomic: the API's stats read the counts from the event-loop thread. */
	__atomic_fetch_add(&vcpu->exit_counts[MIN(reason, VCPU_EXIT_REASONS - 1)], 1,
	                   __ATOMIC_RELAXED);
	if (reason < ARRAY_SIZE(exit_handlers) && exit_handlers[reason])
		return exit_handlers[reason](vcpu);
	return handle_unknown_exit(vcpu);
}

static void *vcpu_thread(void *opaque)
{
	struct vcpu *vcpu = opaque;
	struct vm *vm = vcpu->vm;
	/*
	 * No exit is half done: KVM finishes the one vmm handled last (an IN's data into RAX, a
	 * string I/O's next step) only at the next KVM_RUN. A vCPU parks only once a KVM_RUN
	 * returned EINTR, which KVM does after finishing it, so a snapshot sees whole state.
	 */
	bool settled = true;
	sigset_t kick;

	if (sandbox_thread_enter(SANDBOX_VCPU)) {
		vm_request_stop(vm, 1, "seccomp: cannot filter a vCPU thread");
		return NULL;
	}
	sigemptyset(&kick);
	sigaddset(&kick, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	for (;;) {
		int ret;

		if (__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
			break;
		if (vm_paused(vm) && settled) {
			vm_park_vcpu(vm);
			continue;
		}
		if (vm_paused(vm))
			__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_RELEASE);
		ret = ioctl(vcpu->fd, KVM_RUN, 0);
		if (ret < 0 && (errno == EINTR || errno == EAGAIN)) {
			vcpu->run->immediate_exit = 0;
			settled = errno == EINTR;
			continue;
		}
		settled = false;
		if (ret < 0) {
			char why[64];
			snprintf(why, sizeof(why), "KVM_RUN failed on vCPU %u: %s", vcpu->id,
			         strerror(errno));
			vm_request_stop(vm, 1, why);
			break;
		}
		/* An exit may read what coalesced writes (of any vCPU) set: replay them first. */
		coalesced_io_flush(&vm->coalesced);
		ret = dispatch_exit(vcpu);
		if (ret != VCPU_CONTINUE)
			break;
	}
	return NULL;
}

static const char *const exit_names[] = {
        [KVM_EXIT_IO] = "port I/O",
        [KVM_EXIT_MMIO] = "MMIO",
        [KVM_EXIT_HLT] = "hlt",
        [KVM_EXIT_SHUTDOWN] = "shutdown",
        [KVM_EXIT_FAIL_ENTRY] = "failed entry",
        [KVM_EXIT_INTR] = "interrupted",
        [KVM_EXIT_INTERNAL_ERROR] = "internal error",
        [KVM_EXIT_SYSTEM_EVENT] = "system event",
};

const char *vcpu_exit_name(unsigned reason)
{
	const char *name = reason < ARRAY_SIZE(exit_names) ? exit_names[reason] : NULL;

	return name ? name : "other";
}

uint64_t vcpu_exit_count(const struct vcpu *vcpu, unsigned reason)
{
	return __atomic_load_n(&vcpu->exit_counts[reason], __ATOMIC_RELAXED);
}

void vcpu_print_exit_stats(const struct vm *vm)
{
	uint64_t sum[VCPU_EXIT_REASONS] = {0}, total = 0;

	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++) {
			sum[r] += vcpu_exit_count(&vm->vcpus[i], r);
			total += vcpu_exit_count(&vm->vcpus[i], r);
		}
	}
	fprintf(stderr, "vmm: stats: %llu exits to userspace\n", (unsigned long long)total);
	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
		if (sum[r])
			fprintf(stderr, "vmm: stats:   %-16s %llu\n", vcpu_exit_name(r),
			        (unsigned long long)sum[r]);
}

/*
 * vCPU threads run exit handlers, whose deepest frames hold a few KiB. A stack smaller than
 * 2 MiB also keeps transparent huge pages (THP "always") from backing it with 2 MiB.
 */
#define VCPU_STACK_SIZE (1024 * 1024)

int vcpu_start(struct vcpu *vcpu)
{
	pthread_attr_t attr;
	int ret = pthread_attr_init(&attr);

	if (ret)
		return -ret;
	ret = pthread_attr_setstacksize(&attr, VCPU_STACK_SIZE);
	if (!ret)
		ret = pthread_create(&vcpu->thread, &attr, vcpu_thread, vcpu);
	pthread_attr_destroy(&attr);
	if (ret)
		return -ret;
	vcpu->thread_started = true;
	return 0;
}

void vcpu_kick(struct vcpu *vcpu)
{
	if (!vcpu->thread_started)
		return;
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *vcpu)
{
	if (vcpu->thread_started)
		pthread_join(vcpu->thread, NULL);
	vcpu->thread_started = false;
}
