/*
 * dispatch: run with --test-device. Checks that port and MMIO accesses reach the scratch test
 * device at the right offset with the right size and byte order, that unclaimed ports and MMIO
 * read as all-ones, and that writes to them are dropped without harm. Exits through the
 * debug-exit port with 0, or the code of the first failed check (see enum below).
 */
#include "fw.h"

enum {
	FAIL_PORT8 = 0x20,
	FAIL_PORT16 = 0x21,
	FAIL_PORT32 = 0x22,
	FAIL_PORT_ORDER = 0x23,
	FAIL_MMIO8 = 0x24,
	FAIL_MMIO16 = 0x25,
	FAIL_MMIO32 = 0x26,
	FAIL_MMIO64 = 0x27,
	FAIL_MMIO_ORDER = 0x28,
	FAIL_UNALIGNED = 0x29,
	FAIL_UNCLAIMED_PORT = 0x2a,
	FAIL_UNCLAIMED_MMIO = 0x2b,
	FAIL_UNCLAIMED_WRITES = 0x2c,
	FAIL_HARMLESS = 0x2d,
};

#define UNCLAIMED_PORT   0x5F0
#define UNCLAIMED_MMIO_1 (FW_TEST_MMIO + FW_TEST_MMIO_LEN) /* right after the device */
#define UNCLAIMED_MMIO_2 (FW_TEST_MMIO + 0xF000000)        /* between virtio-mmio and PCI ECAM */

static int mismatches;

/* Prints and counts a mismatch. */
static void mismatch(const char *what, uint64_t addr, uint64_t got, uint64_t want)
{
	mismatches++;
	uart_puts("vmm-firmware:   ");
	uart_puts(what);
	uart_puts(" at ");
	uart_put_hex(addr);
	uart_puts(": read ");
	uart_put_hex(got);
	uart_puts(", expected ");
	uart_put_hex(want);
	uart_puts("\n");
}

static void expect(const char *what, uint64_t addr, uint64_t got, uint64_t want)
{
	if (got != want)
		mismatch(what, addr, got, want);
}

/* Starts a check: clears the mismatch count. */
static void begin(void)
{
	mismatches = 0;
}

static int end(struct fw_checks *c, uint8_t code, const char *name)
{
	return fw_check(c, mismatches == 0, code, name);
}

/* A value for (size, offset) whose bytes differ from each other and between offsets. */
static uint64_t pattern(unsigned size, uint64_t off)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)((0x5a + 0x25 * size + 0x11 * i + 0x3 * off) & 0xff) << (8 * i);
	return v;
}

static void port_checks(struct fw_checks *c)
{
	static const uint16_t off16[] = {0, 2, 6, 14};
	static const uint16_t off32[] = {0, 4, 12};

	begin();
	for (uint16_t off = 0; off < FW_TEST_PORT_LEN; off++)
		outb(FW_TEST_PORT + off, (uint8_t)pattern(1, off));
	for (uint16_t off = 0; off < FW_TEST_PORT_LEN; off++)
		expect("inb", FW_TEST_PORT + off, inb(FW_TEST_PORT + off), pattern(1, off));
	end(c, FAIL_PORT8, "port: 1-byte writes and reads at every offset of 0x520");

	begin();
	for (unsigned i = 0; i < sizeof(off16) / sizeof(off16[0]); i++)
		outw(FW_TEST_PORT + off16[i], (uint16_t)pattern(2, off16[i]));
	for (unsigned i = 0; i < sizeof(off16) / sizeof(off16[0]); i++)
		expect("inw", FW_TEST_PORT + off16[i], inw(FW_TEST_PORT + off16[i]),
		       pattern(2, off16[i]));
	end(c, FAIL_PORT16, "port: 2-byte writes and reads at 0x520 + 0, 2, 6, 14");

	begin();
	for (unsigned i = 0; i < sizeof(off32) / sizeof(off32[0]); i++)
		outl(FW_TEST_PORT + off32[i], (uint32_t)pattern(4, off32[i]));
	for (unsigned i = 0; i < sizeof(off32) / sizeof(off32[0]); i++)
		expect("inl", FW_TEST_PORT + off32[i], inl(FW_TEST_PORT + off32[i]),
		       pattern(4, off32[i]));
	end(c, FAIL_PORT32, "port: 4-byte writes and reads at 0x520 + 0, 4, 12");

	begin();
	outl(FW_TEST_PORT + 8, 0x44332211);
	for (uint16_t i = 0; i < 4; i++)
		expect("inb", FW_TEST_PORT + 8 + i, inb(FW_TEST_PORT + 8 + i), 0x11 * (i + 1u));
	expect("inw", FW_TEST_PORT + 9, inw(FW_TEST_PORT + 9), 0x3322);
	outb(FW_TEST_PORT + 10, 0xee);
	expect("inl", FW_TEST_PORT + 8, inl(FW_TEST_PORT + 8), 0x44ee2211);
	end(c, FAIL_PORT_ORDER, "port: little-endian bytes across access sizes");
}

static void mmio_checks(struct fw_checks *c)
{
	static const uint64_t off8[] = {0, 1, 0x7ff, 0xfff};
	static const uint64_t off16[] = {0x10, 0x102, 0xffe};
	static const uint64_t off32[] = {0x20, 0x204, 0xffc};
	static const uint64_t off64[] = {0x40, 0x408, 0xff8};
	const uint64_t b = FW_TEST_MMIO;

	begin();
	for (unsigned i = 0; i < 4; i++)
		mmio_write8(b + off8[i], (uint8_t)pattern(1, off8[i]));
	for (unsigned i = 0; i < 4; i++)
		expect("mmio8", b + off8[i], mmio_read8(b + off8[i]), pattern(1, off8[i]));
	end(c, FAIL_MMIO8, "mmio: 1-byte writes and reads at 0xd0000000 + 0, 1, 0x7ff, 0xfff");

	begin();
	for (unsigned i = 0; i < 3; i++)
		mmio_write16(b + off16[i], (uint16_t)pattern(2, off16[i]));
	for (unsigned i = 0; i < 3; i++)
		expect("mmio16", b + off16[i], mmio_read16(b + off16[i]), pattern(2, off16[i]));
	end(c, FAIL_MMIO16, "mmio: 2-byte writes and reads at 0xd0000000 + 0x10, 0x102, 0xffe");

	begin();
	for (unsigned i = 0; i < 3; i++)
		mmio_write32(b + off32[i], (uint32_t)pattern(4, off32[i]));
	for (unsigned i = 0; i < 3; i++)
		expect("mmio32", b + off32[i], mmio_read32(b + off32[i]), pattern(4, off32[i]));
	end(c, FAIL_MMIO32, "mmio: 4-byte writes and reads at 0xd0000000 + 0x20, 0x204, 0xffc");

	begin();
	for (unsigned i = 0; i < 3; i++)
		mmio_write64(b + off64[i], pattern(8, off64[i]));
	for (unsigned i = 0; i < 3; i++)
		expect("mmio64", b + off64[i], mmio_read64(b + off64[i]), pattern(8, off64[i]));
	end(c, FAIL_MMIO64, "mmio: 8-byte writes and reads at 0xd0000000 + 0x40, 0x408, 0xff8");

	begin();
	mmio_write64(b + 0x80, 0x8877665544332211ULL);
	for (unsigned i = 0; i < 8; i++)
		expect("mmio8", b + 0x80 + i, mmio_read8(b + 0x80 + i), 0x11 * (i + 1u));
	expect("mmio16", b + 0x82, mmio_read16(b + 0x82), 0x4433);
	expect("mmio32", b + 0x84, mmio_read32(b + 0x84), 0x88776655);
	mmio_write8(b + 0x83, 0xee);
	expect("mmio64", b + 0x80, mmio_read64(b + 0x80), 0x88776655ee332211ULL);
	end(c, FAIL_MMIO_ORDER,
	    "mmio: 8-byte write, then 1/2/4-byte reads see little-endian bytes");
}

static void unaligned_checks(struct fw_checks *c)
{
	const uint64_t b = FW_TEST_MMIO;

	begin();
	outw(FW_TEST_PORT + 5, 0xbeef);
	expect("inw", FW_TEST_PORT + 5, inw(FW_TEST_PORT + 5), 0xbeef);
	expect("inb", FW_TEST_PORT + 6, inb(FW_TEST_PORT + 6), 0xbe);
	outl(FW_TEST_PORT + 9, 0xcafef00d);
	expect("inl", FW_TEST_PORT + 9, inl(FW_TEST_PORT + 9), 0xcafef00d);
	mmio_write32(b + 0x301, 0x76543210);
	expect("mmio32", b + 0x301, mmio_read32(b + 0x301), 0x76543210);
	expect("mmio8", b + 0x302, mmio_read8(b + 0x302), 0x32);
	mmio_write64(b + 0x403, 0x0123456789abcdefULL);
	expect("mmio64", b + 0x403, mmio_read64(b + 0x403), 0x0123456789abcdefULL);
	end(c, FAIL_UNALIGNED, "unaligned port and mmio accesses inside the device");
}

static void unclaimed_port_reads(void)
{
	expect("inb", UNCLAIMED_PORT, inb(UNCLAIMED_PORT), 0xff);
	expect("inw", UNCLAIMED_PORT, inw(UNCLAIMED_PORT), 0xffff);
	expect("inl", UNCLAIMED_PORT, inl(UNCLAIMED_PORT), 0xffffffff);
	expect("inb", FW_TEST_PORT + FW_TEST_PORT_LEN, inb(FW_TEST_PORT + FW_TEST_PORT_LEN), 0xff);
	expect("inb", FW_TEST_PORT - 1, inb(FW_TEST_PORT - 1), 0xff);
}

static void unclaimed_mmio_reads(void)
{
	static const uint64_t mmio[] = {UNCLAIMED_MMIO_1, UNCLAIMED_MMIO_2};

	for (unsigned i = 0; i < 2; i++) {
		expect("mmio8", mmio[i], mmio_read8(mmio[i]), 0xff);
		expect("mmio16", mmio[i], mmio_read16(mmio[i]), 0xffff);
		expect("mmio32", mmio[i], mmio_read32(mmio[i]), 0xffffffff);
		expect("mmio64", mmio[i], mmio_read64(mmio[i]), ~0ULL);
	}
}

static void unclaimed_checks(struct fw_checks *c)
{
	const uint64_t b = FW_TEST_MMIO;

	begin();
	unclaimed_port_reads();
	end(c, FAIL_UNCLAIMED_PORT,
	    "unclaimed ports 0x5f0, 0x51f, 0x530 read all-ones (1/2/4 bytes)");
	begin();
	unclaimed_mmio_reads();
	end(c, FAIL_UNCLAIMED_MMIO,
	    "unclaimed mmio 0xd0001000, 0xd0100000 reads all-ones (1/2/4/8 bytes)");

	/* Fresh contents, then writes that must go nowhere. */
	for (uint16_t off = 0; off < FW_TEST_PORT_LEN; off++)
		outb(FW_TEST_PORT + off, (uint8_t)pattern(1, off + 0x40));
	for (uint64_t off = 0x800; off < 0x810; off += 8)
		mmio_write64(b + off, pattern(8, off));
	mmio_write8(b + 0xfff, 0x5c);
	outb(UNCLAIMED_PORT, 0);
	outw(UNCLAIMED_PORT, 0);
	outl(UNCLAIMED_PORT, 0);
	outl(FW_TEST_PORT + FW_TEST_PORT_LEN, 0);
	mmio_write8(UNCLAIMED_MMIO_1, 0);
	mmio_write16(UNCLAIMED_MMIO_1, 0);
	mmio_write32(UNCLAIMED_MMIO_1, 0);
	mmio_write64(UNCLAIMED_MMIO_1, 0);
	mmio_write64(UNCLAIMED_MMIO_2, 0);

	begin();
	unclaimed_port_reads();
	unclaimed_mmio_reads();
	end(c, FAIL_UNCLAIMED_WRITES, "unclaimed port and mmio still read all-ones after writes");

	begin();
	for (uint16_t off = 0; off < FW_TEST_PORT_LEN; off++)
		expect("inb", FW_TEST_PORT + off, inb(FW_TEST_PORT + off), pattern(1, off + 0x40));
	for (uint64_t off = 0x800; off < 0x810; off += 8)
		expect("mmio64", b + off, mmio_read64(b + off), pattern(8, off));
	expect("mmio8", b + 0xfff, mmio_read8(b + 0xfff), 0x5c);
	end(c, FAIL_HARMLESS, "writes to unclaimed addresses left the test device intact");
}

void fw_main(uint64_t boot_arg)
{
	struct fw_checks c = {0};

	(void)boot_arg;
	uart_puts("vmm-firmware: dispatch: checking port and mmio dispatch\n");
	port_checks(&c);
	mmio_checks(&c);
	unaligned_checks(&c);
	unclaimed_checks(&c);
	fw_checks_finish(&c);
}
