/*
 * aarch64 vCPU state in a snapshot, and where the machine's parts register (vmm/snapshot.h).
 * Each vCPU is one part, "VCPU" and its index:
 *
 *   u32 KVM_GET_MP_STATE's state (a vCPU PSCI powered off stays off)
 *   u32 size | struct kvm_vcpu_events (a pending SError)
 *   every register KVM_GET_REG_LIST names (core, FP/SIMD, system, timer, firmware
 *   pseudo-registers such as the PSCI version), as a register list (reg_list.h)
 *
 * A restore checks the saved list against the new vCPU's own list (same kernel, same vCPU
 * features) before it sets anything, so a register missing on either side is one line, not a
 * half-restored vCPU. The virtual counter (KVM_REG_ARM_TIMER_CNT, which KVM turns into the
 * VM's counter offset) goes in before the timer's control and compare registers, so the guest's
 * time goes on from where the snapshot stopped it and an armed timer compares against that.
 *
 * The GIC ("GIC ", gic_snapshot.c) and the UART are VM parts registered after the last vCPU,
 * once the GIC is initialised: restored in that order, the GIC's redistributors find their
 * vCPUs, and the UART drives its line into a restored GIC.
 *
 * Threads: parts are registered on the main thread while the VM is built; saving runs on the
 * thread that takes the snapshot while every vCPU is parked outside KVM_RUN; loading runs
 * before the vCPU threads start.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/aarch64/machine.h"
#include "arch/aarch64/reg_list.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

static int ioctl_failed(const char *what, uint64_t id, char *err, size_t errlen)
{
	int ret = -errno;

	if (id)
		snprintf(err, errlen, "%s %#llx: %s", what, (unsigned long long)id,
		         strerror(errno));
	else
		snprintf(err, errlen, "%s: %s", what, strerror(errno));
	return ret;
}

/* The vCPU's registers as KVM_GET_REG_LIST names them, each with its size, values zero. */
static int list_registers(struct vcpu *vcpu, struct arm64_reg_list *out, char *err, size_t errlen)
{
	struct kvm_reg_list probe = {.n = 0}, *list;
	int ret = 0;

	if (ioctl(vcpu->fd, KVM_GET_REG_LIST, &probe) == 0 || errno != E2BIG)
		return ioctl_failed("KVM_GET_REG_LIST", 0, err, errlen);
	if (probe.n > ARM64_REG_LIST_MAX) {
		snprintf(err, errlen, "KVM lists %llu registers, more than %d",
		         (unsigned long long)probe.n, ARM64_REG_LIST_MAX);
		return -E2BIG;
	}
	list = calloc(1, sizeof(*list) + probe.n * sizeof(list->reg[0]));
	if (!list)
		return -ENOMEM;
	list->n = probe.n;
	if (ioctl(vcpu->fd, KVM_GET_REG_LIST, list) < 0)
		ret = ioctl_failed("KVM_GET_REG_LIST", 0, err, errlen);
	for (uint64_t i = 0; i < list->n && !ret; i++) {
		uint32_t size = arm64_reg_id_size(list->reg[i]);

		if (!arm64_reg_list_add(out, list->reg[i], size)) {
			snprintf(err, errlen, "register %#llx: %u bytes, or out of memory",
			         (unsigned long long)list->reg[i], size);
			ret = -ENOMEM;
		}
	}
	free(list);
	return ret;
}

static int vcpu_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct vcpu *vcpu = opaque;
	struct arm64_reg_list regs = {0};
	struct kvm_mp_state mp;
	struct kvm_vcpu_events events;
	int ret = list_registers(vcpu, &regs, err, errlen);

	for (unsigned i = 0; i < regs.count && !ret; i++) {
		struct kvm_one_reg one = {.id = regs.regs[i].id,
		                          .addr = (uintptr_t)regs.regs[i].value};

		if (ioctl(vcpu->fd, KVM_GET_ONE_REG, &one) < 0)
			ret = ioctl_failed("KVM_GET_ONE_REG", one.id, err, errlen);
	}
	if (!ret && ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0)
		ret = ioctl_failed("KVM_GET_MP_STATE", 0, err, errlen);
	if (!ret && ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &events) < 0)
		ret = ioctl_failed("KVM_GET_VCPU_EVENTS", 0, err, errlen);
	if (!ret) {
		snap_put_u32(w, mp.mp_state);
		snap_put_u32(w, sizeof(events));
		snap_put_bytes(w, &events, sizeof(events));
		arm64_reg_list_put(w, &regs);
	}
	arm64_reg_list_free(&regs);
	return ret;
}

static bool is_counter(uint64_t id)
{
#ifdef KVM_REG_ARM_PTIMER_CNT
	if (id == KVM_REG_ARM_PTIMER_CNT)
		return true;
#endif
	return id == KVM_REG_ARM_TIMER_CNT;
}

static int set_reg(struct vcpu *vcpu, const struct arm64_reg *r, char *err, size_t errlen)
{
	struct kvm_one_reg one = {.id = r->id, .addr = (uintptr_t)r->value};

	return ioctl(vcpu->fd, KVM_SET_ONE_REG, &one) < 0
	               ? ioctl_failed("KVM_SET_ONE_REG", r->id, err, errlen)
	               : 0;
}

/* The counters first (see the header comment), then the rest in KVM's order. */
static int set_registers(struct vcpu *vcpu, const struct arm64_reg_list *regs, char *err,
                         size_t errlen)
{
	int ret = 0;

	for (unsigned i = 0; i < regs->count && !ret; i++)
		if (is_counter(regs->regs[i].id))
			ret = set_reg(vcpu, &regs->regs[i], err, errlen);
	for (unsigned i = 0; i < regs->count && !ret; i++)
		if (!is_counter(regs->regs[i].id))
			ret = set_reg(vcpu, &regs->regs[i], err, errlen);
	return ret;
}

static int vcpu_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct vcpu *vcpu = opaque;
	struct arm64_reg_list regs = {0};
	struct kvm_mp_state mp = {0};
	struct kvm_vcpu_events events;
	uint32_t events_size;
	int ret = list_registers(vcpu, &regs, err, errlen);

	if (ret)
		goto out;
	mp.mp_state = snap_get_u32(c);
	events_size = snap_get_u32(c);
	if (events_size != sizeof(events)) {
		snprintf(err, errlen, "the pending events are %u bytes, this vmm's KVM has %zu",
		         events_size, sizeof(events));
		ret = -EINVAL;
		goto out;
	}
	snap_get_bytes(c, &events, sizeof(events));
	ret = arm64_reg_list_get(c, &regs, "vCPU register", err, errlen);
	if (!ret)
		ret = snap_cursor_finish(c, err, errlen);
	if (!ret)
		ret = set_registers(vcpu, &regs, err, errlen);
	if (!ret && ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &events) < 0)
		ret = ioctl_failed("KVM_SET_VCPU_EVENTS", 0, err, errlen);
	if (!ret && ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
		ret = ioctl_failed("KVM_SET_MP_STATE", 0, err, errlen);
out:
	arm64_reg_list_free(&regs);
	return ret;
}

int arm64_vcpu_snapshot_add(struct vcpu *vcpu)
{
	return snapshot_add(&vcpu->vm->snapshot, "VCPU", vcpu->id, vcpu_save, vcpu_load, vcpu);
}

int arm64_vm_snapshot_add(struct vm *vm)
{
	int ret = arm64_gic_snapshot_add(vm);

	if (!ret && vm->arch->its_fd >= 0)
		ret = arm64_its_snapshot_add(vm);
	if (!ret)
		ret = uart_snapshot_add(&vm->arch->uart, &vm->snapshot, 0);
	return ret;
}
