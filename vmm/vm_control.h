/*
 * Control of a running VM from its event-loop thread: pause and resume its vCPUs, stop it,
 * and its statistics, behind --api-socket (vmm/api.h).
 *
 * Threads: vm_pause, vm_resume, vm_stats and vm_control_* run on the event-loop thread;
 * vm_park_vcpu on a vCPU thread. struct vm_pause is under its lock; vCPU threads test
 * `wanted` without it (atomically) before each KVM_RUN, then park under it.
 */
#ifndef VMM_VMM_VM_CONTROL_H
#define VMM_VMM_VM_CONTROL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "vmm/util.h"

struct vm;

struct vm_pause {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* wanted, parked or the VM's stopping changed */
	bool wanted;            /* written under lock, read atomically too */
	unsigned parked;        /* vCPU threads waiting in vm_park_vcpu */
};

int vm_pause_init(struct vm_pause *p) MUST_CHECK;
void vm_pause_destroy(struct vm_pause *p);

/* Wakes parked vCPU threads to see that the VM is stopping. Any thread. */
void vm_pause_wake(struct vm_pause *p);

/* A vCPU thread that found pause.wanted set: waits until resumed or stopping. */
void vm_park_vcpu(struct vm *vm);

/*
 * Stops every vCPU outside KVM_RUN and returns once all are parked (at most a few seconds;
 * then the pause is undone and -1 returned with @err). Pausing a paused VM does nothing.
 */
int vm_pause(struct vm *vm, char *err, size_t errlen) MUST_CHECK;
void vm_resume(struct vm *vm);
bool vm_paused(struct vm *vm);

/* --api-socket PATH, if given: listens (before the sandbox is entered). Prints its error. */
int vm_control_open(struct vm *vm) MUST_CHECK;
void vm_control_close(struct vm *vm);

#endif
