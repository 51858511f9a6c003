/*
 * libFuzzer target: the virtio-pci (modern) transport (devices/virtio/virtio_pci.c) with the
 * PCI host, MSI-X and the core behind it, and the fuzz device of fake_virtio.c: the input's
 * fz_run_bus operations reach the device's BAR (common config, ISR, device config, doorbells,
 * MSI-X table and PBA), its configuration space through ECAM and through 0xCF8/0xCFC (and so the
 * PCI configuration access capability), and 64 KiB of guest RAM. The BAR is where the host
 * placed it; the guest may move it (the window then sees nothing). The hook runs the event
 * loop's doorbell handler. No VM: vm_fd -1, so doorbells reach the bus (and then the loop) and
 * MSI-X messages and INTx go to counting hooks.
 */
#include <string.h>

#include "devices/pci/pci.h"
#include "devices/virtio/virtio_pci.h"
#include "tests/fuzz/fake_virtio.h"
#include "tests/fuzz/fuzz.h"
#include "tests/support/pci_layout.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define RAM (64 * KIB)

static struct guest_memory mem;
static struct event_loop loop;
static struct bus pio, mmio;
static struct pci_host host;
static struct fake_virtio fake;
static struct virtio_pci t;
static unsigned events;

static void on_intx(void *opaque, int level)
{
	(void)opaque;
	(void)level;
	events++;
}

static void on_msi(void *opaque, uint64_t address, uint32_t data)
{
	(void)opaque;
	(void)address;
	(void)data;
	events++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_virtio_setup(&mem, RAM, &loop);
	return 0;
}

/*
 * Hook: the event loop's turn. Doorbell writes that reached the transport on the bus are handed
 * to the loop; this runs the loop's handler for them, as its thread would.
 */
static void run_loop(void *opaque, struct fz *f)
{
	(void)opaque;
	(void)f;
	fz_serve_doorbell(&t.doorbell);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	uint64_t bar;

	fz_memory_clear(&mem);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	fz_must(pci_host_init(&host, &test_pci_layout, &pio, &mmio), "pci_host_init");
	fake_virtio_init(&fake, &mem);
	fz_must(virtio_pci_attach(&t, &fake.vdev, &host, -1, NULL, 11, &loop), "virtio_pci_attach");
	virtio_pci_set_test_interrupts(&t, on_intx, on_msi, NULL);
	bar = (pci_config_read32(&t.pci, PCI_BAR0) & ~0xfull) |
	      (uint64_t)pci_config_read32(&t.pci, PCI_BAR0 + 4) << 32;
	{
		/* The BAR, the device's ECAM page (slot t.pci.slot), and CF8 to CFF. */
		const struct fz_window win[] = {
		        {&mmio, bar, VIRTIO_PCI_BAR_SIZE, 8},
		        {&mmio, test_pci_config_addr(t.pci.slot), 4096, 8},
		        {&pio, 0xcf8, 8, 4},
		};
		const struct fz_bus b = {
		        .win = win, .nr_win = 3, .mem = &mem, .mem_span = RAM, .hook = run_loop};

		fz_run_bus(&b, &f);
		run_loop(NULL, &f);
	}
	virtio_pci_detach(&t);
	virtio_dev_destroy(&fake.vdev);
	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
	return 0;
}
