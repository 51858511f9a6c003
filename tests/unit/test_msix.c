/*
 * MSI-X behind a PCI function, driven as a guest drives it: the capability's Message Control
 * through config space (ECAM and 0xCF8/0xCFC), the vector table and PBA through the function's
 * BAR on the MMIO bus. No VM: delivered messages go to msix.test_deliver.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "tests/unit/unit.h"
#include "vmm/bus.h"
#include "vmm/util.h"

#define ECAM     0xe0000000ULL
#define CF8      0xcf8
#define CFC      0xcfc
#define CF8_EN   0x80000000u
#define BAR_SIZE 0x4000
#define TABLE    0x2000
#define PBA      0x3000
#define NR       4
#define CTRL     2 /* offsets inside the MSI-X capability */
#define TBL      4
#define PBAOFF   8

/* A function whose only BAR (0, 64-bit) holds the MSI-X table and PBA. */
struct tdev {
	struct pci_device pci;
	struct msix msix;
	unsigned slot;
};

struct delivery {
	uint64_t address;
	uint32_t data;
};

static struct bus pio, mmio;
static struct pci_host host;
static struct tdev dev, big; /* NR vectors; MSIX_MAX_VECTORS vectors */
static struct delivery delivered[16];
static unsigned nr_delivered;
static const struct pci_layout layout = {
        .ecam_base = ECAM,
        .ecam_size = 1 * MIB,
        .config_port = CF8,
        .mmio32_base = 0xc0000000ULL,
        .mmio32_size = 256 * MIB,
        .mmio64_base = 4 * GIB,
        .mmio64_size = 16 * GIB,
};

static int bar_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct tdev *d = opaque;

	ck_assert_uint_le(offset + size, BAR_SIZE);
	if (offset >= TABLE && offset < PBA)
		msix_table_read(&d->msix, offset - TABLE, data, size);
	else if (offset >= PBA)
		msix_pba_read(&d->msix, offset - PBA, data, size);
	else
		memset(data, 0, size);
	return 0;
}

static int bar_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct tdev *d = opaque;

	ck_assert_uint_le(offset + size, BAR_SIZE);
	if (offset >= TABLE && offset < PBA)
		msix_table_write(&d->msix, offset - TABLE, data, size);
	return 0; /* the PBA is read-only */
}

static const struct bus_ops bar_ops = {.read = bar_read, .write = bar_write};

static void tdev_config_written(struct pci_device *d, unsigned offset, unsigned size)
{
	msix_config_written(&container_of(d, struct tdev, pci)->msix, offset, size);
}

static const struct pci_device_ops tdev_ops = {.config_written = tdev_config_written};

static void record_delivery(void *opaque, uint64_t address, uint32_t data)
{
	ck_assert_ptr_nonnull(opaque);
	ck_assert_uint_lt(nr_delivered, ARRAY_SIZE(delivered));
	delivered[nr_delivered++] = (struct delivery){address, data};
}

static void add_tdev(struct tdev *d, unsigned nr)
{
	pci_device_init(&d->pci, 0x1234, 0x11, 0xff0000, 0, 0, 0, &tdev_ops, NULL);
	ck_assert_int_eq(pci_device_add_bar(&d->pci, 0, BAR_SIZE, PCI_BAR_64BIT, &bar_ops, d), 0);
	ck_assert_int_eq(msix_init(&d->msix, &d->pci, nr, 0, TABLE, PBA, NULL), 0);
	d->msix.test_deliver = record_delivery;
	d->msix.test_opaque = d;
	ck_assert_int_eq(pci_host_add_device(&host, &d->pci), 0);
	d->slot = d->pci.slot;
}

static void setup(void)
{
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	ck_assert_int_eq(pci_host_init(&host, &layout, &pio, &mmio), 0);
	memset(&dev, 0, sizeof(dev));
	memset(&big, 0, sizeof(big));
	nr_delivered = 0;
	add_tdev(&dev, NR);
	add_tdev(&big, MSIX_MAX_VECTORS);
}

static void teardown(void)
{
	msix_destroy(&dev.msix);
	msix_destroy(&big.msix);
	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
}

/* ---- guest-side accessors ---- */

static uint64_t mem_rd(uint64_t addr, unsigned size)
{
	uint64_t v = 0;

	ck_assert_int_eq(bus_access(&mmio, addr, &v, size, false), 0);
	return le64toh(v);
}

static void mem_wr(uint64_t addr, unsigned size, uint64_t v)
{
	v = htole64(v);
	ck_assert_int_eq(bus_access(&mmio, addr, &v, size, true), 0);
}

static void io_wr(uint16_t port, uint32_t v)
{
	v = htole32(v);
	ck_assert_int_eq(bus_access(&pio, port, &v, 4, true), 0);
}

static uint64_t cfg_addr(const struct tdev *d, unsigned reg)
{
	return ECAM + ((uint64_t)d->slot << 15) + reg;
}

static uint32_t cfg_rd(const struct tdev *d, unsigned reg, unsigned size)
{
	return (uint32_t)mem_rd(cfg_addr(d, reg), size);
}

static void cfg_wr(const struct tdev *d, unsigned reg, unsigned size, uint32_t v)
{
	mem_wr(cfg_addr(d, reg), size, v);
}

static uint64_t bar(const struct tdev *d)
{
	return (cfg_rd(d, PCI_BAR0, 4) & ~0xfull) | (uint64_t)cfg_rd(d, PCI_BAR0 + 4, 4) << 32;
}

static void memory_enable(const struct tdev *d)
{
	cfg_wr(d, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void control(const struct tdev *d, uint16_t bits)
{
	cfg_wr(d, d->msix.cap + CTRL, 2, bits);
}

static uint64_t entry(const struct tdev *d, unsigned v)
{
	return bar(d) + TABLE + v * MSIX_ENTRY_SIZE;
}

static void program(const struct tdev *d, unsigned v, uint64_t address, uint32_t data)
{
	mem_wr(entry(d, v), 4, (uint32_t)address);
	mem_wr(entry(d, v) + 4, 4, (uint32_t)(address >> 32));
	mem_wr(entry(d, v) + 8, 4, data);
}

static void mask(const struct tdev *d, unsigned v, bool masked)
{
	mem_wr(entry(d, v) + 12, 4, masked);
}

static uint64_t pba(const struct tdev *d)
{
	return mem_rd(bar(d) + PBA, 8);
}

/* ---- tests ---- */

START_TEST(capability)
{
	unsigned at = cfg_rd(&dev, PCI_CAPABILITY_PTR, 1);

	ck_assert_uint_eq(cfg_rd(&dev, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
	ck_assert_uint_eq(at, dev.msix.cap);
	ck_assert_uint_eq(cfg_rd(&dev, at, 1), PCI_CAP_ID_MSIX);
	ck_assert_uint_eq(cfg_rd(&dev, at + 1, 1), 0);
	/* Table size N-1, table and PBA offsets with the BAR indicator; only the top bits of
	 * Message Control are writable. */
	ck_assert_uint_eq(cfg_rd(&dev, at + CTRL, 2), NR - 1);
	ck_assert_uint_eq(cfg_rd(&dev, at + TBL, 4), TABLE | 0);
	ck_assert_uint_eq(cfg_rd(&dev, at + PBAOFF, 4), PBA | 0);
	ck_assert_uint_eq(cfg_rd(&big, big.msix.cap + CTRL, 2), MSIX_MAX_VECTORS - 1);
	cfg_wr(&dev, at, 4, 0xffffffff);
	cfg_wr(&dev, at + TBL, 4, 0);
	cfg_wr(&dev, at + PBAOFF, 4, 0xffffffff);
	ck_assert_uint_eq(cfg_rd(&dev, at, 4),
	                  (uint32_t)(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL | (NR - 1)) << 16 |
	                          PCI_CAP_ID_MSIX);
	ck_assert_uint_eq(cfg_rd(&dev, at + TBL, 4), TABLE);
	ck_assert_uint_eq(cfg_rd(&dev, at + PBAOFF, 4), PBA);
	ck_assert(msix_enabled(&dev.msix));
	control(&dev, 0);
	ck_assert(!msix_enabled(&dev.msix));
}
END_TEST

START_TEST(table_access)
{
	uint64_t e;

	memory_enable(&dev);
	e = entry(&dev, 0);
	/* Reset state: zeros, every vector masked. */
	for (unsigned v = 0; v < NR; v++) {
		ck_assert_uint_eq(mem_rd(e + v * 16, 8), 0);
		ck_assert_uint_eq(mem_rd(e + v * 16 + 8, 4), 0);
		ck_assert_uint_eq(mem_rd(e + v * 16 + 12, 4), MSIX_VECTOR_MASKED);
	}
	/* 4-byte writes, read back as 4 and 8 bytes; the address is dword aligned. */
	mem_wr(e + 16, 4, 0xfee01003);
	mem_wr(e + 20, 4, 0x1);
	mem_wr(e + 24, 4, 0x4041);
	mem_wr(e + 28, 4, 0xfffffffe); /* reserved control bits stay clear */
	ck_assert_uint_eq(mem_rd(e + 16, 4), 0xfee01000);
	ck_assert_uint_eq(mem_rd(e + 16, 8), 0x1fee01000ULL);
	ck_assert_uint_eq(mem_rd(e + 24, 8), 0x4041);
	ck_assert_uint_eq(mem_rd(e + 28, 4), 0);
	/* 8-byte writes. */
	mem_wr(e + 32, 8, 0x00000002fee02000ULL);
	mem_wr(e + 40, 8, 0x0000000100005151ULL);
	ck_assert_uint_eq(mem_rd(e + 32, 4), 0xfee02000);
	ck_assert_uint_eq(mem_rd(e + 36, 4), 2);
	ck_assert_uint_eq(mem_rd(e + 40, 4), 0x5151);
	ck_assert_uint_eq(mem_rd(e + 44, 4), MSIX_VECTOR_MASKED);

	/* Bad sizes and misaligned accesses: reads all-ones, writes dropped. */
	ck_assert_uint_eq(mem_rd(e + 16, 2), 0xffff);
	ck_assert_uint_eq(mem_rd(e + 16, 1), 0xff);
	ck_assert_uint_eq(mem_rd(e + 18, 4), 0xffffffff);
	ck_assert_uint_eq(mem_rd(e + 20, 8), UINT64_MAX);
	mem_wr(e + 16, 2, 0);
	mem_wr(e + 16, 1, 0);
	mem_wr(e + 18, 4, 0);
	mem_wr(e + 20, 8, 0);
	ck_assert_uint_eq(mem_rd(e + 16, 8), 0x1fee01000ULL);
	/* Entries past the table: all-ones, writes dropped. */
	ck_assert_uint_eq(mem_rd(e + NR * 16, 4), 0xffffffff);
	ck_assert_uint_eq(mem_rd(e + 0xff0, 8), UINT64_MAX);
	mem_wr(e + NR * 16 + 12, 4, 0);
	msix_table_write(&dev.msix, UINT64_MAX - 7, &(uint64_t){0}, 8);
	msix_table_read(&dev.msix, UINT64_MAX - 3, &(uint32_t){0}, 4);
	/* The PBA: 4 or 8 bytes, zeros elsewhere, read-only. */
	ck_assert_uint_eq(pba(&dev), 0);
	ck_assert_uint_eq(mem_rd(bar(&dev) + PBA + 8, 8), 0);
	ck_assert_uint_eq(mem_rd(bar(&dev) + PBA, 2), 0);
	mem_wr(bar(&dev) + PBA, 8, UINT64_MAX);
	ck_assert_uint_eq(pba(&dev), 0);
	ck_assert(!msix_enabled(&dev.msix));
	ck_assert_uint_eq(nr_delivered, 0);
}
END_TEST

START_TEST(masked_then_delivered)
{
	memory_enable(&dev);
	program(&dev, 2, 0xfee00000, 0x4022);

	/* MSI-X off, vector masked: pending, nothing delivered. */
	msix_notify(&dev.msix, 2);
	ck_assert_uint_eq(nr_delivered, 0);
	ck_assert_uint_eq(pba(&dev), 1 << 2);
	ck_assert_uint_eq(mem_rd(bar(&dev) + PBA, 4), 1 << 2);
	/* Enabled, still masked: still pending. */
	control(&dev, MSIX_CTRL_ENABLE);
	ck_assert(msix_enabled(&dev.msix));
	ck_assert_uint_eq(nr_delivered, 0);
	ck_assert_uint_eq(pba(&dev), 1 << 2);
	/* Unmasked: the pending message goes out, with the vector's address and data. */
	mask(&dev, 2, false);
	ck_assert_uint_eq(nr_delivered, 1);
	ck_assert_uint_eq(delivered[0].address, 0xfee00000);
	ck_assert_uint_eq(delivered[0].data, 0x4022);
	ck_assert_uint_eq(pba(&dev), 0);
	/* Now straight through, once per notify. */
	msix_notify(&dev.msix, 2);
	msix_notify(&dev.msix, 2);
	ck_assert_uint_eq(nr_delivered, 3);
	ck_assert_uint_eq(pba(&dev), 0);
	/* Reprogramming takes effect on the next message. */
	mem_wr(entry(&dev, 2), 8, 0x00000001fee0f000ULL);
	msix_notify(&dev.msix, 2);
	ck_assert_uint_eq(delivered[3].address, 0x1fee0f000ULL);
	/* Other vectors are still masked. */
	msix_notify(&dev.msix, 0);
	msix_notify(&dev.msix, NR - 1);
	ck_assert_uint_eq(nr_delivered, 4);
	ck_assert_uint_eq(pba(&dev), 1 | 1 << (NR - 1));
	/* Unmasking one vector delivers only that one. */
	program(&dev, 0, 0xfee00010, 0x10);
	mask(&dev, 0, false);
	ck_assert_uint_eq(nr_delivered, 5);
	ck_assert_uint_eq(delivered[4].data, 0x10);
	ck_assert_uint_eq(pba(&dev), 1 << (NR - 1));
	/* A pending vector notified again is still one message. */
	msix_notify(&dev.msix, NR - 1);
	mask(&dev, NR - 1, false);
	ck_assert_uint_eq(nr_delivered, 6);
	ck_assert_uint_eq(pba(&dev), 0);
	/* Masking again: back to pending; rewriting the mask bit set changes nothing. */
	mask(&dev, 0, true);
	msix_notify(&dev.msix, 0);
	mask(&dev, 0, true);
	ck_assert_uint_eq(nr_delivered, 6);
	ck_assert_uint_eq(pba(&dev), 1);
}
END_TEST

/* What goes out is the vector's content at unmask time, not at notify time. */
START_TEST(reprogrammed_while_pending)
{
	memory_enable(&dev);
	control(&dev, MSIX_CTRL_ENABLE);
	program(&dev, 1, 0xfee00000, 0x21);
	msix_notify(&dev.msix, 1);
	program(&dev, 1, 0xfee0c000, 0x22);
	ck_assert_uint_eq(nr_delivered, 0);
	/* One 8-byte write of data and control: unmasks and delivers with the new data. */
	mem_wr(entry(&dev, 1) + 8, 8, 0x23);
	ck_assert_uint_eq(nr_delivered, 1);
	ck_assert_uint_eq(delivered[0].address, 0xfee0c000);
	ck_assert_uint_eq(delivered[0].data, 0x23);
	ck_assert_uint_eq(mem_rd(entry(&dev, 1) + 12, 4), 0);
}
END_TEST

START_TEST(function_mask)
{
	memory_enable(&dev);
	program(&dev, 1, 0xfee00000, 0x31);
	mask(&dev, 1, false);
	msix_notify(&dev.msix, 1); /* MSI-X off: pending even though unmasked */
	ck_assert_uint_eq(nr_delivered, 0);
	ck_assert_uint_eq(pba(&dev), 1 << 1);
	control(&dev, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	ck_assert_uint_eq(nr_delivered, 0);
	msix_notify(&dev.msix, 1);
	ck_assert_uint_eq(nr_delivered, 0);
	ck_assert_uint_eq(pba(&dev), 1 << 1);
	/* The function mask does not touch the per-vector bits. */
	ck_assert_uint_eq(mem_rd(entry(&dev, 1) + 12, 4), 0);
	/* Cleared by a byte write to the control's upper half: one delivery for both. */
	cfg_wr(&dev, dev.msix.cap + CTRL + 1, 1, MSIX_CTRL_ENABLE >> 8);
	ck_assert_uint_eq(nr_delivered, 1);
	ck_assert_uint_eq(delivered[0].data, 0x31);
	ck_assert_uint_eq(pba(&dev), 0);
	/* Through CF8 too, as a dword write of the capability header. */
	io_wr(CF8, CF8_EN | dev.slot << 11 | dev.msix.cap);
	io_wr(CFC, (uint32_t)(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) << 16);
	msix_notify(&dev.msix, 1);
	ck_assert_uint_eq(nr_delivered, 1);
	io_wr(CFC, (uint32_t)MSIX_CTRL_ENABLE << 16);
	ck_assert_uint_eq(nr_delivered, 2);
	/* Disabling MSI-X holds messages too. */
	control(&dev, 0);
	ck_assert(!msix_enabled(&dev.msix));
	msix_notify(&dev.msix, 1);
	ck_assert_uint_eq(nr_delivered, 2);
	control(&dev, MSIX_CTRL_ENABLE);
	ck_assert_uint_eq(nr_delivered, 3);
	/* Enabling with nothing pending sends nothing; unrelated config writes change nothing. */
	control(&dev, 0);
	control(&dev, MSIX_CTRL_ENABLE);
	cfg_wr(&dev, PCI_INTERRUPT_LINE, 1, 5);
	ck_assert_uint_eq(nr_delivered, 3);
	ck_assert(msix_enabled(&dev.msix));
}
END_TEST

/* With 64 vectors the PBA is a whole qword; its dwords read separately. */
START_TEST(pba_wide)
{
	memory_enable(&big);
	msix_notify(&big.msix, 0);
	msix_notify(&big.msix, 33);
	msix_notify(&big.msix, MSIX_MAX_VECTORS - 1);
	ck_assert_uint_eq(pba(&big), 1 | 1ULL << 33 | 1ULL << 63);
	ck_assert_uint_eq(mem_rd(bar(&big) + PBA, 4), 1);
	ck_assert_uint_eq(mem_rd(bar(&big) + PBA + 4, 4), 1u << 1 | 1u << 31);
	/* Misaligned or odd-sized PBA reads see zeros. */
	ck_assert_uint_eq(mem_rd(bar(&big) + PBA + 2, 4), 0);
	ck_assert_uint_eq(mem_rd(bar(&big) + PBA + 4, 8), 0);
	ck_assert_uint_eq(mem_rd(bar(&big) + PBA + 1, 1), 0);
	/* The last entry of the table is reachable, the one after is not. */
	program(&big, MSIX_MAX_VECTORS - 1, 0xfee00000, 0x63);
	ck_assert_uint_eq(mem_rd(entry(&big, MSIX_MAX_VECTORS - 1) + 8, 4), 0x63);
	ck_assert_uint_eq(mem_rd(entry(&big, MSIX_MAX_VECTORS), 4), 0xffffffff);
	control(&big, MSIX_CTRL_ENABLE);
	mask(&big, MSIX_MAX_VECTORS - 1, false);
	ck_assert_uint_eq(nr_delivered, 1);
	ck_assert_uint_eq(delivered[0].data, 0x63);
	ck_assert_uint_eq(pba(&big), 1 | 1ULL << 33);
	/* The other device saw nothing. */
	memory_enable(&dev);
	ck_assert_uint_eq(pba(&dev), 0);
}
END_TEST

START_TEST(out_of_range)
{
	struct msix m;
	struct pci_device d;

	memory_enable(&dev);
	control(&dev, MSIX_CTRL_ENABLE);
	msix_notify(&dev.msix, NR);
	msix_notify(&dev.msix, MSIX_MAX_VECTORS);
	msix_notify(&dev.msix, ~0u);
	ck_assert_uint_eq(nr_delivered, 0);
	ck_assert_uint_eq(pba(&dev), 0);

	/* msix_init refuses what it cannot represent. */
	pci_device_init(&d, 1, 2, 0, 0, 0, 0, NULL, NULL);
	ck_assert_int_eq(msix_init(&m, &d, 0, 0, 0, 0x800, NULL), -EINVAL);
	ck_assert_int_eq(msix_init(&m, &d, MSIX_MAX_VECTORS + 1, 0, 0, 0x800, NULL), -EINVAL);
	ck_assert_int_eq(msix_init(&m, &d, 1, PCI_NUM_BARS, 0, 0x800, NULL), -EINVAL);
	ck_assert_int_eq(msix_init(&m, &d, 1, 0, 4, 0x800, NULL), -EINVAL);
	ck_assert_int_eq(msix_init(&m, &d, 1, 0, 0, 0x804, NULL), -EINVAL);
	ck_assert_uint_eq(d.config[PCI_CAPABILITY_PTR], 0);
	ck_assert_int_eq(msix_init(&m, &d, MSIX_MAX_VECTORS, 0, 0, 0x800, NULL), 0);
	ck_assert_uint_eq(pci_config_read16(&d, PCI_CAP_START + CTRL), MSIX_MAX_VECTORS - 1);
	msix_notify(&m, MSIX_MAX_VECTORS - 1);
	ck_assert_uint_eq(m.pending, 1ULL << (MSIX_MAX_VECTORS - 1));
	msix_destroy(&m);
}
END_TEST

static Suite *msix_suite(void)
{
	Suite *s = suite_create("msix");
	TCase *tc = tcase_create("msix");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, capability);
	tcase_add_test(tc, table_access);
	tcase_add_test(tc, masked_then_delivered);
	tcase_add_test(tc, reprogrammed_while_pending);
	tcase_add_test(tc, function_mask);
	tcase_add_test(tc, pba_wide);
	tcase_add_test(tc, out_of_range);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(msix_suite());
}
