/*
 * aarch64 vCPU set-up: KVM_ARM_VCPU_INIT with KVM's preferred target and PSCI 0.2. Only vCPU 0
 * starts running; the others start powered off until the guest's PSCI CPU_ON, which KVM handles.
 * The boot vCPU enters the Image at EL1h, interrupts masked, X0 = the device tree (booting.rst).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/aarch64/machine.h"
#include "arch/arch.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define CORE_REG(field)                                                                            \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |                                     \
	 (offsetof(struct kvm_regs, field) / sizeof(uint32_t)))

/* PSTATE at entry: EL1 with SP_EL1, debug, SError, IRQ and FIQ masked. */
#define PSTATE_EL1H_MASKED 0x3c5ULL

static int set_reg(struct vcpu *vcpu, uint64_t id, uint64_t value)
{
	struct kvm_one_reg reg = {.id = id, .addr = (uintptr_t)&value};

	return ioctl(vcpu->fd, KVM_SET_ONE_REG, &reg) < 0 ? -errno : 0;
}

static int get_reg(struct vcpu *vcpu, uint64_t id, uint64_t *value)
{
	struct kvm_one_reg reg = {.id = id, .addr = (uintptr_t)value};

	return ioctl(vcpu->fd, KVM_GET_ONE_REG, &reg) < 0 ? -errno : 0;
}

int arm64_set_entry_registers(struct vcpu *vcpu, const struct arm64_boot_info *boot)
{
	int ret = set_reg(vcpu, CORE_REG(regs.pstate), PSTATE_EL1H_MASKED);

	if (!ret)
		ret = set_reg(vcpu, CORE_REG(regs.regs[0]), boot->dtb_addr);
	for (unsigned i = 1; i < 4 && !ret; i++)
		ret = set_reg(vcpu, CORE_REG(regs.regs[i]), 0);
	if (!ret)
		ret = set_reg(vcpu, CORE_REG(regs.pc), boot->entry);
	return ret;
}

static int pmu_attr(struct vcpu *vcpu, uint64_t attr, const void *value)
{
	struct kvm_device_attr a = {
	        .group = KVM_ARM_VCPU_PMU_V3_CTRL, .attr = attr, .addr = (uintptr_t)value};

	return ioctl(vcpu->fd, KVM_SET_DEVICE_ATTR, &a) < 0 ? -errno : 0;
}

/* --pmu, before the GIC is initialised: the PMU's overflow interrupt (the device tree's). */
static int pmu_set_irq(struct vcpu *vcpu)
{
	const int ppi = ARM64_PMU_PPI + 16; /* INTIDs 16-31 are the PPIs */
	int ret = pmu_attr(vcpu, KVM_ARM_VCPU_PMU_V3_IRQ, &ppi);

	if (ret)
		log_error("vCPU %u: --pmu: cannot give the PMU interrupt %d: %s", vcpu->id, ppi,
		          strerror(-ret));
	return ret;
}

/* --pmu, after the GIC is initialised (KVM requires that order). */
static int pmu_init(struct vcpu *vcpu)
{
	int ret = pmu_attr(vcpu, KVM_ARM_VCPU_PMU_V3_INIT, NULL);

	if (ret)
		log_error("vCPU %u: --pmu: KVM_ARM_VCPU_PMU_V3_INIT: %s", vcpu->id, strerror(-ret));
	return ret;
}

int arch_vcpu_init(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	struct kvm_vcpu_init init = vm->arch->vcpu_template;
	int ret = 0;

	init.features[0] |= 1U << KVM_ARM_VCPU_PSCI_0_2;
	if (vcpu->id != 0)
		init.features[0] |= 1U << KVM_ARM_VCPU_POWER_OFF;
	if (vm->config->pmu)
		init.features[0] |= 1U << KVM_ARM_VCPU_PMU_V3;
	if (ioctl(vcpu->fd, KVM_ARM_VCPU_INIT, &init) < 0) {
		ret = -errno;
		log_error("vCPU %u: KVM_ARM_VCPU_INIT: %s", vcpu->id, strerror(errno));
		return ret;
	}
	ret = vm->config->pmu ? pmu_set_irq(vcpu) : 0;
	if (ret)
		return ret;
	ret = arm64_vcpu_snapshot_add(vcpu);
	if (ret) {
		log_error("vCPU %u: cannot register its snapshot part: %s", vcpu->id,
		          strerror(-ret));
		return ret;
	}
	/* The GIC is initialised once all its vCPUs exist (before irqfds): after the last one. */
	if (vcpu->id + 1 != vm->config->cpus)
		return 0;
	ret = arm64_gic_finalize(vm->arch);
	if (ret) {
		log_error("cannot initialise the GIC: %s", strerror(-ret));
		return ret;
	}
	for (unsigned i = 0; i < vm->config->cpus && vm->config->pmu && !ret; i++)
		ret = pmu_init(&vm->vcpus[i]);
	if (ret)
		return ret;
	ret = arm64_vm_snapshot_add(vm);
	if (ret)
		log_error("cannot register the GIC's and UART's snapshot parts: %s",
		          strerror(-ret));
	return ret;
}

void arch_vcpu_describe(struct vcpu *vcpu, char *buf, size_t len)
{
	uint64_t pc, pstate;

	if (get_reg(vcpu, CORE_REG(regs.pc), &pc) || get_reg(vcpu, CORE_REG(regs.pstate), &pstate))
		snprintf(buf, len, "%s", "");
	else
		snprintf(buf, len, "pc=0x%llx pstate=0x%llx", (unsigned long long)pc,
		         (unsigned long long)pstate);
}
