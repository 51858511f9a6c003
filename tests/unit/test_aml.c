/*
 * AML writer: PkgLength at its 1/2/3/4-byte boundaries, integer and name encodings, EISA IDs,
 * blocks, resource descriptors byte for byte (ACPI 6.5, chapters 6.4 and 20), and the sticky
 * error on overflow or misuse.
 */
#include <check.h>
#include <string.h>

#include "arch/x86_64/aml.h"
#include "tests/unit/unit.h"

#define BUF_SIZE 8192

static uint8_t buf[BUF_SIZE];
static struct aml a;

static void setup(void)
{
	memset(buf, 0xee, sizeof(buf));
	aml_init(&a, buf, sizeof(buf));
}

static void expect(const uint8_t *bytes, size_t len)
{
	ck_assert(aml_ok(&a));
	ck_assert_uint_eq(a.len, len);
	ck_assert_mem_eq(buf, bytes, len);
}

#define EXPECT(...)                                                                                \
	do {                                                                                       \
		const uint8_t want_[] = {__VA_ARGS__};                                             \
		expect(want_, sizeof(want_));                                                      \
	} while (0)

/* Decodes a PkgLength; returns the value and stores its byte count in *n. */
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

START_TEST(pkglength_boundaries)
{
	static const struct {
		size_t body;
		unsigned n;
		uint8_t bytes[4];
	} cases[] = {
	        {0, 1, {0x01}},
	        {62, 1, {0x3f}},                        /* 63: the largest one-byte length */
	        {63, 2, {0x41, 0x04}},                  /* 64 does not fit one byte: 65 in two */
	        {4093, 2, {0x4f, 0xff}},                /* 4095: the largest two-byte length */
	        {4094, 3, {0x81, 0x00, 0x01}},          /* 4096 needs three: 4097 */
	        {0xffffc, 3, {0x8f, 0xff, 0xff}},       /* 0xfffff */
	        {0xffffd, 4, {0xc1, 0x00, 0x00, 0x01}}, /* 0x100001 */
	        {0x0ffffffb, 4, {0xcf, 0xff, 0xff, 0xff}},
	};
	uint8_t out[4];

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned n;

		memset(out, 0, sizeof(out));
		ck_assert_uint_eq(aml_pkglength(cases[i].body, out), cases[i].n);
		ck_assert_mem_eq(out, cases[i].bytes, cases[i].n);
		ck_assert_uint_eq(decode_pkglength(out, &n), cases[i].body + cases[i].n);
		ck_assert_uint_eq(n, cases[i].n);
	}
	ck_assert_uint_eq(aml_pkglength(0x0ffffffc, out), 0); /* beyond 28 bits */
}
END_TEST

/* A block is shrunk to its PkgLength's real size and its contents move with it. */
START_TEST(block_lengths_across_boundaries)
{
	static uint8_t payload[5000];

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 1);
	for (size_t k = 0; k <= sizeof(payload); k += k < 100 || (k > 4080 && k < 4100) ? 1 : 97) {
		size_t total;
		unsigned n;

		setup();
		aml_scope(&a, "\\");
		aml_bytes(&a, payload, k);
		aml_end(&a);
		ck_assert(aml_ok(&a));
		ck_assert_uint_eq(buf[0], 0x10);
		total = decode_pkglength(buf + 1, &n);
		ck_assert_uint_eq(total, n + 2 + k);
		ck_assert_uint_eq(a.len, 1 + total);
		ck_assert_uint_eq(buf[1 + n], '\\');
		ck_assert_uint_eq(buf[2 + n], 0x00);
		ck_assert_mem_eq(buf + 3 + n, payload, k);
	}
}
END_TEST

START_TEST(integers)
{
	static const struct {
		uint64_t v;
		unsigned len;
		uint8_t bytes[9];
	} cases[] = {
	        {0, 1, {0x00}},
	        {1, 1, {0x01}},
	        {2, 2, {0x0a, 0x02}},
	        {0xff, 2, {0x0a, 0xff}},
	        {0x100, 3, {0x0b, 0x00, 0x01}},
	        {0xffff, 3, {0x0b, 0xff, 0xff}},
	        {0x10000, 5, {0x0c, 0x00, 0x00, 0x01, 0x00}},
	        {0xffffffff, 5, {0x0c, 0xff, 0xff, 0xff, 0xff}},
	        {0x100000000, 9, {0x0e, 0, 0, 0, 0, 1, 0, 0, 0}},
	        {UINT64_MAX, 9, {0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setup();
		aml_integer(&a, cases[i].v);
		expect(cases[i].bytes, cases[i].len);
	}
}
END_TEST

START_TEST(eisaid)
{
	ck_assert_uint_eq(aml_eisaid_value("PNP0A08"), 0x080AD041);
	ck_assert_uint_eq(aml_eisaid_value("PNP0A03"), 0x030AD041);
	ck_assert_uint_eq(aml_eisaid_value("PNP0501"), 0x0105D041);
	ck_assert_uint_eq(aml_eisaid_value("PNP0C02"), 0x020CD041);
	ck_assert_uint_eq(aml_eisaid_value("pnp0a08"), 0);
	ck_assert_uint_eq(aml_eisaid_value("PNP0A0"), 0);
	ck_assert_uint_eq(aml_eisaid_value("PNP0A080"), 0);
	ck_assert_uint_eq(aml_eisaid_value("PNP0A0G"), 0);
	ck_assert_uint_eq(aml_eisaid_value("PN10A08"), 0);
	aml_eisaid(&a, "PNP0A08");
	EXPECT(0x0c, 0x41, 0xd0, 0x0a, 0x08);
	setup();
	aml_eisaid(&a, "PNP0a08");
	ck_assert(!aml_ok(&a));
}
END_TEST

START_TEST(name_strings)
{
	aml_name_string(&a, "_HID");
	EXPECT('_', 'H', 'I', 'D');
	setup();
	aml_name_string(&a, "\\_SB");
	EXPECT('\\', '_', 'S', 'B', '_');
	setup();
	aml_name_string(&a, "\\_SB.PCI0");
	EXPECT('\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0');
	setup();
	aml_name_string(&a, "\\_SB.PCI0.S08");
	EXPECT('\\', 0x2f, 3, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'S', '0', '8', '_');
	setup();
	aml_name_string(&a, "^^PCI0");
	EXPECT('^', '^', 'P', 'C', 'I', '0');
	setup();
	aml_name_string(&a, "\\");
	EXPECT('\\', 0x00);
	setup();
	aml_name_string(&a, "");
	EXPECT(0x00);
}
END_TEST

START_TEST(bad_names)
{
	static const char *const bad[] = {"_hid",    "TOOLONG", "1ABC", "\\_SB..X", "\\_SB.",
	                                  "\\^PCI0", ".PCI0",   "A-B",  "PCI0\\"};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setup();
		aml_name_string(&a, bad[i]);
		ck_assert_msg(!aml_ok(&a), "'%s' accepted", bad[i]);
	}
}
END_TEST

START_TEST(strings)
{
	aml_string(&a, "LNRO0005");
	EXPECT(0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00);
	setup();
	aml_string(&a, "\xc3\xa9");
	ck_assert(!aml_ok(&a));
}
END_TEST

START_TEST(device_name_method)
{
	aml_device(&a, "COM1");
	aml_name(&a, "_UID");
	aml_integer(&a, 1);
	aml_method(&a, "_STA", 0);
	aml_return(&a);
	aml_integer(&a, 0x0f);
	aml_end(&a);
	aml_end(&a);
	EXPECT(0x5b, 0x82, 0x15, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x01, 0x14, 0x09,
	       '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f);
	setup();
	aml_method(&a, "M2", 2);
	aml_end(&a);
	EXPECT(0x14, 0x06, 'M', '2', '_', '_', 0x02);
}
END_TEST

START_TEST(packages)
{
	aml_name(&a, "\\_S5");
	aml_package(&a, 4);
	aml_integer(&a, 5);
	aml_integer(&a, 0);
	aml_integer(&a, 0);
	aml_integer(&a, 0);
	aml_end(&a);
	EXPECT(0x08, '\\', '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00);
	setup();
	aml_package(&a, 0);
	aml_end(&a);
	EXPECT(0x12, 0x02, 0x00);
}
END_TEST

START_TEST(buffers)
{
	static uint8_t big[300];

	aml_buffer(&a);
	aml_bytes(&a, "\x01\x02\x03", 3);
	aml_end(&a);
	EXPECT(0x11, 0x06, 0x0a, 0x03, 0x01, 0x02, 0x03);
	setup();
	aml_buffer(&a);
	aml_end(&a);
	EXPECT(0x11, 0x02, 0x00);
	/* 300 bytes: a two-byte PkgLength (3 + 300 + 2 = 305) and a WordConst size. */
	setup();
	memset(big, 0x5a, sizeof(big));
	aml_buffer(&a);
	aml_bytes(&a, big, sizeof(big));
	aml_end(&a);
	ck_assert(aml_ok(&a));
	ck_assert_uint_eq(a.len, 1 + 305);
	ck_assert_mem_eq(buf, ((const uint8_t[]){0x11, 0x41, 0x13, 0x0b, 0x2c, 0x01}), 6);
	ck_assert_mem_eq(buf + 6, big, sizeof(big));
}
END_TEST

/* COM1's _CRS, as iasl compiles it. */
START_TEST(resource_template_io_irq)
{
	aml_resource_template(&a);
	aml_io(&a, 0x3f8, 8);
	aml_irq_noflags(&a, 4);
	aml_end(&a);
	EXPECT(0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22, 0x10,
	       0x00, 0x79, 0x00);
	setup();
	aml_resource_template(&a);
	aml_end(&a);
	EXPECT(0x11, 0x05, 0x0a, 0x02, 0x79, 0x00);
}
END_TEST

START_TEST(memory_and_interrupt_descriptors)
{
	aml_resource_template(&a);
	aml_memory32_fixed(&a, 0xd0100000, 0x1000);
	aml_interrupt(&a, 16, true, false);
	aml_interrupt(&a, 0x12345678, false, true);
	aml_end(&a);
	EXPECT(0x11, 0x23, 0x0a, 0x20, /* 32 bytes */
	       0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x10, 0xd0, 0x00, 0x10, 0x00, 0x00, /* mem32 */
	       0x89, 0x06, 0x00, 0x03, 0x01, 0x10, 0x00, 0x00, 0x00, /* consumer, edge, high */
	       0x89, 0x06, 0x00, 0x05, 0x01, 0x78, 0x56, 0x34, 0x12, /* consumer, level, low */
	       0x79, 0x00);
}
END_TEST

START_TEST(address_space_descriptors)
{
	aml_resource_template(&a);
	aml_word_bus_number(&a, 0, 256);
	aml_dword_memory(&a, 0xc0000000, 0x10000000);
	aml_qword_memory(&a, 0x100000000, 0x400000000);
	aml_end(&a);
	EXPECT(0x11, 0x4e, 0x05, 0x0a, 0x5a,       /* 16 + 26 + 46 + 2 (end tag) = 90 bytes */
	       0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, /* bus numbers, producer, min/max fixed */
	       0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01, /* 0..255, 256 */
	       0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, /* memory, read-write, non-cacheable */
	       0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff, 0xff, 0xcf, 0x00, 0x00,
	       0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x8a, 0x2b, 0x00, 0x00, 0x0c,
	       0x01,                                           /* 64-bit memory */
	       0, 0, 0, 0, 0, 0, 0, 0,                         /* granularity */
	       0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* min */
	       0xff, 0xff, 0xff, 0xff, 0x04, 0x00, 0x00, 0x00, /* max */
	       0, 0, 0, 0, 0, 0, 0, 0,                         /* translation */
	       0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, /* length */
	       0x79, 0x00);
}
END_TEST

START_TEST(bad_descriptors)
{
	/* Outside a resource template. */
	aml_io(&a, 0x3f8, 8);
	ck_assert(!aml_ok(&a));
	setup();
	aml_buffer(&a);
	aml_memory32_fixed(&a, 0, 0x1000);
	ck_assert(a.error);
	setup();
	aml_scope(&a, "\\_SB");
	aml_interrupt(&a, 5, true, false);
	ck_assert(a.error);

	setup();
	aml_resource_template(&a);
	aml_irq_noflags(&a, 16);
	ck_assert(a.error);
	setup();
	aml_resource_template(&a);
	aml_dword_memory(&a, 0x1000, 0);
	ck_assert(a.error);
	setup();
	aml_resource_template(&a);
	aml_dword_memory(&a, 0xf0000000, 0x10000001); /* past 4 GiB */
	ck_assert(a.error);
	setup();
	aml_resource_template(&a);
	aml_dword_memory(&a, 0xf0000000, 0x10000000); /* up to the last byte is fine */
	aml_word_bus_number(&a, 0, 0x10000);          /* the length field is 16 bits */
	ck_assert(a.error);
	setup();
	aml_resource_template(&a);
	aml_qword_memory(&a, UINT64_MAX, 2);
	ck_assert(a.error);
	setup();
	aml_resource_template(&a);
	aml_qword_memory(&a, 0, UINT64_MAX); /* ends at UINT64_MAX - 1 */
	aml_end(&a);
	ck_assert(aml_ok(&a));
}
END_TEST

START_TEST(misuse)
{
	aml_end(&a);
	ck_assert(!aml_ok(&a));
	setup();
	aml_scope(&a, "\\_SB");
	ck_assert(!a.error);
	ck_assert(!aml_ok(&a)); /* still open */
	setup();
	for (unsigned i = 0; i <= AML_MAX_DEPTH; i++)
		aml_scope(&a, "S");
	ck_assert(a.error);
	setup();
	aml_package(&a, 256);
	ck_assert(a.error);
	setup();
	aml_method(&a, "M", 8);
	ck_assert(a.error);
	/* The error is sticky: later calls write nothing. */
	setup();
	aml_end(&a);
	aml_integer(&a, 7);
	ck_assert_uint_eq(a.len, 0);
	ck_assert_uint_eq(buf[0], 0xee);
}
END_TEST

/* COM1 takes 42 bytes; while its _CRS is open the writer needs 55 (reserved lengths). */
START_TEST(overflow_stays_in_buffer)
{
	for (size_t cap = 0; cap < 55; cap++) {
		memset(buf, 0xee, sizeof(buf));
		aml_init(&a, buf, cap);
		aml_device(&a, "\\_SB.COM1");
		aml_name(&a, "_HID");
		aml_eisaid(&a, "PNP0501");
		aml_name(&a, "_CRS");
		aml_resource_template(&a);
		aml_io(&a, 0x3f8, 8);
		aml_end(&a);
		aml_end(&a);
		ck_assert_uint_le(a.len, cap);
		for (size_t i = cap; i < sizeof(buf); i++)
			ck_assert_uint_eq(buf[i], 0xee);
		ck_assert(!aml_ok(&a));
	}
	aml_init(&a, buf, 55);
	aml_device(&a, "\\_SB.COM1");
	aml_name(&a, "_HID");
	aml_eisaid(&a, "PNP0501");
	aml_name(&a, "_CRS");
	aml_resource_template(&a);
	aml_io(&a, 0x3f8, 8);
	aml_end(&a);
	aml_end(&a);
	ck_assert(aml_ok(&a));
	ck_assert_uint_eq(a.len, 42);
}
END_TEST

static Suite *aml_suite(void)
{
	Suite *s = suite_create("aml");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, pkglength_boundaries);
	tcase_add_test(tc, block_lengths_across_boundaries);
	tcase_add_test(tc, integers);
	tcase_add_test(tc, eisaid);
	tcase_add_test(tc, name_strings);
	tcase_add_test(tc, bad_names);
	tcase_add_test(tc, strings);
	tcase_add_test(tc, device_name_method);
	tcase_add_test(tc, packages);
	tcase_add_test(tc, buffers);
	tcase_add_test(tc, resource_template_io_irq);
	tcase_add_test(tc, memory_and_interrupt_descriptors);
	tcase_add_test(tc, address_space_descriptors);
	tcase_add_test(tc, bad_descriptors);
	tcase_add_test(tc, misuse);
	tcase_add_test(tc, overflow_stays_in_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(aml_suite());
}
