/*
 * CMOS/RTC: the clock registers are BCD host UTC time, the status registers are what Linux's
 * mc146818 code expects, the rest is NVRAM, and the index drops the NMI-mask bit.
 */
#include <check.h>
#include <stdlib.h>
#include <time.h>

#include "devices/cmos.h"
#include "tests/unit/unit.h"

static void select_reg(struct cmos *c, uint8_t index)
{
	ck_assert_int_eq(cmos_bus_ops.write(c, 0, &index, 1), 0);
}

static uint8_t read_reg(struct cmos *c, uint8_t index)
{
	uint8_t v = 0;

	select_reg(c, index);
	ck_assert_int_eq(cmos_bus_ops.read(c, 1, &v, 1), 0);
	return v;
}

static void write_reg(struct cmos *c, uint8_t index, uint8_t val)
{
	select_reg(c, index);
	ck_assert_int_eq(cmos_bus_ops.write(c, 1, &val, 1), 0);
}

static int from_bcd(uint8_t v)
{
	ck_assert_uint_le(v & 0x0f, 9);
	ck_assert_uint_le(v >> 4, 9);
	return (v >> 4) * 10 + (v & 0x0f);
}

/* Reads the clock the way Linux does and returns it as seconds since the epoch. */
static time_t read_clock(struct cmos *c)
{
	struct tm tm = {0};

	ck_assert_uint_eq(read_reg(c, 0x0a) & 0x80, 0); /* no update in progress */
	tm.tm_sec = from_bcd(read_reg(c, 0x00));
	tm.tm_min = from_bcd(read_reg(c, 0x02));
	tm.tm_hour = from_bcd(read_reg(c, 0x04));
	tm.tm_mday = from_bcd(read_reg(c, 0x07));
	tm.tm_mon = from_bcd(read_reg(c, 0x08)) - 1;
	tm.tm_year = from_bcd(read_reg(c, 0x32)) * 100 + from_bcd(read_reg(c, 0x09)) - 1900;
	ck_assert_int_le(tm.tm_sec, 59);
	ck_assert_int_le(tm.tm_min, 59);
	ck_assert_int_le(tm.tm_hour, 23);
	ck_assert_int_ge(tm.tm_mday, 1);
	ck_assert_int_le(tm.tm_mday, 31);
	ck_assert_int_ge(tm.tm_mon, 0);
	ck_assert_int_le(tm.tm_mon, 11);
	return timegm(&tm);
}

START_TEST(clock_matches_host)
{
	struct cmos c;
	time_t before = 0, got = 0, after = 0;
	struct tm now;
	int wday;

	cmos_init(&c);
	/* Retry a read that straddled a second, which could mix a minute with its successor. */
	for (int tries = 0; tries < 3; tries++) {
		before = time(NULL);
		got = read_clock(&c);
		after = time(NULL);
		if (before == after)
			break;
	}
	ck_assert_int_ge(got, before - 1);
	ck_assert_int_le(got, after + 1);
	gmtime_r(&after, &now);
	wday = from_bcd(read_reg(&c, 0x06));
	ck_assert_int_ge(wday, 1);
	ck_assert_int_le(wday, 7);
	ck_assert_int_eq(from_bcd(read_reg(&c, 0x32)), (now.tm_year + 1900) / 100);
	cmos_destroy(&c);
}
END_TEST

START_TEST(status_registers)
{
	struct cmos c;

	cmos_init(&c);
	ck_assert_uint_eq(read_reg(&c, 0x0a), 0x26);
	ck_assert_uint_eq(read_reg(&c, 0x0b), 0x02);
	ck_assert_uint_eq(read_reg(&c, 0x0c), 0x00);
	ck_assert_uint_eq(read_reg(&c, 0x0d), 0x80);
	write_reg(&c, 0x0b, 0x86); /* SET, binary: ignored */
	ck_assert_uint_eq(read_reg(&c, 0x0b), 0x02);
	cmos_destroy(&c);
}
END_TEST

START_TEST(clock_writes_ignored)
{
	struct cmos c;
	time_t before = 0, got = 0;

	cmos_init(&c);
	write_reg(&c, 0x00, 0x99);
	write_reg(&c, 0x09, 0x99);
	write_reg(&c, 0x32, 0x19);
	for (int tries = 0; tries < 3; tries++) {
		before = time(NULL);
		got = read_clock(&c);
		if (before == time(NULL))
			break;
	}
	ck_assert_int_le(labs((long)(got - before)), 2);
	cmos_destroy(&c);
}
END_TEST

START_TEST(nvram_round_trip)
{
	struct cmos c;

	cmos_init(&c);
	for (unsigned i = 0x0e; i < 0x80; i++) {
		if (i != 0x32)
			write_reg(&c, (uint8_t)i, (uint8_t)(i ^ 0xa5));
	}
	for (unsigned i = 0x0e; i < 0x80; i++) {
		if (i != 0x32)
			ck_assert_uint_eq(read_reg(&c, (uint8_t)i), i ^ 0xa5);
	}
	/* The alarm bytes are RAM too. */
	write_reg(&c, 0x01, 0x30);
	write_reg(&c, 0x03, 0x15);
	write_reg(&c, 0x05, 0x07);
	ck_assert_uint_eq(read_reg(&c, 0x01), 0x30);
	ck_assert_uint_eq(read_reg(&c, 0x03), 0x15);
	ck_assert_uint_eq(read_reg(&c, 0x05), 0x07);
	cmos_destroy(&c);
}
END_TEST

START_TEST(index_masks_nmi_bit)
{
	struct cmos c;
	uint8_t v = 0;
	uint16_t wide = 0;

	cmos_init(&c);
	write_reg(&c, 0x20, 0x42);
	ck_assert_uint_eq(read_reg(&c, 0x80 | 0x20), 0x42);
	write_reg(&c, 0x80 | 0x7f, 0x17);
	ck_assert_uint_eq(read_reg(&c, 0x7f), 0x17);
	ck_assert_uint_eq(read_reg(&c, 0x80 | 0x0d), 0x80);
	ck_assert_int_eq(cmos_bus_ops.read(&c, 0, &v, 1), 0);
	ck_assert_uint_eq(v, 0xff); /* the index port is write-only */
	select_reg(&c, 0x20);
	ck_assert_int_eq(cmos_bus_ops.read(&c, 1, &wide, 2), 0);
	ck_assert_uint_eq(wide, 0x42);
	cmos_destroy(&c);
}
END_TEST

static Suite *cmos_suite(void)
{
	Suite *s = suite_create("cmos");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, clock_matches_host);
	tcase_add_test(tc, status_registers);
	tcase_add_test(tc, clock_writes_ignored);
	tcase_add_test(tc, nvram_round_trip);
	tcase_add_test(tc, index_masks_nmi_bit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(cmos_suite());
}
