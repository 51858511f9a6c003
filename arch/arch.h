/*
 * The arch interface: what vmm/ asks of the one architecture back-end compiled in. Each arch
 * provides its memory map constants and these functions; vmm/ and devices/ stay arch-neutral.
 */
#ifndef VMM_ARCH_ARCH_H
#define VMM_ARCH_ARCH_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "vmm/memory.h"

#if defined(__x86_64__)
#include "arch/x86_64/layout.h"
#define ARCH_NAME    "x86_64"
#define ARCH_MIN_RAM X86_MIN_RAM
#define ARCH_MAX_RAM (1024 * GIB)
/* Where virtio-mmio windows go, and the interrupt lines devices get, in order. */
#define ARCH_VIRTIO_MMIO_BASE   X86_VIRTIO_MMIO_BASE
#define ARCH_VIRTIO_MMIO_STRIDE X86_VIRTIO_MMIO_STRIDE
#define ARCH_VIRTIO_MMIO_MAX    X86_VIRTIO_MMIO_MAX
#define ARCH_DEVICE_GSIS        X86_DEVICE_GSIS
/* KVM_IRQ_LINE's number for a GSI: the GSI itself (IOAPIC pin). */
#define ARCH_KVM_IRQ_LINE(gsi) (gsi)
/* What open_kvm() checks beyond the common capabilities: {cap, "name"} entries. */
#define ARCH_REQUIRED_CAPS                                                                         \
	{KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"}, {KVM_CAP_PIT2, "KVM_CAP_PIT2"},            \
	{                                                                                          \
		KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"                                             \
	}
#define ARCH_NO_KVM_HINT                                                                           \
	"load the kvm module (modprobe kvm_intel or kvm_amd) and enable virtualization in the "    \
	"firmware"
/* What --help says this vmm boots, and on what machine. */
#define ARCH_HELP_INTRO                                                                            \
	"Boot a Linux kernel (bzImage, ELF vmlinux with a PVH note, or plain ELF64) under KVM\n"   \
	"on a machine with ACPI, a 16550A serial console on stdin/stdout and virtio devices\n"     \
	"(disks, network, entropy, optionally the console) on PCI or virtio-mmio.\n"
/* A PCI host bridge for virtio (the default transport), and the x86 I/O ports of the debug
 * exit (0xf4) and the scratch test device. */
#define ARCH_HAS_PCI         true
#define ARCH_DEFAULT_PCI     true /* virtio's default transport */
#define ARCH_HAS_TEST_DEVICE true
#define ARCH_HAS_GIC         false
/*
 * Kernel parameters vmm adds for this machine (each unless the user set it): its PCI config
 * is ECAM only, so the early quirk scan through ports 0xCF8/0xCFC finds nothing and costs 64
 * exits; it has one UART (COM1), and probing the other three legacy ports costs 18.
 */
#define ARCH_DEFAULT_ARGS " pci=noearly 8250.nr_uarts=1"
/* What a snapshot reads from KVM (arch/x86_64/snapshot.c), for the event loop's filter. */
#define ARCH_SNAPSHOT_IOCTLS                                                                       \
	KVM_CHECK_EXTENSION, KVM_GET_MSR_INDEX_LIST, KVM_GET_MP_STATE, KVM_GET_REGS,               \
	        KVM_GET_SREGS, KVM_GET_XSAVE, KVM_GET_XSAVE2, KVM_GET_XCRS, KVM_GET_LAPIC,         \
	        KVM_GET_VCPU_EVENTS, KVM_GET_DEBUGREGS, KVM_GET_MSRS, KVM_GET_CLOCK,               \
	        KVM_GET_IRQCHIP, KVM_GET_PIT2

#elif defined(__aarch64__)
#include "arch/aarch64/layout.h"
#define ARCH_NAME               "aarch64"
#define ARCH_MIN_RAM            ARM64_MIN_RAM
#define ARCH_MAX_RAM            ARM64_MAX_RAM
#define ARCH_VIRTIO_MMIO_BASE   ARM64_VIRTIO_MMIO_BASE
#define ARCH_VIRTIO_MMIO_STRIDE ARM64_VIRTIO_MMIO_STRIDE
#define ARCH_VIRTIO_MMIO_MAX    ARM64_VIRTIO_MMIO_MAX
#define ARCH_DEVICE_GSIS        ARM64_DEVICE_GSIS
/* KVM_IRQ_LINE's number for a GSI: GSI N is shared peripheral interrupt N, GIC INTID N + 32. */
#define ARCH_KVM_IRQ_LINE(gsi)  ((KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | ((gsi) + 32))
#define ARCH_REQUIRED_CAPS                                                                         \
	{KVM_CAP_ARM_PSCI_0_2, "KVM_CAP_ARM_PSCI_0_2"}, {KVM_CAP_ONE_REG, "KVM_CAP_ONE_REG"},      \
	{                                                                                          \
		KVM_CAP_DEVICE_CTRL, "KVM_CAP_DEVICE_CTRL"                                         \
	}
#define ARCH_NO_KVM_HINT "this kernel has no KVM: boot it at EL2 (hypervisor mode) with CONFIG_KVM"
#define ARCH_HELP_INTRO                                                                            \
	"Boot an arm64 Linux kernel (Image), or a raw payload, under KVM on a machine described\n" \
	"by a device tree,\n"                                                                      \
	"with a 16550A UART console (on MMIO) on stdin/stdout and virtio devices (disks,\n"        \
	"network, entropy, optionally the console) on virtio-mmio or PCI.\n"
/*
 * virtio-mmio by default, PCI (a generic ECAM host bridge) with --transport pci; no I/O ports
 * for the debug exit or the test device.
 */
#define ARCH_HAS_PCI         true
#define ARCH_DEFAULT_PCI     false
#define ARCH_HAS_TEST_DEVICE false
#define ARCH_HAS_GIC         true /* --irqchip picks its version */
#define ARCH_DEFAULT_ARGS    ""
/*
 * What a snapshot reads from KVM (arch/aarch64/snapshot.c, gic_snapshot.c), and the one write:
 * KVM_SET_DEVICE_ATTR has the GIC and its ITS save the LPIs' state into guest RAM
 * (its_snapshot.c).
 */
#define ARCH_SNAPSHOT_IOCTLS                                                                       \
	KVM_CHECK_EXTENSION, KVM_GET_REG_LIST, KVM_GET_ONE_REG, KVM_GET_MP_STATE,                  \
	        KVM_GET_VCPU_EVENTS, KVM_GET_DEVICE_ATTR, KVM_SET_DEVICE_ATTR

#else
#error "vmm has no back-end for this architecture"
#endif

struct vm;
struct vcpu;

/* Lays out and maps guest RAM of @ram_size bytes in @mem. Returns 0 or -errno. */
int arch_memory_init(struct guest_memory *mem, uint64_t ram_size) MUST_CHECK;

/*
 * Creates the arch's machine on a VM whose fds, memory and event loop exist: interrupt
 * controller, timers, platform devices on vm->pio/vm->mmio. Prints one error line and returns
 * -errno on failure.
 */
int arch_vm_init(struct vm *vm) MUST_CHECK;

/*
 * Once the vCPUs and vm->devices exist: writes the firmware tables that describe them, loads the
 * kernel named in the config and sets the boot vCPU's entry registers. Prints one error line and
 * returns -errno on failure.
 */
int arch_vm_load(struct vm *vm) MUST_CHECK;
void arch_vm_destroy(struct vm *vm);

/*
 * True when vmm itself runs in a virtual machine (x86: CPUID's hypervisor bit), so its guest is
 * nested and each of the guest's exits is an exit of vmm's host to its hypervisor too; false
 * where the arch has no such flag (arm64).
 */
bool arch_host_is_virtual(void);

/* The PCI host bridge's place in the memory map; false where the VM has no PCI. */
bool arch_pci_layout(const struct vm *vm, struct pci_layout *out);
/* How the VM's interrupt controller takes MSIs (see struct msi_translation). */
struct msi_translation;
void arch_msi_translation(const struct vm *vm, struct msi_translation *out);

/*
 * Sets up a created vCPU (x86: CPUID, MSRs, FPU, local APIC; arm64: KVM_ARM_VCPU_INIT). vCPUs are
 * created and set up in id order after arch_vm_init() and before the devices; entry registers
 * come later, from arch_vm_load().
 */
int arch_vcpu_init(struct vcpu *vcpu) MUST_CHECK;

/*
 * Writes where @vcpu stopped (x86: RIP, RSP, CR0/2/3/4, EFER; arm64: PC, PSTATE) into @buf for
 * a crash message; an empty string when the registers cannot be read.
 */
void arch_vcpu_describe(struct vcpu *vcpu, char *buf, size_t len);

/* Feeds host console input to the arch's console device; returns bytes accepted. */
size_t arch_console_input(struct vm *vm, const uint8_t *buf, size_t len);

#endif
