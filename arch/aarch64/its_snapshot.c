/*
 * The GICv3 ITS's state in a snapshot: one part, "ITS ", after the GIC's (KVM restores the
 * redistributors, whose GICR_PROPBASER and GICR_PENDBASER gic_snapshot.c saves, before the
 * ITS). Documentation/virt/kvm/devices/arm-vgic-its.rst:
 *
 *   u32 registers | u64 each, in restore order: GITS_CBASER, GITS_IIDR, GITS_CREADR,
 *   GITS_CWRITER, GITS_BASER0..7, GITS_CTLR
 *
 * Saving first has KVM write the LPIs' pending bits (KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES) and
 * the ITS's device, collection and translation tables (KVM_DEV_ARM_ITS_SAVE_TABLES) into guest
 * RAM, where the guest's GITS_BASERn and GICR_PENDBASER put them; the RAM file, written after
 * the parts, holds them. Loading sets every register but GITS_CTLR, has KVM read the tables
 * back (KVM_DEV_ARM_ITS_RESTORE_TABLES; RAM is mapped by then), then sets GITS_CTLR.
 *
 * Threads: as the GIC's part (every vCPU parked when saving; loaded before they start).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/aarch64/machine.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

#define GITS_CTLR    0x0000
#define GITS_IIDR    0x0004
#define GITS_CBASER  0x0080
#define GITS_CWRITER 0x0088
#define GITS_CREADR  0x0090
#define GITS_BASER   0x0100 /* 8 of them, 8 bytes apart */
#define NR_BASER     8

/* Restore order: GITS_CBASER first, GITS_CTLR last (after the tables). */
static const uint32_t its_regs[] = {
        GITS_CBASER,        GITS_IIDR,          GITS_CREADR,        GITS_CWRITER,
        GITS_BASER + 8 * 0, GITS_BASER + 8 * 1, GITS_BASER + 8 * 2, GITS_BASER + 8 * 3,
        GITS_BASER + 8 * 4, GITS_BASER + 8 * 5, GITS_BASER + 8 * 6, GITS_BASER + 8 * 7,
        GITS_CTLR,
};

static int attr(int fd, bool set, uint32_t group, uint64_t a, void *value)
{
	struct kvm_device_attr d = {.group = group, .attr = a, .addr = (uintptr_t)value};

	return ioctl(fd, set ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &d) < 0 ? -errno : 0;
}

static int its_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	const struct arch_vm *a = ((struct vm *)opaque)->arch;
	uint64_t values[ARRAY_SIZE(its_regs)];
	int ret = attr(a->gic_fd, true, KVM_DEV_ARM_VGIC_GRP_CTRL,
	               KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES, NULL);

	if (ret) {
		snprintf(err, errlen, "saving the LPIs' pending tables: %s", strerror(-ret));
		return ret;
	}
	ret = attr(a->its_fd, true, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_ITS_SAVE_TABLES, NULL);
	if (ret) {
		snprintf(err, errlen, "saving the ITS's tables: %s", strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(its_regs); i++) {
		ret = attr(a->its_fd, false, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, its_regs[i],
		           &values[i]);
		if (ret) {
			snprintf(err, errlen, "reading ITS register %#x: %s", its_regs[i],
			         strerror(-ret));
			return ret;
		}
	}
	snap_put_u32(w, ARRAY_SIZE(its_regs));
	for (unsigned i = 0; i < ARRAY_SIZE(its_regs); i++)
		snap_put_u64(w, values[i]);
	return 0;
}

static int its_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	const struct arch_vm *a = ((struct vm *)opaque)->arch;
	uint64_t values[ARRAY_SIZE(its_regs)];
	uint32_t n = snap_get_u32(c);
	int ret;

	if (n != ARRAY_SIZE(its_regs)) {
		snprintf(err, errlen, "%u ITS registers, expected %zu", n, ARRAY_SIZE(its_regs));
		return -EINVAL;
	}
	for (unsigned i = 0; i < n; i++)
		values[i] = snap_get_u64(c);
	ret = snap_cursor_finish(c, err, errlen);
	for (unsigned i = 0; i < n && !ret; i++) {
		if (its_regs[i] == GITS_CTLR) {
			ret = attr(a->its_fd, true, KVM_DEV_ARM_VGIC_GRP_CTRL,
			           KVM_DEV_ARM_ITS_RESTORE_TABLES, NULL);
			if (ret) {
				snprintf(err, errlen, "restoring the ITS's tables: %s",
				         strerror(-ret));
				return ret;
			}
		}
		ret = attr(a->its_fd, true, KVM_DEV_ARM_VGIC_GRP_ITS_REGS, its_regs[i], &values[i]);
		if (ret)
			snprintf(err, errlen, "setting ITS register %#x to %#llx: %s", its_regs[i],
			         (unsigned long long)values[i], strerror(-ret));
	}
	return ret;
}

int arm64_its_snapshot_add(struct vm *vm)
{
	return snapshot_add(&vm->snapshot, "ITS ", 0, its_save, its_load, vm);
}
