/*
 * The PCI host bridge, driven through the port I/O and MMIO buses as a guest would: config
 * space through 0xCF8/0xCFC and ECAM, BAR placement, sizing, decoding and moves, the capability
 * list (with an MSI-X capability; MSI-X itself is test_msix.c's), write masks, and hostile
 * config and window accesses.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/ecam_mirror.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "tests/support/pci_layout.h"
#include "tests/unit/unit.h"
#include "vmm/bus.h"
#include "vmm/util.h"

#define ECAM      0xe0000000ULL
#define CF8       0xcf8
#define CFC       0xcfc
#define MMIO32    0xc0000000ULL
#define MMIO32_SZ (256 * MIB)
#define MMIO64    (4 * GIB)
#define MMIO64_SZ (16 * GIB)
#define CF8_EN    0x80000000u

#define BAR0_SIZE   0x1000
#define BAR2_SIZE   0x4000
#define MSIX_NR     4
#define MSIX_TABLE  0x2000
#define MSIX_PBA    0x3000
#define PM_CAP_ID   0x01
#define PM_CAP_LEN  8
#define MSIX_CTRL   2 /* offsets inside the MSI-X capability */
#define MSIX_TBL    4
#define MSIX_PBAOFF 8

struct move {
	unsigned bar;
	uint64_t addr;
};

/* A function with a 32-bit BAR 0, a 64-bit prefetchable BAR 2 (MSI-X table and PBA) and two
 * capabilities (a PM-like one, then MSI-X). */
struct tdev {
	struct pci_device pci;
	struct msix msix;
	uint8_t bar0[BAR0_SIZE];
	uint8_t bar2[BAR2_SIZE];
	unsigned bar_reads[PCI_NUM_BARS], bar_writes[PCI_NUM_BARS];
	struct move moves[32];
	unsigned nr_moves;
	unsigned config_reads, config_writes;
};

static struct bus pio, mmio;
static struct pci_host host;
static struct tdev dev;
static const struct pci_layout layout = {
        .ecam_base = ECAM,
        .ecam_size = 1 * MIB,
        .config_port = CF8,
        .mmio32_base = MMIO32,
        .mmio32_size = MMIO32_SZ,
        .mmio64_base = MMIO64,
        .mmio64_size = MMIO64_SZ,
};

static int bar0_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct tdev *d = opaque;

	ck_assert_uint_le(offset + size, BAR0_SIZE);
	d->bar_reads[0]++;
	memcpy(data, d->bar0 + offset, size);
	return 0;
}

static int bar0_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct tdev *d = opaque;

	ck_assert_uint_le(offset + size, BAR0_SIZE);
	d->bar_writes[0]++;
	memcpy(d->bar0 + offset, data, size);
	return 0;
}

static int bar2_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct tdev *d = opaque;

	ck_assert_uint_le(offset + size, BAR2_SIZE);
	d->bar_reads[2]++;
	if (offset >= MSIX_TABLE && offset < MSIX_PBA)
		msix_table_read(&d->msix, offset - MSIX_TABLE, data, size);
	else if (offset >= MSIX_PBA)
		msix_pba_read(&d->msix, offset - MSIX_PBA, data, size);
	else
		memcpy(data, d->bar2 + offset, size);
	return 0;
}

static int bar2_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct tdev *d = opaque;

	ck_assert_uint_le(offset + size, BAR2_SIZE);
	d->bar_writes[2]++;
	if (offset >= MSIX_TABLE && offset < MSIX_PBA)
		msix_table_write(&d->msix, offset - MSIX_TABLE, data, size);
	else if (offset < MSIX_TABLE)
		memcpy(d->bar2 + offset, data, size);
	return 0; /* the PBA is read-only */
}

static const struct bus_ops bar0_ops = {.read = bar0_read, .write = bar0_write};
static const struct bus_ops bar2_ops = {.read = bar2_read, .write = bar2_write};

static void tdev_config_read(struct pci_device *d, unsigned offset, unsigned size)
{
	(void)offset, (void)size;
	container_of(d, struct tdev, pci)->config_reads++;
}

static void tdev_config_written(struct pci_device *d, unsigned offset, unsigned size)
{
	struct tdev *t = container_of(d, struct tdev, pci);

	t->config_writes++;
	msix_config_written(&t->msix, offset, size);
}

static void tdev_bar_moved(struct pci_device *d, unsigned bar, uint64_t addr)
{
	struct tdev *t = container_of(d, struct tdev, pci);

	ck_assert_uint_lt(t->nr_moves, ARRAY_SIZE(t->moves));
	t->moves[t->nr_moves++] = (struct move){bar, addr};
}

static const struct pci_device_ops tdev_ops = {
        .config_read = tdev_config_read,
        .config_written = tdev_config_written,
        .bar_moved = tdev_bar_moved,
};

static void setup(void)
{
	static const uint8_t pm_cap[PM_CAP_LEN] = {PM_CAP_ID, 0xee, 0x03, 0x7e,
	                                           0x00,      0x00, 0x5a, 0xa5};
	static const uint8_t pm_wmask[PM_CAP_LEN] = {0xff, 0xff, 0, 0, 0xff, 0x03, 0, 0};

	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	ck_assert_int_eq(pci_host_init(&host, &layout, &pio, &mmio), 0);
	/* Every ECAM read below is also checked against the copy (mem_rd). */
	ck_assert_int_eq(pci_host_map_ecam(&host, -1, 0), 0);
	memset(&dev, 0, sizeof(dev));
	pci_device_init(&dev.pci, 0x1234, 0x5678, 0x0c0330, 0x42, 0xabcd, 0x0102, &tdev_ops, NULL);
	pci_device_set_intx(&dev.pci, 1, 10);
	ck_assert_int_eq(pci_device_add_bar(&dev.pci, 0, BAR0_SIZE, 0, &bar0_ops, &dev), 0);
	ck_assert_int_eq(pci_device_add_bar(&dev.pci, 2, BAR2_SIZE,
	                                    PCI_BAR_64BIT | PCI_BAR_PREFETCH, &bar2_ops, &dev),
	                 0);
	ck_assert_int_eq(pci_device_add_capability(&dev.pci, pm_cap, sizeof(pm_cap), pm_wmask),
	                 PCI_CAP_START);
	ck_assert_int_eq(msix_init(&dev.msix, &dev.pci, MSIX_NR, 2, MSIX_TABLE, MSIX_PBA, NULL), 0);
	for (unsigned i = 0; i < BAR0_SIZE; i++)
		dev.bar0[i] = (uint8_t)(i * 7 + 1);
	for (unsigned i = 0; i < BAR2_SIZE; i++)
		dev.bar2[i] = (uint8_t)(i * 13 + 5);
	ck_assert_int_eq(pci_host_add_device(&host, &dev.pci), 0);
	ck_assert_uint_eq(dev.pci.slot, 1);
}

static void teardown(void)
{
	msix_destroy(&dev.msix);
	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
}

/* ---- guest-side accessors ---- */

static uint64_t mem_rd(uint64_t addr, unsigned size)
{
	uint64_t v = 0, mirrored;

	ck_assert_int_eq(bus_access(&mmio, addr, &v, size, false), 0);
	v = le64toh(v);
	/* Where KVM would serve the read from the host's ECAM copy, the copy says the same. */
	if (addr >= ECAM && addr - ECAM < host.layout.ecam_size &&
	    test_pci_mirror_read(&host, addr - ECAM, size, &mirrored))
		ck_assert_uint_eq(mirrored, v);
	return v;
}

static void mem_wr(uint64_t addr, unsigned size, uint64_t v)
{
	v = htole64(v);
	ck_assert_int_eq(bus_access(&mmio, addr, &v, size, true), 0);
}

static uint32_t io_rd(uint16_t port, unsigned size)
{
	uint32_t v = 0;

	ck_assert_int_eq(bus_access(&pio, port, &v, size, false), 0);
	return le32toh(v);
}

static void io_wr(uint16_t port, unsigned size, uint32_t v)
{
	v = htole32(v);
	ck_assert_int_eq(bus_access(&pio, port, &v, size, true), 0);
}

static uint64_t ecam_addr(unsigned slot, unsigned fn, unsigned reg)
{
	return ECAM + ((uint64_t)slot << 15) + ((uint64_t)fn << 12) + reg;
}

static uint32_t ecam_rd(unsigned slot, unsigned reg, unsigned size)
{
	return (uint32_t)mem_rd(ecam_addr(slot, 0, reg), size);
}

static void ecam_wr(unsigned slot, unsigned reg, unsigned size, uint32_t v)
{
	mem_wr(ecam_addr(slot, 0, reg), size, v);
}

static uint32_t cf8_rd(unsigned slot, unsigned reg, unsigned size)
{
	io_wr(CF8, 4, CF8_EN | slot << 11 | (reg & 0xfc));
	return io_rd((uint16_t)(CFC + (reg & 3)), size);
}

static void cf8_wr(unsigned slot, unsigned reg, unsigned size, uint32_t v)
{
	io_wr(CF8, 4, CF8_EN | slot << 11 | (reg & 0xfc));
	io_wr((uint16_t)(CFC + (reg & 3)), size, v);
}

static uint64_t bar_addr(unsigned slot, unsigned bar)
{
	uint32_t lo = ecam_rd(slot, PCI_BAR0 + 4 * bar, 4);
	uint64_t addr = lo & ~0xfull;

	if (lo & PCI_BAR_MEM_TYPE_64)
		addr |= (uint64_t)ecam_rd(slot, PCI_BAR0 + 4 * bar + 4, 4) << 32;
	return addr;
}

static void memory_enable(unsigned slot, bool on)
{
	uint16_t cmd = (uint16_t)ecam_rd(slot, PCI_COMMAND, 2);

	cmd = on ? cmd | PCI_COMMAND_MEMORY : cmd & ~PCI_COMMAND_MEMORY;
	ecam_wr(slot, PCI_COMMAND, 2, cmd);
}

static void assert_moves(const struct move *want, unsigned n)
{
	ck_assert_uint_eq(dev.nr_moves, n);
	for (unsigned i = 0; i < n; i++) {
		ck_assert_uint_eq(dev.moves[i].bar, want[i].bar);
		ck_assert_uint_eq(dev.moves[i].addr, want[i].addr);
	}
	dev.nr_moves = 0;
}

static uint32_t le32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t le64_at(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* ---- config space ---- */

START_TEST(host_bridge_identity)
{
	ck_assert_uint_eq(cf8_rd(0, PCI_VENDOR_ID, 2), 0x1b36);
	ck_assert_uint_eq(ecam_rd(0, PCI_VENDOR_ID, 2), 0x1b36);
	ck_assert_uint_eq(cf8_rd(0, PCI_VENDOR_ID, 4), 0x00081b36);
	ck_assert_uint_eq(ecam_rd(0, PCI_VENDOR_ID, 4), 0x00081b36);
	ck_assert_uint_eq(cf8_rd(0, PCI_DEVICE_ID, 2), 0x0008);
	ck_assert_uint_eq(cf8_rd(0, PCI_REVISION_ID, 4), 0x06000000); /* class: host bridge */
	ck_assert_uint_eq(ecam_rd(0, PCI_HEADER_TYPE, 1), 0);
	ck_assert_uint_eq(ecam_rd(0, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
	ck_assert_uint_eq(ecam_rd(0, PCI_CAPABILITY_PTR, 1), 0);
	for (unsigned b = 0; b < PCI_NUM_BARS; b++)
		ck_assert_uint_eq(ecam_rd(0, PCI_BAR0 + 4 * b, 4), 0);
	/* Our device, both ways, every width. */
	ck_assert_uint_eq(cf8_rd(1, PCI_VENDOR_ID, 4), 0x56781234);
	ck_assert_uint_eq(ecam_rd(1, PCI_VENDOR_ID, 4), 0x56781234);
	ck_assert_uint_eq(cf8_rd(1, PCI_DEVICE_ID, 2), 0x5678);
	ck_assert_uint_eq(cf8_rd(1, PCI_DEVICE_ID + 1, 1), 0x56);
	ck_assert_uint_eq(cf8_rd(1, PCI_REVISION_ID, 4), 0x0c033042);
	ck_assert_uint_eq(ecam_rd(1, PCI_SUBSYS_VENDOR, 4), 0x0102abcd);
	ck_assert_uint_eq(ecam_rd(1, PCI_INTERRUPT_LINE, 2), 0x010a);
	ck_assert_uint_eq(mem_rd(ecam_addr(1, 0, 0), 8), 0x0010000056781234ULL);
	ck_assert_uint_gt(dev.config_reads, 0);
}
END_TEST

START_TEST(empty_slots_read_ones)
{
	for (unsigned slot = 2; slot < PCI_SLOTS; slot += 5) {
		ck_assert_uint_eq(cf8_rd(slot, PCI_VENDOR_ID, 4), 0xffffffff);
		ck_assert_uint_eq(cf8_rd(slot, PCI_VENDOR_ID, 2), 0xffff);
		ck_assert_uint_eq(ecam_rd(slot, PCI_VENDOR_ID, 4), 0xffffffff);
		ck_assert_uint_eq(ecam_rd(slot, PCI_HEADER_TYPE, 1), 0xff);
		ecam_wr(slot, PCI_COMMAND, 2, PCI_COMMAND_MEMORY); /* nobody there: dropped */
		cf8_wr(slot, PCI_BAR0, 4, 0xffffffff);
		ck_assert_uint_eq(ecam_rd(slot, PCI_COMMAND, 4), 0xffffffff);
	}
	ck_assert_uint_eq(ecam_rd(31, PCI_VENDOR_ID, 4), 0xffffffff);
}
END_TEST

/* The ECAM copy: empty slots all-ones, extended space zeros, functions 1-7 not mirrored. */
START_TEST(ecam_mirror_layout)
{
	uint64_t v;

	ck_assert(!pci_host_ecam_reads_exit(&host));
	for (unsigned slot = 2; slot < PCI_SLOTS; slot++)
		for (unsigned reg = 0; reg < PCI_ECAM_FN_SIZE; reg += 8) {
			ck_assert(
			        test_pci_mirror_read(&host, ecam_addr(slot, 0, reg) - ECAM, 8, &v));
			ck_assert_uint_eq(v, ~0ULL);
		}
	for (unsigned reg = PCI_CONFIG_SIZE; reg < PCI_ECAM_FN_SIZE; reg += 4)
		ck_assert_uint_eq(ecam_rd(1, reg, 4), 0);
	ck_assert(!test_pci_mirror_read(&host, ecam_addr(1, 1, 0) - ECAM, 4, &v));
	ck_assert(!test_pci_mirror_read(&host, PCI_ECAM_FN_SIZE - 2, 4, &v));
	/* A device plugged in after the copy was made is in it. */
	static struct pci_device late;
	pci_device_init(&late, 0x1111, 0x2222, 0x020000, 1, 0, 0, NULL, NULL);
	ck_assert_int_eq(pci_host_add_device(&host, &late), 0);
	ck_assert(test_pci_mirror_read(&host, ecam_addr(late.slot, 0, 0) - ECAM, 4, &v));
	ck_assert_uint_eq(v, 0x22221111);
}
END_TEST

/*
 * Interrupt Status is the one bit that changes without a config write: set and cleared in
 * the copy at once, and kept by config writes that copy the rest of the function.
 */
START_TEST(ecam_mirror_interrupt_status)
{
	ck_assert_uint_eq(ecam_rd(1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);
	pci_device_set_interrupt_status(&dev.pci, true);
	ck_assert_uint_eq(ecam_rd(1, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, PCI_STATUS_INTERRUPT);
	ck_assert_uint_eq(cf8_rd(1, PCI_COMMAND, 4) >> 16 & PCI_STATUS_INTERRUPT,
	                  PCI_STATUS_INTERRUPT);
	ecam_wr(1, PCI_COMMAND, 4, 0xffffffff); /* status is read-only: the bit stays */
	ck_assert_uint_eq(ecam_rd(1, PCI_STATUS, 2), PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
	pci_device_set_interrupt_status(&dev.pci, false);
	ck_assert_uint_eq(ecam_rd(1, PCI_STATUS, 2), PCI_STATUS_CAP_LIST);
}
END_TEST

#define TOGGLES 20000

static void *toggle_interrupt_status(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < TOGGLES; i++)
		pci_device_set_interrupt_status(&dev.pci, i % 2 == 0);
	pci_device_set_interrupt_status(&dev.pci, true);
	return NULL;
}

/*
 * A device's interrupt thread flips Interrupt Status while a vCPU's config writes copy the
 * function into the ECAM copy (the TSan run checks they never touch the same byte unsafely);
 * the copy ends with the bit the device set last.
 */
START_TEST(ecam_mirror_status_races_writes)
{
	pthread_t thread;
	uint64_t v;

	ck_assert_int_eq(pthread_create(&thread, NULL, toggle_interrupt_status, NULL), 0);
	for (unsigned i = 0; i < TOGGLES / 10; i++)
		ecam_wr(1, PCI_INTERRUPT_LINE, 1, i & 0xff);
	ck_assert_int_eq(pthread_join(thread, NULL), 0);
	ck_assert(test_pci_mirror_read(&host, ecam_addr(1, 0, PCI_STATUS) - ECAM, 2, &v));
	ck_assert_uint_eq(v, PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
}
END_TEST

/* A device whose config changes when read makes every later ECAM read exit. */
START_TEST(ecam_mirror_trapped)
{
	pthread_mutex_lock(&host.lock);
	pci_device_trap_config_reads(&dev.pci);
	pthread_mutex_unlock(&host.lock);
	ck_assert(pci_host_ecam_reads_exit(&host));
	dev.pci.config[PCI_INTERRUPT_LINE] = 0x33; /* a live byte the copy never saw */
	ck_assert_uint_eq(ecam_rd(1, PCI_INTERRUPT_LINE, 1), 0x33);
}
END_TEST

START_TEST(bar_placement)
{
	static struct pci_device second;
	uint64_t b0 = bar_addr(1, 0), b2 = bar_addr(1, 2), s0, s2;

	/* 32-bit BAR in the 32-bit window, 64-bit one in the 64-bit window, aligned. */
	ck_assert_uint_ge(b0, MMIO32);
	ck_assert_uint_le(b0 + BAR0_SIZE, MMIO32 + MMIO32_SZ);
	ck_assert_uint_eq(b0 % BAR0_SIZE, 0);
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0, 4) & 0xf, 0);
	ck_assert_uint_ge(b2, MMIO64);
	ck_assert_uint_le(b2 + BAR2_SIZE, MMIO64 + MMIO64_SZ);
	ck_assert_uint_eq(b2 % BAR2_SIZE, 0);
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0 + 8, 4) & 0xf,
	                  PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0 + 4, 4), 0); /* not implemented */
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0 + 16, 4), 0);
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0 + 20, 4), 0);
	ck_assert_uint_eq(ecam_rd(1, PCI_COMMAND, 2), 0); /* nothing decodes yet */

	/* A second function with bigger BARs: each naturally aligned, no overlap. */
	pci_device_init(&second, 0x1234, 0x9999, 0xff0000, 0, 0, 0, NULL, NULL);
	ck_assert_int_eq(pci_device_add_bar(&second, 1, 64 * KIB, 0, &bar0_ops, NULL), 0);
	ck_assert_int_eq(pci_device_add_bar(&second, 4, 1 * MIB, PCI_BAR_64BIT, &bar0_ops, NULL),
	                 0);
	ck_assert_int_eq(pci_host_add_device(&host, &second), 0);
	ck_assert_uint_eq(second.slot, 2);
	s0 = bar_addr(2, 1);
	s2 = bar_addr(2, 4);
	ck_assert_uint_eq(s0 % (64 * KIB), 0);
	ck_assert_uint_ge(s0, MMIO32);
	ck_assert(s0 >= b0 + BAR0_SIZE || s0 + 64 * KIB <= b0);
	ck_assert_uint_le(s0 + 64 * KIB, MMIO32 + MMIO32_SZ);
	ck_assert_uint_eq(s2 % MIB, 0);
	ck_assert_uint_ge(s2, MMIO64);
	ck_assert(s2 >= b2 + BAR2_SIZE || s2 + MIB <= b2);
	ck_assert_uint_le(s2 + MIB, MMIO64 + MMIO64_SZ);
	ck_assert_uint_eq(ecam_rd(2, PCI_BAR0 + 16, 4) & 0xf, PCI_BAR_MEM_TYPE_64);
}
END_TEST

START_TEST(bar_sizing)
{
	uint32_t b0 = ecam_rd(1, PCI_BAR0, 4), b2lo = ecam_rd(1, PCI_BAR0 + 8, 4),
	         b2hi = ecam_rd(1, PCI_BAR0 + 12, 4);

	/* As firmware does it: memory decoding off, all-ones, read the mask, restore. */
	cf8_wr(1, PCI_BAR0, 4, 0xffffffff);
	ck_assert_uint_eq(cf8_rd(1, PCI_BAR0, 4), (uint32_t) ~(BAR0_SIZE - 1));
	cf8_wr(1, PCI_BAR0, 4, b0);
	ck_assert_uint_eq(cf8_rd(1, PCI_BAR0, 4), b0);

	ecam_wr(1, PCI_BAR0 + 8, 4, 0xffffffff);
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0 + 8, 4),
	                  (uint32_t) ~(BAR2_SIZE - 1) | PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
	ecam_wr(1, PCI_BAR0 + 12, 4, 0xffffffff);
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0 + 12, 4), 0xffffffff); /* upper half */
	ecam_wr(1, PCI_BAR0 + 8, 4, 0); /* the flag bits are read-only */
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0 + 8, 4), PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
	ecam_wr(1, PCI_BAR0 + 8, 4, b2lo);
	ecam_wr(1, PCI_BAR0 + 12, 4, b2hi);
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0 + 8, 4), b2lo);
	ck_assert_uint_eq(ecam_rd(1, PCI_BAR0 + 12, 4), b2hi);

	/* Unimplemented BARs size as 0; the expansion ROM is not there either. */
	for (unsigned r = PCI_BAR0 + 4; r <= 0x30; r += 4) {
		if (r == PCI_BAR0 + 8 || r == PCI_BAR0 + 12 || r == PCI_SUBSYS_VENDOR)
			continue;
		ecam_wr(1, r, 4, 0xffffffff);
		ck_assert_uint_eq(ecam_rd(1, r, 4), 0);
	}
	ck_assert_uint_eq(dev.nr_moves, 0); /* decoding stayed off throughout */

	/* Sizing with decoding on: the BAR stops decoding, then comes back. */
	memory_enable(1, true);
	dev.nr_moves = 0;
	ecam_wr(1, PCI_BAR0, 4, 0xffffffff);
	ecam_wr(1, PCI_BAR0, 4, b0);
	assert_moves((const struct move[]){{0, 0}, {0, b0}}, 2);
	ck_assert_uint_eq(dev.bar_reads[0] + dev.bar_writes[0], 0);
}
END_TEST

START_TEST(bar_decoding_needs_memory_enable)
{
	uint64_t b0 = bar_addr(1, 0), b2 = bar_addr(1, 2);

	ck_assert_uint_eq(mem_rd(b0, 4), 0xffffffff);
	ck_assert_uint_eq(mem_rd(b0 + 0x10, 8), UINT64_MAX);
	ck_assert_uint_eq(mem_rd(b2, 4), 0xffffffff);
	mem_wr(b0, 4, 0);
	mem_wr(b2, 4, 0);
	ck_assert_uint_eq(dev.bar_reads[0] + dev.bar_writes[0], 0);
	ck_assert_uint_eq(dev.bar_reads[2] + dev.bar_writes[2], 0);
	ck_assert_uint_eq(dev.bar0[0], 1);

	/* Bus master and INTx disable do not turn decoding on. */
	ecam_wr(1, PCI_COMMAND, 2, PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	ck_assert_uint_eq(mem_rd(b0, 4), 0xffffffff);
	ck_assert_uint_eq(dev.nr_moves, 0);

	memory_enable(1, true);
	assert_moves((const struct move[]){{0, b0}, {2, b2}}, 2);
	ck_assert_uint_eq(mem_rd(b0 + 0x10, 4), le32_at(dev.bar0 + 0x10));
	ck_assert_uint_eq(mem_rd(b0 + BAR0_SIZE - 8, 8), le64_at(dev.bar0 + BAR0_SIZE - 8));
	ck_assert_uint_eq(mem_rd(b0 + 3, 1), dev.bar0[3]);
	ck_assert_uint_eq(dev.bar_reads[0], 3);
	mem_wr(b2 + 0x100, 4, 0xdeadbeef);
	ck_assert_uint_eq(le32_at(dev.bar2 + 0x100), 0xdeadbeef);
	ck_assert_uint_eq(mem_rd(b2 + 0x100, 2), 0xbeef);
	/* Right after a BAR nothing decodes. */
	ck_assert_uint_eq(mem_rd(b0 + BAR0_SIZE, 4), 0xffffffff);
	ck_assert_uint_eq(mem_rd(b2 + BAR2_SIZE, 4), 0xffffffff);

	/* Writing the command register again without a change moves nothing. */
	memory_enable(1, true);
	ck_assert_uint_eq(dev.nr_moves, 0);
	memory_enable(1, false);
	assert_moves((const struct move[]){{0, 0}, {2, 0}}, 2);
	dev.bar_reads[0] = 0;
	ck_assert_uint_eq(mem_rd(b0 + 0x10, 4), 0xffffffff);
	ck_assert_uint_eq(dev.bar_reads[0], 0);
}
END_TEST

START_TEST(bar_move)
{
	uint64_t b0 = bar_addr(1, 0), b2 = bar_addr(1, 2);
	const uint64_t n0 = MMIO32 + 0x200000, n2 = 0x200100000ULL;

	memory_enable(1, true);
	dev.nr_moves = 0;
	ecam_wr(1, PCI_BAR0, 4, (uint32_t)n0);
	assert_moves((const struct move[]){{0, n0}}, 1);
	ck_assert_uint_eq(bar_addr(1, 0), n0);
	ck_assert_uint_eq(mem_rd(b0 + 0x20, 4), 0xffffffff);
	ck_assert_uint_eq(dev.bar_reads[0], 0);
	ck_assert_uint_eq(mem_rd(n0 + 0x20, 4), le32_at(dev.bar0 + 0x20));
	ck_assert_uint_eq(dev.bar_reads[0], 1);
	ecam_wr(1, PCI_BAR0, 4, (uint32_t)n0); /* same address: no news */
	ck_assert_uint_eq(dev.nr_moves, 0);

	/* A 64-bit BAR moves one half at a time; each half is a move. */
	ecam_wr(1, PCI_BAR0 + 12, 4, (uint32_t)(n2 >> 32));
	ecam_wr(1, PCI_BAR0 + 8, 4, (uint32_t)n2);
	assert_moves((const struct move[]){{2, (n2 & ~0xffffffffULL) | (b2 & 0xffffffff)}, {2, n2}},
	             2);
	ck_assert_uint_eq(mem_rd(b2 + 0x40, 4), 0xffffffff);
	ck_assert_uint_eq(mem_rd(n2 + 0x40, 4), le32_at(dev.bar2 + 0x40));

	/* A 64-bit BAR may live in the 32-bit window too. */
	ecam_wr(1, PCI_BAR0 + 12, 4, 0);
	ecam_wr(1, PCI_BAR0 + 8, 4, (uint32_t)(MMIO32 + 0x300000));
	ck_assert_uint_eq(dev.moves[dev.nr_moves - 1].addr, MMIO32 + 0x300000);
	ck_assert_uint_eq(mem_rd(MMIO32 + 0x300040, 4), le32_at(dev.bar2 + 0x40));
	dev.nr_moves = 0;

	/* Outside every window: the BAR does not decode. */
	ecam_wr(1, PCI_BAR0, 4, 0x80000000);
	assert_moves((const struct move[]){{0, 0}}, 1);
	ck_assert_int_eq(bus_access(&mmio, 0x80000000, &(uint32_t){0}, 4, false), -ENOENT);
	/* The last page of the 32-bit window is fine. */
	ecam_wr(1, PCI_BAR0, 4, (uint32_t)(MMIO32 + MMIO32_SZ - BAR0_SIZE));
	assert_moves((const struct move[]){{0, MMIO32 + MMIO32_SZ - BAR0_SIZE}}, 1);
	ecam_wr(1, PCI_BAR0, 4, (uint32_t)n0);
	assert_moves((const struct move[]){{0, n0}}, 1);

	/* Memory off: every BAR reports 0; on again: their current addresses. */
	memory_enable(1, false);
	assert_moves((const struct move[]){{0, 0}, {2, 0}}, 2);
	ecam_wr(1, PCI_BAR0, 4, (uint32_t)b0); /* moves while off are silent */
	ck_assert_uint_eq(dev.nr_moves, 0);
	memory_enable(1, true);
	assert_moves((const struct move[]){{0, b0}, {2, MMIO32 + 0x300000}}, 2);
	ck_assert_uint_eq(mem_rd(b0 + 0x20, 4), le32_at(dev.bar0 + 0x20));
}
END_TEST

START_TEST(capability_list)
{
	uint8_t seen[2] = {0};
	unsigned n = 0, at;

	ck_assert_uint_eq(cf8_rd(1, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
	at = cf8_rd(1, PCI_CAPABILITY_PTR, 1);
	ck_assert_uint_eq(at, PCI_CAP_START);
	while (at) {
		ck_assert_uint_lt(n, ARRAY_SIZE(seen));
		ck_assert_uint_ge(at, PCI_CAP_START);
		ck_assert_uint_eq(at % 4, 0);
		seen[n++] = (uint8_t)cf8_rd(1, at, 1);
		at = ecam_rd(1, at + 1, 1);
	}
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(seen[0], PM_CAP_ID);
	ck_assert_uint_eq(seen[1], PCI_CAP_ID_MSIX);
	ck_assert_uint_eq(ecam_rd(1, 0x41, 1), 0x48); /* after 8 bytes, dword aligned */
	ck_assert_uint_eq(ecam_rd(1, 0x49, 1), 0);

	/* The first capability's body as given (the next pointer filled in). */
	ck_assert_uint_eq(ecam_rd(1, 0x40, 4), 0x7e034801);
	ck_assert_uint_eq(ecam_rd(1, 0x44, 4), 0xa55a0000);
	/* Its ID and next pointer are read-only despite the mask; the rest per the mask. */
	ecam_wr(1, 0x40, 4, 0xffffffff);
	ck_assert_uint_eq(ecam_rd(1, 0x40, 4), 0x7e034801);
	ecam_wr(1, 0x44, 4, 0xffffffff);
	ck_assert_uint_eq(ecam_rd(1, 0x44, 4), 0xa55a03ff);
	cf8_wr(1, 0x44, 2, 0);
	ck_assert_uint_eq(ecam_rd(1, 0x44, 4), 0xa55a0000);

	/* The MSI-X capability: table size N-1, table and PBA offsets with the BIR. */
	ck_assert_uint_eq(ecam_rd(1, 0x48 + MSIX_CTRL, 2), MSIX_NR - 1);
	ck_assert_uint_eq(ecam_rd(1, 0x48 + MSIX_TBL, 4), MSIX_TABLE | 2);
	ck_assert_uint_eq(ecam_rd(1, 0x48 + MSIX_PBAOFF, 4), MSIX_PBA | 2);
	ecam_wr(1, 0x48 + MSIX_TBL, 4, 0);
	ecam_wr(1, 0x48 + MSIX_CTRL, 2, 0xffff);
	ck_assert_uint_eq(ecam_rd(1, 0x48 + MSIX_TBL, 4), MSIX_TABLE | 2);
	ck_assert_uint_eq(ecam_rd(1, 0x48 + MSIX_CTRL, 2),
	                  MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL | (MSIX_NR - 1));
	/* Past the list: zeros, read-only. */
	ecam_wr(1, 0x60, 4, 0xffffffff);
	ck_assert_uint_eq(ecam_rd(1, 0x60, 4), 0);
	ck_assert_uint_eq(ecam_rd(1, 0xfc, 4), 0);
}
END_TEST

START_TEST(capability_space_runs_out)
{
	struct pci_device d;
	uint8_t big[64] = {PCI_CAP_ID_VNDR, 0x77, 64};
	unsigned at, n = 0;

	pci_device_init(&d, 1, 2, 0, 0, 0, 0, NULL, NULL);
	ck_assert_int_eq(pci_device_add_capability(&d, big, 1, NULL), -ENOSPC);
	ck_assert_int_eq(pci_device_add_capability(&d, big, 64, NULL), 0x40);
	ck_assert_int_eq(pci_device_add_capability(&d, big, 64, NULL), 0x80);
	ck_assert_int_eq(pci_device_add_capability(&d, big, 62, NULL), 0xc0);
	ck_assert_int_eq(pci_device_add_capability(&d, big, 4, NULL), -ENOSPC);
	ck_assert_int_eq(pci_device_add_capability(&d, big, 2, NULL), -ENOSPC);
	for (at = d.config[PCI_CAPABILITY_PTR]; at; at = d.config[at + 1]) {
		ck_assert_uint_lt(n++, 3);
		ck_assert_uint_eq(d.config[at], PCI_CAP_ID_VNDR);
		ck_assert_uint_eq(d.config[at + 2], 64);
	}
	ck_assert_uint_eq(n, 3);
}
END_TEST

START_TEST(write_masks)
{
	/* Identity registers are read-only, whatever the width or mechanism. */
	cf8_wr(1, PCI_VENDOR_ID, 4, 0);
	ecam_wr(1, PCI_VENDOR_ID, 2, 0xffff);
	ecam_wr(1, PCI_REVISION_ID, 4, 0);
	ecam_wr(1, PCI_SUBSYS_VENDOR, 4, 0);
	ecam_wr(1, PCI_HEADER_TYPE, 1, 0x80);
	ecam_wr(1, PCI_INTERRUPT_PIN, 1, 4);
	ck_assert_uint_eq(cf8_rd(1, PCI_VENDOR_ID, 4), 0x56781234);
	ck_assert_uint_eq(ecam_rd(1, PCI_REVISION_ID, 4), 0x0c033042);
	ck_assert_uint_eq(ecam_rd(1, PCI_SUBSYS_VENDOR, 4), 0x0102abcd);
	ck_assert_uint_eq(ecam_rd(1, PCI_HEADER_TYPE, 1), 0);
	ck_assert_uint_eq(ecam_rd(1, PCI_INTERRUPT_PIN, 1), 1);
	ecam_wr(0, PCI_VENDOR_ID, 4, 0);
	ck_assert_uint_eq(cf8_rd(0, PCI_VENDOR_ID, 2), 0x1b36);

	/* The interrupt line is the firmware's scratch byte. */
	cf8_wr(1, PCI_INTERRUPT_LINE, 1, 0x0b);
	ck_assert_uint_eq(ecam_rd(1, PCI_INTERRUPT_LINE, 1), 0x0b);
	ecam_wr(1, PCI_INTERRUPT_LINE, 2, 0x0405);
	ck_assert_uint_eq(cf8_rd(1, PCI_INTERRUPT_LINE, 2), 0x0105);

	/* Command: memory, master, INTx disable; no I/O space (no I/O BARs); status RO. */
	ecam_wr(1, PCI_COMMAND, 4, 0xffffffff);
	ck_assert_uint_eq(ecam_rd(1, PCI_COMMAND, 2),
	                  PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	ck_assert_uint_eq(ecam_rd(1, PCI_STATUS, 2), PCI_STATUS_CAP_LIST);
	ecam_wr(1, PCI_COMMAND, 2, 0);
	ck_assert_uint_eq(cf8_rd(1, PCI_COMMAND, 4), PCI_STATUS_CAP_LIST << 16);
	ck_assert_uint_gt(dev.config_writes, 0);
}
END_TEST

/* ---- hostile config accesses ---- */

START_TEST(cf8_hostile)
{
	uint32_t v = 0;
	uint64_t q;
	int r;

	/* CONFIG_ADDRESS keeps enable, bus, device, function, register; no reserved bits. */
	io_wr(CF8, 4, 0xffffffff);
	ck_assert_uint_eq(io_rd(CF8, 4), 0x8ffffffc);
	/* Register bits 11:8 in 27:24 (AMD style) reach extended space: zeros, writes dropped,
	 * never the header they would alias. */
	io_wr(CF8, 4, CF8_EN | 1 << 24 | 1 << 11 | PCI_COMMAND);
	ck_assert_uint_eq(io_rd(CFC, 4), 0);
	io_wr(CFC, 2, PCI_COMMAND_MEMORY);
	io_wr(CF8, 4, CF8_EN | 0xf << 24 | 1 << 11 | 0xfc);
	ck_assert_uint_eq(io_rd(CFC + 2, 2), 0);
	ck_assert_uint_eq(ecam_rd(1, PCI_COMMAND, 2), 0);
	io_wr(CF8, 4, CF8_EN | 1 << 24 | 5 << 11);
	ck_assert_uint_eq(io_rd(CFC, 4), 0xffffffff); /* an empty slot stays all-ones */
	io_wr(CF8, 4, CF8_EN | 1 << 11 | 3);
	ck_assert_uint_eq(io_rd(CF8, 4), CF8_EN | 1 << 11);
	ck_assert_uint_eq(io_rd(CFC, 4), 0x56781234); /* register 0: the low bits ignored */
	ck_assert_uint_eq(io_rd(CF8, 2), 0xffff);     /* only as a dword */
	ck_assert_uint_eq(io_rd(CF8 + 1, 1), 0xff);

	/* No enable bit. */
	io_wr(CF8, 4, 1 << 11);
	ck_assert_uint_eq(io_rd(CFC, 4), 0xffffffff);
	/* Bus 1, function 1, function 7: nothing there. */
	io_wr(CF8, 4, CF8_EN | 1 << 16 | 1 << 11);
	ck_assert_uint_eq(io_rd(CFC, 4), 0xffffffff);
	io_wr(CF8, 4, CF8_EN | 0xff << 16);
	ck_assert_uint_eq(io_rd(CFC, 2), 0xffff);
	io_wr(CF8, 4, CF8_EN | 1 << 11 | 1 << 8);
	ck_assert_uint_eq(io_rd(CFC, 4), 0xffffffff);
	io_wr(CF8, 4, CF8_EN | 1 << 11 | 7 << 8);
	ck_assert_uint_eq(io_rd(CFC + 2, 2), 0xffff);
	/* Writes there are dropped, not sent to function 0 of bus 0. */
	io_wr(CF8, 4, CF8_EN | 1 << 16 | 1 << 11 | PCI_INTERRUPT_LINE);
	io_wr(CFC, 1, 0x77);
	io_wr(CF8, 4, CF8_EN | 1 << 11 | 1 << 8 | PCI_INTERRUPT_LINE);
	io_wr(CFC, 1, 0x77);
	io_wr(CF8, 4, 1 << 11 | PCI_INTERRUPT_LINE);
	io_wr(CFC, 1, 0x77);
	ck_assert_uint_eq(ecam_rd(1, PCI_INTERRUPT_LINE, 1), 10);

	/* A data access that leaves the dword: not claimed, or all-ones and dropped. */
	io_wr(CF8, 4, CF8_EN | 1 << 11 | PCI_COMMAND);
	r = bus_access(&pio, CFC + 1, &v, 4, false);
	ck_assert(r == -ENOENT || (r == 0 && v == 0xffffffff));
	v = 0xffffffff;
	r = bus_access(&pio, CFC + 1, &v, 4, true);
	ck_assert(r == -ENOENT || r == 0);
	r = bus_access(&pio, CFC + 3, &v, 2, true);
	ck_assert(r == -ENOENT || r == 0);
	ck_assert_uint_eq(ecam_rd(1, PCI_COMMAND, 4), PCI_STATUS_CAP_LIST << 16);
	/* Inside the dword, sub-dword accesses hit the right bytes. */
	ck_assert_uint_eq(io_rd(CFC + 2, 2), PCI_STATUS_CAP_LIST);
	ck_assert_uint_eq(io_rd(CFC + 1, 2), 0x1000);
	io_wr(CFC + 1, 1, PCI_COMMAND_INTX_DISABLE >> 8);
	ck_assert_uint_eq(ecam_rd(1, PCI_COMMAND, 2), PCI_COMMAND_INTX_DISABLE);

	/* Byte and word writes to 0xCF8-0xCFB (0xCF9 is the reset register) and an 8-byte write
	 * over both ports leave CONFIG_ADDRESS alone. */
	io_wr(CF8, 4, CF8_EN | 1 << 11 | PCI_INTERRUPT_LINE);
	io_wr(CF8, 1, 0);
	io_wr(CF8 + 1, 1, 0x06);
	io_wr(CF8 + 2, 2, 0);
	io_wr(CF8 + 3, 1, 0);
	io_wr(CF8, 2, 0);
	ck_assert_int_eq(bus_access(&pio, CF8, &(uint64_t){0}, 8, true), 0);
	ck_assert_uint_eq(io_rd(CF8, 4), CF8_EN | 1 << 11 | PCI_INTERRUPT_LINE);
	ck_assert_uint_eq(io_rd(CFC, 1), 10);
	/* An 8-byte read over both ports reads all-ones. */
	q = 0;
	ck_assert_int_eq(bus_access(&pio, CF8, &q, 8, false), 0);
	ck_assert_uint_eq(q, UINT64_MAX);
}
END_TEST

START_TEST(ecam_hostile)
{
	uint32_t v = 0;
	uint64_t q = 0;

	/* Past the first 256 bytes of an existing function: zeros, writes dropped. */
	ck_assert_uint_eq(ecam_rd(1, 0x100, 4), 0);
	ck_assert_uint_eq(ecam_rd(1, 0x100, 1), 0);
	ck_assert_uint_eq(ecam_rd(1, 0xffc, 4), 0);
	ck_assert_uint_eq(mem_rd(ecam_addr(1, 0, 0xff8), 8), 0);
	ecam_wr(1, 0x100, 4, 0xffffffff);
	ecam_wr(1, 0x13c, 1, 0xff);
	ck_assert_uint_eq(ecam_rd(1, 0x100, 4), 0);
	ck_assert_uint_eq(ecam_rd(1, PCI_INTERRUPT_LINE, 1), 10);
	/* ...and for an empty slot, all-ones. */
	ck_assert_uint_eq(ecam_rd(9, 0x100, 4), 0xffffffff);

	/* Functions other than 0 do not exist. */
	for (unsigned fn = 1; fn < 8; fn++) {
		ck_assert_uint_eq(mem_rd(ecam_addr(1, fn, 0), 4), 0xffffffff);
		mem_wr(ecam_addr(1, fn, PCI_INTERRUPT_LINE), 1, 0x55);
	}
	ck_assert_uint_eq(ecam_rd(1, PCI_INTERRUPT_LINE, 1), 10);

	/* Accesses crossing a function's 4 KiB: all-ones, dropped. */
	ck_assert_uint_eq(mem_rd(ecam_addr(1, 0, 0xffe), 4), 0xffffffff);
	ck_assert_uint_eq(mem_rd(ecam_addr(1, 0, 0xffc), 8), UINT64_MAX);
	ck_assert_uint_eq(mem_rd(ecam_addr(0, 7, 0xffe), 4), 0xffffffff); /* into slot 1 */
	mem_wr(ecam_addr(0, 7, 0xffe), 4, 0);
	mem_wr(ecam_addr(0, 7, 0xffc), 8, 0);
	ck_assert_uint_eq(ecam_rd(1, PCI_VENDOR_ID, 4), 0x56781234);

	/* Past the end of bus 0's 1 MiB: nobody claims it. */
	ck_assert_int_eq(bus_access(&mmio, ECAM + MIB - 2, &v, 4, false), -ENOENT);
	ck_assert_int_eq(bus_access(&mmio, ECAM + MIB, &q, 8, false), -ENOENT);
	/* The last valid dword of bus 0. */
	ck_assert_uint_eq(mem_rd(ECAM + MIB - 4, 4), 0xffffffff);
}
END_TEST

START_TEST(window_straddle)
{
	uint64_t b0 = bar_addr(1, 0), b2 = bar_addr(1, 2);
	uint64_t v = 0;

	memory_enable(1, true);
	/* Reads that run off the end of a BAR are all-ones and never reach the device. */
	ck_assert_uint_eq(mem_rd(b0 + BAR0_SIZE - 2, 4), 0xffffffff);
	ck_assert_uint_eq(mem_rd(b0 + BAR0_SIZE - 4, 8), UINT64_MAX);
	ck_assert_uint_eq(mem_rd(b0 + BAR0_SIZE - 1, 2), 0xffff);
	ck_assert_uint_eq(mem_rd(b2 + BAR2_SIZE - 4, 8), UINT64_MAX);
	mem_wr(b0 + BAR0_SIZE - 4, 8, 0);
	mem_wr(b0 + BAR0_SIZE - 1, 2, 0);
	ck_assert_uint_eq(dev.bar_reads[0] + dev.bar_writes[0], 0);
	ck_assert_uint_eq(dev.bar_reads[2] + dev.bar_writes[2], 0);
	ck_assert_uint_eq(dev.bar0[BAR0_SIZE - 1], (uint8_t)((BAR0_SIZE - 1) * 7 + 1));
	/* Exactly to the end is fine. */
	ck_assert_uint_eq(mem_rd(b0 + BAR0_SIZE - 4, 4), le32_at(dev.bar0 + BAR0_SIZE - 4));
	ck_assert_uint_eq(mem_rd(b0 + BAR0_SIZE - 1, 1), dev.bar0[BAR0_SIZE - 1]);
	/* Two BARs side by side: an access spanning both is not split. */
	ecam_wr(1, PCI_BAR0 + 12, 4, 0);
	ecam_wr(1, PCI_BAR0 + 8, 4, (uint32_t)(b0 + BAR2_SIZE));
	ecam_wr(1, PCI_BAR0, 4, (uint32_t)(b0 + BAR2_SIZE - BAR0_SIZE));
	b0 = bar_addr(1, 0);
	b2 = bar_addr(1, 2);
	ck_assert_uint_eq(b0 + BAR0_SIZE, b2);
	dev.bar_reads[0] = dev.bar_reads[2] = 0;
	ck_assert_uint_eq(mem_rd(b2 - 4, 8), UINT64_MAX);
	ck_assert_uint_eq(dev.bar_reads[0] + dev.bar_reads[2], 0);
	ck_assert_uint_eq(mem_rd(b2, 4), le32_at(dev.bar2));
	/* The end of the 32-bit window: the bus does not claim past it. */
	ck_assert_int_eq(bus_access(&mmio, MMIO32 + MMIO32_SZ - 4, &v, 8, false), -ENOENT);
}
END_TEST

START_TEST(add_bar_errors)
{
	struct pci_device d;

	pci_device_init(&d, 1, 2, 0, 0, 0, 0, NULL, NULL);
	ck_assert_int_eq(pci_device_add_bar(&d, 0, 2048, 0, &bar0_ops, NULL), -EINVAL);
	ck_assert_int_eq(pci_device_add_bar(&d, 0, 0x3000, 0, &bar0_ops, NULL), -EINVAL);
	ck_assert_int_eq(pci_device_add_bar(&d, 0, 0, 0, &bar0_ops, NULL), -EINVAL);
	ck_assert_int_eq(pci_device_add_bar(&d, 6, 4096, 0, &bar0_ops, NULL), -EINVAL);
	ck_assert_int_eq(pci_device_add_bar(&d, 5, 4096, PCI_BAR_64BIT, &bar0_ops, NULL), -EINVAL);
	ck_assert_int_eq(pci_device_add_bar(&d, 0, 4 * GIB, 0, &bar0_ops, NULL), -EINVAL);
	ck_assert_int_eq(pci_device_add_bar(&d, 0, 4 * GIB, PCI_BAR_64BIT, &bar0_ops, NULL), 0);
	ck_assert_int_eq(pci_device_add_bar(&d, 0, 4096, 0, &bar0_ops, NULL), -EINVAL);
	/* A 4 GiB 64-bit BAR sizes as all address bits of the low dword clear. */
	ck_assert_uint_eq(pci_config_read32(&d, PCI_BAR0), PCI_BAR_MEM_TYPE_64);
	ck_assert_uint_eq(d.wmask[PCI_BAR0] | d.wmask[PCI_BAR0 + 1] | d.wmask[PCI_BAR0 + 2] |
	                          d.wmask[PCI_BAR0 + 3],
	                  0);
	ck_assert_uint_eq(pci_config_read32(&d, PCI_BAR0 + 4), 0);
	ck_assert_uint_eq(pci_config_read32(&d, PCI_BAR0 + 4), 0);
	ck_assert_uint_eq(d.wmask[PCI_BAR0 + 4] & d.wmask[PCI_BAR0 + 7], 0xff);
}
END_TEST

/* A 64-bit BAR occupies two BAR registers: neither may be handed out again. */
START_TEST(add_bar_64bit_pair_reserved)
{
	struct pci_device d;

	pci_device_init(&d, 1, 2, 0, 0, 0, 0, NULL, NULL);
	ck_assert_int_eq(pci_device_add_bar(&d, 2, 4096, PCI_BAR_64BIT, &bar0_ops, NULL), 0);
	ck_assert_int_eq(pci_device_add_bar(&d, 3, 4096, 0, &bar0_ops, NULL), -EINVAL);
	ck_assert_int_eq(pci_device_add_bar(&d, 1, 4096, PCI_BAR_64BIT, &bar0_ops, NULL), -EINVAL);
	ck_assert_uint_eq(pci_config_read32(&d, PCI_BAR0 + 8), PCI_BAR_MEM_TYPE_64);
	ck_assert_uint_eq(d.wmask[PCI_BAR0 + 12], 0xff); /* still the upper half's mask */
}
END_TEST

START_TEST(host_full)
{
	static struct pci_device many[PCI_SLOTS];
	struct pci_layout small = layout;
	unsigned added = 0;
	int r = 0;

	for (unsigned i = 0; i < PCI_SLOTS && r == 0; i++) {
		pci_device_init(&many[i], 0x1234, (uint16_t)i, 0, 0, 0, 0, NULL, NULL);
		r = pci_host_add_device(&host, &many[i]);
		added += r == 0;
	}
	ck_assert_int_eq(r, -ENOSPC);
	ck_assert_uint_eq(added, PCI_SLOTS - 2); /* slot 0: the bridge, slot 1: dev */
	ck_assert_uint_eq(ecam_rd(31, PCI_VENDOR_ID, 4), (uint32_t)(PCI_SLOTS - 3) << 16 | 0x1234);

	/* A window too small for a BAR: the device is refused. */
	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
	small.mmio32_size = 64 * KIB;
	small.mmio64_size = 0;
	ck_assert_int_eq(pci_host_init(&host, &small, &pio, &mmio), 0);
	pci_device_init(&many[0], 1, 2, 0, 0, 0, 0, NULL, NULL);
	ck_assert_int_eq(pci_device_add_bar(&many[0], 0, 128 * KIB, PCI_BAR_64BIT, &bar0_ops, NULL),
	                 0);
	ck_assert_int_eq(pci_host_add_device(&host, &many[0]), -ENOSPC);
	ck_assert_uint_eq(ecam_rd(1, PCI_VENDOR_ID, 4), 0xffffffff);
	/* Bad layouts. */
	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
	small.ecam_size = 4096;
	ck_assert_int_eq(pci_host_init(&host, &small, &pio, &mmio), -EINVAL);
	pci_host_destroy(&host);
	small = layout;
	small.mmio32_size = 0;
	ck_assert_int_eq(pci_host_init(&host, &small, &pio, &mmio), -EINVAL);
	pci_host_destroy(&host);
	ck_assert_uint_eq(pio.nr_ranges + mmio.nr_ranges, 0);
	/* A window over the ECAM range: the bus refuses it. */
	small = layout;
	small.mmio32_base = ECAM;
	ck_assert_int_eq(pci_host_init(&host, &small, &pio, &mmio), -EEXIST);
	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
	ck_assert_int_eq(pci_host_init(&host, &layout, &pio, &mmio), 0);
}
END_TEST

/* ---- larger ECAM, the 256-byte boundary, INTx routing ---- */

START_TEST(ecam_more_buses)
{
	struct pci_layout four = layout;
	static const uint64_t bad_sizes[] = {0, MIB / 2, MIB + MIB / 2, 512 * MIB};
	uint64_t v = 0;

	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
	for (unsigned i = 0; i < ARRAY_SIZE(bad_sizes); i++) {
		four.ecam_size = bad_sizes[i];
		ck_assert_int_eq(pci_host_init(&host, &four, &pio, &mmio), -EINVAL);
		pci_host_destroy(&host);
	}
	four.ecam_size = 4 * MIB;
	ck_assert_int_eq(pci_host_init(&host, &four, &pio, &mmio), 0);
	ck_assert_int_eq(pci_host_add_device(&host, &dev.pci), 0);
	/* Buses 1-3 are claimed (the MCFG describes them) but empty. */
	ck_assert_uint_eq(ecam_rd(1, PCI_VENDOR_ID, 4), 0x56781234);
	for (unsigned bus = 1; bus < 4; bus++) {
		uint64_t a = ECAM + ((uint64_t)bus << 20) + (1 << 15);

		ck_assert_uint_eq(mem_rd(a, 4), 0xffffffff);
		ck_assert_uint_eq(mem_rd(a + PCI_INTERRUPT_LINE, 1), 0xff);
		mem_wr(a + PCI_INTERRUPT_LINE, 1, 0x33);
		mem_wr(ECAM + ((uint64_t)bus << 20) + PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	}
	ck_assert_uint_eq(ecam_rd(1, PCI_INTERRUPT_LINE, 1), 10);
	ck_assert_uint_eq(ecam_rd(0, PCI_COMMAND, 2), 0);
	ck_assert_uint_eq(mem_rd(ECAM + 4 * MIB - 4, 4), 0xffffffff);
	ck_assert_int_eq(bus_access(&mmio, ECAM + 4 * MIB, &v, 4, false), -ENOENT);
}
END_TEST

START_TEST(config_across_256)
{
	/* An 8-byte ECAM access over the end of the 256 bytes: the first half is real. */
	dev.pci.config[0xfc] = 0x5a;
	dev.pci.config[0xff] = 0xa5;
	dev.pci.wmask[0xfd] = 0xff;
	pci_ecam_mirror_update(&host, &dev.pci); /* bytes changed behind the host's back */
	ck_assert_uint_eq(mem_rd(ecam_addr(1, 0, 0xfc), 8), 0xa500005aULL);
	mem_wr(ecam_addr(1, 0, 0xfc), 8, UINT64_MAX);
	ck_assert_uint_eq(mem_rd(ecam_addr(1, 0, 0xfc), 8), 0xa500ff5aULL);
	ck_assert_uint_eq(mem_rd(ecam_addr(1, 0, 0x100), 8), 0);
	ck_assert_uint_eq(mem_rd(ecam_addr(1, 0, 0xff8), 8), 0);
	/* A 2-byte access at 0xff: one real byte, one of extended space. */
	ck_assert_uint_eq(mem_rd(ecam_addr(1, 0, 0xff), 2), 0xa5);
}
END_TEST

START_TEST(intx_routing)
{
	ck_assert_ptr_eq(host.slots[1], &dev.pci);
	ck_assert_ptr_eq(host.slots[0], &host.bridge);
	ck_assert_uint_eq(host.bridge.intx_pin, 0);
	ck_assert_uint_eq(dev.pci.intx_pin, 1);
	ck_assert_uint_eq(dev.pci.intx_gsi, 10);
	/* The guest may rewrite the Interrupt Line register; the routing stays the host's. */
	ecam_wr(1, PCI_INTERRUPT_LINE, 1, 0x0b);
	ck_assert_uint_eq(ecam_rd(1, PCI_INTERRUPT_LINE, 1), 0x0b);
	ck_assert_uint_eq(dev.pci.intx_gsi, 10);
	for (unsigned s = 2; s < PCI_SLOTS; s++)
		ck_assert_ptr_null(host.slots[s]);
}
END_TEST

static Suite *pci_suite(void)
{
	Suite *s = suite_create("pci");
	TCase *cfg = tcase_create("config");
	TCase *bars = tcase_create("bars");

	tcase_add_checked_fixture(cfg, setup, teardown);
	tcase_add_test(cfg, host_bridge_identity);
	tcase_add_test(cfg, empty_slots_read_ones);
	tcase_add_test(cfg, ecam_mirror_layout);
	tcase_add_test(cfg, ecam_mirror_interrupt_status);
	tcase_add_test(cfg, ecam_mirror_trapped);
	tcase_add_test(cfg, ecam_mirror_status_races_writes);
	tcase_add_test(cfg, capability_list);
	tcase_add_test(cfg, capability_space_runs_out);
	tcase_add_test(cfg, write_masks);
	tcase_add_test(cfg, cf8_hostile);
	tcase_add_test(cfg, ecam_hostile);
	tcase_add_test(cfg, host_full);
	tcase_add_test(cfg, ecam_more_buses);
	tcase_add_test(cfg, config_across_256);
	tcase_add_test(cfg, intx_routing);
	suite_add_tcase(s, cfg);
	tcase_add_checked_fixture(bars, setup, teardown);
	tcase_add_test(bars, bar_placement);
	tcase_add_test(bars, bar_sizing);
	tcase_add_test(bars, bar_decoding_needs_memory_enable);
	tcase_add_test(bars, bar_move);
	tcase_add_test(bars, window_straddle);
	tcase_add_test(bars, add_bar_errors);
	suite_add_tcase(s, bars);
	TCase *bugs = tcase_create("fixed_bugs");

	tcase_add_checked_fixture(bugs, setup, teardown);
	tcase_add_test(bugs, add_bar_64bit_pair_reserved);
	suite_add_tcase(s, bugs);
	return s;
}

int main(void)
{
	return unit_run(pci_suite());
}
