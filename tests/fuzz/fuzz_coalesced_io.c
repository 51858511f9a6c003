/*
 * libFuzzer target: the coalesced I/O ring (vmm/coalesced_io.c) as KVM leaves it, replayed onto
 * a port bus holding the PCI host's 0xCF8-0xCFF and the CMOS at 0x70-0x71. The input is the
 * ring's two indices (le32 each, any value, so also out of the ring) and then its entries, raw
 * (struct kvm_coalesced_mmio: address, length, pio flag, 8 data bytes), as many as it holds.
 * After a flush from valid indices the ring is empty; from invalid ones nothing moved.
 */
#include <stdlib.h>
#include <string.h>

#include "devices/cmos.h"
#include "devices/pci/pci.h"
#include "tests/fuzz/fuzz.h"
#include "tests/support/pci_layout.h"
#include "vmm/coalesced_io.h"
#include "vmm/log.h"

#define RING_BYTES 4096

static struct bus pio, mmio;
static struct pci_host host;
static struct cmos cmos;
static struct coalesced_io c;
static union {
	struct kvm_coalesced_mmio_ring ring;
	uint8_t bytes[RING_BYTES];
} page;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	fz_must(pci_host_init(&host, &test_pci_layout, &pio, &mmio), "pci_host_init");
	cmos_init(&cmos);
	fz_must(bus_register(&pio, 0x70, 2, &cmos_bus_ops, &cmos, "cmos"), "bus");
	coalesced_io_init(&c, &pio);
	/* What coalesced_io_start takes from KVM's page. */
	c.ring = &page.ring;
	c.ring_entries =
	        (uint32_t)((RING_BYTES - sizeof(page.ring)) / sizeof(struct kvm_coalesced_mmio));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t first, last;
	bool valid;

	if (size < 8)
		return 0;
	memset(page.bytes, 0, sizeof(page.bytes));
	memcpy(&first, data, 4);
	memcpy(&last, data + 4, 4);
	memcpy(page.ring.coalesced_mmio, data + 8,
	       MIN(size - 8, (size_t)c.ring_entries * sizeof(struct kvm_coalesced_mmio)));
	page.ring.first = first;
	page.ring.last = last;
	valid = first < c.ring_entries && last < c.ring_entries;
	coalesced_io_flush(&c);
	if (valid ? page.ring.first != page.ring.last : page.ring.first != first)
		abort();
	return 0;
}
