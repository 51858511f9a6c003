/*
 * libFuzzer target: what --restore does with a snapshot's state file before any VM exists,
 * and the platform devices' loads. The input is a state file; when it ends in an END section
 * its checksum is recomputed first, so that mutations reach past the checksum check. Then:
 * the file parsed (vmm/snapshot_file.c), its CONF section turned into options
 * (snapshot_config_parse) and those parsed as vmm's command line (config_parse), and the
 * sections of the UART, CMOS, i8042 and PCI host bridge loaded into fresh devices, and a
 * "VMMI" #0 section into a virtio-rng on virtio-mmio over 1 MiB of guest RAM (reset before
 * each input), whose queue is then served as a notification would, and "VMMI" #1 likewise into
 * a multiport virtio console with three ports (the device's own part: ports, control messages
 * owed, a half-written chain), every queue of it then notified.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "devices/cmos.h"
#include "devices/i8042.h"
#include "devices/pci/pci.h"
#include "devices/uart_8250.h"
#include "devices/virtio/console.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_mmio.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/config.h"
#include "vmm/log.h"
#include "vmm/snapshot.h"

#define END_SECTION 24 /* header and a padded 4-byte payload */
#define RNG_BASE    0xd0000000ULL
#define CON_BASE    0xd0001000ULL

static struct guest_memory mem;
static struct event_loop loop;
static struct bus mmio;
static struct virtio_rng rng;
static struct virtio_mmio rng_transport;
static struct virtio_console con;
static struct virtio_mmio con_transport;

static ssize_t zero_source(void *buf, size_t len, unsigned flags)
{
	(void)flags;
	memset(buf, 0, len);
	return (ssize_t)len;
}

static size_t discard(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	return len;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const struct virtio_console_backend out = {.write = discard};
	const struct virtio_console_port_config ports[3] = {
	        {.name = "vmm.stdout", .backend = out},
	        {.name = "vmm.stdin", .backend = out},
	        {.is_console = true, .backend = out},
	};

	(void)argc;
	(void)argv;
	fz_virtio_setup(&mem, 1 * MIB, &loop);
	bus_init(&mmio, "mmio");
	virtio_rng_init(&rng, &mem);
	rng.source = zero_source;
	virtio_rng_set_loop(&rng, &loop);
	fz_must(virtio_mmio_attach(&rng_transport, &rng.vdev, &mmio, RNG_BASE, -1, 5, &loop),
	        "virtio_mmio_attach");
	virtio_console_init_multiport(&con, &mem, ports, 3);
	virtio_console_set_loop(&con, &loop);
	fz_must(virtio_mmio_attach(&con_transport, &con.vdev, &mmio, CON_BASE, -1, 6, &loop),
	        "virtio_mmio_attach");
	return 0;
}

/*
 * A live virtio device from the snapshot's "VMMI" @instance (the device reset first), then a
 * notification of each of its queues.
 */
static void load_virtio(const struct snap_reader *r, struct virtio_mmio *t, uint32_t instance)
{
	struct virtio_dev *dev = t->dev;
	struct snapshot_parts parts = {0};
	struct snap_cursor c;
	char err[256];

	pthread_mutex_lock(&dev->lock);
	virtio_write_status(dev, 0);
	pthread_mutex_unlock(&dev->lock);
	fz_memory_clear(&mem);
	if (!virtio_mmio_snapshot_add(t, &parts, instance) &&
	    !snap_section(r, "VMMI", instance, &c) &&
	    !parts.parts[0].load(parts.parts[0].opaque, &c, err, sizeof(err))) {
		for (unsigned q = 0; q < dev->ops->num_queues; q++)
			virtio_notify_queue(dev, q);
	}
	snapshot_parts_free(&parts);
}

static void load_devices(const struct snap_reader *r)
{
	const struct irq_line irq = {.vm_fd = -1, .gsi = 4, .irqfd = -1};
	const struct uart_backend backend = {discard, NULL, NULL};
	struct snapshot_parts parts = {0};
	struct uart_8250 uart;
	struct cmos cmos;
	struct i8042 kbc;
	struct pci_host *host = calloc(1, sizeof(*host));
	char err[256];

	if (!host)
		return;
	uart_init(&uart, &irq, &backend);
	cmos_init(&cmos);
	i8042_init(&kbc, NULL, NULL);
	pthread_mutex_init(&host->lock, NULL);
	if (!uart_snapshot_add(&uart, &parts, 0) && !cmos_snapshot_add(&cmos, &parts) &&
	    !i8042_snapshot_add(&kbc, &parts) && !pci_host_snapshot_add(host, &parts)) {
		for (unsigned i = 0; i < parts.count; i++) {
			struct snap_cursor c;

			if (!snap_section(r, parts.parts[i].tag, parts.parts[i].instance, &c))
				(void)parts.parts[i].load(parts.parts[i].opaque, &c, err,
				                          sizeof(err));
		}
	}
	/* What a restored guest would do next: read the registers back. */
	for (uint64_t port = 0; port < 8; port++) {
		uint8_t v;
		(void)uart_bus_ops.read(&uart, port, &v, 1);
	}
	uart_destroy(&uart);
	cmos_destroy(&cmos);
	i8042_destroy(&kbc);
	pthread_mutex_destroy(&host->lock);
	free(host);
	snapshot_parts_free(&parts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct snapshot_config sc = {0};
	static struct vm_config cfg;
	uint8_t *copy = malloc(size ? size : 1);
	char err[256];

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (size >= SNAP_HEADER_SIZE + END_SECTION &&
	    !memcmp(copy + size - END_SECTION, SNAP_END_TAG, 4)) {
		uint32_t crc = htole32((uint32_t)crc32(0, copy, (uInt)(size - END_SECTION)));

		memcpy(copy + size - END_SECTION + SNAP_SECTION_HEADER, &crc, 4);
	}
	if (!snap_reader_parse(&sc.reader, copy, size, SNAP_ARCH_HOST, err, sizeof(err))) {
		if (!snapshot_config_parse(&sc, err, sizeof(err)))
			(void)config_parse(sc.argc, sc.argv, &cfg, err, sizeof(err));
		load_devices(&sc.reader);
		load_virtio(&sc.reader, &rng_transport, 0);
		load_virtio(&sc.reader, &con_transport, 1);
	}
	snapshot_config_free(&sc);
	free(copy);
	return 0;
}
