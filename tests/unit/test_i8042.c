/*
 * i8042 with nothing attached: the controller commands Linux's probe sends, the command byte,
 * the AUX probe failing without a timeout, and the reset paths.
 */
#include <check.h>
#include <string.h>

#include "devices/i8042.h"
#include "tests/unit/unit.h"

static int resets;

static void count_reset(void *opaque)
{
	*(int *)opaque += 1;
}

static void setup(struct i8042 *kbc)
{
	resets = 0;
	i8042_init(kbc, count_reset, &resets);
}

static uint8_t status(struct i8042 *kbc)
{
	uint8_t v = 0;

	ck_assert_int_eq(i8042_cmd_ops.read(kbc, 0, &v, 1), 0);
	return v;
}

static uint8_t data(struct i8042 *kbc)
{
	uint8_t v = 0;

	ck_assert_int_eq(i8042_data_ops.read(kbc, 0, &v, 1), 0);
	return v;
}

static void command(struct i8042 *kbc, uint8_t cmd)
{
	ck_assert_int_eq(i8042_cmd_ops.write(kbc, 0, &cmd, 1), 0);
}

static void write_data(struct i8042 *kbc, uint8_t val)
{
	ck_assert_int_eq(i8042_data_ops.write(kbc, 0, &val, 1), 0);
}

/* What Linux's i8042_command() does for a command with one reply. */
static uint8_t ask(struct i8042 *kbc, uint8_t cmd)
{
	ck_assert_uint_eq(status(kbc) & 0x02, 0); /* IBF: never busy */
	command(kbc, cmd);
	ck_assert_uint_eq(status(kbc) & 0x01, 0x01);
	return data(kbc);
}

START_TEST(status_and_self_test)
{
	struct i8042 kbc;

	setup(&kbc);
	ck_assert_uint_eq(status(&kbc), 0x14); /* system flag, not inhibited, empty */
	ck_assert_uint_eq(ask(&kbc, 0xaa), 0x55);
	ck_assert_uint_eq(status(&kbc) & 0x01, 0);
	ck_assert_uint_eq(data(&kbc), 0x55); /* an empty buffer repeats the last byte */
	ck_assert_uint_eq(ask(&kbc, 0xab), 0x00);
	i8042_destroy(&kbc);
}
END_TEST

START_TEST(command_byte)
{
	struct i8042 kbc;

	setup(&kbc);
	ck_assert_uint_eq(ask(&kbc, 0x20), 0x45);
	command(&kbc, 0x60);
	write_data(&kbc, 0x74);
	ck_assert_uint_eq(status(&kbc) & 0x01, 0);
	ck_assert_uint_eq(ask(&kbc, 0x20), 0x74);
	command(&kbc, 0xae);
	ck_assert_uint_eq(ask(&kbc, 0x20), 0x64);
	command(&kbc, 0xa8);
	ck_assert_uint_eq(ask(&kbc, 0x20), 0x44);
	command(&kbc, 0xad);
	command(&kbc, 0xa7);
	ck_assert_uint_eq(ask(&kbc, 0x20), 0x74);
	i8042_destroy(&kbc);
}
END_TEST

START_TEST(no_aux_port)
{
	struct i8042 kbc;

	setup(&kbc);
	/* Linux's AUX loopback: the echo comes back without AUXDATA, an error at once. */
	command(&kbc, 0xd3);
	write_data(&kbc, 0x5a);
	ck_assert_uint_eq(status(&kbc) & 0x21, 0x01);
	/* The AUX test reply replaces the unread echo and says "no port". */
	ck_assert_uint_eq(ask(&kbc, 0xa9), 0x02);
	ck_assert_uint_eq(status(&kbc) & 0x01, 0);
	/* Bytes for the mouse vanish. */
	command(&kbc, 0xd4);
	write_data(&kbc, 0xff);
	ck_assert_uint_eq(status(&kbc) & 0x01, 0);
	i8042_destroy(&kbc);
}
END_TEST

START_TEST(no_keyboard)
{
	struct i8042 kbc;

	setup(&kbc);
	write_data(&kbc, 0xf2); /* atkbd GETID: nobody answers */
	ck_assert_uint_eq(status(&kbc) & 0x01, 0);
	command(&kbc, 0xd2); /* write keyboard output buffer */
	write_data(&kbc, 0x1c);
	ck_assert_uint_eq(status(&kbc) & 0x01, 0x01);
	ck_assert_uint_eq(data(&kbc), 0x1c);
	ck_assert_int_eq(resets, 0);
	i8042_destroy(&kbc);
}
END_TEST

START_TEST(reset_paths)
{
	struct i8042 kbc;

	setup(&kbc);
	command(&kbc, 0xfe);
	ck_assert_int_eq(resets, 1);
	command(&kbc, 0xff); /* pulses nothing */
	ck_assert_int_eq(resets, 1);
	command(&kbc, 0xf0);
	ck_assert_int_eq(resets, 2);
	ck_assert_uint_eq(ask(&kbc, 0xd0), 0x03);
	command(&kbc, 0xd1);
	write_data(&kbc, 0xdf); /* A20 on, reset line high: no reset */
	ck_assert_int_eq(resets, 2);
	ck_assert_uint_eq(ask(&kbc, 0xd0), 0xdf);
	command(&kbc, 0xd1);
	write_data(&kbc, 0xde);
	ck_assert_int_eq(resets, 3);
	i8042_destroy(&kbc);
}
END_TEST

START_TEST(wide_access)
{
	struct i8042 kbc;
	uint32_t v = 0xffffffff;
	uint16_t cmd = 0x12aa;

	setup(&kbc);
	ck_assert_int_eq(i8042_cmd_ops.write(&kbc, 0, &cmd, 2), 0);
	ck_assert_int_eq(i8042_data_ops.read(&kbc, 0, &v, 4), 0);
	ck_assert_uint_eq(v, 0x55);
	i8042_destroy(&kbc);
}
END_TEST

static Suite *i8042_suite(void)
{
	Suite *s = suite_create("i8042");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, status_and_self_test);
	tcase_add_test(tc, command_byte);
	tcase_add_test(tc, no_aux_port);
	tcase_add_test(tc, no_keyboard);
	tcase_add_test(tc, reset_paths);
	tcase_add_test(tc, wide_access);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(i8042_suite());
}
