/*
 * aarch64 machine state shared by machine.c (VM, GIC, UART, kernel), cpu.c (vCPU set-up) and
 * the snapshot parts (snapshot.c, gic_snapshot.c).
 */
#ifndef VMM_ARCH_AARCH64_MACHINE_H
#define VMM_ARCH_AARCH64_MACHINE_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "arch/aarch64/boot.h"
#include "arch/aarch64/fdt.h"
#include "devices/gicv2m.h"
#include "devices/uart_8250.h"

struct arch_vm {
	struct arm64_boot_info boot;
	struct kvm_vcpu_init vcpu_template; /* KVM_ARM_PREFERRED_TARGET */
	enum arm64_gic_version gic;
	enum arm64_msi_kind msi;
	int gic_fd;
	int its_fd;        /* msi ARM64_MSI_ITS */
	struct gicv2m v2m; /* msi ARM64_MSI_V2M */
	struct uart_8250 uart;
	bool uart_initialized;
};

/* Entry state of the boot vCPU: PC at the Image, X0 the device tree, EL1h, all masked. */
struct vcpu;
int arm64_set_entry_registers(struct vcpu *vcpu, const struct arm64_boot_info *boot) MUST_CHECK;

/*
 * Finishes the GIC, and its ITS, once every vCPU exists (KVM_DEV_ARM_VGIC_CTRL_INIT). Returns 0
 * or -errno.
 */
int arm64_gic_finalize(struct arch_vm *a) MUST_CHECK;

/*
 * Snapshot parts (snapshot.c, gic_snapshot.c): a vCPU's ("VCPU", its index), registered when
 * it is made; the machine's (the GIC, then the UART), registered once the GIC is initialised
 * after the last vCPU, so that they load after every vCPU. Return 0 or -ENOMEM.
 */
struct vm;
int arm64_vcpu_snapshot_add(struct vcpu *vcpu) MUST_CHECK;
int arm64_vm_snapshot_add(struct vm *vm) MUST_CHECK;
int arm64_gic_snapshot_add(struct vm *vm) MUST_CHECK;
int arm64_its_snapshot_add(struct vm *vm) MUST_CHECK; /* after the GIC's */

#endif
