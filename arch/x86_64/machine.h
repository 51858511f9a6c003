/* x86_64 machine state shared by machine.c (VM, devices, kernel) and cpu.c (vCPU set-up). */
#ifndef VMM_ARCH_X86_64_MACHINE_H
#define VMM_ARCH_X86_64_MACHINE_H

#include <linux/kvm.h>

#include "arch/x86_64/boot.h"
#include "devices/acpi_pm.h"
#include "devices/cmos.h"
#include "devices/i8042.h"
#include "devices/test_device.h"
#include "devices/uart_8250.h"

struct vm;
struct vcpu;

struct arch_vm {
	struct boot_info boot;
	struct kvm_cpuid2 *supported_cpuid; /* KVM_GET_SUPPORTED_CPUID, the per-vCPU template */
	struct uart_8250 com1;
	struct i8042 kbc;
	struct cmos cmos;
	struct debug_exit debug_exit;
	struct acpi_pm acpi_pm;
	struct test_device test_device;
	bool devices_initialized;
};

/* Writes the GDT and, for the 64-bit entry, the identity-mapping page tables. */
int x86_write_boot_tables(const struct guest_memory *mem, enum x86_entry_mode mode) MUST_CHECK;

/*
 * Entry state of the boot vCPU: long mode with paging for LONG64, flat 32-bit for PVH. The other
 * vCPUs wait for INIT/SIPI from the boot vCPU in the in-kernel local APIC.
 */
int x86_set_entry_registers(struct vcpu *vcpu, const struct boot_info *boot) MUST_CHECK;

/* Register the snapshot parts (arch/x86_64/snapshot.c): kvmclock, irqchip, PIT; one vCPU. */
int x86_vm_snapshot_add(struct vm *vm) MUST_CHECK;
int x86_vcpu_snapshot_add(struct vcpu *vcpu) MUST_CHECK;

/* Fetches KVM_GET_SUPPORTED_CPUID into a malloc'ed struct. Returns 0 or -errno. */
int x86_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out) MUST_CHECK;

#endif
