/*
 * The in-kernel GIC's state in a snapshot: one part, "GIC ", read and written through the
 * vGIC device's attributes (Documentation/virt/kvm/devices/arm-vgic-v3.rst, arm-vgic.rst):
 *
 *   u32 GIC version (2 or 3) | u32 interrupts (from GICD_TYPER) | u32 vCPUs |
 *   one register list (reg_list.h) per block of the plan below; a register's id is its
 *   device attribute (offset, vCPU's affinity or index), its value 4 or 8 bytes
 *
 * A plan is the list of registers in the order they are restored; saving and loading build
 * it the same way from the machine at hand, so a restore checks the file against the new
 * GIC before it writes anything. The order: the distributor's configuration (GICD_IIDR first,
 * as KVM asks; groups, trigger modes, priorities, routing or targets), line levels, then its
 * enables, pending and active bits and GICD_CTLR; then per vCPU the same for its
 * redistributor (GICv3) or banked registers (GICv2), and last its CPU interface (the ICC_*
 * system registers; GICC_* on a GICv2). Pending bits are KVM's latches; with a GICv3 the line
 * levels are saved beside them (KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO), a GICv2 has no such group:
 * a level-triggered line that was high comes back pending until its device drives it again.
 * With an ITS, each redistributor's GICR_PROPBASER and GICR_PENDBASER come before its
 * GICR_CTLR; the LPIs themselves are in guest RAM and the ITS's part (its_snapshot.c). KVM
 * initialised the GIC (KVM_DEV_ARM_VGIC_CTRL_INIT) when the last vCPU was made, before this
 * part loads.
 *
 * Threads: saved on the thread that takes the snapshot with every vCPU parked (KVM refuses
 * while one runs), loaded before the vCPU threads start.
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

/* Distributor, redistributor and GICv2 CPU interface register offsets (the GIC specs). */
#define GICD_CTLR       0x0000
#define GICD_TYPER      0x0004
#define GICD_IIDR       0x0008
#define GICD_IGROUPR    0x0080
#define GICD_ISENABLER  0x0100
#define GICD_ISPENDR    0x0200
#define GICD_ISACTIVER  0x0300
#define GICD_IPRIORITYR 0x0400
#define GICD_ITARGETSR  0x0800 /* GICv2 */
#define GICD_ICFGR      0x0c00
#define GICD_SPENDSGIR  0x0f20 /* GICv2 */
#define GICD_IROUTER    0x6000 /* GICv3: 64 bits per interrupt */
#define GICR_CTLR       0x0000
#define GICR_PROPBASER  0x0070 /* with an ITS: the LPIs' configuration and pending tables */
#define GICR_PENDBASER  0x0078
#define GICR_SGI_BASE   0x10000 /* the redistributor's second frame */
#define GICC_CTLR       0x00
#define GICC_PMR        0x04
#define GICC_BPR        0x08
#define GICC_ABPR       0x1c
#define GICC_APR        0xd0
#define NR_PRIVATE      32 /* SGIs and PPIs */
#define NR_APR          4

/* A CPU interface system register as KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS names it. */
#define ICC(op1, crn, crm, op2) ((3U << 14) | ((op1) << 11) | ((crn) << 7) | ((crm) << 3) | (op2))
#define ICC_PMR_EL1             ICC(0, 4, 6, 0)
#define ICC_BPR0_EL1            ICC(0, 12, 8, 3)
#define ICC_AP0R_EL1(n)         ICC(0, 12, 8, 4 + (n))
#define ICC_AP1R_EL1(n)         ICC(0, 12, 9, (n))
#define ICC_BPR1_EL1            ICC(0, 12, 12, 3)
#define ICC_CTLR_EL1            ICC(0, 12, 12, 4)
#define ICC_SRE_EL1             ICC(0, 12, 12, 5)
#define ICC_IGRPEN0_EL1         ICC(0, 12, 12, 6)
#define ICC_IGRPEN1_EL1         ICC(0, 12, 12, 7)
#define ICC_CTLR_PRIBITS(v)     ((((v) >> 8) & 7) + 1)
#define LEVEL_INFO(intid)                                                                          \
	(((uint64_t)VGIC_LEVEL_INFO_LINE_LEVEL << KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT) | (intid))

struct gic_block {
	uint32_t group; /* KVM_DEV_ARM_VGIC_GRP_* */
	struct arm64_reg_list regs;
};

struct gic_plan {
	struct gic_block *blocks;
	unsigned nr;
	uint32_t nr_irqs;
	bool failed; /* out of memory while planning */
};

static struct gic_block *plan_block(struct gic_plan *p, uint32_t group)
{
	struct gic_block *b = realloc(p->blocks, (p->nr + 1) * sizeof(*b));

	if (!b) {
		p->failed = true;
		return NULL;
	}
	p->blocks = b;
	b = &p->blocks[p->nr++];
	*b = (struct gic_block){.group = group};
	return b;
}

static void plan_reg(struct gic_plan *p, struct gic_block *b, uint64_t attr, uint32_t size)
{
	if (!b || !arm64_reg_list_add(&b->regs, attr, size))
		p->failed = true;
}

/* The 32-bit words of a register with @bits bits per interrupt that cover the SPIs. */
static void plan_spis(struct gic_plan *p, struct gic_block *b, uint32_t offset, unsigned bits)
{
	for (unsigned w = bits; w < p->nr_irqs * bits / 32; w++)
		plan_reg(p, b, offset + 4 * w, 4);
}

static void plan_free(struct gic_plan *p)
{
	for (unsigned i = 0; i < p->nr; i++)
		arm64_reg_list_free(&p->blocks[i].regs);
	free(p->blocks);
	*p = (struct gic_plan){0};
}

static int gic_attr(int fd, bool set, uint32_t group, uint64_t attr, void *value)
{
	struct kvm_device_attr a = {.group = group, .attr = attr, .addr = (uintptr_t)value};

	return ioctl(fd, set ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &a) < 0 ? -errno : 0;
}

/* A vCPU's affinity as the GICv3 attributes encode it: Aff3..Aff0 in bits 63..32. */
static int vcpu_affinity(struct vcpu *vcpu, uint64_t *out)
{
	uint64_t mpidr = 0;
	struct kvm_one_reg reg = {.id = ARM64_SYS_REG(3, 0, 0, 0, 5), .addr = (uintptr_t)&mpidr};

	if (ioctl(vcpu->fd, KVM_GET_ONE_REG, &reg) < 0)
		return -errno;
	*out = ((mpidr >> 32 & 0xff) << 56) | ((mpidr >> 16 & 0xff) << 48) |
	       ((mpidr >> 8 & 0xff) << 40) | ((mpidr & 0xff) << 32);
	return 0;
}

/*
 * With an ITS (@lpis), the LPI tables' bases before GICR_CTLR, whose EnableLPIs freezes them;
 * KVM takes 64-bit registers a word at a time.
 */
static void plan_v3_cpu(struct gic_plan *p, uint64_t aff, unsigned pri_bits, bool lpis)
{
	struct gic_block *b = plan_block(p, KVM_DEV_ARM_VGIC_GRP_REDIST_REGS);
	static const uint32_t icc_first[] = {ICC_SRE_EL1,     ICC_CTLR_EL1, ICC_IGRPEN0_EL1,
	                                     ICC_IGRPEN1_EL1, ICC_PMR_EL1,  ICC_BPR0_EL1,
	                                     ICC_BPR1_EL1};
	/* Active priority registers: 1, 2 or 4 of each with 5, 6 or 7 bits of priority. */
	unsigned nr_apr = pri_bits >= 7 ? 4 : pri_bits == 6 ? 2 : 1;

	plan_reg(p, b, aff | (GICR_SGI_BASE + GICD_IGROUPR), 4);
	plan_reg(p, b, aff | (GICR_SGI_BASE + GICD_ICFGR), 4);
	plan_reg(p, b, aff | (GICR_SGI_BASE + GICD_ICFGR + 4), 4);
	for (unsigned w = 0; w < NR_PRIVATE / 4; w++)
		plan_reg(p, b, aff | (GICR_SGI_BASE + GICD_IPRIORITYR + 4 * w), 4);
	plan_reg(p, plan_block(p, KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO), aff | LEVEL_INFO(0), 4);
	b = plan_block(p, KVM_DEV_ARM_VGIC_GRP_REDIST_REGS);
	plan_reg(p, b, aff | (GICR_SGI_BASE + GICD_ISENABLER), 4);
	plan_reg(p, b, aff | (GICR_SGI_BASE + GICD_ISPENDR), 4);
	plan_reg(p, b, aff | (GICR_SGI_BASE + GICD_ISACTIVER), 4);
	for (unsigned w = 0; lpis && w < 4; w++)
		plan_reg(p, b, aff | (GICR_PROPBASER + 4 * w), 4);
	plan_reg(p, b, aff | GICR_CTLR, 4);
	b = plan_block(p, KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS);
	for (unsigned i = 0; i < ARRAY_SIZE(icc_first); i++)
		plan_reg(p, b, aff | icc_first[i], 8);
	for (unsigned n = 0; n < nr_apr; n++)
		plan_reg(p, b, aff | ICC_AP0R_EL1(n), 8);
	for (unsigned n = 0; n < nr_apr; n++)
		plan_reg(p, b, aff | ICC_AP1R_EL1(n), 8);
}

static int plan_v3(struct vm *vm, struct gic_plan *p)
{
	int fd = vm->arch->gic_fd;
	uint64_t aff0 = 0, icc_ctlr = 0;
	struct gic_block *b = plan_block(p, KVM_DEV_ARM_VGIC_GRP_DIST_REGS);
	int ret = vcpu_affinity(&vm->vcpus[0], &aff0);

	if (!ret)
		ret = gic_attr(fd, false, KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS, aff0 | ICC_CTLR_EL1,
		               &icc_ctlr);
	if (ret)
		return ret;
	plan_reg(p, b, GICD_IIDR, 4);
	plan_spis(p, b, GICD_IGROUPR, 1);
	plan_spis(p, b, GICD_ICFGR, 2);
	plan_spis(p, b, GICD_IPRIORITYR, 8);
	for (uint32_t intid = NR_PRIVATE; intid < p->nr_irqs; intid++) {
		plan_reg(p, b, GICD_IROUTER + 8 * intid, 4);
		plan_reg(p, b, GICD_IROUTER + 8 * intid + 4, 4);
	}
	/* SPIs' levels are the same through any vCPU; KVM wants one that exists. */
	b = plan_block(p, KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO);
	for (uint32_t intid = NR_PRIVATE; intid < p->nr_irqs; intid += 32)
		plan_reg(p, b, aff0 | LEVEL_INFO(intid), 4);
	b = plan_block(p, KVM_DEV_ARM_VGIC_GRP_DIST_REGS);
	plan_spis(p, b, GICD_ISENABLER, 1);
	plan_spis(p, b, GICD_ISPENDR, 1);
	plan_spis(p, b, GICD_ISACTIVER, 1);
	plan_reg(p, b, GICD_CTLR, 4);
	for (unsigned i = 0; i < vm->nr_vcpus && !ret; i++) {
		uint64_t aff = 0;

		ret = vcpu_affinity(&vm->vcpus[i], &aff);
		if (!ret)
			plan_v3_cpu(p, aff, ICC_CTLR_PRIBITS(icc_ctlr), vm->arch->its_fd >= 0);
	}
	return ret;
}

/* GICv2: banked distributor registers and the CPU interface take the vCPU's index. */
static void plan_v2(struct vm *vm, struct gic_plan *p)
{
	const uint32_t dist = KVM_DEV_ARM_VGIC_GRP_DIST_REGS;
	struct gic_block *b = plan_block(p, dist);

	/* GICD_IIDR first: writing it back lets KVM take the saved interrupt groups. */
	plan_reg(p, b, GICD_IIDR, 4);
	plan_spis(p, b, GICD_IGROUPR, 1);
	plan_spis(p, b, GICD_ICFGR, 2);
	plan_spis(p, b, GICD_IPRIORITYR, 8);
	plan_spis(p, b, GICD_ITARGETSR, 8);
	for (uint64_t c = 0; c < vm->nr_vcpus; c++) {
		b = plan_block(p, dist);
		plan_reg(p, b, c << 32 | GICD_IGROUPR, 4);
		plan_reg(p, b, c << 32 | (GICD_ICFGR + 4), 4);
		for (unsigned w = 0; w < NR_PRIVATE / 4; w++)
			plan_reg(p, b, c << 32 | (GICD_IPRIORITYR + 4 * w), 4);
	}
	b = plan_block(p, dist);
	plan_spis(p, b, GICD_ISENABLER, 1);
	plan_spis(p, b, GICD_ISPENDR, 1);
	plan_spis(p, b, GICD_ISACTIVER, 1);
	for (uint64_t c = 0; c < vm->nr_vcpus; c++) {
		b = plan_block(p, dist);
		plan_reg(p, b, c << 32 | GICD_ISENABLER, 4);
		plan_reg(p, b, c << 32 | GICD_ISPENDR, 4);
		plan_reg(p, b, c << 32 | GICD_ISACTIVER, 4);
		for (unsigned w = 0; w < 4; w++)
			plan_reg(p, b, c << 32 | (GICD_SPENDSGIR + 4 * w), 4);
	}
	plan_reg(p, plan_block(p, dist), GICD_CTLR, 4);
	for (uint64_t c = 0; c < vm->nr_vcpus; c++) {
		b = plan_block(p, KVM_DEV_ARM_VGIC_GRP_CPU_REGS);
		plan_reg(p, b, c << 32 | GICC_CTLR, 4);
		plan_reg(p, b, c << 32 | GICC_PMR, 4);
		plan_reg(p, b, c << 32 | GICC_BPR, 4);
		plan_reg(p, b, c << 32 | GICC_ABPR, 4);
		for (unsigned n = 0; n < NR_APR; n++)
			plan_reg(p, b, c << 32 | (GICC_APR + 4 * n), 4);
	}
}

/* The registers of this machine's GIC, in restore order. Returns 0 or -errno with @err. */
static int plan_gic(struct vm *vm, struct gic_plan *p, char *err, size_t errlen)
{
	uint32_t typer = 0;
	int ret = gic_attr(vm->arch->gic_fd, false, KVM_DEV_ARM_VGIC_GRP_DIST_REGS, GICD_TYPER,
	                   &typer);

	*p = (struct gic_plan){0};
	if (ret) {
		snprintf(err, errlen, "reading GICD_TYPER: %s", strerror(-ret));
		return ret;
	}
	p->nr_irqs = ((typer & 0x1f) + 1) * 32;
	if (vm->arch->gic == ARM64_GIC_V3)
		ret = plan_v3(vm, p);
	else
		plan_v2(vm, p);
	if (ret)
		snprintf(err, errlen, "reading a vCPU's affinity or ICC_CTLR_EL1: %s",
		         strerror(-ret));
	else if (p->failed)
		ret = -ENOMEM;
	if (ret)
		plan_free(p);
	return ret;
}

static const char *group_name(uint32_t group)
{
	switch (group) {
	case KVM_DEV_ARM_VGIC_GRP_DIST_REGS:
		return "distributor register";
	case KVM_DEV_ARM_VGIC_GRP_REDIST_REGS:
		return "redistributor register";
	case KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS:
		return "ICC system register";
	case KVM_DEV_ARM_VGIC_GRP_CPU_REGS:
		return "CPU interface register";
	default:
		return "line level word";
	}
}

/* Gets or sets every register of @p, in order. */
static int access_all(struct vm *vm, struct gic_plan *p, bool set, char *err, size_t errlen)
{
	for (unsigned i = 0; i < p->nr; i++) {
		struct gic_block *b = &p->blocks[i];

		for (unsigned j = 0; j < b->regs.count; j++) {
			struct arm64_reg *r = &b->regs.regs[j];
			int ret = gic_attr(vm->arch->gic_fd, set, b->group, r->id, r->value);

			if (ret) {
				snprintf(err, errlen, "%s the GIC's %s %#llx: %s",
				         set ? "setting" : "reading", group_name(b->group),
				         (unsigned long long)r->id, strerror(-ret));
				return ret;
			}
		}
	}
	return 0;
}

static int gic_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	struct gic_plan p;
	int ret = plan_gic(vm, &p, err, errlen);

	if (ret)
		return ret;
	ret = access_all(vm, &p, false, err, errlen);
	if (!ret) {
		snap_put_u32(w, vm->arch->gic);
		snap_put_u32(w, p.nr_irqs);
		snap_put_u32(w, vm->nr_vcpus);
		for (unsigned i = 0; i < p.nr; i++)
			arm64_reg_list_put(w, &p.blocks[i].regs);
	}
	plan_free(&p);
	return ret;
}

static int gic_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	uint32_t version = snap_get_u32(c), nr_irqs = snap_get_u32(c), cpus = snap_get_u32(c);
	struct gic_plan p;
	int ret = plan_gic(vm, &p, err, errlen);

	if (ret)
		return ret;
	ret = -EINVAL;
	if (version != vm->arch->gic)
		snprintf(err, errlen, "a GICv%u's state, this machine has a GICv%u", version,
		         vm->arch->gic);
	else if (nr_irqs != p.nr_irqs)
		snprintf(err, errlen, "a GIC of %u interrupts, this machine's has %u", nr_irqs,
		         p.nr_irqs);
	else if (cpus != vm->nr_vcpus)
		snprintf(err, errlen, "a GIC serving %u vCPUs, this machine has %u", cpus,
		         vm->nr_vcpus);
	else
		ret = 0;
	for (unsigned i = 0; i < p.nr && !ret; i++)
		ret = arm64_reg_list_get(c, &p.blocks[i].regs, group_name(p.blocks[i].group), err,
		                         errlen);
	if (!ret)
		ret = snap_cursor_finish(c, err, errlen);
	if (!ret)
		ret = access_all(vm, &p, true, err, errlen);
	plan_free(&p);
	return ret;
}

int arm64_gic_snapshot_add(struct vm *vm)
{
	return snapshot_add(&vm->snapshot, "GIC ", 0, gic_save, gic_load, vm);
}
