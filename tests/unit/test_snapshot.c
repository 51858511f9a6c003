/*
 * Snapshot parts (vmm/snapshot.h): the devices' save and load through one state file (a UART
 * with bytes in both FIFOs, the CMOS, the i8042, the PCI host bridge), loads that refuse a
 * section of the wrong shape, the check that a file's parts are this machine's, and guest RAM
 * through the ram file into private or shared (memfd) memory.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "devices/cmos.h"
#include "devices/i8042.h"
#include "devices/uart_8250.h"
#include "tests/support/scratch_dir.h"
#include "tests/unit/unit.h"
#include "vmm/config.h"
#include "vmm/snapshot.h"

/* The UART's host side: takes nothing, so what the guest writes stays in its FIFO. */
static size_t refuse_output(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	(void)len;
	return 0;
}

static void uart_setup(struct uart_8250 *u)
{
	const struct irq_line irq = {.vm_fd = -1, .gsi = 4, .irqfd = -1};
	const struct uart_backend backend = {refuse_output, NULL, NULL};

	uart_init(u, &irq, &backend);
}

static void out8(const struct bus_ops *ops, void *dev, uint64_t offset, uint8_t v)
{
	ck_assert_int_eq(ops->write(dev, offset, &v, 1), 0);
}

static uint8_t in8(const struct bus_ops *ops, void *dev, uint64_t offset)
{
	uint8_t v = 0;

	ck_assert_int_eq(ops->read(dev, offset, &v, 1), 0);
	return v;
}

/* Saves every part of @from into a state file and loads it into the parts of @to. */
static void round_trip(struct snapshot_parts *from, struct snapshot_parts *to)
{
	struct snap_writer w;
	struct snap_reader r;
	const uint8_t *data;
	size_t len;
	char err[256] = "";

	snap_writer_init(&w, SNAP_ARCH_HOST);
	for (unsigned i = 0; i < from->count; i++) {
		snap_begin(&w, from->parts[i].tag, from->parts[i].instance);
		ck_assert_int_eq(from->parts[i].save(from->parts[i].opaque, &w, err, sizeof(err)),
		                 0);
		snap_end(&w);
	}
	ck_assert_int_eq(snap_writer_finish(&w, &data, &len, err, sizeof(err)), 0);
	ck_assert_int_eq(snap_reader_parse(&r, data, len, SNAP_ARCH_HOST, err, sizeof(err)), 0);
	for (unsigned i = 0; i < to->count; i++) {
		struct snap_cursor c;

		ck_assert_int_eq(snap_section(&r, to->parts[i].tag, to->parts[i].instance, &c), 0);
		ck_assert_msg(to->parts[i].load(to->parts[i].opaque, &c, err, sizeof(err)) == 0,
		              "%s", err);
	}
	snap_reader_free(&r);
	snap_writer_free(&w);
}

START_TEST(devices_come_back_as_they_were)
{
	struct snapshot_parts a = {0}, b = {0};
	struct uart_8250 u1, u2;
	struct cmos c1, c2;
	struct i8042 k1, k2;

	uart_setup(&u1);
	uart_setup(&u2);
	cmos_init(&c1);
	cmos_init(&c2);
	i8042_init(&k1, NULL, NULL);
	i8042_init(&k2, NULL, NULL);
	out8(&uart_bus_ops, &u1, 3, 0x83); /* DLAB: divisor 0x0102 */
	out8(&uart_bus_ops, &u1, 0, 0x02);
	out8(&uart_bus_ops, &u1, 1, 0x01);
	out8(&uart_bus_ops, &u1, 3, 0x03);
	out8(&uart_bus_ops, &u1, 7, 0x5a); /* scratch */
	out8(&uart_bus_ops, &u1, 0, 'h');  /* held: the host takes nothing */
	out8(&uart_bus_ops, &u1, 0, 'i');
	ck_assert_uint_eq(uart_receive(&u1, (const uint8_t *)"abc", 3), 3);
	out8(&cmos_bus_ops, &c1, 0, 0x30);
	out8(&cmos_bus_ops, &c1, 1, 0x77);
	out8(&i8042_cmd_ops, &k1, 0, 0x60); /* write the command byte... */
	out8(&i8042_data_ops, &k1, 0, 0x45);
	out8(&i8042_cmd_ops, &k1, 0, 0x20); /* ...and ask for it back, unread */

	ck_assert_int_eq(uart_snapshot_add(&u1, &a, 0), 0);
	ck_assert_int_eq(cmos_snapshot_add(&c1, &a), 0);
	ck_assert_int_eq(i8042_snapshot_add(&k1, &a), 0);
	ck_assert_int_eq(uart_snapshot_add(&u2, &b, 0), 0);
	ck_assert_int_eq(cmos_snapshot_add(&c2, &b), 0);
	ck_assert_int_eq(i8042_snapshot_add(&k2, &b), 0);
	round_trip(&a, &b);

	ck_assert_uint_eq(u2.tx_count, 2);
	ck_assert_uint_eq(u2.tx_fifo[u2.tx_head], 'h');
	ck_assert_uint_eq(in8(&uart_bus_ops, &u2, 7), 0x5a);
	ck_assert_uint_eq(in8(&uart_bus_ops, &u2, 0), 'a');
	ck_assert_uint_eq(in8(&uart_bus_ops, &u2, 0), 'b');
	ck_assert_uint_eq(in8(&uart_bus_ops, &u2, 0), 'c');
	out8(&uart_bus_ops, &u2, 3, 0x83);
	ck_assert_uint_eq(in8(&uart_bus_ops, &u2, 0), 0x02);
	ck_assert_uint_eq(in8(&uart_bus_ops, &u2, 1), 0x01);
	ck_assert_uint_eq(in8(&cmos_bus_ops, &c2, 1), 0x77); /* the index came back too */
	ck_assert_uint_eq(in8(&i8042_data_ops, &k2, 0), 0x45);

	uart_destroy(&u1);
	uart_destroy(&u2);
	cmos_destroy(&c1);
	cmos_destroy(&c2);
	i8042_destroy(&k1);
	i8042_destroy(&k2);
	snapshot_parts_free(&a);
	snapshot_parts_free(&b);
}
END_TEST

/* A section cut short, with bytes left over, or with a FIFO count past the FIFO is refused. */
START_TEST(bad_sections_are_refused)
{
	static const struct {
		const char *tag;
		uint8_t payload[32];
		size_t len;
		const char *error;
	} cases[] = {
	        {"UART", {1, 2, 3}, 3, "shorter than expected"},
	        {"UART", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0}, 14, "receive FIFO"},
	        {"UART",
	         {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0},
	         18,
	         "transmit FIFO"},
	        {"KBC ", {0, 0, 0, 0, 9, 0, 0, 0, 0}, 9, "output queue"},
	        {"CMOS", {0}, 1, "shorter than expected"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct snapshot_parts parts = {0};
		struct uart_8250 u;
		struct cmos c;
		struct i8042 k;
		struct snap_writer w;
		struct snap_reader r;
		struct snap_cursor cur;
		const uint8_t *data;
		size_t len;
		char err[256] = "";

		uart_setup(&u);
		cmos_init(&c);
		i8042_init(&k, NULL, NULL);
		ck_assert_int_eq(uart_snapshot_add(&u, &parts, 0), 0);
		ck_assert_int_eq(cmos_snapshot_add(&c, &parts), 0);
		ck_assert_int_eq(i8042_snapshot_add(&k, &parts), 0);
		snap_writer_init(&w, SNAP_ARCH_HOST);
		snap_begin(&w, cases[i].tag, 0);
		snap_put_bytes(&w, cases[i].payload, cases[i].len);
		snap_end(&w);
		ck_assert_int_eq(snap_writer_finish(&w, &data, &len, err, sizeof(err)), 0);
		ck_assert_int_eq(snap_reader_parse(&r, data, len, SNAP_ARCH_HOST, err, sizeof(err)),
		                 0);
		ck_assert_int_eq(snap_section(&r, cases[i].tag, 0, &cur), 0);
		for (unsigned p = 0; p < parts.count; p++) {
			if (memcmp(parts.parts[p].tag, cases[i].tag, 4))
				continue;
			ck_assert_int_ne(
			        parts.parts[p].load(parts.parts[p].opaque, &cur, err, sizeof(err)),
			        0);
			ck_assert_msg(strstr(err, cases[i].error), "case %zu: %s", i, err);
		}
		snap_reader_free(&r);
		snap_writer_free(&w);
		uart_destroy(&u);
		cmos_destroy(&c);
		i8042_destroy(&k);
		snapshot_parts_free(&parts);
	}
}
END_TEST

static int no_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	(void)opaque;
	(void)w;
	(void)err;
	(void)errlen;
	return 0;
}

static int counting_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	(*(unsigned *)opaque)++;
	return snap_cursor_finish(c, err, errlen);
}

/* A state file restores only a machine with exactly its parts, and never one with a part
 * that cannot be saved. */
START_TEST(parts_must_match_the_machine)
{
	struct snapshot_parts parts = {0};
	struct guest_memory mem = {0};
	struct snapshot_config sc = {0};
	struct snap_writer w;
	const uint8_t *data;
	size_t len;
	unsigned loads = 0;
	char err[256] = "";

	snap_writer_init(&w, SNAP_ARCH_HOST);
	snap_begin(&w, "CONF", 0);
	snap_put_u32(&w, 0);
	snap_end(&w);
	snap_begin(&w, "PART", 0);
	snap_end(&w);
	snap_begin(&w, "PART", 1);
	snap_end(&w);
	ck_assert_int_eq(snap_writer_finish(&w, &data, &len, err, sizeof(err)), 0);
	ck_assert_int_eq(snap_reader_parse(&sc.reader, data, len, SNAP_ARCH_HOST, err, sizeof(err)),
	                 0);

	ck_assert_int_eq(snapshot_add(&parts, "PART", 0, no_save, counting_load, &loads), 0);
	ck_assert_int_ne(snapshot_load_parts(&parts, &sc, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "the state file has 2 parts, this machine 1");
	ck_assert_int_eq(snapshot_add(&parts, "PART", 2, no_save, counting_load, &loads), 0);
	ck_assert_int_ne(snapshot_load_parts(&parts, &sc, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "the state file has no PART 2");
	parts.parts[1].instance = 1;
	loads = 0;
	ck_assert_int_eq(snapshot_load_parts(&parts, &sc, err, sizeof(err)), 0);
	ck_assert_uint_eq(loads, 2);

	snapshot_unsupported(&parts, "virtio-rng");
	snapshot_unsupported(&parts, "virtio-blk");
	ck_assert_int_eq(snapshot_load_parts(&parts, &sc, err, sizeof(err)), -ENOTSUP);
	ck_assert_str_eq(err, "this VM has virtio-rng, whose state snapshots do not restore yet");
	ck_assert_int_eq(snapshot_save(&parts, &mem, NULL, "/nonexistent/snap", err, sizeof(err)),
	                 -ENOTSUP);
	ck_assert_str_eq(err, "this VM has virtio-rng, whose state snapshots do not save yet");

	snap_reader_free(&sc.reader);
	snap_writer_free(&w);
	snapshot_parts_free(&parts);
}
END_TEST

/* Two regions with data scattered between holes; the same bytes come back. */
static void fill_pattern(struct guest_memory *m)
{
	for (unsigned i = 0; i < m->nr_regions; i++)
		for (uint64_t off = 0; off < m->regions[i].size; off += 3 * 4096 + 512)
			memset(m->regions[i].host + off, 0x40 + (int)(off / 4096 % 50) + (int)i,
			       700);
}

/*
 * The ram file restores into private memory (mapped copy-on-write) and into shared memory (a
 * memfd, for virtio-fs: copied in, holes skipped); both read back what was saved.
 */
START_TEST(ram_restores_private_and_shared)
{
	static struct vm_config cfg;
	struct snapshot_parts parts = {0};
	struct guest_memory saved = {0};
	char err[600] = "";
	const char *dir;

	scratch_dir_make("vmm-snap-ram");
	dir = scratch_path("snap");
	ck_assert_int_eq(guest_memory_add(&saved, 0, 1 << 20), 0);
	ck_assert_int_eq(guest_memory_add(&saved, 4ULL << 30, 2 << 20), 0);
	fill_pattern(&saved);
	ck_assert_msg(snapshot_save(&parts, &saved, &cfg, dir, err, sizeof(err)) == 0, "%s", err);
	for (int shared = 0; shared < 2; shared++) {
		struct guest_memory m = {.shared = shared};

		ck_assert_int_eq(guest_memory_add(&m, 0, 1 << 20), 0);
		ck_assert_int_eq(guest_memory_add(&m, 4ULL << 30, 2 << 20), 0);
		ck_assert(!shared || m.regions[0].fd >= 0);
		ck_assert_msg(snapshot_map_ram(&m, dir, err, sizeof(err)) == 0, "%s", err);
		for (unsigned i = 0; i < 2; i++)
			ck_assert_msg(!memcmp(m.regions[i].host, saved.regions[i].host,
			                      m.regions[i].size),
			              "region %u differs (shared %d)", i, shared);
		guest_memory_free(&m);
	}
	/* A ram file of another size is refused. */
	{
		struct guest_memory m = {.shared = true};

		ck_assert_int_eq(guest_memory_add(&m, 0, 1 << 20), 0);
		ck_assert_int_eq(snapshot_map_ram(&m, dir, err, sizeof(err)), -EINVAL);
		ck_assert_ptr_nonnull(strstr(err, "not a regular file of 1048576 bytes"));
		guest_memory_free(&m);
	}
	guest_memory_free(&saved);
	scratch_dir_remove();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tc = tcase_create("snapshot");

	tcase_add_test(tc, devices_come_back_as_they_were);
	tcase_add_test(tc, bad_sections_are_refused);
	tcase_add_test(tc, parts_must_match_the_machine);
	tcase_add_test(tc, ram_restores_private_and_shared);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
