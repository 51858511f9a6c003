/*
 * virtio-pci (modern) through the buses, as a driver sees it: identity and BAR, the vendor
 * capabilities, feature negotiation, queue set-up (ring addresses as 64-bit fields and as
 * 32-bit halves) and DRIVER_OK, doorbells, MSI-X vectors and INTx with the ISR, reset, hostile
 * common configuration accesses and the PCI configuration access capability.
 * No VM: vm_fd is -1, so doorbells reach the bus, and MSI-X messages and INTx level changes go
 * to the hooks of virtio_pci_set_test_interrupts. A doorbell on the bus is only handed to the
 * event loop; the device sees it when the test runs the loop (run_loop), never inside the
 * bus access (issue 17).
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/virtio/virtio_pci.h"
#include "tests/support/loop_harness.h"
#include "tests/support/pci_layout.h"
#include "tests/support/vring_builder.h"
#include "tests/unit/unit.h"
#include "vmm/bus.h"
#include "vmm/event_loop.h"
#include "vmm/snapshot.h"
#include "vmm/util.h"

#define RAM      (1 * MIB)
#define ECAM     0xe0000000ULL
#define CF8      0xcf8
#define CFC      0xcfc
#define CF8_EN   0x80000000u
#define MMIO64   (4 * GIB)
#define INTX_GSI 11

#define ACK    VIRTIO_STATUS_ACKNOWLEDGE
#define DRV    VIRTIO_STATUS_DRIVER
#define FEAT   VIRTIO_STATUS_FEATURES_OK
#define DRV_OK VIRTIO_STATUS_DRIVER_OK

#define NR_QUEUES  2
#define MAX_QSIZE  64
#define NR_VECTORS (NR_QUEUES + 1)

/* Offsets inside a virtio_pci_cap and the MSI-X capability. */
#define CAP_LEN      2
#define CAP_CFG_TYPE 3
#define CAP_BAR      4
#define CAP_OFFSET   8
#define CAP_LENGTH   12
#define CAP_DATA     16
#define MSIX_CONTROL 2
#define MSIX_TABLE   4
#define MSIX_PBA     8

/* A device with two queues, a 12-byte config space (8 writable bytes) and counters. */
struct fake {
	struct virtio_dev vdev;
	uint8_t config[12];
	unsigned activates, resets, notifies[NR_QUEUES], config_writes;
};

struct delivery {
	uint64_t address;
	uint32_t data;
};

static struct guest_memory mem;
static struct bus pio, mmio;
static struct pci_host host;
static struct fake fake;
static struct virtio_pci t;
static struct event_loop loop;
static bool in_loop; /* run_loop is dispatching */
static struct vring_builder rb;
static unsigned slot;
static uint64_t bar;
static struct delivery delivered[16];
static unsigned nr_delivered;
static int intx_level;
static unsigned intx_changes;

static const struct pci_layout layout = {
        .ecam_base = ECAM,
        .ecam_size = 1 * MIB,
        .config_port = CF8,
        .mmio32_base = 0xc0000000ULL,
        .mmio32_size = 256 * MIB,
        .mmio64_base = MMIO64,
        .mmio64_size = 16 * GIB,
};

static int fake_activate(struct virtio_dev *dev)
{
	container_of(dev, struct fake, vdev)->activates++;
	return 0;
}

static void fake_reset(struct virtio_dev *dev)
{
	container_of(dev, struct fake, vdev)->resets++;
}

static void fake_notify(struct virtio_dev *dev, unsigned q)
{
	ck_assert_msg(in_loop, "queue %u notified outside the event loop", q);
	ck_assert_uint_lt(q, NR_QUEUES);
	container_of(dev, struct fake, vdev)->notifies[q]++;
}

static void fake_config_written(struct virtio_dev *dev, uint64_t offset, unsigned size)
{
	struct fake *f = container_of(dev, struct fake, vdev);

	f->config_writes++;
	if (offset + size > 8) /* the last 4 bytes are read-only: put them back */
		memset(f->config + 8, 0xcc, 4);
}

static const struct virtio_device_ops fake_ops = {
        .name = "fake",
        .device_id = 42,
        .num_queues = NR_QUEUES,
        .max_queue_size = MAX_QSIZE,
        .config_written = fake_config_written,
        .activate = fake_activate,
        .reset = fake_reset,
        .queue_notify = fake_notify,
};

static void record_delivery(void *opaque, uint64_t address, uint32_t data)
{
	ck_assert_ptr_eq(opaque, &t);
	ck_assert_uint_lt(nr_delivered, ARRAY_SIZE(delivered));
	delivered[nr_delivered++] = (struct delivery){address, data};
}

static void record_intx(void *opaque, int level)
{
	ck_assert_ptr_eq(opaque, &t);
	ck_assert_int_ne(level, intx_level); /* only transitions are reported */
	intx_level = level;
	intx_changes++;
}

/* Serves what the event loop has ready, as its thread would, until nothing is left. */
static void run_loop(void)
{
	test_loop_serve(&loop, &in_loop);
}

/* ---- guest-side accessors ---- */

static uint64_t mem_rd(uint64_t addr, unsigned size)
{
	uint64_t v = 0, mirrored;

	ck_assert_int_eq(bus_access(&mmio, addr, &v, size, false), 0);
	v = le64toh(v);
	/* Where KVM would serve the read from the host's ECAM copy, the copy says the same. */
	if (addr >= ECAM && addr - ECAM < layout.ecam_size &&
	    test_pci_mirror_read(&host, addr - ECAM, size, &mirrored))
		ck_assert_uint_eq(mirrored, v);
	return v;
}

static void mem_wr(uint64_t addr, unsigned size, uint64_t v)
{
	v = htole64(v);
	ck_assert_int_eq(bus_access(&mmio, addr, &v, size, true), 0);
}

static uint32_t cfg_rd(unsigned reg, unsigned size)
{
	return (uint32_t)mem_rd(ECAM + ((uint64_t)slot << 15) + reg, size);
}

static void cfg_wr(unsigned reg, unsigned size, uint32_t v)
{
	mem_wr(ECAM + ((uint64_t)slot << 15) + reg, size, v);
}

static uint32_t cf8_rd(unsigned reg, unsigned size)
{
	uint32_t a = htole32(CF8_EN | slot << 11 | (reg & 0xfc)), v = 0;

	ck_assert_int_eq(bus_access(&pio, CF8, &a, 4, true), 0);
	ck_assert_int_eq(bus_access(&pio, CFC + (reg & 3), &v, size, false), 0);
	return le32toh(v);
}

static uint64_t bar_rd(uint64_t off, unsigned size)
{
	return mem_rd(bar + off, size);
}

static void bar_wr(uint64_t off, unsigned size, uint64_t v)
{
	mem_wr(bar + off, size, v);
}

static uint64_t cm_rd(unsigned off, unsigned size)
{
	return bar_rd(VIRTIO_PCI_COMMON + off, size);
}

static void cm_wr(unsigned off, unsigned size, uint64_t v)
{
	bar_wr(VIRTIO_PCI_COMMON + off, size, v);
}

static uint8_t status(void)
{
	return (uint8_t)cm_rd(VIRTIO_PCI_STATUS, 1);
}

/* The first capability with @id (and, for vendor ones, @cfg_type), or 0. */
static unsigned find_cap(uint8_t id, uint8_t cfg_type)
{
	unsigned n = 0;

	if (!(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return 0;
	for (unsigned at = cfg_rd(PCI_CAPABILITY_PTR, 1); at; at = cfg_rd(at + 1, 1)) {
		ck_assert_uint_lt(n++, 48);
		if (cfg_rd(at, 1) == id &&
		    (id != PCI_CAP_ID_VNDR || cfg_rd(at + CAP_CFG_TYPE, 1) == cfg_type))
			return at;
	}
	return 0;
}

static void setup(void)
{
	uint32_t lo;

	memset(&mem, 0, sizeof(mem));
	ck_assert_int_eq(guest_memory_add(&mem, 0, RAM), 0);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	ck_assert_int_eq(pci_host_init(&host, &layout, &pio, &mmio), 0);
	/* Every ECAM read below is also checked against the copy (mem_rd). */
	ck_assert_int_eq(pci_host_map_ecam(&host, -1, 0), 0);
	memset(&fake, 0, sizeof(fake));
	virtio_dev_init(&fake.vdev, &fake_ops, &mem, 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << 3,
	                fake.config, sizeof(fake.config));
	for (unsigned i = 0; i < sizeof(fake.config); i++)
		fake.config[i] = (uint8_t)(0xc0 + i);
	ck_assert_int_eq(event_loop_init(&loop), 0);
	ck_assert_int_eq(virtio_pci_attach(&t, &fake.vdev, &host, -1, NULL, INTX_GSI, &loop), 0);
	virtio_pci_set_test_interrupts(&t, record_intx, record_delivery, &t);
	nr_delivered = 0;
	intx_level = 0;
	intx_changes = 0;
	slot = t.pci.slot;
	ck_assert_uint_ne(slot, 0);
	lo = cfg_rd(PCI_BAR0, 4);
	bar = (lo & ~0xfull) | (uint64_t)cfg_rd(PCI_BAR0 + 4, 4) << 32;
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void teardown(void)
{
	virtio_pci_detach(&t);
	event_loop_free(&loop);
	virtio_dev_destroy(&fake.vdev);
	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
	guest_memory_free(&mem);
}

/* Negotiates @features and sets DRIVER_OK, queue @q on a ring at @ring_base. */
static void driver_up(uint64_t features, unsigned q, uint64_t ring_base)
{
	cm_wr(VIRTIO_PCI_STATUS, 1, ACK);
	cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV);
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 0);
	cm_wr(VIRTIO_PCI_GF, 4, (uint32_t)features);
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 1);
	cm_wr(VIRTIO_PCI_GF, 4, (uint32_t)(features >> 32));
	cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV | FEAT);
	ck_assert_uint_eq(status(), ACK | DRV | FEAT);
	vrb_init(&rb, &mem, ring_base, 0x40000, 16);
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, q);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SIZE, 2), MAX_QSIZE);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_ENABLE, 2), 0);
	cm_wr(VIRTIO_PCI_Q_SIZE, 2, 16);
	cm_wr(VIRTIO_PCI_Q_DESC, 8, rb.desc);                         /* as one 64-bit field */
	cm_wr(VIRTIO_PCI_Q_AVAIL, 4, (uint32_t)rb.avail);             /* as two halves */
	cm_wr(VIRTIO_PCI_Q_AVAIL + 4, 4, (uint32_t)(rb.avail >> 32)); /* ... */
	cm_wr(VIRTIO_PCI_Q_USED + 4, 4, (uint32_t)(rb.used >> 32));   /* high half first */
	cm_wr(VIRTIO_PCI_Q_USED, 4, (uint32_t)rb.used);
	cm_wr(VIRTIO_PCI_Q_ENABLE, 2, 1);
	cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV | FEAT | DRV_OK);
}

/* The device completes one buffer on queue @q and tells the driver. */
static void complete_one(unsigned q)
{
	uint16_t head = 0;

	vrb_desc(&rb, head, vrb_alloc(&rb, 8), 8, VRB_F_WRITE, 0);
	vrb_publish(&rb, head);
	ck_assert_int_eq(vq_pop_chain(&fake.vdev.queues[q], &(struct vq_chain){0}), 1);
	ck_assert_int_eq(vq_push_used(&fake.vdev.queues[q], head, 8), 0);
	virtio_queue_done(&fake.vdev, q);
}

/* ---- identity and capabilities ---- */

START_TEST(identity)
{
	ck_assert_uint_eq(cfg_rd(PCI_VENDOR_ID, 2), VIRTIO_PCI_VENDOR_ID);
	ck_assert_uint_eq(cf8_rd(PCI_DEVICE_ID, 2), VIRTIO_PCI_DEVICE_ID_BASE + 42);
	ck_assert_uint_eq(cfg_rd(PCI_REVISION_ID, 1), 1); /* modern */
	ck_assert_uint_eq(cfg_rd(PCI_REVISION_ID, 4) >> 8, 0xff0000);
	ck_assert_uint_eq(cfg_rd(PCI_SUBSYS_VENDOR, 2), VIRTIO_PCI_VENDOR_ID);
	ck_assert_uint_eq(cfg_rd(PCI_SUBSYS_ID, 2), VIRTIO_PCI_SUBSYS_ID);
	ck_assert_uint_eq(cfg_rd(PCI_INTERRUPT_PIN, 1), 1);
	ck_assert_uint_eq(cfg_rd(PCI_INTERRUPT_LINE, 1), INTX_GSI);
	ck_assert_uint_eq(cfg_rd(PCI_HEADER_TYPE, 1), 0);

	/* One 64-bit prefetchable BAR in the 64-bit window, naturally aligned. */
	ck_assert_uint_eq(cfg_rd(PCI_BAR0, 4) & 0xf, PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
	ck_assert_uint_ge(bar, MMIO64);
	ck_assert_uint_eq(bar % VIRTIO_PCI_BAR_SIZE, 0);
	for (unsigned b = 2; b < PCI_NUM_BARS; b++)
		ck_assert_uint_eq(cfg_rd(PCI_BAR0 + 4 * b, 4), 0);

	/* Memory decoding off: the BAR is not there, a doorbell goes nowhere. */
	cfg_wr(PCI_COMMAND, 2, 0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_COMMON + VIRTIO_PCI_NUM_QUEUES, 2), 0xffff);
	bar_wr(VIRTIO_PCI_NOTIFY, 2, 0);
	run_loop();
	ck_assert_uint_eq(fake.notifies[0], 0);
	/* Sizing: 32 KiB. */
	cfg_wr(PCI_BAR0, 4, 0xffffffff);
	cfg_wr(PCI_BAR0 + 4, 4, 0xffffffff);
	ck_assert_uint_eq(cfg_rd(PCI_BAR0, 4), (uint32_t) ~(VIRTIO_PCI_BAR_SIZE - 1) |
	                                               PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
	ck_assert_uint_eq(cfg_rd(PCI_BAR0 + 4, 4), 0xffffffff);
	/* Moved elsewhere and decoding again. */
	bar = MMIO64 + 0x10000000;
	cfg_wr(PCI_BAR0, 4, (uint32_t)bar);
	cfg_wr(PCI_BAR0 + 4, 4, (uint32_t)(bar >> 32));
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_NUM_QUEUES, 2), NR_QUEUES);
	bar_wr(VIRTIO_PCI_NOTIFY, 2, 0);
	ck_assert_uint_eq(fake.notifies[0], 0); /* handed to the loop, not served here */
	run_loop();
	ck_assert_uint_eq(fake.notifies[0], 1);
}
END_TEST

START_TEST(virtio_capabilities)
{
	static const struct {
		uint8_t cap_len;
		uint32_t offset, length;
	} want[] = {
	        [VIRTIO_PCI_CAP_COMMON_CFG] = {16, VIRTIO_PCI_COMMON, VIRTIO_PCI_COMMON_SIZE},
	        [VIRTIO_PCI_CAP_NOTIFY_CFG] = {20, VIRTIO_PCI_NOTIFY,
	                                       NR_QUEUES * VIRTIO_PCI_NOTIFY_MULT},
	        [VIRTIO_PCI_CAP_ISR_CFG] = {16, VIRTIO_PCI_ISR, 1},
	        [VIRTIO_PCI_CAP_DEVICE_CFG] = {16, VIRTIO_PCI_DEVICE, 12},
	        [VIRTIO_PCI_CAP_PCI_CFG] = {20, 0, 0},
	};
	unsigned seen[6] = {0}, msix = 0, n = 0;

	ck_assert_uint_eq(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
	for (unsigned at = cfg_rd(PCI_CAPABILITY_PTR, 1); at; at = cfg_rd(at + 1, 1)) {
		unsigned type;

		ck_assert_uint_lt(n++, 16);
		ck_assert_uint_ge(at, PCI_CAP_START);
		ck_assert_uint_eq(at % 4, 0);
		if (cfg_rd(at, 1) == PCI_CAP_ID_MSIX) {
			msix = at;
			continue;
		}
		ck_assert_uint_eq(cfg_rd(at, 1), PCI_CAP_ID_VNDR);
		type = cfg_rd(at + CAP_CFG_TYPE, 1);
		ck_assert_uint_ge(type, 1);
		ck_assert_uint_le(type, 5);
		seen[type]++;
		ck_assert_uint_eq(cfg_rd(at + CAP_LEN, 1), want[type].cap_len);
		ck_assert_uint_le(at + want[type].cap_len, PCI_CONFIG_SIZE);
		ck_assert_uint_eq(cfg_rd(at + CAP_BAR, 1), VIRTIO_PCI_BAR);
		ck_assert_uint_eq(cf8_rd(at + CAP_OFFSET, 4), want[type].offset);
		ck_assert_uint_eq(cf8_rd(at + CAP_LENGTH, 4), want[type].length);
		if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
			ck_assert_uint_eq(cfg_rd(at + CAP_DATA, 4), VIRTIO_PCI_NOTIFY_MULT);
		if (type != VIRTIO_PCI_CAP_PCI_CFG) {
			/* Inside the BAR, and read-only. */
			ck_assert_uint_le(want[type].offset + want[type].length,
			                  VIRTIO_PCI_BAR_SIZE);
			cfg_wr(at + CAP_OFFSET, 4, 0x1234);
			cfg_wr(at + CAP_BAR, 1, 3);
			ck_assert_uint_eq(cfg_rd(at + CAP_OFFSET, 4), want[type].offset);
			ck_assert_uint_eq(cfg_rd(at + CAP_BAR, 1), VIRTIO_PCI_BAR);
		}
	}
	for (unsigned type = 1; type <= 5; type++)
		ck_assert_uint_eq(seen[type], 1);
	/* MSI-X: one vector per queue plus config, table and PBA in the BAR. */
	ck_assert_uint_ne(msix, 0);
	ck_assert_uint_eq(cfg_rd(msix + MSIX_CONTROL, 2), NR_VECTORS - 1);
	ck_assert_uint_eq(cfg_rd(msix + MSIX_TABLE, 4), VIRTIO_PCI_MSIX_TABLE | VIRTIO_PCI_BAR);
	ck_assert_uint_eq(cfg_rd(msix + MSIX_PBA, 4), VIRTIO_PCI_MSIX_PBA | VIRTIO_PCI_BAR);
}
END_TEST

/* ---- features ---- */

START_TEST(device_features)
{
	cm_wr(VIRTIO_PCI_DFSELECT, 4, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DF, 4), 1u << VIRTIO_F_EVENT_IDX | 1u << 3);
	cm_wr(VIRTIO_PCI_DFSELECT, 4, 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DFSELECT, 4), 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DF, 4), 1); /* VERSION_1 */
	cm_wr(VIRTIO_PCI_DFSELECT, 4, 2);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DF, 4), 0);
	cm_wr(VIRTIO_PCI_DFSELECT, 4, 0xffffffff);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DF, 4), 0);
	/* Read-only. */
	cm_wr(VIRTIO_PCI_DFSELECT, 4, 0);
	cm_wr(VIRTIO_PCI_DF, 4, 0xffffffff);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DF, 4), 1u << VIRTIO_F_EVENT_IDX | 1u << 3);
	ck_assert_uint_eq(fake.vdev.device_features,
	                  1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX | 1ULL << 3);
	/* Other widths read nothing. */
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DF, 2), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DF, 8), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DF + 1, 1), 0);
}
END_TEST

START_TEST(feature_negotiation)
{
	static const uint64_t bad[] = {1ULL << VIRTIO_F_EVENT_IDX,             /* no VERSION_1 */
	                               1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5, /* not offered */
	                               1ULL << VIRTIO_F_VERSION_1 | 1ULL << 40};
	const uint64_t good = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 3;

	cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV);
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		cm_wr(VIRTIO_PCI_GFSELECT, 4, 0);
		cm_wr(VIRTIO_PCI_GF, 4, (uint32_t)bad[i]);
		cm_wr(VIRTIO_PCI_GFSELECT, 4, 1);
		cm_wr(VIRTIO_PCI_GF, 4, (uint32_t)(bad[i] >> 32));
		cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV | FEAT);
		ck_assert_uint_eq(status(), ACK | DRV);
	}
	cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV | FEAT | DRV_OK); /* without FEATURES_OK */
	ck_assert_uint_eq(status(), ACK | DRV);
	ck_assert_uint_eq(fake.activates, 0);

	/* A subset including VERSION_1 is kept. */
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 0);
	cm_wr(VIRTIO_PCI_GF, 4, (uint32_t)good);
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 1);
	cm_wr(VIRTIO_PCI_GF, 4, (uint32_t)(good >> 32));
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_GFSELECT, 4), 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_GF, 4), 1);
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_GF, 4), 1u << 3);
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 2);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_GF, 4), 0);
	cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV | FEAT);
	ck_assert_uint_eq(status(), ACK | DRV | FEAT);
	ck_assert_uint_eq(fake.vdev.driver_features, good);
	/* Frozen after FEATURES_OK. */
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 0);
	cm_wr(VIRTIO_PCI_GF, 4, 1u << VIRTIO_F_EVENT_IDX);
	ck_assert_uint_eq(fake.vdev.driver_features, good);
	/* A 2-byte write to a 4-byte field is dropped (before FEATURES_OK too). */
	cm_wr(VIRTIO_PCI_STATUS, 1, 0);
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 0);
	cm_wr(VIRTIO_PCI_GF, 2, 0xffff);
	ck_assert_uint_eq(fake.vdev.driver_features, 0);
}
END_TEST

/* ---- queues ---- */

START_TEST(queue_setup_and_activate)
{
	driver_up(1ULL << VIRTIO_F_VERSION_1, 0, 0x10000);
	ck_assert_uint_eq(status(), ACK | DRV | FEAT | DRV_OK);
	ck_assert_uint_eq(fake.activates, 1);
	ck_assert(fake.vdev.queues[0].active);
	ck_assert(!fake.vdev.queues[1].ready);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_NUM_QUEUES, 2), NR_QUEUES);
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SIZE, 2), 16);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_ENABLE, 2), 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_DESC, 8), rb.desc);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_AVAIL, 8), rb.avail);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_USED, 4), (uint32_t)rb.used);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_USED + 4, 4), 0);
	ck_assert_uint_eq(fake.vdev.queues[0].desc_addr, rb.desc);
	ck_assert_uint_eq(fake.vdev.queues[0].avail_addr, rb.avail);
	ck_assert_uint_eq(fake.vdev.queues[0].used_addr, rb.used);
	ck_assert_uint_eq(fake.vdev.queues[0].size, 16);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_NOTIFY_OFF, 2), 0);
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SELECT, 2), 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_NOTIFY_OFF, 2), 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_ENABLE, 2), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SIZE, 2), MAX_QSIZE);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_CFG_GEN, 1), 0);
}
END_TEST

START_TEST(ring_address_halves)
{
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 1);
	cm_wr(VIRTIO_PCI_Q_DESC, 4, 0x89abcdf0);
	cm_wr(VIRTIO_PCI_Q_DESC + 4, 4, 0x01234567);
	ck_assert_uint_eq(fake.vdev.queues[1].desc_addr, 0x0123456789abcdf0ULL);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_DESC, 8), 0x0123456789abcdf0ULL);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_DESC, 4), 0x89abcdf0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_DESC + 4, 4), 0x01234567);
	cm_wr(VIRTIO_PCI_Q_DESC + 4, 4, 0); /* one half leaves the other alone */
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_DESC, 8), 0x89abcdf0);
	cm_wr(VIRTIO_PCI_Q_USED, 8, 0xfedcba9876543210ULL);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_USED + 4, 4), 0xfedcba98);
	/* Sub-field widths are dropped and read nothing. */
	cm_wr(VIRTIO_PCI_Q_AVAIL, 2, 0x1111);
	cm_wr(VIRTIO_PCI_Q_AVAIL + 2, 2, 0x2222);
	cm_wr(VIRTIO_PCI_Q_AVAIL + 4, 8, 0x3333); /* an 8-byte access at the high half */
	cm_wr(VIRTIO_PCI_Q_AVAIL + 1, 1, 0x44);
	ck_assert_uint_eq(fake.vdev.queues[1].avail_addr, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_USED, 2), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_USED + 4, 8), 0);
	/* Queue 0 was not touched. */
	ck_assert_uint_eq(fake.vdev.queues[0].desc_addr | fake.vdev.queues[0].used_addr, 0);
}
END_TEST

/* A doorbell write of @size bytes to queue @q's doorbell (at @off), then the loop's turn. */
static void ring(unsigned off, unsigned size, uint64_t v)
{
	bar_wr(VIRTIO_PCI_NOTIFY + off * VIRTIO_PCI_NOTIFY_MULT, size, v);
	run_loop();
}

START_TEST(doorbells)
{
	unsigned off[NR_QUEUES];

	for (unsigned q = 0; q < NR_QUEUES; q++) {
		cm_wr(VIRTIO_PCI_Q_SELECT, 2, q);
		off[q] = (unsigned)cm_rd(VIRTIO_PCI_Q_NOTIFY_OFF, 2);
	}
	/* Before DRIVER_OK too: the device decides what to do with it. */
	ring(off[1], 2, 1);
	ck_assert_uint_eq(fake.notifies[1], 1);
	driver_up(1ULL << VIRTIO_F_VERSION_1, 0, 0x10000);
	/* Any width the doorbell fits: 1, 2 and 4 bytes (no ioeventfd here matches any). */
	ring(off[0], 2, 0);
	ring(off[0], 4, 0);
	ring(off[0], 1, 0);
	ck_assert_uint_eq(fake.notifies[0], 3);
	/* The doorbell names the queue, not the value written. */
	ring(off[1], 2, 0);
	ring(off[1], 2, 7);
	ck_assert_uint_eq(fake.notifies[0], 3);
	ck_assert_uint_eq(fake.notifies[1], 3);
	/* Past the last queue's doorbell: nothing. Reads of doorbells: zeros. */
	bar_wr(VIRTIO_PCI_NOTIFY + NR_QUEUES * VIRTIO_PCI_NOTIFY_MULT, 2, 0);
	bar_wr(VIRTIO_PCI_NOTIFY + 0xffc, 4, 0);
	bar_wr(VIRTIO_PCI_NOTIFY + (NR_QUEUES - 1) * VIRTIO_PCI_NOTIFY_MULT + 2, 4, 0);
	run_loop();
	ck_assert_uint_eq(fake.notifies[0] + fake.notifies[1], 6);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_NOTIFY, 4), 0);
}
END_TEST

/*
 * Doorbells on the bus (a vCPU thread) never run the device there: each is handed to the event
 * loop, and rings of one queue before the loop's turn are served once (the device then sees
 * everything the driver published), each queue rung in the meantime once.
 */
START_TEST(doorbells_served_on_the_loop)
{
	unsigned cap = find_cap(PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);

	driver_up(1ULL << VIRTIO_F_VERSION_1, 0, 0x10000);
	for (unsigned i = 0; i < 5; i++)
		bar_wr(VIRTIO_PCI_NOTIFY, 1 << (i % 3), 0);
	bar_wr(VIRTIO_PCI_NOTIFY + VIRTIO_PCI_NOTIFY_MULT, 4, 0);
	cfg_wr(cap + CAP_BAR, 1, 0);
	cfg_wr(cap + CAP_OFFSET, 4, VIRTIO_PCI_NOTIFY + VIRTIO_PCI_NOTIFY_MULT);
	cfg_wr(cap + CAP_LENGTH, 4, 2);
	cfg_wr(cap + CAP_DATA, 2, 1);
	ck_assert_uint_eq(fake.notifies[0] + fake.notifies[1], 0);
	run_loop();
	ck_assert_uint_eq(fake.notifies[0], 1);
	ck_assert_uint_eq(fake.notifies[1], 1);
	run_loop(); /* nothing left */
	ck_assert_uint_eq(fake.notifies[0] + fake.notifies[1], 2);
}
END_TEST

START_TEST(queue_select_out_of_range)
{
	static const uint16_t sels[] = {NR_QUEUES, VIRTIO_MAX_QUEUES, 0x8000, 0xffff};

	for (unsigned i = 0; i < ARRAY_SIZE(sels); i++) {
		cm_wr(VIRTIO_PCI_Q_SELECT, 2, sels[i]);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SELECT, 2), sels[i]);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SIZE, 2), 0);
		cm_wr(VIRTIO_PCI_Q_SIZE, 2, 16);
		cm_wr(VIRTIO_PCI_Q_ENABLE, 2, 1);
		cm_wr(VIRTIO_PCI_Q_DESC, 8, 0x1000);
		cm_wr(VIRTIO_PCI_Q_AVAIL, 4, 0x2000);
		cm_wr(VIRTIO_PCI_Q_MSIX, 2, 0);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SIZE, 2), 0);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_ENABLE, 2), 0);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_DESC, 8), 0);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_AVAIL, 4), 0);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_MSIX, 2), VIRTIO_PCI_NO_VECTOR);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_NOTIFY_OFF, 2), 0);
	}
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		ck_assert(!fake.vdev.queues[q].ready);
		ck_assert_uint_eq(fake.vdev.queues[q].size, 0);
		ck_assert_uint_eq(fake.vdev.queues[q].desc_addr, 0);
		ck_assert_uint_eq(t.queue_vector[q], VIRTIO_PCI_NO_VECTOR);
	}
	/* A 4-byte write to queue_select is not a queue_select write. */
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 1);
	cm_wr(VIRTIO_PCI_Q_SELECT, 4, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SELECT, 2), 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SELECT, 4), 0);
}
END_TEST

START_TEST(read_only_fields)
{
	cm_wr(VIRTIO_PCI_NUM_QUEUES, 2, 7);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_NUM_QUEUES, 2), NR_QUEUES);
	cm_wr(VIRTIO_PCI_CFG_GEN, 1, 9);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_CFG_GEN, 1), 0);
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 1);
	cm_wr(VIRTIO_PCI_Q_NOTIFY_OFF, 2, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_NOTIFY_OFF, 2), 1);
	cm_wr(VIRTIO_PCI_DF, 4, 0);
	cm_wr(VIRTIO_PCI_DFSELECT, 4, 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DF, 4), 1);
	/* Nothing past the last field, nothing in the gaps between regions. */
	cm_wr(VIRTIO_PCI_COMMON_SIZE, 4, 0xffffffff);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_COMMON_SIZE, 4), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_COMMON_SIZE - 4, 8), 0);
	ck_assert_uint_eq(bar_rd(0x0800, 4), 0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR + 4, 4), 0);
	ck_assert_uint_eq(bar_rd(0x6000, 8), 0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_BAR_SIZE - 8, 8), 0);
	ck_assert_uint_eq(fake.vdev.driver_features | fake.vdev.status, 0);
	/* Status is one byte wide. */
	cm_wr(VIRTIO_PCI_STATUS, 2, ACK);
	cm_wr(VIRTIO_PCI_STATUS, 4, ACK);
	ck_assert_uint_eq(status(), 0);
	cm_wr(VIRTIO_PCI_STATUS, 1, ACK);
	ck_assert_uint_eq(status(), ACK);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_STATUS, 2), 0);
}
END_TEST

START_TEST(queue_frozen_after_driver_ok)
{
	driver_up(1ULL << VIRTIO_F_VERSION_1, 0, 0x10000);
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 0);
	cm_wr(VIRTIO_PCI_Q_SIZE, 2, 32);
	cm_wr(VIRTIO_PCI_Q_DESC, 8, 0x20000);
	cm_wr(VIRTIO_PCI_Q_AVAIL, 4, 0x30000);
	cm_wr(VIRTIO_PCI_Q_USED + 4, 4, 1);
	cm_wr(VIRTIO_PCI_Q_ENABLE, 2, 0);
	cm_wr(VIRTIO_PCI_Q_MSIX, 2, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SIZE, 2), 16);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_DESC, 8), rb.desc);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_AVAIL, 8), rb.avail);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_USED, 8), rb.used);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_ENABLE, 2), 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_MSIX, 2), VIRTIO_PCI_NO_VECTOR);
	/* And a queue the driver did not enable cannot be enabled now. */
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 1);
	cm_wr(VIRTIO_PCI_Q_DESC, 8, 0x20000);
	cm_wr(VIRTIO_PCI_Q_ENABLE, 2, 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_ENABLE, 2), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_DESC, 8), 0);
	ck_assert(!fake.vdev.queues[1].ready);
	ck_assert(fake.vdev.queues[0].active);
	ck_assert_uint_eq(fake.activates, 1);
}
END_TEST

START_TEST(reset_really_resets)
{
	unsigned msix = find_cap(PCI_CAP_ID_MSIX, 0);

	cfg_wr(msix + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE);
	cm_wr(VIRTIO_PCI_MSIX_CONFIG, 2, 0);
	for (unsigned q = 0; q < NR_QUEUES; q++) {
		cm_wr(VIRTIO_PCI_Q_SELECT, 2, q);
		cm_wr(VIRTIO_PCI_Q_MSIX, 2, q + 1);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_MSIX, 2), q + 1);
	}
	driver_up(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_EVENT_IDX, 1, 0x10000);
	ck_assert_uint_eq(status(), ACK | DRV | FEAT | DRV_OK);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SELECT, 2), 1);
	cm_wr(VIRTIO_PCI_DFSELECT, 4, 1);

	cm_wr(VIRTIO_PCI_STATUS, 1, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_DFSELECT, 4), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_GFSELECT, 4), 0);
	ck_assert_uint_eq(fake.resets, 1);
	ck_assert_uint_eq(status(), 0);
	ck_assert_uint_eq(fake.vdev.driver_features, 0);
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_GF, 4), 0);
	cm_wr(VIRTIO_PCI_GFSELECT, 4, 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_GF, 4), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_MSIX_CONFIG, 2), VIRTIO_PCI_NO_VECTOR);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SELECT, 2), 0);
	for (unsigned q = 0; q < NR_QUEUES; q++) {
		cm_wr(VIRTIO_PCI_Q_SELECT, 2, q);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_ENABLE, 2), 0);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SIZE, 2), MAX_QSIZE);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_DESC, 8), 0);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_AVAIL, 8), 0);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_USED, 8), 0);
		ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_MSIX, 2), VIRTIO_PCI_NO_VECTOR);
		ck_assert(!fake.vdev.queues[q].active);
	}
	/* MSI-X itself is PCI state: a virtio reset leaves it on. */
	ck_assert(msix_enabled(&t.msix));
	/* The queue fields are writable again, and the device comes up again. */
	driver_up(1ULL << VIRTIO_F_VERSION_1, 0, 0x10000);
	ck_assert_uint_eq(status(), ACK | DRV | FEAT | DRV_OK);
	ck_assert_uint_eq(fake.activates, 2);
	ck_assert(fake.vdev.queues[0].active);
}
END_TEST

/* ---- interrupts ---- */

START_TEST(msix_vectors)
{
	unsigned msix = find_cap(PCI_CAP_ID_MSIX, 0);
	uint64_t table = VIRTIO_PCI_MSIX_TABLE;

	ck_assert_uint_ne(msix, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_MSIX_CONFIG, 2), VIRTIO_PCI_NO_VECTOR);
	/* Vector numbers past the table read back as NO_VECTOR. */
	cm_wr(VIRTIO_PCI_MSIX_CONFIG, 2, NR_VECTORS);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_MSIX_CONFIG, 2), VIRTIO_PCI_NO_VECTOR);
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 0);
	cm_wr(VIRTIO_PCI_Q_MSIX, 2, NR_VECTORS);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_MSIX, 2), VIRTIO_PCI_NO_VECTOR);
	cm_wr(VIRTIO_PCI_Q_MSIX, 2, 0x8001);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_MSIX, 2), VIRTIO_PCI_NO_VECTOR);

	/* The driver's order: enable MSI-X (function masked), program, unmask, vectors. */
	cfg_wr(msix + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	for (unsigned v = 0; v < NR_VECTORS; v++) {
		ck_assert_uint_eq(bar_rd(table + v * 16 + 12, 4), MSIX_VECTOR_MASKED);
		bar_wr(table + v * 16, 8, 0xfee00000 + 0x1000 * v);
		bar_wr(table + v * 16 + 8, 4, 0x4030 + v);
	}
	ck_assert_uint_eq(bar_rd(table + 16, 8), 0xfee01000);
	ck_assert_uint_eq(bar_rd(table + 24, 4), 0x4031);
	bar_wr(table + 16 + 12, 4, 0); /* vector 1 unmasked; vector 0 stays masked */
	cfg_wr(msix + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE);
	cm_wr(VIRTIO_PCI_MSIX_CONFIG, 2, 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_MSIX_CONFIG, 2), 0);
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 0);
	cm_wr(VIRTIO_PCI_Q_MSIX, 2, 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_MSIX, 2), 1);
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_MSIX, 2), VIRTIO_PCI_NO_VECTOR);
	driver_up(1ULL << VIRTIO_F_VERSION_1, 0, 0x10000);

	/* A used buffer on queue 0: vector 1's message. */
	complete_one(0);
	ck_assert_uint_eq(nr_delivered, 1);
	ck_assert_uint_eq(delivered[0].address, 0xfee01000);
	ck_assert_uint_eq(delivered[0].data, 0x4031);
	ck_assert_uint_eq(intx_changes, 0);
	/* The transport hook directly, for queue 0 and for queue 1 (no vector: nothing). */
	fake.vdev.transport.interrupt(fake.vdev.transport.opaque, 0);
	fake.vdev.transport.interrupt(fake.vdev.transport.opaque, 1);
	ck_assert_uint_eq(nr_delivered, 2);
	/* A config change on masked vector 0: pending until unmasked. */
	virtio_config_changed(&fake.vdev);
	ck_assert_uint_eq(nr_delivered, 2);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_PBA, 8), 1);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_PBA, 4), 1);
	bar_wr(table + 12, 4, 0);
	ck_assert_uint_eq(nr_delivered, 3);
	ck_assert_uint_eq(delivered[2].address, 0xfee00000);
	ck_assert_uint_eq(delivered[2].data, 0x4030);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_PBA, 8), 0);
	/* Function mask holds queue interrupts too. */
	cfg_wr(msix + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	fake.vdev.transport.interrupt(fake.vdev.transport.opaque, 0);
	ck_assert_uint_eq(nr_delivered, 3);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_PBA, 8), 1 << 1);
	cfg_wr(msix + MSIX_CONTROL + 1, 1, MSIX_CTRL_ENABLE >> 8);
	ck_assert_uint_eq(nr_delivered, 4);
	ck_assert_uint_eq(delivered[3].data, 0x4031);
	ck_assert_uint_eq(intx_changes, 0); /* never INTx while MSI-X is on */

	/* Table accesses of other sizes, past the table, and to the PBA are ignored. */
	ck_assert_uint_eq(bar_rd(table + 16, 2), 0xffff);
	bar_wr(table + 16, 2, 0);
	bar_wr(table + 18, 4, 0);
	ck_assert_uint_eq(bar_rd(table + 16, 4), 0xfee01000);
	bar_wr(table + NR_VECTORS * 16 + 12, 4, 0);
	ck_assert_uint_eq(bar_rd(table + NR_VECTORS * 16, 8), 0);
	bar_wr(VIRTIO_PCI_MSIX_PBA, 8, UINT64_MAX);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_PBA, 8), 0);
}
END_TEST

/* Saves the device's snapshot part into a state file and reads its section back. */
static void snapshot_of(struct snapshot_parts *parts, struct snap_writer *w, struct snap_reader *r)
{
	const uint8_t *data;
	size_t len;
	char err[256] = "";

	ck_assert_uint_eq(parts->count, 1);
	snap_writer_init(w, SNAP_ARCH_HOST);
	snap_begin(w, parts->parts[0].tag, parts->parts[0].instance);
	ck_assert_int_eq(parts->parts[0].save(parts->parts[0].opaque, w, err, sizeof(err)), 0);
	snap_end(w);
	ck_assert_int_eq(snap_writer_finish(w, &data, &len, err, sizeof(err)), 0);
	ck_assert_int_eq(snap_reader_parse(r, data, len, SNAP_ARCH_HOST, err, sizeof(err)), 0);
}

/*
 * A live function with MSI-X on is saved, then the guest resets and scatters it (status 0,
 * MSI-X off, memory decoding off, the BAR moved); loading the snapshot puts all of it back:
 * the BAR decodes where it did, status and queue are live with their indices, the vectors are
 * routed and enabled, the live queue gets an interrupt at once (vector 1's message), and so
 * does the next completion. A device whose state is
 * not all in the core is noted as unsupported instead.
 */
START_TEST(snapshot_restores_the_function)
{
	static struct virtio_device_ops ops;
	struct snapshot_parts parts = {0}, none = {0};
	unsigned msix = find_cap(PCI_CAP_ID_MSIX, 0);
	uint64_t table = VIRTIO_PCI_MSIX_TABLE, saved_bar = bar;
	struct snap_writer w;
	struct snap_reader r;
	struct snap_cursor c;
	char err[256] = "";

	ck_assert_int_eq(virtio_pci_snapshot_add(&t, &none, 0), 0);
	ck_assert_uint_eq(none.count, 0);
	ck_assert_str_eq(none.unsupported, "fake");
	ops = fake_ops;
	ops.snapshots = true;
	fake.vdev.ops = &ops;
	cfg_wr(msix + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE);
	bar_wr(table + 16, 8, 0xfee01000);
	bar_wr(table + 24, 4, 0x4031);
	bar_wr(table + 28, 4, 0);
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 0);
	cm_wr(VIRTIO_PCI_Q_MSIX, 2, 1);
	driver_up(1ULL << VIRTIO_F_VERSION_1, 0, 0x10000);
	complete_one(0);
	ck_assert_uint_eq(nr_delivered, 1);
	ck_assert_int_eq(virtio_pci_snapshot_add(&t, &parts, 0), 0);
	snapshot_of(&parts, &w, &r);

	cm_wr(VIRTIO_PCI_STATUS, 1, 0);
	cfg_wr(msix + MSIX_CONTROL, 2, 0);
	cfg_wr(PCI_COMMAND, 2, 0);
	cfg_wr(PCI_BAR0, 4, (uint32_t)(saved_bar + 0x100000));
	ck_assert_uint_eq(t.pci.bars[VIRTIO_PCI_BAR].decoding, 0);

	ck_assert_int_eq(snap_section(&r, "VPCI", 0, &c), 0);
	ck_assert_msg(parts.parts[0].load(parts.parts[0].opaque, &c, err, sizeof(err)) == 0, "%s",
	              err);
	ck_assert_uint_eq(t.pci.bars[VIRTIO_PCI_BAR].decoding, saved_bar);
	ck_assert_uint_eq(status(), ACK | DRV | FEAT | DRV_OK);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_MSIX, 2), 1);
	ck_assert(msix_enabled(&t.msix));
	ck_assert_uint_eq(fake.vdev.queues[0].used_idx, 1);
	/* The restore's own interrupt of the live queue (one a snapshot may have missed). */
	ck_assert_uint_eq(nr_delivered, 2);
	ck_assert_uint_eq(delivered[1].address, 0xfee01000);
	ck_assert_uint_eq(delivered[1].data, 0x4031);
	complete_one(0);
	ck_assert_uint_eq(fake.vdev.queues[0].used_idx, 2);
	ck_assert_uint_eq(nr_delivered, 3);
	ck_assert_uint_eq(delivered[2].data, 0x4031);

	/* A section cut short is refused with a reason. */
	ck_assert_int_eq(snap_section(&r, "VPCI", 0, &c), 0);
	c.len = 300;
	ck_assert_int_ne(parts.parts[0].load(parts.parts[0].opaque, &c, err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, "shorter than expected"), "%s", err);
	fake.vdev.ops = &fake_ops;
	snap_reader_free(&r);
	snap_writer_free(&w);
	snapshot_parts_free(&parts);
	snapshot_parts_free(&none);
}
END_TEST

START_TEST(intx_and_isr)
{
	driver_up(1ULL << VIRTIO_F_VERSION_1, 1, 0x10000);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR, 1), 0);
	complete_one(1);
	ck_assert_uint_eq(intx_level, 1);
	ck_assert_uint_eq(intx_changes, 1);
	ck_assert_uint_eq(nr_delivered, 0);
	/* Bytes next to the ISR read zeros and do not acknowledge it. */
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR + 1, 1), 0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR + 2, 2), 0);
	ck_assert_uint_eq(intx_level, 1);
	/* Reading the ISR returns the bit, clears it and lowers the line. */
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR, 1), VIRTIO_ISR_QUEUE);
	ck_assert_uint_eq(intx_level, 0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR, 1), 0);
	ck_assert_uint_eq(intx_changes, 2);
	/* A config change: the config bit, as a 4-byte read too. */
	virtio_config_changed(&fake.vdev);
	virtio_config_changed(&fake.vdev);
	ck_assert_uint_eq(intx_level, 1);
	ck_assert_uint_eq(intx_changes, 3);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_CFG_GEN, 1), 2);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR, 4), VIRTIO_ISR_CONFIG);
	ck_assert_uint_eq(intx_level, 0);
	/* Writes to the ISR do nothing. */
	fake.vdev.transport.interrupt(fake.vdev.transport.opaque, 1);
	fake.vdev.isr |= VIRTIO_ISR_QUEUE;
	bar_wr(VIRTIO_PCI_ISR, 1, 0);
	ck_assert_uint_eq(intx_level, 1);
	/* A reset lowers the line. */
	cm_wr(VIRTIO_PCI_STATUS, 1, 0);
	ck_assert_uint_eq(intx_level, 0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR, 1), 0);
	/* INTx disabled in the command register: no assertion. */
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
	fake.vdev.transport.interrupt(fake.vdev.transport.opaque, 0);
	ck_assert_uint_eq(intx_level, 0);
}
END_TEST

/* Setting Interrupt Disable while INTx is asserted deasserts it (PCI 3.0, 6.2.2). */
START_TEST(intx_disable_deasserts)
{
	driver_up(1ULL << VIRTIO_F_VERSION_1, 1, 0x10000);
	complete_one(1);
	ck_assert_uint_eq(intx_level, 1);
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
	ck_assert_uint_eq(intx_level, 0);
}
END_TEST

/* The Interrupt Status bit of the status register follows INTx (PCI 3.0, 6.2.3). */
START_TEST(intx_status_bit)
{
	driver_up(1ULL << VIRTIO_F_VERSION_1, 1, 0x10000);
	ck_assert_uint_eq(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	complete_one(1);
	ck_assert_uint_eq(intx_level, 1);
	ck_assert_uint_eq(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, PCI_STATUS_INTERRUPT);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR, 1), VIRTIO_ISR_QUEUE);
	ck_assert_uint_eq(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
}
END_TEST

/* queue_size is checked when DRIVER_OK arrives: not a power of two, or over the maximum. */
START_TEST(queue_size_checked)
{
	static const uint16_t bad[] = {12, MAX_QSIZE * 2, 0xffff, 3};

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		cm_wr(VIRTIO_PCI_STATUS, 1, 0);
		cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV);
		cm_wr(VIRTIO_PCI_GFSELECT, 4, 1);
		cm_wr(VIRTIO_PCI_GF, 4, 1); /* VERSION_1 */
		cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV | FEAT);
		vrb_init(&rb, &mem, 0x10000, 0x40000, 16);
		cm_wr(VIRTIO_PCI_Q_SELECT, 2, 0);
		cm_wr(VIRTIO_PCI_Q_SIZE, 2, bad[i]);
		cm_wr(VIRTIO_PCI_Q_DESC, 8, rb.desc);
		cm_wr(VIRTIO_PCI_Q_AVAIL, 8, rb.avail);
		cm_wr(VIRTIO_PCI_Q_USED, 8, rb.used);
		cm_wr(VIRTIO_PCI_Q_ENABLE, 2, 1);
		cm_wr(VIRTIO_PCI_STATUS, 1, ACK | DRV | FEAT | DRV_OK);
		ck_assert_uint_eq(status() & VIRTIO_STATUS_NEEDS_RESET, VIRTIO_STATUS_NEEDS_RESET);
		ck_assert(!fake.vdev.queues[0].active);
		ck_assert_uint_eq(fake.activates, 0);
	}
	/* After a reset, a good size works. */
	cm_wr(VIRTIO_PCI_STATUS, 1, 0);
	ck_assert_uint_eq(status(), 0);
	driver_up(1ULL << VIRTIO_F_VERSION_1, 0, 0x10000);
	ck_assert_uint_eq(status(), ACK | DRV | FEAT | DRV_OK);
	ck_assert_uint_eq(fake.activates, 1);
}
END_TEST

/* Accesses that start inside a common configuration field are not that field. */
START_TEST(common_odd_offsets)
{
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 1);
	cm_wr(VIRTIO_PCI_Q_SELECT + 1, 2, 0);
	cm_wr(VIRTIO_PCI_Q_SELECT - 1, 2, 0);
	cm_wr(VIRTIO_PCI_Q_SIZE + 1, 1, 0);
	cm_wr(VIRTIO_PCI_MSIX_CONFIG + 1, 2, 0);
	cm_wr(VIRTIO_PCI_STATUS + 1, 2, ACK);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SELECT, 2), 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SIZE, 2), MAX_QSIZE);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_MSIX_CONFIG, 2), VIRTIO_PCI_NO_VECTOR);
	ck_assert_uint_eq(status(), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_NUM_QUEUES + 1, 2), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SIZE + 1, 2), 0);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_NOTIFY_OFF + 1, 1), 0);
}
END_TEST

/* Interrupt Status reports a pending INTx even while Interrupt Disable holds the line low. */
START_TEST(intx_status_while_disabled)
{
	driver_up(1ULL << VIRTIO_F_VERSION_1, 1, 0x10000);
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
	complete_one(1);
	ck_assert_uint_eq(intx_level, 0);
	ck_assert_uint_eq(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, PCI_STATUS_INTERRUPT);
	ck_assert_uint_eq(cf8_rd(PCI_COMMAND, 4) >> 16 & PCI_STATUS_INTERRUPT,
	                  PCI_STATUS_INTERRUPT);
	/* A dword write over command and status keeps the (read-only) status bit. */
	cfg_wr(PCI_COMMAND, 4, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
	ck_assert_uint_eq(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, PCI_STATUS_INTERRUPT);
	/* Clearing Interrupt Disable asserts the pending interrupt. */
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	ck_assert_uint_eq(intx_level, 1);
	ck_assert_uint_eq(intx_changes, 1);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR, 1), VIRTIO_ISR_QUEUE);
	ck_assert_uint_eq(intx_level, 0);
	ck_assert_uint_eq(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	/* Interrupt Disable set and cleared with nothing pending: the line stays low. */
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	ck_assert_uint_eq(intx_changes, 2);
}
END_TEST

/* Enabling MSI-X stops the function from using INTx (PCI 3.0, 6.8.2). */
START_TEST(msix_enable_lowers_intx)
{
	unsigned msix = find_cap(PCI_CAP_ID_MSIX, 0);

	driver_up(1ULL << VIRTIO_F_VERSION_1, 1, 0x10000);
	complete_one(1);
	ck_assert_uint_eq(intx_level, 1);
	cfg_wr(msix + MSIX_CONTROL, 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	ck_assert_uint_eq(intx_level, 0);
	/* Interrupts now go to MSI-X (no vector assigned: nothing), not INTx. */
	fake.vdev.transport.interrupt(fake.vdev.transport.opaque, 1);
	ck_assert_uint_eq(intx_level, 0);
	ck_assert_uint_eq(nr_delivered, 0);
	/* MSI-X off again: the interrupt the driver never acknowledged comes back. */
	cfg_wr(msix + MSIX_CONTROL, 2, 0);
	ck_assert_uint_eq(intx_level, 1);
	cm_wr(VIRTIO_PCI_STATUS, 1, 0);
	ck_assert_uint_eq(intx_level, 0);
	ck_assert_uint_eq(intx_changes, 4);
}
END_TEST

/* ---- device config and the PCI configuration access capability ---- */

START_TEST(device_config)
{
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_DEVICE, 4), 0xc3c2c1c0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_DEVICE + 10, 2), 0xcbca);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_DEVICE + 8, 8), 0xcbcac9c8); /* zeros past the end */
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_DEVICE + 0xffc, 4), 0);
	bar_wr(VIRTIO_PCI_DEVICE + 4, 4, 0x11223344);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_DEVICE + 4, 4), 0x11223344);
	bar_wr(VIRTIO_PCI_DEVICE + 4, 8, 0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_DEVICE + 8, 4), 0xcccccccc); /* put back */
	bar_wr(VIRTIO_PCI_DEVICE + 0x20, 4, 1);                          /* past the end */
	ck_assert_uint_eq(fake.config_writes, 2);
}
END_TEST

static void cfg_window(unsigned cap, uint8_t bar_no, uint32_t offset, uint32_t length)
{
	cfg_wr(cap + CAP_BAR, 1, bar_no);
	cfg_wr(cap + CAP_OFFSET, 4, offset);
	cfg_wr(cap + CAP_LENGTH, 4, length);
}

START_TEST(pci_cfg_access)
{
	static const struct {
		uint8_t bar;
		uint32_t offset, length;
	} bad[] = {
	        {1, VIRTIO_PCI_DEVICE, 4},
	        {5, VIRTIO_PCI_DEVICE, 4},
	        {0xff, VIRTIO_PCI_DEVICE, 4},
	        {0, VIRTIO_PCI_DEVICE, 3},
	        {0, VIRTIO_PCI_DEVICE, 0},
	        {0, VIRTIO_PCI_DEVICE, 8},
	        {0, VIRTIO_PCI_DEVICE, 0x10000},
	        {0, VIRTIO_PCI_DEVICE + 1, 2},
	        {0, VIRTIO_PCI_DEVICE + 2, 4},
	        {0, VIRTIO_PCI_DEVICE + 1, 4},
	        {0, VIRTIO_PCI_BAR_SIZE, 4},
	        {0, VIRTIO_PCI_BAR_SIZE - 2, 4},
	        {0, 0xfffffffc, 4},
	        {0, 0xffffffff, 1},
	        {0, VIRTIO_PCI_DEVICE + 0x10000, 4},
	};
	unsigned cap = find_cap(PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);

	ck_assert_uint_ne(cap, 0);
	/* Its data register reads the BAR: from the first write to the window, reads exit. */
	ck_assert(!pci_host_ecam_reads_exit(&host));
	cfg_wr(cap + CAP_BAR, 1, 0);
	ck_assert(pci_host_ecam_reads_exit(&host));
	/* num_queues through config space: ECAM and CF8, 2 and 4 bytes. */
	cfg_window(cap, 0, VIRTIO_PCI_NUM_QUEUES, 2);
	ck_assert_uint_eq(cfg_rd(cap + CAP_BAR, 1), 0);
	ck_assert_uint_eq(cfg_rd(cap + CAP_OFFSET, 4), VIRTIO_PCI_NUM_QUEUES);
	ck_assert_uint_eq(cfg_rd(cap + CAP_LENGTH, 4), 2);
	ck_assert_uint_eq(cfg_rd(cap + CAP_DATA, 2), NR_QUEUES);
	ck_assert_uint_eq(cfg_rd(cap + CAP_DATA, 4) & 0xffff, NR_QUEUES);
	ck_assert_uint_eq(cf8_rd(cap + CAP_DATA, 4) & 0xffff, NR_QUEUES);
	/* The device config, 4 bytes. */
	cfg_window(cap, 0, VIRTIO_PCI_DEVICE, 4);
	ck_assert_uint_eq(cfg_rd(cap + CAP_DATA, 4), 0xc3c2c1c0);
	/* A write: queue_select. */
	cfg_window(cap, 0, VIRTIO_PCI_Q_SELECT, 2);
	cfg_wr(cap + CAP_DATA, 4, 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SELECT, 2), 1);
	ck_assert_uint_eq(cfg_rd(cap + CAP_DATA, 2), 1);
	/* A doorbell through config space. */
	cfg_window(cap, 0, VIRTIO_PCI_NOTIFY + VIRTIO_PCI_NOTIFY_MULT, 2);
	cfg_wr(cap + CAP_DATA, 2, 1);
	run_loop();
	ck_assert_uint_eq(fake.notifies[1], 1);
	/* Reading the ISR through it acknowledges it. */
	driver_up(1ULL << VIRTIO_F_VERSION_1, 0, 0x10000);
	complete_one(0);
	ck_assert_uint_eq(intx_level, 1);
	cfg_window(cap, 0, VIRTIO_PCI_ISR, 1);
	ck_assert_uint_eq(cfg_rd(cap + CAP_DATA, 1), VIRTIO_ISR_QUEUE);
	ck_assert_uint_eq(intx_level, 0);

	/* Bad windows onto the (writable) device config: another BAR, a bad length, misaligned,
	 * past the BAR. Nothing reaches the device. */
	cm_wr(VIRTIO_PCI_Q_SELECT, 2, 0);
	fake.vdev.isr = VIRTIO_ISR_QUEUE;
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		cfg_window(cap, bad[i].bar, bad[i].offset, bad[i].length);
		cfg_wr(cap + CAP_DATA, 4, 0x55555555);
		cfg_wr(cap + CAP_DATA, 2, 0x6666);
		cfg_wr(cap + CAP_DATA + 3, 1, 0x77);
	}
	ck_assert_uint_eq(fake.config_writes, 0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_DEVICE, 8), 0xc7c6c5c4c3c2c1c0ULL);
	cfg_window(cap, 1, VIRTIO_PCI_Q_SELECT, 2);
	cfg_wr(cap + CAP_DATA, 2, 1);
	ck_assert_uint_eq(cm_rd(VIRTIO_PCI_Q_SELECT, 2), 0);
	cfg_window(cap, 1, VIRTIO_PCI_ISR, 1);
	cfg_rd(cap + CAP_DATA, 1);
	ck_assert_uint_eq(fake.vdev.isr, VIRTIO_ISR_QUEUE);
	/* Touching only the window's fields does not access the BAR. */
	cfg_window(cap, 0, VIRTIO_PCI_ISR, 1);
	cfg_rd(cap, 4);
	cfg_rd(cap + CAP_LENGTH, 4);
	ck_assert_uint_eq(fake.vdev.isr, VIRTIO_ISR_QUEUE);
	/* The rest of the capability is read-only. */
	cfg_wr(cap + CAP_CFG_TYPE, 1, 1);
	cfg_wr(cap + CAP_LEN, 1, 0);
	ck_assert_uint_eq(cfg_rd(cap + CAP_CFG_TYPE, 1), VIRTIO_PCI_CAP_PCI_CFG);
	ck_assert_uint_eq(cfg_rd(cap + CAP_LEN, 1), 20);
}
END_TEST

START_TEST(attach_errors)
{
	struct virtio_pci t2;
	struct fake other;
	struct virtio_device_ops many = fake_ops;

	virtio_dev_init(&other.vdev, &fake_ops, &mem, 0, other.config, sizeof(other.config));
	ck_assert_int_eq(virtio_pci_attach(&t2, &other.vdev, &host, 3, NULL, 5, &loop), -EINVAL);
	ck_assert_int_eq(virtio_pci_attach(&t2, &other.vdev, &host, -1, NULL, 256, &loop), -EINVAL);
	/* No event loop to serve notifications. */
	ck_assert_int_eq(virtio_pci_attach(&t2, &other.vdev, &host, -1, NULL, 5, NULL), -EINVAL);
	other.vdev.config_size = VIRTIO_PCI_DEVICE_SIZE + 1;
	ck_assert_int_eq(virtio_pci_attach(&t2, &other.vdev, &host, -1, NULL, 5, &loop), -EINVAL);
	other.vdev.config_size = sizeof(other.config);
	many.num_queues = VIRTIO_MAX_QUEUES + 1;
	other.vdev.ops = &many;
	ck_assert_int_eq(virtio_pci_attach(&t2, &other.vdev, &host, -1, NULL, 5, &loop), -EINVAL);
	ck_assert_ptr_null(other.vdev.transport.interrupt);
	ck_assert_uint_eq(mem_rd(ECAM + (2 << 15), 4), 0xffffffff);
	/* A second device takes the next slot and its own BAR. */
	other.vdev.ops = &fake_ops;
	ck_assert_int_eq(virtio_pci_attach(&t2, &other.vdev, &host, -1, NULL, 5, &loop), 0);
	ck_assert_uint_eq(t2.pci.slot, slot + 1);
	ck_assert_uint_ne(pci_config_read32(&t2.pci, PCI_BAR0 + 4), 0);
	ck_assert_ptr_nonnull(other.vdev.transport.interrupt);
	virtio_pci_detach(&t2);
	ck_assert_ptr_null(other.vdev.transport.interrupt);
	virtio_dev_destroy(&other.vdev);
}
END_TEST

static Suite *virtio_pci_suite(void)
{
	Suite *s = suite_create("virtio_pci");
	TCase *tc = tcase_create("transport");
	TCase *irq = tcase_create("interrupts");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, identity);
	tcase_add_test(tc, virtio_capabilities);
	tcase_add_test(tc, device_features);
	tcase_add_test(tc, feature_negotiation);
	tcase_add_test(tc, queue_setup_and_activate);
	tcase_add_test(tc, ring_address_halves);
	tcase_add_test(tc, doorbells);
	tcase_add_test(tc, doorbells_served_on_the_loop);
	tcase_add_test(tc, queue_select_out_of_range);
	tcase_add_test(tc, read_only_fields);
	tcase_add_test(tc, queue_frozen_after_driver_ok);
	tcase_add_test(tc, queue_size_checked);
	tcase_add_test(tc, common_odd_offsets);
	tcase_add_test(tc, reset_really_resets);
	tcase_add_test(tc, device_config);
	tcase_add_test(tc, pci_cfg_access);
	tcase_add_test(tc, attach_errors);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(irq, setup, teardown);
	tcase_add_test(irq, msix_vectors);
	tcase_add_test(irq, snapshot_restores_the_function);
	tcase_add_test(irq, intx_and_isr);
	tcase_add_test(irq, intx_status_while_disabled);
	tcase_add_test(irq, msix_enable_lowers_intx);
	suite_add_tcase(s, irq);
	TCase *bugs = tcase_create("fixed_bugs");

	tcase_add_checked_fixture(bugs, setup, teardown);
	tcase_add_test(bugs, intx_disable_deasserts);
	tcase_add_test(bugs, intx_status_bit);
	suite_add_tcase(s, bugs);
	return s;
}

int main(void)
{
	return unit_run(virtio_pci_suite());
}
