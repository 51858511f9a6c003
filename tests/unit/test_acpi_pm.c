/*
 * ACPI sleep/reset registers: soft-off only for SLP_EN with the soft-off SLP_TYP, reset only for
 * the reset value at the reset register, byte accesses only, everything reads zero; also
 * through a bus as the arch registers it.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "devices/acpi_pm.h"
#include "tests/unit/unit.h"
#include "vmm/bus.h"
#include "vmm/log.h"

#define SOFT_OFF    5
#define RESET_VALUE 0x01
#define PORT        0x600

struct calls {
	unsigned poweroff, reset;
};

static struct calls calls;
static struct acpi_pm pm;

static void on_poweroff(void *opaque)
{
	ck_assert_ptr_eq(opaque, &calls);
	calls.poweroff++;
}

static void on_reset(void *opaque)
{
	ck_assert_ptr_eq(opaque, &calls);
	calls.reset++;
}

static void setup(void)
{
	log_set_level(LOG_ERROR); /* the ignored sleep types warn */
	memset(&calls, 0, sizeof(calls));
	acpi_pm_init(&pm, SOFT_OFF, RESET_VALUE, on_poweroff, on_reset, &calls);
}

static void write8(uint64_t offset, uint8_t v)
{
	ck_assert_int_eq(acpi_pm_ops.write(&pm, offset, &v, 1), 0);
}

START_TEST(init_fills_fields)
{
	ck_assert_uint_eq(pm.soft_off_type, SOFT_OFF);
	ck_assert_uint_eq(pm.reset_value, RESET_VALUE);
	ck_assert_ptr_eq(pm.poweroff, on_poweroff);
	ck_assert_ptr_eq(pm.reset, on_reset);
	ck_assert_ptr_eq(pm.opaque, &calls);
}
END_TEST

/* What ACPICA writes for S5: SLP_TYP << 2 | SLP_EN. */
START_TEST(poweroff_on_slp_en_and_soft_off_type)
{
	write8(ACPI_PM_SLEEP_CONTROL, SOFT_OFF << 2 | 0x20);
	ck_assert_uint_eq(calls.poweroff, 1);
	/* The reserved bits 0, 1, 6 and 7 do not matter. */
	write8(ACPI_PM_SLEEP_CONTROL, 0xc3 | SOFT_OFF << 2 | 0x20);
	ck_assert_uint_eq(calls.poweroff, 2);
	ck_assert_uint_eq(calls.reset, 0);
}
END_TEST

START_TEST(other_sleep_writes_ignored)
{
	write8(ACPI_PM_SLEEP_CONTROL, SOFT_OFF << 2); /* no SLP_EN */
	for (unsigned type = 0; type < 8; type++)
		if (type != SOFT_OFF)
			write8(ACPI_PM_SLEEP_CONTROL, (uint8_t)(type << 2 | 0x20));
	write8(ACPI_PM_SLEEP_CONTROL, 0x00);
	write8(ACPI_PM_SLEEP_CONTROL, 0xdf); /* everything but SLP_EN */
	/* The sleep status register: WAK_STS is write-one-to-clear, nothing to clear. */
	write8(ACPI_PM_SLEEP_STATUS, 0x80);
	write8(ACPI_PM_SLEEP_STATUS, SOFT_OFF << 2 | 0x20);
	ck_assert_uint_eq(calls.poweroff, 0);
	ck_assert_uint_eq(calls.reset, 0);
}
END_TEST

START_TEST(reset_value_resets)
{
	for (unsigned v = 0; v < 256; v++)
		if (v != RESET_VALUE)
			write8(ACPI_PM_RESET, (uint8_t)v);
	ck_assert_uint_eq(calls.reset, 0);
	write8(ACPI_PM_SLEEP_CONTROL, RESET_VALUE);
	write8(ACPI_PM_SLEEP_STATUS, RESET_VALUE);
	ck_assert_uint_eq(calls.reset, 0);
	write8(ACPI_PM_RESET, RESET_VALUE);
	ck_assert_uint_eq(calls.reset, 1);
	ck_assert_uint_eq(calls.poweroff, 0);
}
END_TEST

START_TEST(reset_value_from_init)
{
	acpi_pm_init(&pm, 7, 0xfe, on_poweroff, on_reset, &calls);
	write8(ACPI_PM_RESET, RESET_VALUE);
	write8(ACPI_PM_SLEEP_CONTROL, SOFT_OFF << 2 | 0x20);
	ck_assert_uint_eq(calls.reset, 0);
	ck_assert_uint_eq(calls.poweroff, 0);
	write8(ACPI_PM_RESET, 0xfe);
	write8(ACPI_PM_SLEEP_CONTROL, 7 << 2 | 0x20);
	ck_assert_uint_eq(calls.reset, 1);
	ck_assert_uint_eq(calls.poweroff, 1);
}
END_TEST

START_TEST(bad_sizes_and_offsets_ignored)
{
	const uint16_t off16 = SOFT_OFF << 2 | 0x20, reset16 = RESET_VALUE;
	const uint32_t off32 = off16, reset32 = reset16;
	const uint64_t off64 = off16;

	ck_assert_int_eq(acpi_pm_ops.write(&pm, ACPI_PM_SLEEP_CONTROL, &off16, 2), 0);
	ck_assert_int_eq(acpi_pm_ops.write(&pm, ACPI_PM_SLEEP_CONTROL, &off32, 4), 0);
	ck_assert_int_eq(acpi_pm_ops.write(&pm, ACPI_PM_SLEEP_CONTROL, &off64, 8), 0);
	ck_assert_int_eq(acpi_pm_ops.write(&pm, ACPI_PM_RESET, &reset16, 2), 0);
	ck_assert_int_eq(acpi_pm_ops.write(&pm, ACPI_PM_RESET, &reset32, 4), 0);
	for (uint64_t offset = ACPI_PM_SIZE; offset < 64; offset++) {
		write8(offset, SOFT_OFF << 2 | 0x20);
		write8(offset, RESET_VALUE);
	}
	write8(UINT64_MAX, RESET_VALUE);
	ck_assert_uint_eq(calls.poweroff, 0);
	ck_assert_uint_eq(calls.reset, 0);
}
END_TEST

START_TEST(reads_are_zero)
{
	static const unsigned sizes[] = {1, 2, 4, 8};

	for (uint64_t offset = 0; offset < 8; offset++) {
		for (unsigned i = 0; i < 4; i++) {
			uint64_t v = UINT64_MAX;

			ck_assert_int_eq(acpi_pm_ops.read(&pm, offset, &v, sizes[i]), 0);
			ck_assert_uint_eq(v, sizes[i] == 8 ? 0 : UINT64_MAX << (8 * sizes[i]));
		}
	}
	/* After a sleep attempt WAK_STS still reads clear. */
	write8(ACPI_PM_SLEEP_CONTROL, 3 << 2 | 0x20);
	{
		uint8_t status = 0xff;

		ck_assert_int_eq(acpi_pm_ops.read(&pm, ACPI_PM_SLEEP_STATUS, &status, 1), 0);
		ck_assert_uint_eq(status, 0);
	}
}
END_TEST

/* Registered the way the arch does it: three bytes from the sleep control port. */
START_TEST(through_the_bus)
{
	struct bus bus;
	uint8_t v = SOFT_OFF << 2 | 0x20;

	bus_init(&bus, "pio");
	ck_assert_int_eq(bus_register(&bus, PORT, ACPI_PM_SIZE, &acpi_pm_ops, &pm, "acpi-pm"), 0);
	ck_assert_int_eq(bus_access(&bus, PORT + 3, &v, 1, true), -ENOENT);
	ck_assert_int_eq(bus_access(&bus, PORT + 1, &v, 1, true), 0);
	ck_assert_uint_eq(calls.poweroff, 0);
	ck_assert_int_eq(bus_access(&bus, PORT, &v, 1, true), 0);
	ck_assert_uint_eq(calls.poweroff, 1);
	v = RESET_VALUE;
	ck_assert_int_eq(bus_access(&bus, PORT + 2, &v, 1, true), 0);
	ck_assert_uint_eq(calls.reset, 1);
	bus_free(&bus);
}
END_TEST

static Suite *acpi_pm_suite(void)
{
	Suite *s = suite_create("acpi_pm");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, init_fills_fields);
	tcase_add_test(tc, poweroff_on_slp_en_and_soft_off_type);
	tcase_add_test(tc, other_sleep_writes_ignored);
	tcase_add_test(tc, reset_value_resets);
	tcase_add_test(tc, reset_value_from_init);
	tcase_add_test(tc, bad_sizes_and_offsets_ignored);
	tcase_add_test(tc, reads_are_zero);
	tcase_add_test(tc, through_the_bus);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(acpi_pm_suite());
}
