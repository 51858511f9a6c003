/*
 * The arch interface: what vmm/ asks of the one architecture back-end compiled in. Each arch
 * provides its memory map constants and these functions; vmm/ and devices/ stay arch-neutral.
 */
#ifndef VMM_ARCH_ARCH_H
#define VMM_ARCH_ARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "vmm/memory.h"

#if defined(__x86_64__)
#include "arch/x86_64/layout.h"
#define ARCH_MIN_RAM X86_MIN_RAM
#define ARCH_MAX_RAM (1024 * GIB)
/* Where virtio-mmio windows go, and the interrupt lines devices get, in order. */
#define ARCH_VIRTIO_MMIO_BASE   X86_VIRTIO_MMIO_BASE
#define ARCH_VIRTIO_MMIO_STRIDE X86_VIRTIO_MMIO_STRIDE
#define ARCH_VIRTIO_MMIO_MAX    X86_VIRTIO_MMIO_MAX
#define ARCH_DEVICE_GSIS        X86_DEVICE_GSIS
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
 * Once vm->devices exist: writes the firmware tables that describe them and loads the kernel
 * named in the config. Prints one error line and returns -errno on failure.
 */
int arch_vm_load(struct vm *vm) MUST_CHECK;
void arch_vm_destroy(struct vm *vm);

/* The PCI host bridge's place in the memory map; false where the arch has no PCI. */
bool arch_pci_layout(const struct vm *vm, struct pci_layout *out);

/* Sets up a created vCPU (CPUID, MSRs, FPU, and entry registers on the boot vCPU). */
int arch_vcpu_init(struct vcpu *vcpu) MUST_CHECK;

/* Handles a KVM exit reason vmm/vcpu.c does not; returns a VCPU_* action or -errno. */
int arch_handle_exit(struct vcpu *vcpu);

/* Feeds host console input to the arch's console device; returns bytes accepted. */
size_t arch_console_input(struct vm *vm, const uint8_t *buf, size_t len);

#endif
