#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/unit.h"
#include "vmm/bus.h"

struct recorder {
	uint64_t last_offset;
	unsigned last_size;
	int writes, reads;
	uint8_t value;
};

static int rec_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct recorder *r = opaque;

	r->reads++;
	r->last_offset = offset;
	r->last_size = size;
	memset(data, r->value, size);
	return 0;
}

static int rec_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct recorder *r = opaque;

	r->writes++;
	r->last_offset = offset;
	r->last_size = size;
	r->value = *(const uint8_t *)data;
	return 0;
}

static const struct bus_ops rec_ops = {rec_read, rec_write};

START_TEST(register_rejects_bad_ranges)
{
	struct bus bus;
	struct recorder r = {0};

	bus_init(&bus, "t");
	ck_assert_int_eq(bus_register(&bus, 0x100, 0, &rec_ops, &r, "zero"), -EINVAL);
	ck_assert_int_eq(bus_register(&bus, UINT64_MAX, 2, &rec_ops, &r, "wrap"), -EINVAL);
	ck_assert_int_eq(bus_register(&bus, 0x100, 0x10, NULL, &r, "noops"), -EINVAL);
	ck_assert_int_eq(bus_register(&bus, UINT64_MAX, 1, &rec_ops, &r, "last"), 0);
	ck_assert_int_eq(bus_register(&bus, 0x100, 0x10, &rec_ops, &r, "a"), 0);
	ck_assert_int_eq(bus_register(&bus, 0x100, 0x10, &rec_ops, &r, "same"), -EEXIST);
	ck_assert_int_eq(bus_register(&bus, 0x10f, 1, &rec_ops, &r, "tail"), -EEXIST);
	ck_assert_int_eq(bus_register(&bus, 0xf0, 0x11, &rec_ops, &r, "head"), -EEXIST);
	ck_assert_int_eq(bus_register(&bus, 0x0, 0x1000, &rec_ops, &r, "cover"), -EEXIST);
	ck_assert_int_eq(bus_register(&bus, 0xf0, 0x10, &rec_ops, &r, "below"), 0);
	ck_assert_int_eq(bus_register(&bus, 0x110, 0x10, &rec_ops, &r, "above"), 0);
	ck_assert_uint_eq(bus.nr_ranges, 4);
	bus_free(&bus);
}
END_TEST

START_TEST(lookup_many_ranges)
{
	struct bus bus;
	struct recorder recs[100] = {0};

	bus_init(&bus, "t");
	/* Registered out of order: the bus keeps them sorted. */
	for (unsigned i = 0; i < 100; i++) {
		unsigned k = (i * 37) % 100;
		ck_assert_int_eq(
		        bus_register(&bus, 0x1000 + k * 0x20, 0x10, &rec_ops, &recs[k], "r"), 0);
	}
	for (unsigned k = 0; k < 100; k++) {
		const struct bus_range *r = bus_find(&bus, 0x1000 + k * 0x20 + 0xf);
		ck_assert_ptr_nonnull(r);
		ck_assert_ptr_eq(r->opaque, &recs[k]);
		ck_assert_ptr_null(bus_find(&bus, 0x1000 + k * 0x20 + 0x10));
	}
	ck_assert_ptr_null(bus_find(&bus, 0));
	ck_assert_ptr_null(bus_find(&bus, 0xfff));
	ck_assert_ptr_null(bus_find(&bus, UINT64_MAX));
	bus_free(&bus);
}
END_TEST

START_TEST(access_offsets_and_unclaimed)
{
	struct bus bus;
	struct recorder r = {.value = 0x5a};
	uint8_t data[8];

	bus_init(&bus, "t");
	ck_assert_int_eq(bus_register(&bus, 0x3f8, 8, &rec_ops, &r, "uart"), 0);
	ck_assert_int_eq(bus_access(&bus, 0x3fd, data, 1, false), 0);
	ck_assert_uint_eq(r.last_offset, 5);
	ck_assert_uint_eq(data[0], 0x5a);
	data[0] = 0x77;
	ck_assert_int_eq(bus_access(&bus, 0x3f8, data, 1, true), 0);
	ck_assert_uint_eq(r.last_offset, 0);
	ck_assert_uint_eq(r.value, 0x77);
	ck_assert_int_eq(bus_access(&bus, 0x3fc, data, 4, false), 0);
	ck_assert_uint_eq(r.last_size, 4);
	/* Straddling the end, or entirely outside: unclaimed, the device never sees it. */
	r.reads = 0;
	ck_assert_int_eq(bus_access(&bus, 0x3fe, data, 4, false), -ENOENT);
	ck_assert_int_eq(bus_access(&bus, 0x400, data, 1, false), -ENOENT);
	ck_assert_int_eq(bus_access(&bus, 0x3f7, data, 2, true), -ENOENT);
	ck_assert_int_eq(r.reads, 0);
	bus_free(&bus);
}
END_TEST

/* --stats counts accesses per device, and the unclaimed ones apart. */
START_TEST(hits_per_range)
{
	struct bus bus;
	struct recorder a = {0}, b = {0};
	uint8_t data[4] = {0};

	bus_init(&bus, "t");
	ck_assert_int_eq(bus_register(&bus, 0xcf8, 4, &rec_ops, &a, "pci-config"), 0);
	ck_assert_int_eq(bus_register(&bus, 0x3f8, 8, &rec_ops, &b, "uart"), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(bus_access(&bus, 0xcf8, data, 4, true), 0);
	ck_assert_int_eq(bus_access(&bus, 0x3fd, data, 1, false), 0);
	ck_assert_int_eq(bus_access(&bus, 0x80, data, 1, true), -ENOENT);
	ck_assert_int_eq(bus_access(&bus, 0xcfa, data, 4, false), -ENOENT); /* straddles */
	ck_assert_uint_eq(bus.hits[0].total, 1); /* uart, the lower base */
	ck_assert_uint_eq(bus.hits[1].total, 3);
	ck_assert_uint_eq(bus.hits[2].total, 2);
	/* Short ranges per register and direction; the straddling read counts nowhere there. */
	ck_assert_uint_eq(bus.hits[0].regs[0][5], 1);
	ck_assert_uint_eq(bus.hits[1].regs[1][0], 3);
	ck_assert_uint_eq(bus.hits[1].regs[0][2], 0);
	bus_print_hits(&bus, "pio", 8);
	bus_free(&bus);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bus");
	TCase *tc = tcase_create("bus");

	tcase_add_test(tc, register_rejects_bad_ranges);
	tcase_add_test(tc, lookup_many_ranges);
	tcase_add_test(tc, access_offsets_and_unclaimed);
	tcase_add_test(tc, hits_per_range);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
