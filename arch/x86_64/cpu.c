/* vCPU set-up: CPUID topology, MSRs, FPU, local APIC wiring and the entry registers. */
#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/arch.h"
#include "arch/x86_64/machine.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define CPUID_MAX_ENTRIES 256

#define CR0_PE   (1u << 0)
#define CR0_ET   (1u << 4)
#define CR0_PG   (1u << 31)
#define CR4_PAE  (1u << 5)
#define EFER_LME (1u << 8)
#define EFER_LMA (1u << 10)

#define MSR_IA32_TSC            0x10
#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MSR_MTRR_DEF_TYPE       0x2ff
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MISC_ENABLE_FAST_STRING 1
#define MTRR_ENABLE_WRITEBACK   0x806 /* MTRRs enabled, default type write-back */

#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID_1_ECX_HYPERVISOR   (1u << 31)

#define APIC_LVT0        0x350
#define APIC_LVT1        0x360
#define APIC_MODE_NMI    0x4
#define APIC_MODE_EXTINT 0x7

bool arch_host_is_virtual(void)
{
	unsigned eax, ebx, ecx, edx;

	return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & CPUID_1_ECX_HYPERVISOR);
}

int x86_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *cpuid =
	        calloc(1, sizeof(*cpuid) + CPUID_MAX_ENTRIES * sizeof(cpuid->entries[0]));

	if (!cpuid)
		return -ENOMEM;
	cpuid->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
		int err = -errno;
		free(cpuid);
		return err;
	}
	/* KVM emulates the TSC-deadline timer in its local APIC but does not list it here. */
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0) {
		for (unsigned i = 0; i < cpuid->nent; i++) {
			if (cpuid->entries[i].function == 1)
				cpuid->entries[i].ecx |= CPUID_1_ECX_TSC_DEADLINE;
		}
	}
	*out = cpuid;
	return 0;
}

/* Bits needed to number @count items (0 for 1). */
static unsigned id_bits(unsigned count)
{
	unsigned bits = 0;

	while ((1u << bits) < count)
		bits++;
	return bits;
}

/*
 * One package with one core per vCPU, no SMT: leaf 1 (APIC ID, logical count), leaf 4 (cores
 * per package), leaves 0xB/0x1F (x2APIC topology), AMD 0x80000008 (core count).
 */
static void set_topology(struct kvm_cpuid_entry2 *e, unsigned apic_id, unsigned nr_cpus)
{
	switch (e->function) {
	case 1:
		e->ebx = (e->ebx & 0x0000ffff) | (nr_cpus << 16) | (apic_id << 24);
		e->ecx |= 1u << 31; /* running under a hypervisor */
		if (nr_cpus > 1)
			e->edx |= 1u << 28; /* HTT: the logical count field is valid */
		break;
	case 4:
		e->eax = (e->eax & 0x3fff) | ((nr_cpus - 1) << 26);
		if (((e->eax >> 5) & 7) == 3) /* the L3 cache is shared by the package */
			e->eax |= (nr_cpus - 1) << 14;
		break;
	case 0xb:
	case 0x1f:
		e->edx = apic_id;
		if (e->index == 0) {
			e->eax = 0;
			e->ebx = 1;
			e->ecx = (1u << 8) | 0; /* SMT level */
		} else if (e->index == 1) {
			e->eax = id_bits(nr_cpus);
			e->ebx = nr_cpus;
			e->ecx = (2u << 8) | 1; /* core level */
		} else {
			e->eax = e->ebx = 0;
			e->ecx = e->index;
		}
		break;
	case 0x80000008:
		e->ecx = (e->ecx & ~0xffu) | (nr_cpus - 1);
		break;
	default:
		break;
	}
}

static int setup_cpuid(struct vcpu *vcpu)
{
	const struct kvm_cpuid2 *tmpl = vcpu->vm->arch->supported_cpuid;
	size_t size = sizeof(*tmpl) + tmpl->nent * sizeof(tmpl->entries[0]);
	struct kvm_cpuid2 *cpuid = malloc(size);
	int ret = 0;

	if (!cpuid)
		return -ENOMEM;
	memcpy(cpuid, tmpl, size);
	for (unsigned i = 0; i < cpuid->nent; i++)
		set_topology(&cpuid->entries[i], vcpu->id, vcpu->vm->config->cpus);
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, cpuid) < 0)
		ret = -errno;
	free(cpuid);
	return ret;
}

static int setup_msrs(struct vcpu *vcpu)
{
	static const struct kvm_msr_entry defaults[] = {
	        {.index = MSR_IA32_SYSENTER_CS},
	        {.index = MSR_IA32_SYSENTER_ESP},
	        {.index = MSR_IA32_SYSENTER_EIP},
	        {.index = MSR_STAR},
	        {.index = MSR_LSTAR},
	        {.index = MSR_CSTAR},
	        {.index = MSR_SYSCALL_MASK},
	        {.index = MSR_KERNEL_GS_BASE},
	        {.index = MSR_IA32_TSC},
	        {.index = MSR_IA32_MISC_ENABLE, .data = MISC_ENABLE_FAST_STRING},
	        {.index = MSR_MTRR_DEF_TYPE, .data = MTRR_ENABLE_WRITEBACK},
	};
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entries[ARRAY_SIZE(defaults)];
	} msrs = {.hdr.nmsrs = ARRAY_SIZE(defaults)};
	int set;

	memcpy(msrs.entries, defaults, sizeof(defaults));
	set = ioctl(vcpu->fd, KVM_SET_MSRS, &msrs);
	if (set < 0)
		return -errno;
	if ((unsigned)set < ARRAY_SIZE(defaults))
		log_debug("vCPU %u: KVM refused MSR 0x%x", vcpu->id, defaults[set].index);
	return 0;
}

static int setup_fpu(struct vcpu *vcpu)
{
	struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};

	return ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

/* Local APIC LINT0 as ExtINT (the PIC's virtual wire) and LINT1 as NMI, as firmware leaves them. */
static int setup_lapic(struct vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	uint32_t *lvt0 = (uint32_t *)&lapic.regs[APIC_LVT0];
	uint32_t *lvt1 = (uint32_t *)&lapic.regs[APIC_LVT1];

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	*lvt0 = (*lvt0 & ~0x700u) | (APIC_MODE_EXTINT << 8);
	*lvt1 = (*lvt1 & ~0x700u) | (APIC_MODE_NMI << 8);
	return ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0 ? -errno : 0;
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64)
{
	return (struct kvm_segment){
	        .base = 0,
	        .limit = 0xffffffff,
	        .selector = selector,
	        .type = type,
	        .present = 1,
	        .s = 1,
	        .db = code64 ? 0 : 1,
	        .l = code64 ? 1 : 0,
	        .g = 1,
	};
}

int x86_set_entry_registers(struct vcpu *vcpu, const struct boot_info *boot)
{
	bool long_mode = boot->mode == X86_ENTRY_LONG64;
	struct kvm_regs regs = {.rflags = 2, .rip = boot->entry};
	struct kvm_sregs sregs;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.gdt.base = X86_GDT_ADDR;
	sregs.gdt.limit = 6 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cs = flat_segment(X86_GDT_CODE_SEL, 0xb, long_mode);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss =
	        flat_segment(X86_GDT_DATA_SEL, 0x3, false);
	sregs.tr = (struct kvm_segment){
	        .selector = X86_GDT_TSS_SEL, .limit = 0x67, .type = 0xb, .present = 1};
	sregs.cr0 = CR0_PE | CR0_ET;
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (long_mode) {
		sregs.cr3 = X86_PML4_ADDR;
		sregs.cr4 |= CR4_PAE;
		sregs.cr0 |= CR0_PG;
		sregs.efer |= EFER_LME | EFER_LMA;
		regs.rsi = boot->boot_params;
	} else {
		regs.rbx = boot->boot_params;
	}
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	return ioctl(vcpu->fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
}

static const struct {
	const char *name;
	int (*setup)(struct vcpu *vcpu);
} vcpu_setup_steps[] = {
        {"CPUID", setup_cpuid},
        {"MSRs", setup_msrs},
        {"FPU", setup_fpu},
        {"local APIC", setup_lapic},
        {"its snapshot part", x86_vcpu_snapshot_add},
};

int arch_vcpu_init(struct vcpu *vcpu)
{
	for (unsigned i = 0; i < ARRAY_SIZE(vcpu_setup_steps); i++) {
		int ret = vcpu_setup_steps[i].setup(vcpu);
		if (ret) {
			log_error("vCPU %u: cannot set up %s: %s", vcpu->id,
			          vcpu_setup_steps[i].name, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

void arch_vcpu_describe(struct vcpu *vcpu, char *buf, size_t len)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(buf, len, "%s", "");
		return;
	}
	/* KVM on AMD resets the vCPU when it intercepts a shutdown: the state is gone. */
	if (regs.rip == 0xfff0 && sregs.cs.base == 0xffff0000 && !(sregs.cr0 & 1)) {
		snprintf(buf, len, "%s", "an unknown place (KVM reset the vCPU's registers)");
		return;
	}
	snprintf(buf, len,
	         "rip=0x%llx rsp=0x%llx cr0=0x%llx cr2=0x%llx cr3=0x%llx cr4=0x%llx efer=0x%llx",
	         (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
	         (unsigned long long)sregs.cr0, (unsigned long long)sregs.cr2,
	         (unsigned long long)sregs.cr3, (unsigned long long)sregs.cr4,
	         (unsigned long long)sregs.efer);
}
