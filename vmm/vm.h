/* A VM's lifecycle: creation from a config, running, stopping, teardown in reverse order. */
#ifndef VMM_VMM_VM_H
#define VMM_VMM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/bus.h"
#include "vmm/chardev.h"
#include "vmm/coalesced_io.h"
#include "vmm/config.h"
#include "vmm/devices.h"
#include "vmm/event_loop.h"
#include "vmm/memory.h"
#include "vmm/shares.h"
#include "vmm/snapshot.h"
#include "vmm/vcpu.h"
#include "vmm/vm_control.h"

struct api;
struct arch_vm;
struct run;

struct vm {
	const struct vm_config *config;
	int kvm_fd, vm_fd;
	size_t vcpu_mmap_size;
	struct guest_memory mem;
	struct bus pio, mmio;
	struct coalesced_io coalesced; /* index-port writes that skip the exit to vmm */
	struct vcpu *vcpus;
	unsigned nr_vcpus;
	struct arch_vm *arch;
	struct vm_devices devices;
	struct event_loop loop;
	struct chardev console;
	/* Where the console device's output goes: the chardev, or --run's console log. */
	size_t (*console_write)(void *opaque, const uint8_t *buf, size_t len);
	void *console_opaque;
	struct event_source signals, timer, stop_event;
	struct shares shares; /* --share, and --run's root */
	struct run *run;      /* test-run mode, or NULL */

	struct snapshot_parts snapshot;        /* every part with state, in restore order */
	const struct snapshot_config *restore; /* --restore: the snapshot's state, or NULL */

	struct vm_pause pause; /* vm_control.h */
	struct api *api;       /* --api-socket, or NULL */
	int statm_fd;          /* /proc/self/statm for the API's stats, or -1 */
	struct timespec started;

	pthread_mutex_t stop_lock; /* guards stopping, exit_status and crashed */
	bool stopping;
	int exit_status;
	bool crashed; /* the stop was a guest crash */
};

/*
 * Builds the VM described by @config: /dev/kvm, guest memory, machine, kernel, vCPUs; or, with
 * @restore (a snapshot whose saved options @config was parsed from), the same machine with the
 * snapshot's RAM and state instead of a kernel. On failure prints one error line, frees what
 * was built and returns -errno.
 */
int vm_create(const struct vm_config *config, const struct snapshot_config *restore,
              struct vm **out) MUST_CHECK;

/* Runs the VM until it stops; returns the process exit status. */
int vm_run(struct vm *vm);

void vm_destroy(struct vm *vm);

/*
 * Asks the VM to stop with @status. The first request wins; later ones are ignored. Any
 * thread. @why, if not NULL, is printed on stderr (for errors and crashes).
 */
void vm_request_stop(struct vm *vm, int status, const char *why);
/* The same for a guest crash (triple fault, KVM internal error...): status 1, remembered. */
void vm_request_stop_crashed(struct vm *vm, const char *why);

#endif
