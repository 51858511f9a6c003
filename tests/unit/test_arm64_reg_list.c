/*
 * aarch64 snapshot register lists (arch/aarch64/reg_list.c): sizes from KVM ids; a round trip
 * through a state file section into a machine's list in another order; and one hostile or
 * mismatched list per rule of the reader, with its message: a register the machine lacks, one
 * the file lacks, one twice, a size that differs, a count larger than the section or the
 * limit, an entry cut short.
 */
#include <check.h>
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>

#include "arch/aarch64/reg_list.h"
#include "tests/unit/unit.h"

/* KVM_GET_REG_LIST-style ids: an arm64 core register of 64 bits, a 128-bit one, a 32-bit one. */
#define ARM64_ID(size, n) (0x6000000000000000ULL | (size) | 0x100000ULL | (n))
#define R64               ARM64_ID(KVM_REG_SIZE_U64, 0)
#define R128              ARM64_ID(KVM_REG_SIZE_U128, 0x54)
#define R32               ARM64_ID(KVM_REG_SIZE_U32, 0x1c)
#define R64B              ARM64_ID(KVM_REG_SIZE_U64, 2)

static struct snap_writer w;
static struct snap_reader r;
static char err[256];

static void begin(void)
{
	snap_writer_init(&w, SNAP_ARCH_AARCH64);
	snap_begin(&w, "VCPU", 0);
}

/* Closes the section begun by begin() and points @c at it. */
static void finish(struct snap_cursor *c)
{
	const uint8_t *data;
	size_t len;

	snap_end(&w);
	ck_assert_msg(snap_writer_finish(&w, &data, &len, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(snap_reader_parse(&r, data, len, SNAP_ARCH_AARCH64, err, sizeof(err)), 0);
	ck_assert_int_eq(snap_section(&r, "VCPU", 0, c), 0);
}

static void done(void)
{
	snap_reader_free(&r);
	snap_writer_free(&w);
}

/* A machine's list of @n ids, each with its KVM size, values zero. */
static void machine(struct arm64_reg_list *l, const uint64_t *ids, unsigned n)
{
	*l = (struct arm64_reg_list){0};
	for (unsigned i = 0; i < n; i++)
		ck_assert_ptr_nonnull(arm64_reg_list_add(l, ids[i], arm64_reg_id_size(ids[i])));
}

/* Saves a list of @n ids (values patterned by id) and reads it into a machine of @m ids. */
static int save_then_load(const uint64_t *ids, unsigned n, const uint64_t *mids, unsigned m,
                          struct arm64_reg_list *out)
{
	struct arm64_reg_list saved;
	struct snap_cursor c;
	int ret;

	machine(&saved, ids, n);
	for (unsigned i = 0; i < saved.count; i++)
		for (unsigned b = 0; b < saved.regs[i].size; b++)
			saved.regs[i].value[b] = (uint8_t)(saved.regs[i].id * 31 + b);
	begin();
	arm64_reg_list_put(&w, &saved);
	finish(&c);
	machine(out, mids, m);
	ret = arm64_reg_list_get(&c, out, "vCPU register", err, sizeof(err));
	if (!ret)
		ret = snap_cursor_finish(&c, err, sizeof(err));
	arm64_reg_list_free(&saved);
	done();
	return ret;
}

static void expect_error(const uint64_t *ids, unsigned n, const uint64_t *mids, unsigned m,
                         const char *message)
{
	struct arm64_reg_list l;

	ck_assert_int_eq(save_then_load(ids, n, mids, m, &l), -EINVAL);
	ck_assert_msg(strstr(err, message), "'%s' does not say '%s'", err, message);
	arm64_reg_list_free(&l);
}

START_TEST(sizes_from_ids)
{
	struct arm64_reg_list l = {0};

	ck_assert_uint_eq(arm64_reg_id_size(R32), 4);
	ck_assert_uint_eq(arm64_reg_id_size(R64), 8);
	ck_assert_uint_eq(arm64_reg_id_size(R128), 16);
	ck_assert_uint_eq(arm64_reg_id_size(ARM64_ID(KVM_REG_SIZE_U2048, 0)), 256);
	ck_assert_ptr_null(arm64_reg_list_add(&l, R64, 0));
	ck_assert_ptr_null(arm64_reg_list_add(&l, R64, ARM64_REG_MAX_SIZE + 1));
	for (unsigned i = 0; i < ARM64_REG_LIST_MAX; i++)
		ck_assert_ptr_nonnull(arm64_reg_list_add(&l, i, 4));
	ck_assert_ptr_null(arm64_reg_list_add(&l, R64, 4));
	arm64_reg_list_free(&l);
	arm64_reg_list_free(&l);
}
END_TEST

START_TEST(round_trip_in_another_order)
{
	const uint64_t ids[] = {R64, R128, R32, R64B};
	const uint64_t mids[] = {R32, R64B, R64, R128};
	struct arm64_reg_list l;

	ck_assert_msg(save_then_load(ids, 4, mids, 4, &l) == 0, "%s", err);
	ck_assert_uint_eq(l.count, 4);
	for (unsigned i = 0; i < l.count; i++) {
		ck_assert_uint_eq(l.regs[i].id, mids[i]);
		for (unsigned b = 0; b < l.regs[i].size; b++)
			ck_assert_uint_eq(l.regs[i].value[b], (uint8_t)(mids[i] * 31 + b));
	}
	arm64_reg_list_free(&l);
	/* An empty list is a list. */
	ck_assert_msg(save_then_load(ids, 0, mids, 0, &l) == 0, "%s", err);
	arm64_reg_list_free(&l);
}
END_TEST

START_TEST(lists_that_differ)
{
	const uint64_t ids[] = {R64, R128, R32};
	const uint64_t twice[] = {R64, R64};

	expect_error(ids, 3, ids, 2,
	             "the state file has vCPU register 0x602000000010001c, which "
	             "this machine lacks");
	expect_error(ids, 2, ids, 3, "the state file lacks vCPU register 0x602000000010001c");
	expect_error(twice, 2, ids, 2, "the state file has vCPU register 0x6030000000100000 twice");
}
END_TEST

START_TEST(size_that_differs)
{
	struct arm64_reg_list l;
	const uint64_t id = R64;
	struct snap_cursor c;

	begin();
	snap_put_u32(&w, 1);
	snap_put_u64(&w, R64);
	snap_put_u32(&w, 4);
	snap_put_u32(&w, 0);
	finish(&c);
	machine(&l, &id, 1);
	ck_assert_int_eq(arm64_reg_list_get(&c, &l, "vCPU register", err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err,
	                 "vCPU register 0x6030000000100000 is 4 bytes in the state file, 8 here");
	arm64_reg_list_free(&l);
	done();
}
END_TEST

/* A count of @count followed by @entries well-formed 8-byte registers. */
static int hostile(uint32_t count, unsigned entries, bool cut)
{
	struct arm64_reg_list l;
	const uint64_t ids[] = {R64, R64B};
	struct snap_cursor c;
	int ret;

	begin();
	snap_put_u32(&w, count);
	for (unsigned i = 0; i < entries; i++) {
		snap_put_u64(&w, ids[i]);
		snap_put_u32(&w, 8);
		if (!cut || i + 1 < entries)
			snap_put_u64(&w, 0x1234);
		else
			snap_put_u32(&w, 0x1234);
	}
	finish(&c);
	machine(&l, ids, 2);
	ret = arm64_reg_list_get(&c, &l, "vCPU register", err, sizeof(err));
	if (!ret)
		ret = snap_cursor_finish(&c, err, sizeof(err));
	arm64_reg_list_free(&l);
	done();
	return ret;
}

START_TEST(hostile_counts_and_entries)
{
	ck_assert_int_eq(hostile(2, 2, false), 0);
	ck_assert_int_eq(hostile(0xffffffff, 2, false), -EINVAL);
	ck_assert_str_eq(err, "the state file's list of 4294967295 vCPU registers is longer than "
	                      "its section");
	ck_assert_int_eq(hostile(ARM64_REG_LIST_MAX + 1, 2, false), -EINVAL);
	ck_assert_int_eq(hostile(4, 2, false), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "longer than its section"));
	/* The last value cut short: the cursor overruns, and finishing says so. */
	ck_assert_int_eq(hostile(2, 2, true), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "shorter than expected"));
	/* Fewer entries than the machine has: the missing one is named. */
	ck_assert_int_eq(hostile(1, 1, false), -EINVAL);
	ck_assert_str_eq(err, "the state file lacks vCPU register 0x6030000000100002");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("arm64_reg_list");
	TCase *tc = tcase_create("arm64_reg_list");

	tcase_add_test(tc, sizes_from_ids);
	tcase_add_test(tc, round_trip_in_another_order);
	tcase_add_test(tc, lists_that_differ);
	tcase_add_test(tc, size_that_differs);
	tcase_add_test(tc, hostile_counts_and_entries);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
