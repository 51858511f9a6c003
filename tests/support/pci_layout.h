/*
 * The PCI host layout the PCI tests and fuzz targets share: ECAM for bus 0 at TEST_PCI_ECAM,
 * the 0xCF8/0xCFC mechanism, a 256 MiB 32-bit BAR window at 3 GiB and a 16 GiB 64-bit one at
 * 4 GiB. Constant data only (no Check), so the fuzz targets link it too.
 */
#ifndef VMM_TESTS_SUPPORT_PCI_LAYOUT_H
#define VMM_TESTS_SUPPORT_PCI_LAYOUT_H

#include <stdbool.h>
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

/*
 * The @size bytes (1, 2, 4 or 8) at offset @offset of @h's ECAM as a guest would read them
 * from the host's memory copy (pci_host_map_ecam), in @value; false when such a read would
 * exit to the host instead (no copy or no longer mapped, a function other than 0, or the
 * access crosses the function's page). Single-threaded tests only.
 */
bool test_pci_mirror_read(const struct pci_host *h, uint64_t offset, unsigned size,
                          uint64_t *value);

#endif
