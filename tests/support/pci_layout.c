/* The PCI host layout shared by the PCI tests and fuzz targets (see pci_layout.h). */
#include "tests/support/pci_layout.h"

const struct pci_layout test_pci_layout = {
        .ecam_base = TEST_PCI_ECAM,
        .ecam_size = TEST_PCI_ECAM_SIZE,
        .config_port = 0xcf8,
        .mmio32_base = 0xc0000000ULL,
        .mmio32_size = 256 * MIB,
        .mmio64_base = 4 * GIB,
        .mmio64_size = 16 * GIB,
};
