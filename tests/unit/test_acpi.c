/*
 * ACPI tables in fake guest memory, read back the way a kernel finds them: scan for the RSDP,
 * follow the XSDT, check every checksum, length, signature and alignment, then the fields of
 * the FADT, MADT and MCFG at their spec offsets and the DSDT's devices byte for byte. Also the
 * limits: bad configs, tables that do not fit, and no byte written outside 0xE0000-0xFFFFF.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/acpi.h"
#include "tests/unit/unit.h"
#include "vmm/memory.h"

#define AREA_START 0xe0000
#define AREA_END   0x100000
#define RAM_SIZE   (2 * MIB)
#define POISON     0xa5
#define HDR        36

static struct guest_memory mem;
static uint8_t *ram;

static const struct acpi_virtio_mmio mmio[] = {
        {0xd0100000, 0x1000, 16},
        {0xd0101000, 0x1000, 17},
        {0xd0102000, 0x200, 5},
};

static const struct acpi_pci_slot slots[] = {{1, 18}, {2, 19}, {0, 20}, {31, 23}};

static struct acpi_config base_config(unsigned cpus)
{
	return (struct acpi_config){.nr_cpus = cpus, .virtio_mmio = mmio, .nr_virtio_mmio = 3};
}

static struct acpi_config pci_config(unsigned cpus)
{
	struct acpi_config c = base_config(cpus);

	c.pci = true;
	c.pci_ecam_base = 0xe0000000;
	c.pci_ecam_size = 4 * MIB; /* buses 0-3 */
	c.pci_mmio32_base = 0xc0000000;
	c.pci_mmio32_size = 0x10000000;
	c.pci_mmio64_base = 0x140000000;
	c.pci_mmio64_size = 16 * GIB;
	c.pci_slots = slots;
	c.nr_pci_slots = 4;
	return c;
}

static void setup(void)
{
	memset(&mem, 0, sizeof(mem));
	ck_assert_int_eq(guest_memory_add(&mem, 0, RAM_SIZE), 0);
	ram = gpa_to_hva(&mem, 0, RAM_SIZE);
	ck_assert_ptr_nonnull(ram);
	memset(ram, POISON, RAM_SIZE);
}

static void teardown(void)
{
	guest_memory_free(&mem);
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* True when no byte in [from, to) changed from the poison. */
static bool untouched(uint64_t from, uint64_t to)
{
	for (uint64_t i = from; i < to; i++)
		if (ram[i] != POISON)
			return false;
	return true;
}

struct tables {
	uint64_t rsdp;
	const uint8_t *xsdt, *fadt, *madt, *mcfg, *dsdt;
	unsigned nr_xsdt;
	uint64_t start[8], end[8]; /* every structure, to check they do not overlap */
	unsigned nr;
};

static void note_range(struct tables *t, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < t->nr; i++)
		ck_assert(gpa + len <= t->start[i] || gpa >= t->end[i]);
	ck_assert_uint_lt(t->nr, 8);
	t->start[t->nr] = gpa;
	t->end[t->nr++] = gpa + len;
}

/* A table at @gpa: aligned, inside the area, summing to zero, with our OEM ID. */
static const uint8_t *table_at(struct tables *t, uint64_t gpa, const char *sig)
{
	const uint8_t *p;
	uint32_t len;

	ck_assert_uint_ge(gpa, AREA_START);
	ck_assert_uint_le(gpa + HDR, AREA_END);
	ck_assert_uint_eq(gpa % 16, 0);
	p = ram + gpa;
	ck_assert_mem_eq(p, sig, 4);
	len = rd32(p + 4);
	ck_assert_uint_ge(len, HDR);
	ck_assert_uint_le(gpa + len, AREA_END);
	ck_assert_uint_eq(sum(p, len), 0);
	ck_assert_mem_eq(p + 10, "VMM   ", 6);
	note_range(t, gpa, len);
	return p;
}

/* Builds the tables and finds them as a kernel does, checking the structure on the way. */
static void build(const struct acpi_config *cfg, struct tables *t)
{
	const uint8_t *r;
	uint64_t scanned = 0;

	memset(t, 0, sizeof(*t));
	ck_assert_int_eq(acpi_build(&mem, cfg, &t->rsdp), 0);
	ck_assert(untouched(0, AREA_START));
	ck_assert(untouched(AREA_END, RAM_SIZE));
	for (uint64_t a = AREA_START; a < AREA_END && !scanned; a += 16)
		if (!memcmp(ram + a, "RSD PTR ", 8))
			scanned = a;
	ck_assert_uint_eq(scanned, t->rsdp);
	ck_assert_uint_eq(t->rsdp, AREA_START);
	r = ram + t->rsdp;
	ck_assert_uint_eq(sum(r, 20), 0);
	ck_assert_uint_eq(r[15], 2);          /* revision */
	ck_assert_uint_eq(rd32(r + 16), 0);   /* no RSDT */
	ck_assert_uint_eq(rd32(r + 20), 36);  /* length */
	ck_assert_uint_eq(sum(r, 36), 0);     /* extended checksum */
	ck_assert_mem_eq(r + 9, "VMM   ", 6); /* OEM ID */
	note_range(t, t->rsdp, 36);

	t->xsdt = table_at(t, rd64(r + 24), "XSDT");
	ck_assert_uint_eq(t->xsdt[8], 1);
	ck_assert_uint_eq((rd32(t->xsdt + 4) - HDR) % 8, 0);
	t->nr_xsdt = (rd32(t->xsdt + 4) - HDR) / 8;
	for (unsigned i = 0; i < t->nr_xsdt; i++) {
		uint64_t gpa = rd64(t->xsdt + HDR + 8 * i);
		const uint8_t **slot = NULL;
		const char *sig = (const char *)ram + gpa;

		ck_assert_uint_lt(gpa, AREA_END);
		if (!memcmp(sig, "FACP", 4))
			slot = &t->fadt;
		else if (!memcmp(sig, "APIC", 4))
			slot = &t->madt;
		else if (!memcmp(sig, "MCFG", 4))
			slot = &t->mcfg;
		ck_assert_ptr_nonnull(slot);
		ck_assert_ptr_null(*slot); /* each table once */
		*slot = table_at(t, gpa, sig);
	}
	ck_assert_ptr_nonnull(t->fadt);
	ck_assert_ptr_nonnull(t->madt);
	t->dsdt = table_at(t, rd64(t->fadt + 140), "DSDT");
	ck_assert_uint_eq(t->dsdt[8], 2); /* 64-bit integers */
}

START_TEST(rsdp_xsdt_without_pci)
{
	const struct acpi_config cfg = base_config(1);
	struct tables t;

	build(&cfg, &t);
	ck_assert_uint_eq(t.nr_xsdt, 2);
	ck_assert_ptr_null(t.mcfg);
}
END_TEST

START_TEST(rsdp_xsdt_with_pci)
{
	const struct acpi_config cfg = pci_config(2);
	struct tables t;

	build(&cfg, &t);
	ck_assert_uint_eq(t.nr_xsdt, 3);
	ck_assert_ptr_nonnull(t.mcfg);
}
END_TEST

static void expect_gas_io8(const uint8_t *g, uint16_t port)
{
	ck_assert_uint_eq(g[0], 1); /* system I/O */
	ck_assert_uint_eq(g[1], 8); /* bit width */
	ck_assert_uint_eq(g[2], 0); /* bit offset */
	ck_assert_uint_eq(g[3], 1); /* byte access */
	ck_assert_uint_eq(rd64(g + 4), port);
}

START_TEST(fadt_fields)
{
	const struct acpi_config cfg = base_config(1);
	struct tables t;
	const uint8_t *f;
	uint32_t flags;
	uint16_t boot;

	build(&cfg, &t);
	f = t.fadt;
	ck_assert_uint_eq(rd32(f + 4), 276);
	ck_assert_uint_eq(f[8], 6);         /* revision */
	ck_assert_uint_eq(f[131], 5);       /* minor version: ACPI 6.5 */
	ck_assert_uint_eq(rd32(f + 36), 0); /* no FACS */
	ck_assert_uint_eq(rd64(f + 132), 0);
	ck_assert(rd32(f + 40) == 0 || rd32(f + 40) == rd64(f + 140));
	ck_assert_uint_eq(rd16(f + 46), 9);       /* SCI_INT */
	for (unsigned off = 48; off < 108; off++) /* SMI_CMD .. MON_ALRM: no fixed hardware */
		ck_assert_uint_eq(f[off], 0);
	ck_assert_uint_eq(f[108], 0x32); /* CENTURY */

	flags = rd32(f + 112);
	ck_assert(flags & (1u << 20));   /* HW_REDUCED_ACPI */
	ck_assert(flags & (1u << 10));   /* RESET_REG_SUP */
	ck_assert(flags & (1u << 4));    /* PWR_BUTTON: none as a fixed feature */
	ck_assert(flags & (1u << 5));    /* SLP_BUTTON */
	ck_assert(!(flags & (1u << 8))); /* FIX_RTC */

	boot = rd16(f + 109);
	ck_assert(!(boot & (1u << 1))); /* no 8042 to probe; reboot=k needs no driver */
	ck_assert(boot & (1u << 2));    /* VGA not present */
	ck_assert(boot & (1u << 4));    /* PCIe ASPM controls off */
	ck_assert(!(boot & (1u << 3))); /* MSI works */
	ck_assert(!(boot & (1u << 5))); /* the CMOS RTC is there */

	expect_gas_io8(f + 116, 0x602);            /* RESET_REG */
	ck_assert_uint_eq(f[128], 0x01);           /* RESET_VALUE */
	for (unsigned off = 148; off < 244; off++) /* X_PM1a_EVT_BLK .. X_GPE1_BLK */
		ck_assert_uint_eq(f[off], 0);
	expect_gas_io8(f + 244, 0x600); /* SLEEP_CONTROL_REG */
	expect_gas_io8(f + 256, 0x601); /* SLEEP_STATUS_REG */
	ck_assert_mem_eq(f + 268, "vmm\0\0\0\0\0", 8);
}
END_TEST

static void check_madt(unsigned cpus)
{
	const struct acpi_config cfg = base_config(cpus);
	struct tables t;
	const uint8_t *m;
	unsigned lapics = 0, ioapics = 0, isos = 0, nmis = 0;
	uint32_t len, off;

	memset(ram, POISON, RAM_SIZE);
	build(&cfg, &t);
	m = t.madt;
	len = rd32(m + 4);
	ck_assert_uint_eq(rd32(m + 36), 0xfee00000);
	ck_assert_uint_eq(rd32(m + 40), 1); /* PCAT_COMPAT */
	for (off = 44; off < len; off += m[off + 1]) {
		const uint8_t *e = m + off;

		ck_assert_uint_ge(e[1], 2);
		ck_assert_uint_le(off + e[1], len);
		switch (e[0]) {
		case 0: /* processor local APIC */
			ck_assert_uint_eq(e[1], 8);
			ck_assert_uint_eq(e[2], lapics); /* UID */
			ck_assert_uint_eq(e[3], lapics); /* APIC ID */
			ck_assert_uint_eq(rd32(e + 4), 1);
			lapics++;
			break;
		case 1: /* I/O APIC */
			ck_assert_uint_eq(e[1], 12);
			ck_assert_uint_eq(rd32(e + 4), 0xfec00000);
			ck_assert_uint_eq(rd32(e + 8), 0);
			ioapics++;
			break;
		case 2: /* interrupt source override: the SCI only, never IRQ0 */
			ck_assert_uint_eq(e[1], 10);
			ck_assert_uint_eq(e[2], 0);
			ck_assert_uint_eq(e[3], 9);
			ck_assert_uint_eq(rd32(e + 4), 9);
			ck_assert_uint_eq(rd16(e + 8), 0x000d);
			isos++;
			break;
		case 4: /* local APIC NMI on LINT1 of all processors */
			ck_assert_uint_eq(e[1], 6);
			ck_assert_uint_eq(e[2], 0xff);
			ck_assert_uint_eq(e[5], 1);
			nmis++;
			break;
		default:
			ck_abort_msg("unexpected MADT entry type %u", e[0]);
		}
	}
	ck_assert_uint_eq(off, len);
	ck_assert_uint_eq(lapics, cpus);
	ck_assert_uint_eq(ioapics, 1);
	ck_assert_uint_eq(isos, 1);
	ck_assert_uint_eq(nmis, 1);
}

START_TEST(madt_entries)
{
	static const unsigned counts[] = {1, 2, 64, 255};

	for (unsigned i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		check_madt(counts[i]);
}
END_TEST

START_TEST(mcfg_allocation)
{
	const struct acpi_config cfg = pci_config(1);
	struct tables t;

	build(&cfg, &t);
	ck_assert_uint_eq(rd32(t.mcfg + 4), 60);
	ck_assert_uint_eq(t.mcfg[8], 1);
	ck_assert_uint_eq(rd64(t.mcfg + 44), 0xe0000000);
	ck_assert_uint_eq(rd16(t.mcfg + 52), 0); /* segment */
	ck_assert_uint_eq(t.mcfg[54], 0);        /* start bus */
	ck_assert_uint_eq(t.mcfg[55], 3);        /* end bus */
}
END_TEST

/* --- DSDT --- */

static size_t decode_pkglength(const uint8_t *p, unsigned *n)
{
	size_t v;

	*n = 1 + (p[0] >> 6);
	if (*n == 1)
		return p[0] & 0x3f;
	v = p[0] & 0x0f;
	for (unsigned i = 1; i < *n; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	return v;
}

/* An independent AML integer encoder (ACPI 6.5, 20.2.3). */
static size_t put_int(uint8_t *out, uint64_t v)
{
	unsigned n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffff ? 4 : 8;

	if (v <= 1) {
		out[0] = (uint8_t)v;
		return 1;
	}
	out[0] = n == 1 ? 0x0a : n == 2 ? 0x0b : n == 4 ? 0x0c : 0x0e;
	for (unsigned i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + n;
}

static size_t put_le(uint8_t *out, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * i));
	return n;
}

struct extent {
	const uint8_t *p;
	size_t len;
};

/* Device(@name) anywhere in the DSDT: its contents after the PkgLength, name included. */
static bool find_device(const uint8_t *dsdt, const char *name, struct extent *out)
{
	size_t total = rd32(dsdt + 4);

	for (size_t i = HDR; i + 3 < total; i++) {
		unsigned n;
		size_t pl;

		if (dsdt[i] != 0x5b || dsdt[i + 1] != 0x82)
			continue;
		pl = decode_pkglength(dsdt + i + 2, &n);
		if (pl < n + 4 || i + 2 + pl > total || memcmp(dsdt + i + 2 + n, name, 4))
			continue;
		*out = (struct extent){dsdt + i + 2 + n, pl - n};
		return true;
	}
	return false;
}

static bool contains(struct extent e, const void *needle, size_t len)
{
	return memmem(e.p, e.len, needle, len) != NULL;
}

static struct extent whole_dsdt(const uint8_t *dsdt)
{
	return (struct extent){dsdt, rd32(dsdt + 4)};
}

static size_t count(struct extent e, const void *needle, size_t len)
{
	size_t n = 0;

	for (const uint8_t *p = e.p; (p = memmem(p, e.len - (size_t)(p - e.p), needle, len)); p++)
		n++;
	return n;
}

#define CONTAINS(e, ...)                                                                           \
	do {                                                                                       \
		const uint8_t n_[] = {__VA_ARGS__};                                                \
		ck_assert(contains(e, n_, sizeof(n_)));                                            \
	} while (0)

/* Name(@name, <integer @v>) inside @e. */
static void expect_name_int(struct extent e, const char *name, uint64_t v)
{
	uint8_t b[16] = {0x08};

	memcpy(b + 1, name, 4);
	ck_assert_msg(contains(e, b, 5 + put_int(b + 5, v)), "Name(%s, %llu)", name,
	              (unsigned long long)v);
}

static void expect_virtio_mmio(const uint8_t *dsdt, unsigned i, const struct acpi_virtio_mmio *v)
{
	static const uint8_t hid[] = {0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N',
	                              'R',  'O', '0', '0', '0', '5',  0x00};
	uint8_t crs[21] = {0x86, 0x09, 0x00, 0x01}, *p = crs + 4;
	char name[16];
	struct extent e;

	snprintf(name, sizeof(name), "V%03X", i);
	ck_assert_msg(find_device(dsdt, name, &e), "no device %s", name);
	ck_assert(contains(e, hid, sizeof(hid)));
	expect_name_int(e, "_UID", i);
	/* Memory32Fixed(ReadWrite, base, size), then Interrupt(consumer, edge, high){gsi}. */
	p += put_le(p, v->base, 4);
	p += put_le(p, v->size, 4);
	*p++ = 0x89;
	*p++ = 0x06;
	*p++ = 0x00;
	*p++ = 0x03;
	*p++ = 0x01;
	put_le(p, v->gsi, 4);
	ck_assert(contains(e, crs, sizeof(crs)));
}

START_TEST(dsdt_devices)
{
	static const uint8_t s5[] = {0x08, '\\', '_',  'S',  '5',  '_',  0x12,
	                             0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00};
	static const uint8_t lnro[] = {'L', 'N', 'R', 'O', '0', '0', '0', '5'};
	const struct acpi_config cfg = base_config(1);
	struct tables t;
	struct extent e;
	size_t scope;
	unsigned n;

	build(&cfg, &t);
	/* Scope(\_SB){...} first, spanning all but \_S5 at the end. */
	ck_assert_uint_eq(t.dsdt[HDR], 0x10);
	scope = decode_pkglength(t.dsdt + HDR + 1, &n);
	ck_assert_mem_eq(t.dsdt + HDR + 1 + n, "\\_SB_", 5);
	ck_assert_uint_eq(HDR + 1 + scope + sizeof(s5), rd32(t.dsdt + 4));
	ck_assert_mem_eq(t.dsdt + HDR + 1 + scope, s5, sizeof(s5));

	ck_assert(find_device(t.dsdt, "COM1", &e));
	CONTAINS(e, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01); /* PNP0501 */
	expect_name_int(e, "_UID", 1);
	CONTAINS(e, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79, 0x00);

	ck_assert(find_device(t.dsdt, "RTC_", &e));
	CONTAINS(e, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0b, 0x00); /* PNP0B00 */
	CONTAINS(e, 0x47, 0x01, 0x70, 0x00, 0x70, 0x00, 0x01, 0x02, 0x79, 0x00);

	ck_assert_uint_eq(count(whole_dsdt(t.dsdt), lnro, sizeof(lnro)), 3);
	for (unsigned i = 0; i < 3; i++)
		expect_virtio_mmio(t.dsdt, i, &mmio[i]);
	ck_assert(!find_device(t.dsdt, "PCI0", &e));
	ck_assert(!find_device(t.dsdt, "MRES", &e));
}
END_TEST

static void expect_prt(struct extent pci, const struct acpi_pci_slot *s, unsigned n)
{
	static const uint8_t prt[] = {0x08, '_', 'P', 'R', 'T', 0x12};
	const uint8_t *p = memmem(pci.p, pci.len, prt, sizeof(prt));
	struct extent table;
	unsigned pl_bytes;

	ck_assert_ptr_nonnull(p);
	p += sizeof(prt);
	table = (struct extent){p, decode_pkglength(p, &pl_bytes)};
	ck_assert_uint_le((size_t)(p - pci.p) + table.len, pci.len);
	ck_assert_uint_eq(p[pl_bytes], n); /* NumElements */
	for (unsigned i = 0; i < n; i++) {
		uint8_t entry[32] = {0x12, 0, 0x04}, *q = entry + 3;

		/* {slot << 16 | 0xFFFF (any function), INTA, no source (so a GSI), gsi} */
		q += put_int(q, (uint64_t)s[i].slot << 16 | 0xffff);
		*q++ = 0x00;
		*q++ = 0x00;
		q += put_int(q, s[i].gsi);
		entry[1] = (uint8_t)(q - entry - 1);
		ck_assert_msg(contains(table, entry, (size_t)(q - entry)), "_PRT slot %u",
		              s[i].slot);
	}
}

/* A machine with the 0xCF8 mechanism reserves its ports in the bridge's resources. */
START_TEST(dsdt_pci_config_ports)
{
	struct acpi_config cfg = pci_config(1);
	struct tables t;
	struct extent e;

	cfg.pci_config_port = 0xcf8;
	build(&cfg, &t);
	ck_assert(find_device(t.dsdt, "PCI0", &e));
	CONTAINS(e, 0x00, 0x04, 0x00, 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08);
}
END_TEST

START_TEST(dsdt_pci_host_bridge)
{
	const struct acpi_config cfg = pci_config(1);
	struct tables t;
	struct extent e;
	uint8_t d[64], *p;

	build(&cfg, &t);
	ck_assert(find_device(t.dsdt, "PCI0", &e));
	CONTAINS(e, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08); /* PNP0A08 */
	CONTAINS(e, 0x08, '_', 'C', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03); /* PNP0A03 */
	expect_name_int(e, "_SEG", 0);
	expect_name_int(e, "_BBN", 0);
	expect_name_int(e, "_UID", 0);
	/* WordBusNumber 0-3 (4 buses), then (ECAM only) the 32-bit window. */
	CONTAINS(e, 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00,
	         0x00, 0x04, 0x00, 0x87);
	/* Tag, length, memory, producer with min and max fixed, read-write; then the fields. */
	memcpy(d, "\x87\x17\x00\x00\x0c\x01", 6);
	p = d + 6;
	p += put_le(p, 0, 4);
	p += put_le(p, 0xc0000000, 4);
	p += put_le(p, 0xcfffffff, 4);
	p += put_le(p, 0, 4);
	p += put_le(p, 0x10000000, 4);
	ck_assert(contains(e, d, (size_t)(p - d)));
	memcpy(d, "\x8a\x2b\x00\x00\x0c\x01", 6);
	p = d + 6;
	p += put_le(p, 0, 8);
	p += put_le(p, 0x140000000, 8);
	p += put_le(p, 0x140000000 + 16 * GIB - 1, 8);
	p += put_le(p, 0, 8);
	p += put_le(p, 16 * GIB, 8);
	ck_assert(contains(e, d, (size_t)(p - d)));
	expect_prt(e, slots, 4);

	ck_assert(find_device(t.dsdt, "MRES", &e));
	CONTAINS(e, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x02); /* PNP0C02 */
	CONTAINS(e, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x40, 0x00);
	/* Still the other devices. */
	ck_assert(find_device(t.dsdt, "COM1", &e));
	for (unsigned i = 0; i < 3; i++)
		expect_virtio_mmio(t.dsdt, i, &mmio[i]);
}
END_TEST

START_TEST(dsdt_pci_without_64bit_window)
{
	struct acpi_config cfg = pci_config(1);
	struct tables t;
	struct extent e;

	cfg.pci_mmio64_size = 0;
	cfg.nr_pci_slots = 0;
	build(&cfg, &t);
	ck_assert(find_device(t.dsdt, "PCI0", &e));
	CONTAINS(e, 0x87, 0x17, 0x00);
	ck_assert(!contains(e, "\x8a\x2b\x00", 3));
	expect_prt(e, slots, 0);
}
END_TEST

/* --- limits --- */

static void expect_rejected(const struct acpi_config *cfg, int err)
{
	uint64_t rsdp = 0x1234;

	ck_assert_int_eq(acpi_build(&mem, cfg, &rsdp), err);
	ck_assert_uint_eq(rsdp, 0x1234);
	ck_assert(untouched(0, RAM_SIZE));
}

START_TEST(bad_configs)
{
	const struct acpi_virtio_mmio high = {0x100000000, 0x1000, 16};
	const struct acpi_virtio_mmio crossing = {0xfffff000, 0x2000, 16};
	const struct acpi_virtio_mmio empty = {0xd0000000, 0, 16};
	const struct acpi_pci_slot bad_slot = {32, 16};
	struct acpi_config c;

	c = base_config(0);
	expect_rejected(&c, -EINVAL);
	c = base_config(256);
	expect_rejected(&c, -EINVAL);
	c = base_config(1);
	c.virtio_mmio = &high;
	c.nr_virtio_mmio = 1;
	expect_rejected(&c, -EINVAL);
	c.virtio_mmio = &crossing;
	expect_rejected(&c, -EINVAL);
	c.virtio_mmio = &empty;
	expect_rejected(&c, -EINVAL);
	c.virtio_mmio = NULL;
	expect_rejected(&c, -EINVAL);
	c = base_config(1);
	c.nr_virtio_mmio = 4097; /* more than there are names; the array is never read */
	expect_rejected(&c, -EINVAL);

	c = pci_config(1);
	c.pci_ecam_size = 0;
	expect_rejected(&c, -EINVAL);
	c = pci_config(1);
	c.pci_ecam_size = MIB + MIB / 2;
	expect_rejected(&c, -EINVAL);
	c = pci_config(1);
	c.pci_ecam_size = 512 * MIB;
	expect_rejected(&c, -EINVAL);
	c = pci_config(1);
	c.pci_ecam_base = 0xfff00000;
	c.pci_ecam_size = 2 * MIB;
	expect_rejected(&c, -EINVAL);
	c = pci_config(1);
	c.pci_mmio32_size = 0;
	expect_rejected(&c, -EINVAL);
	c = pci_config(1);
	c.pci_mmio32_base = 0xf0000000;
	c.pci_mmio32_size = 0x20000000;
	expect_rejected(&c, -EINVAL);
	c = pci_config(1);
	c.pci_mmio64_base = UINT64_MAX - 0xfff;
	c.pci_mmio64_size = 0x2000;
	expect_rejected(&c, -EINVAL);
	c = pci_config(1);
	c.pci_slots = &bad_slot;
	c.nr_pci_slots = 1;
	expect_rejected(&c, -EINVAL);
	c.nr_pci_slots = 33;
	expect_rejected(&c, -EINVAL);
	c.pci_slots = NULL;
	c.nr_pci_slots = 1;
	expect_rejected(&c, -EINVAL);
}
END_TEST

START_TEST(memory_without_the_area)
{
	struct guest_memory small = {0};
	const struct acpi_config cfg = base_config(1);
	uint64_t rsdp;

	ck_assert_int_eq(guest_memory_add(&small, 0, 0xe0000), 0);
	ck_assert_int_eq(acpi_build(&small, &cfg, &rsdp), -EFAULT);
	guest_memory_free(&small);
}
END_TEST

/*
 * The largest config that fits, by bisection over the number of virtio-mmio devices: it stays
 * inside the area, one device more gives -ENOSPC and leaves memory as it was.
 */
START_TEST(tables_too_big)
{
	struct acpi_virtio_mmio *many = calloc(4096, sizeof(*many));
	struct acpi_config cfg = pci_config(255);
	unsigned lo = 0, hi = 4096;
	struct tables t;
	int ret;

	ck_assert_ptr_nonnull(many);
	for (unsigned i = 0; i < 4096; i++)
		many[i] = (struct acpi_virtio_mmio){0xd0000000 + i * 0x1000ULL, 0x1000, 16 + i % 8};
	cfg.virtio_mmio = many;
	cfg.nr_virtio_mmio = hi;
	expect_rejected(&cfg, -ENOSPC);
	while (hi - lo > 1) {
		uint64_t rsdp;

		cfg.nr_virtio_mmio = (lo + hi) / 2;
		ret = acpi_build(&mem, &cfg, &rsdp);
		if (ret == 0) {
			lo = cfg.nr_virtio_mmio;
		} else {
			ck_assert_int_eq(ret, -ENOSPC);
			hi = cfg.nr_virtio_mmio;
		}
	}
	ck_assert_uint_gt(lo, 1000);
	memset(ram, POISON, RAM_SIZE);
	cfg.nr_virtio_mmio = hi;
	expect_rejected(&cfg, -ENOSPC);
	cfg.nr_virtio_mmio = lo;
	build(&cfg, &t);
	expect_virtio_mmio(t.dsdt, lo - 1, &many[lo - 1]);
	free(many);
}
END_TEST

static Suite *acpi_suite(void)
{
	Suite *s = suite_create("acpi");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, rsdp_xsdt_without_pci);
	tcase_add_test(tc, rsdp_xsdt_with_pci);
	tcase_add_test(tc, fadt_fields);
	tcase_add_test(tc, madt_entries);
	tcase_add_test(tc, mcfg_allocation);
	tcase_add_test(tc, dsdt_devices);
	tcase_add_test(tc, dsdt_pci_host_bridge);
	tcase_add_test(tc, dsdt_pci_config_ports);
	tcase_add_test(tc, dsdt_pci_without_64bit_window);
	tcase_add_test(tc, bad_configs);
	tcase_add_test(tc, memory_without_the_area);
	tcase_add_test(tc, tables_too_big);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(acpi_suite());
}
