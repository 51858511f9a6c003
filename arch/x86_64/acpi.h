/*
 * The ACPI tables of the x86_64 machine (ACPI 6.5): RSDP, XSDT, a hardware-reduced FADT with
 * sleep control/status and reset registers, MADT, MCFG and a DSDT describing COM1, the CMOS
 * RTC, the virtio-mmio devices (\_SB.V000, \_SB.V001, ...), the PCI root bridge \_SB.PCI0 and
 * \_S5. Linux finds the RSDP by scanning [X86_ACPI_START, X86_ACPI_END), where everything is
 * written, RSDP first.
 */
#ifndef VMM_ARCH_X86_64_ACPI_H
#define VMM_ARCH_X86_64_ACPI_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/memory.h"
#include "vmm/util.h"

/* \_S5's SLP_TYP: what the sleep control register treats as soft-off. */
#define ACPI_SLP_TYP_S5 5

/* A virtio-mmio window and its interrupt (edge-triggered, active-high). */
struct acpi_virtio_mmio {
	uint64_t base;
	uint32_t size;
	unsigned gsi;
};

/* INTA of a PCI slot routed to a GSI (a _PRT entry). */
struct acpi_pci_slot {
	unsigned slot;
	unsigned gsi;
};

struct acpi_config {
	unsigned nr_cpus; /* 1-255; APIC IDs and processor UIDs 0 .. nr_cpus - 1 */
	const struct acpi_virtio_mmio *virtio_mmio;
	unsigned nr_virtio_mmio;               /* at most 4096; windows below 4 GiB */
	bool pci;                              /* a host bridge: MCFG, \_SB.PCI0 and \_SB.MRES */
	uint64_t pci_ecam_base, pci_ecam_size; /* buses 0 .. (size >> 20) - 1; below 4 GiB */
	uint16_t pci_config_port; /* the 0xCF8 mechanism's ports, 0 when config is ECAM-only */
	uint64_t pci_mmio32_base, pci_mmio32_size;
	uint64_t pci_mmio64_base, pci_mmio64_size; /* size 0: no 64-bit window */
	const struct acpi_pci_slot *pci_slots;
	unsigned nr_pci_slots; /* at most 32, slots 0-31 */
};

/*
 * Writes the tables into @mem, which must hold [X86_ACPI_START, X86_ACPI_END); nothing outside
 * that range is touched, and nothing at all on failure. Returns 0 and the RSDP's address in
 * *@rsdp, -EINVAL for a config outside the limits above, -ENOSPC when the tables do not fit,
 * -ENOMEM, or -EFAULT when @mem lacks the range. Set-up time only; @cfg is host-provided.
 */
int acpi_build(const struct guest_memory *mem, const struct acpi_config *cfg,
               uint64_t *rsdp) MUST_CHECK;

#endif
