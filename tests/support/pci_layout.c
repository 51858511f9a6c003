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

bool test_pci_mirror_read(const struct pci_host *h, uint64_t offset, unsigned size, uint64_t *value)
{
	unsigned slot = (unsigned)(offset >> 15) & 0x1f, reg = offset & (PCI_ECAM_FN_SIZE - 1);
	uint64_t v = 0;

	if (!h->ecam_mirror || !h->ecam_mapped || offset >> 20 || (offset >> 12 & 7) ||
	    reg + size > PCI_ECAM_FN_SIZE)
		return false;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)h->ecam_mirror[(size_t)slot * PCI_ECAM_FN_SIZE + reg + i] << (8 * i);
	*value = v;
	return true;
}
