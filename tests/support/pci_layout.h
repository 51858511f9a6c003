/*
 * The PCI host layout the PCI tests and fuzz targets share: ECAM for bus 0 at TEST_PCI_ECAM,
 * the 0xCF8/0xCFC mechanism, a 256 MiB 32-bit BAR window at 3 GiB and a 16 GiB 64-bit one at
 * 4 GiB. Constant data only (no Check), so the fuzz targets link it too.
 */
#ifndef VMM_TESTS_SUPPORT_PCI_LAYOUT_H
#define VMM_TESTS_SUPPORT_PCI_LAYOUT_H

#include <stdint.h>

#include "devices/pci/pci.h"
#include "vmm/util.h"

#define TEST_PCI_ECAM      0xe0000000ULL
#define TEST_PCI_ECAM_SIZE (1 * MIB)

extern const struct pci_layout test_pci_layout;

/* The guest address of the 4 KiB ECAM configuration space of bus 0, @slot, function 0. */
static inline uint64_t test_pci_config_addr(unsigned slot)
{
	return TEST_PCI_ECAM + ((uint64_t)slot << 15);
}

#endif
