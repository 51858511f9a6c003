/*
 * libFuzzer target: the PCI host (devices/pci/pci.c) and MSI-X (devices/pci/msix.c), built
 * twice. The device: a 32-bit BAR 0 of plain memory, a 64-bit prefetchable BAR 2 holding the
 * MSI-X table (at 0x2000) and PBA (at 0x3000) of 64 vectors, a PM-like capability with a write
 * mask, then the MSI-X capability; messages go to a counting hook (no VM).
 *  - fuzz_pci: fz_run_bus windows 0xCF8-0xCFF, the whole ECAM bus (every slot and function) and
 *    both BARs where the host placed them; afterwards the host's read-only ECAM copy
 *    (pci_host_map_ecam) must read as the config space does;
 *  - fuzz_msix (FUZZ_MSIX): the table and PBA, the device's ECAM page, and a hook (one byte:
 *    the vector, any value) that raises a vector as the device would.
 * The BAR handlers abort on an access the bus should not have let through.
 */
#include <stdlib.h>
#include <string.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "tests/fuzz/fuzz.h"
#include "tests/support/pci_layout.h"
#include "vmm/log.h"
#include "vmm/util.h"

#define BAR0_SIZE  0x1000
#define BAR2_SIZE  0x4000
#define MSIX_TABLE 0x2000
#define MSIX_PBA   0x3000

struct tdev {
	struct pci_device pci;
	struct msix msix;
	uint8_t bar0[BAR0_SIZE];
};

static struct bus pio, mmio;
static struct pci_host host;
static struct tdev dev;
static unsigned delivered;

static void in_bar(uint64_t offset, unsigned size, uint64_t bar_size)
{
	if (offset > bar_size || size > bar_size - offset)
		abort();
}

static int bar0_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct tdev *d = opaque;

	in_bar(offset, size, BAR0_SIZE);
	memcpy(data, d->bar0 + offset, size);
	return 0;
}

static int bar0_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct tdev *d = opaque;

	in_bar(offset, size, BAR0_SIZE);
	memcpy(d->bar0 + offset, data, size);
	return 0;
}

static int bar2_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct tdev *d = opaque;

	in_bar(offset, size, BAR2_SIZE);
	if (offset >= MSIX_TABLE && offset < MSIX_PBA)
		msix_table_read(&d->msix, offset - MSIX_TABLE, data, size);
	else if (offset >= MSIX_PBA)
		msix_pba_read(&d->msix, offset - MSIX_PBA, data, size);
	else
		memset(data, 0, size);
	return 0;
}

static int bar2_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct tdev *d = opaque;

	in_bar(offset, size, BAR2_SIZE);
	if (offset >= MSIX_TABLE && offset < MSIX_PBA)
		msix_table_write(&d->msix, offset - MSIX_TABLE, data, size);
	return 0;
}

static const struct bus_ops bar0_ops = {.read = bar0_read, .write = bar0_write};
static const struct bus_ops bar2_ops = {.read = bar2_read, .write = bar2_write};

static void config_written(struct pci_device *d, unsigned offset, unsigned size)
{
	msix_config_written(&container_of(d, struct tdev, pci)->msix, offset, size);
}

static const struct pci_device_ops tdev_ops = {.config_written = config_written};

static void deliver(void *opaque, uint64_t address, uint32_t data)
{
	(void)opaque;
	(void)address;
	(void)data;
	delivered++;
}

static void hook(void *opaque, struct fz *f)
{
	(void)opaque;
	msix_notify(&dev.msix, fz_u8(f)); /* guest-chosen vector numbers are allowed */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return 0;
}

static void setup(void)
{
	static const uint8_t pm_cap[8] = {0x01, 0xee, 0x03, 0x7e, 0x00, 0x00, 0x5a, 0xa5};
	static const uint8_t pm_wmask[8] = {0xff, 0xff, 0, 0, 0xff, 0x03, 0, 0};

	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	fz_must(pci_host_init(&host, &test_pci_layout, &pio, &mmio), "pci_host_init");
	memset(&dev, 0, sizeof(dev));
	pci_device_init(&dev.pci, 0x1234, 0x5678, 0x0c0330, 0x42, 0xabcd, 0x0102, &tdev_ops, NULL);
	pci_device_set_intx(&dev.pci, 1, 10);
	fz_must(pci_device_add_bar(&dev.pci, 0, BAR0_SIZE, 0, &bar0_ops, &dev), "bar 0");
	fz_must(pci_device_add_bar(&dev.pci, 2, BAR2_SIZE, PCI_BAR_64BIT | PCI_BAR_PREFETCH,
	                           &bar2_ops, &dev),
	        "bar 2");
	fz_must(pci_device_add_capability(&dev.pci, pm_cap, sizeof(pm_cap), pm_wmask) < 0,
	        "capability");
	fz_must(msix_init(&dev.msix, &dev.pci, MSIX_MAX_VECTORS, 2, MSIX_TABLE, MSIX_PBA, NULL),
	        "msix_init");
	dev.msix.test_deliver = deliver;
	fz_must(pci_host_map_ecam(&host, -1, 0), "pci_host_map_ecam");
	fz_must(pci_host_add_device(&host, &dev.pci), "pci_host_add_device");
}

#ifndef FUZZ_MSIX
/* What a guest reads from the copy, function 0 of every slot, is what the host would answer. */
static void check_mirror(void)
{
	for (unsigned slot = 0; slot < PCI_SLOTS; slot++) {
		for (unsigned reg = 0; reg < PCI_ECAM_FN_SIZE; reg += 4) {
			uint64_t copy;
			uint32_t live;

			pci_host_config_read(&host, slot, reg, &live, 4);
			if (!test_pci_mirror_read(&host,
			                          test_pci_config_addr(slot) - TEST_PCI_ECAM + reg,
			                          4, &copy) ||
			    copy != live)
				abort();
		}
	}
}
#endif

static uint64_t bar_addr(unsigned bar)
{
	uint64_t lo = pci_config_read32(&dev.pci, PCI_BAR0 + 4 * bar) & ~0xfull;

	if (bar == 2)
		lo |= (uint64_t)pci_config_read32(&dev.pci, PCI_BAR0 + 4 * bar + 4) << 32;
	return lo;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);

	setup();
	{
		uint64_t ecam_dev = test_pci_config_addr(dev.pci.slot);
#ifdef FUZZ_MSIX
		const struct fz_window win[] = {
		        {&mmio, bar_addr(2) + MSIX_TABLE, 0x1010, 8},
		        {&mmio, ecam_dev, 256, 8},
		};
#else
		const struct fz_window win[] = {
		        {&pio, 0xcf8, 8, 4},
		        {&mmio, TEST_PCI_ECAM, TEST_PCI_ECAM_SIZE, 8},
		        {&mmio, ecam_dev, 4096, 8},
		        {&mmio, bar_addr(0), BAR0_SIZE, 8},
		        {&mmio, bar_addr(2), BAR2_SIZE, 8},
		};
#endif
		const struct fz_bus b = {.win = win, .nr_win = ARRAY_SIZE(win), .hook = hook};

		fz_run_bus(&b, &f);
	}
#ifndef FUZZ_MSIX
	check_mirror();
#endif
	msix_destroy(&dev.msix);
	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
	return 0;
}
