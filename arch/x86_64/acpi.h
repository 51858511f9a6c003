/*
 * The ACPI tables of the x86_64 machine (ACPI 6.5): RSDP, XSDT, a hardware-reduced FADT with
 * sleep control/status and reset registers, MADT, MCFG and a DSDT describing COM1, the
 * virtio-mmio devices and the PCI root bridge. Linux finds the RSDP by scanning
 * [X86_ACPI_START, X86_ACPI_END), where everything is written.
 */
#ifndef VMM_ARCH_X86_64_ACPI_H
#define VMM_ARCH_X86_64_ACPI_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/memory.h"
#include "vmm/util.h"

/* \_S5's SLP_TYP: what the sleep control register treats as soft-off. */
#define ACPI_SLP_TYP_S5 5

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
	unsigned nr_cpus; /* APIC IDs and processor UIDs 0 .. nr_cpus - 1 */
	const struct acpi_virtio_mmio *virtio_mmio;
	unsigned nr_virtio_mmio;
	bool pci; /* a host bridge: MCFG and \_SB.PCI0 */
	uint64_t pci_ecam_base, pci_ecam_size; /* buses 0 .. (size >> 20) - 1 */
	uint64_t pci_mmio32_base, pci_mmio32_size;
	uint64_t pci_mmio64_base, pci_mmio64_size; /* size 0: no 64-bit window */
	const struct acpi_pci_slot *pci_slots;
	unsigned nr_pci_slots;
};

/*
 * Writes the tables into @mem (which must hold [X86_ACPI_START, X86_ACPI_END)). Returns 0 and
 * the RSDP's address in *@rsdp, -ENOSPC when they do not fit, -EINVAL for a bad config.
 */
int acpi_build(const struct guest_memory *mem, const struct acpi_config *cfg,
               uint64_t *rsdp) MUST_CHECK;

#endif
