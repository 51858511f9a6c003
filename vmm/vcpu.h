/* vCPU threads: one KVM_RUN loop per vCPU, dispatching exits to the buses. */
#ifndef VMM_VMM_VCPU_H
#define VMM_VMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>

#include "vmm/util.h"

struct vm;

#define VCPU_EXIT_REASONS 64

/* What an exit handler asks the run loop to do next. */
enum vcpu_action {
	VCPU_CONTINUE,
	VCPU_EXIT, /* leave the run loop; the handler already asked the VM to stop */
};

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	/*
	 * Exits to userspace by KVM exit reason (the last slot counts unknown reasons): written
	 * by the vCPU's thread, read by any through vcpu_exit_count.
	 */
	uint64_t exit_counts[VCPU_EXIT_REASONS];
};

/* Creates vCPU @id of @vm (KVM_CREATE_VCPU and the kvm_run mapping). Returns 0 or -errno. */
int vcpu_create(struct vm *vm, unsigned id, struct vcpu *vcpu) MUST_CHECK;
void vcpu_destroy(struct vcpu *vcpu);

/* Starts the vCPU's thread. Signals must be set up by the caller (see vcpu_signals_init). */
int vcpu_start(struct vcpu *vcpu) MUST_CHECK;
/* Makes the vCPU leave KVM_RUN promptly (immediate_exit plus a signal). Any thread. */
void vcpu_kick(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);

/* Prints the exit counters of all vCPUs of @vm, summed, on stderr. */
void vcpu_print_exit_stats(const struct vm *vm);
/* The exits of @reason (a KVM_EXIT_* value below VCPU_EXIT_REASONS) so far. Any thread. */
uint64_t vcpu_exit_count(const struct vcpu *vcpu, unsigned reason);
/* A KVM exit reason's name, as --stats and the API's stats print it. */
const char *vcpu_exit_name(unsigned reason);

/* Installs the kick signal's handler; call once before starting any vCPU thread. */
int vcpu_signals_init(void) MUST_CHECK;

#endif
