/*
 * x86_64 state in a snapshot: each vCPU (registers, FPU/XSAVE, XCRs, MSRs, local APIC, pending
 * events, debug registers, run state) and the VM-wide in-kernel parts (kvmclock, both PICs, the
 * IOAPIC, the PIT), each one snapshot part (vmm/snapshot.h). The KVM structs are stored as
 * their fixed ABI bytes, each with its length, so a length that differs (another kernel's
 * layout) is refused rather than misread. Saving runs on the thread that took the snapshot
 * while every vCPU is parked outside KVM_RUN; restoring runs before the vCPU threads start.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/arch.h"
#include "arch/x86_64/machine.h"
#include "vmm/log.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MAX_MSRS              1024
#define LEGACY_XSAVE_SIZE     4096

/* A KVM struct: its size, then its bytes. */
static void put_blob(struct snap_writer *w, const void *p, uint32_t len)
{
	snap_put_u32(w, len);
	snap_put_bytes(w, p, len);
}

static int get_blob(struct snap_cursor *c, void *p, uint32_t len, const char *what, char *err,
                    size_t errlen)
{
	uint32_t have = 0;

	have = snap_get_u32(c);
	if (have != len) {
		snprintf(err, errlen, "%s is %u bytes, this vmm's KVM has %u", what, have, len);
		return -EINVAL;
	}
	snap_get_bytes(c, p, len);
	return 0;
}

static int ioctl_failed(const char *what, char *err, size_t errlen)
{
	int ret = -errno;

	snprintf(err, errlen, "%s: %s", what, strerror(errno));
	return ret;
}

/* The XSAVE area's size: KVM_CAP_XSAVE2 reports it when AMX and friends make it larger. */
static uint32_t xsave_size(int kvm_fd)
{
	int size = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return size > LEGACY_XSAVE_SIZE ? (uint32_t)size : LEGACY_XSAVE_SIZE;
}

static unsigned long xsave_get_ioctl(uint32_t size)
{
	return size > LEGACY_XSAVE_SIZE ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
}

struct msr_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry entries[MAX_MSRS];
};

/*
 * The MSRs KVM says a VMM should save (KVM_GET_MSR_INDEX_LIST), read on @vcpu. An MSR this
 * vCPU does not have (its CPUID lacks the feature) stops KVM_GET_MSRS there: it is skipped and
 * the rest read on.
 */
static int read_msrs(struct vcpu *vcpu, struct msr_buf *out, char *err, size_t errlen)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t indices[MAX_MSRS];
	} list = {.hdr.nmsrs = MAX_MSRS};
	struct msr_buf *try = calloc(1, sizeof(*try));
	unsigned next = 0;

	if (!try)
		return -ENOMEM;
	if (ioctl(vcpu->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0) {
		free(try);
		return ioctl_failed("KVM_GET_MSR_INDEX_LIST", err, errlen);
	}
	out->hdr.nmsrs = 0;
	while (next < list.hdr.nmsrs) {
		int got;

		try->hdr.nmsrs = 0;
		for (unsigned i = next; i < list.hdr.nmsrs; i++)
			try->entries[try->hdr.nmsrs++] =
			        (struct kvm_msr_entry){.index = list.indices[i]};
		got = ioctl(vcpu->fd, KVM_GET_MSRS, try);
		if (got < 0) {
			free(try);
			return ioctl_failed("KVM_GET_MSRS", err, errlen);
		}
		for (int i = 0; i < got; i++)
			out->entries[out->hdr.nmsrs++] = try->entries[i];
		next += (unsigned)got + 1; /* past the one KVM refused */
	}
	free(try);
	return 0;
}

static int vcpu_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct vcpu *vcpu = opaque;
	uint32_t xsize = xsave_size(vcpu->vm->kvm_fd);
	struct kvm_mp_state mp;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct msr_buf *msrs = calloc(1, sizeof(*msrs));
	void *xsave = calloc(1, xsize);
	int ret = -ENOMEM;

	if (!msrs || !xsave)
		goto out;
	ret = -1;
	if (ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0)
		ret = ioctl_failed("KVM_GET_MP_STATE", err, errlen);
	else if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0)
		ret = ioctl_failed("KVM_GET_REGS", err, errlen);
	else if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		ret = ioctl_failed("KVM_GET_SREGS", err, errlen);
	else if (ioctl(vcpu->fd, xsave_get_ioctl(xsize), xsave) < 0)
		ret = ioctl_failed("KVM_GET_XSAVE", err, errlen);
	else if (ioctl(vcpu->fd, KVM_GET_XCRS, &xcrs) < 0)
		ret = ioctl_failed("KVM_GET_XCRS", err, errlen);
	else if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		ret = ioctl_failed("KVM_GET_LAPIC", err, errlen);
	else if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &events) < 0)
		ret = ioctl_failed("KVM_GET_VCPU_EVENTS", err, errlen);
	else if (ioctl(vcpu->fd, KVM_GET_DEBUGREGS, &debugregs) < 0)
		ret = ioctl_failed("KVM_GET_DEBUGREGS", err, errlen);
	else
		ret = read_msrs(vcpu, msrs, err, errlen);
	if (ret)
		goto out;
	snap_put_u32(w, mp.mp_state);
	put_blob(w, &regs, sizeof(regs));
	put_blob(w, &sregs, sizeof(sregs));
	put_blob(w, xsave, xsize);
	put_blob(w, &xcrs, sizeof(xcrs));
	put_blob(w, &lapic, sizeof(lapic));
	put_blob(w, &events, sizeof(events));
	put_blob(w, &debugregs, sizeof(debugregs));
	snap_put_u32(w, msrs->hdr.nmsrs);
	for (unsigned i = 0; i < msrs->hdr.nmsrs; i++) {
		snap_put_u32(w, msrs->entries[i].index);
		snap_put_u64(w, msrs->entries[i].data);
	}
out:
	free(msrs);
	free(xsave);
	return ret;
}

/* Sets @n MSRs; KVM returns how many it took, and one it refuses is an error here. */
static int write_msrs(struct vcpu *vcpu, struct msr_buf *msrs, char *err, size_t errlen)
{
	int got = ioctl(vcpu->fd, KVM_SET_MSRS, msrs);

	if (got < 0)
		return ioctl_failed("KVM_SET_MSRS", err, errlen);
	if ((unsigned)got < msrs->hdr.nmsrs) {
		snprintf(err, errlen, "KVM refused MSR %#x", msrs->entries[got].index);
		return -EINVAL;
	}
	return 0;
}

static int vcpu_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct vcpu *vcpu = opaque;
	uint32_t xsize = xsave_size(vcpu->vm->kvm_fd), nmsrs = 0;
	struct kvm_mp_state mp = {0};
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct msr_buf *msrs = calloc(1, sizeof(*msrs));
	struct msr_buf *deadline = calloc(1, sizeof(*deadline));
	void *xsave = calloc(1, xsize);
	int ret = -ENOMEM;

	if (!msrs || !deadline || !xsave)
		goto out;
	mp.mp_state = snap_get_u32(c);
	if ((ret = get_blob(c, &regs, sizeof(regs), "the general registers", err, errlen)) ||
	    (ret = get_blob(c, &sregs, sizeof(sregs), "the special registers", err, errlen)) ||
	    (ret = get_blob(c, xsave, xsize, "the XSAVE area", err, errlen)) ||
	    (ret = get_blob(c, &xcrs, sizeof(xcrs), "the XCRs", err, errlen)) ||
	    (ret = get_blob(c, &lapic, sizeof(lapic), "the local APIC", err, errlen)) ||
	    (ret = get_blob(c, &events, sizeof(events), "the pending events", err, errlen)) ||
	    (ret = get_blob(c, &debugregs, sizeof(debugregs), "the debug registers", err, errlen)))
		goto out;
	nmsrs = snap_get_u32(c);
	ret = -EINVAL;
	if (nmsrs > MAX_MSRS) {
		snprintf(err, errlen, "%u MSRs, more than %u", nmsrs, MAX_MSRS);
		goto out;
	}
	/* The TSC deadline goes in after the local APIC, whose restore would disarm it. */
	for (uint32_t i = 0; i < nmsrs; i++) {
		struct kvm_msr_entry e = {0};

		e.index = snap_get_u32(c);
		e.data = snap_get_u64(c);
		if (e.index == MSR_IA32_TSC_DEADLINE)
			deadline->entries[deadline->hdr.nmsrs++] = e;
		else
			msrs->entries[msrs->hdr.nmsrs++] = e;
	}
	ret = snap_cursor_finish(c, err, errlen);
	if (ret)
		goto out;
	/* Which parts of the events KVM takes from us (the rest it keeps as they are). */
	events.flags &= KVM_VCPUEVENT_VALID_SMM;
	events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
	                KVM_VCPUEVENT_VALID_SHADOW;
	ret = -1;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		ret = ioctl_failed("KVM_SET_SREGS", err, errlen);
	else if (ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0)
		ret = ioctl_failed("KVM_SET_REGS", err, errlen);
	else if (ioctl(vcpu->fd, KVM_SET_XSAVE, xsave) < 0)
		ret = ioctl_failed("KVM_SET_XSAVE", err, errlen);
	else if (ioctl(vcpu->fd, KVM_SET_XCRS, &xcrs) < 0)
		ret = ioctl_failed("KVM_SET_XCRS", err, errlen);
	else if ((ret = write_msrs(vcpu, msrs, err, errlen)))
		;
	else if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		ret = ioctl_failed("KVM_SET_LAPIC", err, errlen);
	else if ((ret = write_msrs(vcpu, deadline, err, errlen)))
		;
	else if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &events) < 0)
		ret = ioctl_failed("KVM_SET_VCPU_EVENTS", err, errlen);
	else if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
		ret = ioctl_failed("KVM_SET_MP_STATE", err, errlen);
	else if (ioctl(vcpu->fd, KVM_SET_DEBUGREGS, &debugregs) < 0)
		ret = ioctl_failed("KVM_SET_DEBUGREGS", err, errlen);
	else
		ret = 0;
out:
	free(msrs);
	free(deadline);
	free(xsave);
	return ret;
}

int x86_vcpu_snapshot_add(struct vcpu *vcpu)
{
	return snapshot_add(&vcpu->vm->snapshot, "VCPU", vcpu->id, vcpu_save, vcpu_load, vcpu);
}

/* kvmclock: restored, the guest's clock goes on from where it stopped, not from now. */
static int clock_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	struct kvm_clock_data clock = {0};

	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return ioctl_failed("KVM_GET_CLOCK", err, errlen);
	snap_put_u64(w, clock.clock);
	return 0;
}

static int clock_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	struct kvm_clock_data clock = {0};
	int ret;

	clock.clock = snap_get_u64(c);
	ret = snap_cursor_finish(c, err, errlen);
	if (!ret && ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		ret = ioctl_failed("KVM_SET_CLOCK", err, errlen);
	return ret;
}

/* Both PICs and the IOAPIC, in KVM_GET_IRQCHIP's chip order. */
static int irqchip_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct vm *vm = opaque;

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC; id++) {
		struct kvm_irqchip chip = {.chip_id = id};

		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return ioctl_failed("KVM_GET_IRQCHIP", err, errlen);
		put_blob(w, &chip, sizeof(chip));
	}
	return 0;
}

static int irqchip_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	struct kvm_irqchip chips[KVM_IRQCHIP_IOAPIC + 1];
	int ret = 0;

	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC && !ret; id++)
		ret = get_blob(c, &chips[id], sizeof(chips[id]), "an irqchip", err, errlen);
	if (!ret)
		ret = snap_cursor_finish(c, err, errlen);
	for (uint32_t id = KVM_IRQCHIP_PIC_MASTER; id <= KVM_IRQCHIP_IOAPIC && !ret; id++) {
		if (chips[id].chip_id != id) {
			snprintf(err, errlen, "irqchip %u is saved as chip %u", id,
			         chips[id].chip_id);
			ret = -EINVAL;
		} else if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &chips[id]) < 0) {
			ret = ioctl_failed("KVM_SET_IRQCHIP", err, errlen);
		}
	}
	return ret;
}

static int pit_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	struct kvm_pit_state2 pit;

	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return ioctl_failed("KVM_GET_PIT2", err, errlen);
	put_blob(w, &pit, sizeof(pit));
	return 0;
}

static int pit_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	struct kvm_pit_state2 pit;
	int ret = get_blob(c, &pit, sizeof(pit), "the PIT", err, errlen);

	if (!ret)
		ret = snap_cursor_finish(c, err, errlen);
	if (!ret && ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		ret = ioctl_failed("KVM_SET_PIT2", err, errlen);
	return ret;
}

int x86_vm_snapshot_add(struct vm *vm)
{
	struct snapshot_parts *p = &vm->snapshot;
	int ret = snapshot_add(p, "CLCK", 0, clock_save, clock_load, vm);

	if (!ret)
		ret = snapshot_add(p, "IRQC", 0, irqchip_save, irqchip_load, vm);
	if (!ret)
		ret = snapshot_add(p, "PIT ", 0, pit_save, pit_load, vm);
	return ret;
}
