/*
 * Snapshot state files (vmm/snapshot_file.c, snapshot_file_write.c): a round trip of several
 * sections with every put and get, lookup and iteration; one hostile or corrupt file per rule
 * of the reader with its message (built from a good file by editing it, with the checksum
 * recomputed where the rule is not the checksum: reserved, padding, tags, duplicates);
 * cursor overrun and leftovers; the writer's sticky errors and refusal of a duplicate; loading
 * a FIFO, a directory and a missing file; the atomic save (no .tmp left, a file replaced, a
 * stale .tmp reported, a missing directory named).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "tests/support/scratch_dir.h"
#include "tests/unit/unit.h"
#include "vmm/snapshot_file.h"

#define X86 SNAP_ARCH_X86_64

static const char *dir; /* the scratch directory, while a test has one */

/* A file of three sections ("VCPU" #0 and #1, "PIC " #0); its bytes, malloc'd, in *@len. */
static uint8_t *good_file(size_t *len)
{
	struct snap_writer w;
	const uint8_t *data;
	char err[256];
	uint8_t *copy;

	snap_writer_init(&w, X86);
	snap_begin(&w, "VCPU", 0);
	snap_put_u64(&w, 0x1122334455667788ULL);
	snap_put_u8(&w, 7);
	snap_end(&w);
	snap_begin(&w, "VCPU", 1);
	snap_put_u64(&w, 0x99);
	snap_put_u8(&w, 8);
	snap_end(&w);
	snap_begin(&w, "PIC ", 0);
	snap_put_u32(&w, 0xdeadbeef);
	snap_end(&w);
	ck_assert_msg(snap_writer_finish(&w, &data, len, err, sizeof(err)) == 0, "%s", err);
	copy = malloc(*len);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, data, *len);
	snap_writer_free(&w);
	return copy;
}

/* Offsets in good_file(): sections of 16 + 16 (VCPU: 9 bytes, padded), 16 + 8 (PIC). */
#define VCPU0_AT 24
#define VCPU1_AT (VCPU0_AT + 32)
#define PIC_AT   (VCPU1_AT + 32)
#define END_AT   (PIC_AT + 24)
#define GOOD_LEN (END_AT + 24)

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the END checksum of a file whose END section is its last 24 bytes. */
static void fix_crc(uint8_t *buf, size_t len)
{
	put32(buf + len - 8, (uint32_t)crc32(crc32(0, Z_NULL, 0), buf, (uInt)(len - 24)));
}

static void set_declared(uint8_t *buf, size_t len)
{
	put32(buf + 16, (uint32_t)(len - 24));
	put32(buf + 20, 0);
}

/* Parses @buf and expects a failure whose message holds @part. */
static void expect_bad(const uint8_t *buf, size_t len, const char *part)
{
	struct snap_reader r;
	char err[256] = "";
	int ret = snap_reader_parse(&r, buf, len, X86, err, sizeof(err));

	ck_assert_msg(ret == -EINVAL && strstr(err, part), "got %d \"%s\", expected \"%s\"", ret,
	              err, part);
	ck_assert_ptr_null(r.index);
	for (const char *c = err; *c; c++)
		ck_assert_msg(*c >= 0x20 && *c < 0x7f, "not printable ASCII: %s", err);
}

START_TEST(round_trip)
{
	static const uint8_t blob[13] = "hello, state";
	struct snap_writer w;
	struct snap_reader r;
	struct snap_cursor c;
	const uint8_t *data;
	uint8_t got[13];
	char err[256];
	size_t len, it = 0;

	snap_writer_init(&w, X86);
	snap_begin(&w, "VBLK", 3);
	snap_put_u8(&w, 0xab);
	snap_put_u16(&w, 0xbeef);
	snap_put_u32(&w, 0xcafef00d);
	snap_put_u64(&w, 0x0123456789abcdefULL);
	snap_put_bytes(&w, blob, sizeof(blob));
	snap_end(&w);
	snap_begin(&w, "EMPT", 0); /* an empty payload */
	snap_end(&w);
	snap_begin(&w, "VBLK", 1);
	snap_put_u64(&w, UINT64_MAX);
	snap_end(&w);
	ck_assert_msg(snap_writer_finish(&w, &data, &len, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(len % 8, 0);
	ck_assert_int_eq(memcmp(data, "VMMSTATE\1\0\0\0\x3e\0\0\0", 16), 0);

	ck_assert_msg(snap_reader_parse(&r, data, len, X86, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(snap_count(&r, NULL), 3);
	ck_assert_uint_eq(snap_count(&r, "VBLK"), 2);
	ck_assert_uint_eq(snap_count(&r, "NONE"), 0);
	ck_assert_int_eq(snap_section(&r, "VBLK", 3, &c), 0);
	ck_assert_uint_eq(snap_cursor_left(&c), 1 + 2 + 4 + 8 + sizeof(blob));
	ck_assert_uint_eq(snap_get_u8(&c), 0xab);
	ck_assert_uint_eq(snap_get_u16(&c), 0xbeef);
	ck_assert_uint_eq(snap_get_u32(&c), 0xcafef00d);
	ck_assert(snap_get_u64(&c) == 0x0123456789abcdefULL);
	snap_get_bytes(&c, got, sizeof(got));
	ck_assert_int_eq(memcmp(got, blob, sizeof(blob)), 0);
	ck_assert_int_eq(snap_cursor_finish(&c, err, sizeof(err)), 0);
	ck_assert_int_eq(snap_section(&r, "EMPT", 0, &c), 0);
	ck_assert_int_eq(snap_cursor_finish(&c, err, sizeof(err)), 0);
	ck_assert_int_eq(snap_section(&r, "VBLK", 2, &c), -ENOENT);
	ck_assert_int_eq(snap_section(&r, "END ", 0, &c), -ENOENT);

	/* Iteration: VBLK's instances in order, then nothing. */
	ck_assert(snap_next(&r, "VBLK", &it, &c));
	ck_assert_uint_eq(c.instance, 1);
	ck_assert(snap_get_u64(&c) == UINT64_MAX);
	ck_assert(snap_next(&r, "VBLK", &it, &c));
	ck_assert_uint_eq(c.instance, 3);
	ck_assert_str_eq(c.tag, "VBLK");
	ck_assert(!snap_next(&r, "VBLK", &it, &c));
	it = 0;
	ck_assert(snap_next(&r, NULL, &it, &c) && !strcmp(c.tag, "EMPT"));
	ck_assert(snap_next(&r, NULL, &it, &c) && c.instance == 1);
	ck_assert(snap_next(&r, NULL, &it, &c) && c.instance == 3);
	ck_assert(!snap_next(&r, NULL, &it, &c));
	snap_reader_free(&r);
	snap_reader_free(&r);
	snap_writer_free(&w);
	snap_writer_free(&w);
}
END_TEST

START_TEST(header_errors)
{
	size_t len;
	uint8_t *buf = good_file(&len), *big;

	ck_assert_uint_eq(len, GOOD_LEN);
	expect_bad(buf, 0, "truncated: 0 bytes, less than the 24-byte header");
	expect_bad(buf, 23, "truncated: 23 bytes");
	buf[0] = 'X';
	expect_bad(buf, len, "not a vmm snapshot state file");
	buf[0] = 'V';
	put32(buf + 8, 2);
	expect_bad(buf, len, "written by snapshot format 2; this vmm reads format 1");
	put32(buf + 8, 1);
	put32(buf + 12, SNAP_ARCH_AARCH64);
	expect_bad(buf, len, "a snapshot of an aarch64 guest; this vmm runs x86_64 guests");
	put32(buf + 12, 999);
	expect_bad(buf, len, "a snapshot of a guest of ELF machine 999; this vmm runs x86_64");
	put32(buf + 12, X86);
	put32(buf + 16, (uint32_t)len); /* says 24 bytes more than follow */
	expect_bad(buf, len, "length mismatch: the header says 136 bytes follow it, not 112");
	put32(buf + 16, 0);
	put32(buf + 20, 1);
	expect_bad(buf, len, "length mismatch");
	/* Over 64 MiB: refused before anything past the header is read. */
	big = calloc(1, SNAP_FILE_MAX + 8);
	ck_assert_ptr_nonnull(big);
	memcpy(big, buf, 24);
	expect_bad(big, SNAP_FILE_MAX + 8, "more than a state file's 64 MiB");
	free(big);
	free(buf);
}
END_TEST

START_TEST(section_errors)
{
	size_t len;
	uint8_t *buf = good_file(&len), *more;

	/* Cut short inside VCPU #1's payload, and inside a section header. */
	expect_bad(buf, VCPU1_AT + 20, "truncated in section 'VCPU' #1");
	expect_bad(buf, VCPU1_AT + 10, "truncated after section 'VCPU' #0 (10 bytes of a section");
	expect_bad(buf, PIC_AT, "truncated after section 'VCPU' #1 (no END section)");
	expect_bad(buf, 24, "truncated after the header (no END section)");
	/* A payload length past the end, the file otherwise whole. */
	put32(buf + PIC_AT + 8, 1000);
	expect_bad(buf, len, "truncated in section 'PIC ' #0 (1000 bytes of payload, 32 left)");
	put32(buf + PIC_AT + 8, 4);

	/* Checksum: one payload byte flipped. */
	buf[VCPU0_AT + 16] ^= 1;
	expect_bad(buf, len, "checksum mismatch: the file is corrupt");
	buf[VCPU0_AT + 16] ^= 1;

	/* Reserved and padding, with a valid checksum (a writer's bug, not corruption). */
	put32(buf + VCPU1_AT + 12, 0x80);
	fix_crc(buf, len);
	expect_bad(buf, len, "section 'VCPU' #1: reserved field is 0x80, not 0");
	put32(buf + VCPU1_AT + 12, 0);
	buf[VCPU1_AT + 16 + 9 + 6] = 1;
	fix_crc(buf, len);
	expect_bad(buf, len, "section 'VCPU' #1: non-zero padding after the payload");
	buf[VCPU1_AT + 16 + 9 + 6] = 0;
	fix_crc(buf, len);
	buf[END_AT + 23] = 1; /* END's own padding */
	expect_bad(buf, len, "section 'END ' #0: non-zero padding");
	buf[END_AT + 23] = 0;
	put32(buf + END_AT + 12, 1);
	expect_bad(buf, len, "section 'END ' #0: reserved field is 0x1");
	put32(buf + END_AT + 12, 0);

	/* A tag that is not printable ASCII (escaped in the message). */
	memcpy(buf + PIC_AT, "\x01\xff'\\", 4);
	fix_crc(buf, len);
	expect_bad(buf, len, "section '\\x01\\xff\\x27\\x5c' #0: the tag is not printable ASCII");
	memcpy(buf + PIC_AT, "PI\0 ", 4);
	fix_crc(buf, len);
	expect_bad(buf, len, "section 'PI\\x00 ' #0: the tag is not printable ASCII");
	memcpy(buf + PIC_AT, "PIC ", 4);

	/* Duplicate: VCPU #1 renamed #0. */
	put32(buf + VCPU1_AT + 4, 0);
	fix_crc(buf, len);
	expect_bad(buf, len, "section 'VCPU' #0 appears twice");
	free(buf);

	/* END: missing, not instance 0, not 4 bytes, data after it, and a second END. */
	buf = good_file(&len);
	set_declared(buf, END_AT);
	expect_bad(buf, END_AT, "the file ends after section 'PIC ' #0 (no END section)");
	set_declared(buf, len);
	put32(buf + END_AT + 4, 1);
	expect_bad(buf, len, "the END section has instance 1, not 0");
	put32(buf + END_AT + 4, 0);
	put32(buf + END_AT + 8, 0);
	expect_bad(buf, len, "the END section holds 0 bytes, not 4");
	put32(buf + END_AT + 8, 4);
	more = calloc(1, len + 24);
	ck_assert_ptr_nonnull(more);
	memcpy(more, buf, len);
	set_declared(more, len + 8);
	expect_bad(more, len + 8, "8 bytes of data after the END section");
	memcpy(more + len, buf + END_AT, 24);
	set_declared(more, len + 24);
	expect_bad(more, len + 24, "24 bytes of data after the END section");
	free(more);
	free(buf);
}
END_TEST

/* @n empty sections "MANY" #0..n-1 and END, built by hand. */
static uint8_t *many_sections(unsigned n, size_t *len)
{
	uint8_t *buf;

	*len = 24 + 16 * (size_t)n + 24;
	buf = calloc(1, *len);
	ck_assert_ptr_nonnull(buf);
	memcpy(buf, "VMMSTATE\1\0\0\0\x3e\0\0\0", 16);
	set_declared(buf, *len);
	for (unsigned i = 0; i < n; i++) {
		memcpy(buf + 24 + 16 * i, "MANY", 4);
		put32(buf + 24 + 16 * i + 4, i);
	}
	memcpy(buf + *len - 24, "END ", 4);
	put32(buf + *len - 16, 4);
	fix_crc(buf, *len);
	return buf;
}

START_TEST(section_limit)
{
	struct snap_writer w;
	struct snap_reader r;
	const uint8_t *data;
	char err[256];
	size_t len;
	uint8_t *buf = many_sections(SNAP_MAX_SECTIONS - 1, &len);

	ck_assert_msg(snap_reader_parse(&r, buf, len, X86, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(snap_count(&r, "MANY"), SNAP_MAX_SECTIONS - 1);
	snap_reader_free(&r);
	free(buf);
	buf = many_sections(SNAP_MAX_SECTIONS, &len);
	expect_bad(buf, len, "more than 4096 sections");
	free(buf);

	/* The writer: the same bound, reported at the end. */
	snap_writer_init(&w, X86);
	for (unsigned i = 0; i < SNAP_MAX_SECTIONS; i++) {
		snap_begin(&w, "MANY", i);
		snap_end(&w);
	}
	ck_assert_int_eq(snap_writer_finish(&w, &data, &len, err, sizeof(err)), -E2BIG);
	ck_assert_str_eq(err, "more than 4096 sections");
	snap_writer_free(&w);
}
END_TEST

START_TEST(cursor_overrun_and_leftover)
{
	size_t len;
	uint8_t *buf = good_file(&len), bytes[4] = {1, 2, 3, 4};
	struct snap_reader r;
	struct snap_cursor c;
	char err[256];

	ck_assert_msg(snap_reader_parse(&r, buf, len, X86, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(snap_section(&r, "VCPU", 0, &c), 0);
	snap_get_u64(&c);
	ck_assert_int_eq(snap_cursor_finish(&c, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "section 'VCPU' #0: 1 bytes left over");

	ck_assert_int_eq(snap_section(&r, "PIC ", 0, &c), 0);
	ck_assert_uint_eq(snap_get_u16(&c), 0xbeef);
	snap_get_bytes(&c, bytes, sizeof(bytes)); /* 2 left: reads zeros */
	ck_assert_int_eq(bytes[0] | bytes[1] | bytes[2] | bytes[3], 0);
	ck_assert_uint_eq(snap_get_u8(&c), 0); /* the overrun is sticky */
	ck_assert_uint_eq(snap_cursor_left(&c), 0);
	ck_assert_int_eq(snap_cursor_finish(&c, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "section 'PIC ' #0: shorter than expected");

	/* A section the file lacks reads as an empty one. */
	ck_assert_int_eq(snap_section(&r, "VCPU", 5, &c), -ENOENT);
	ck_assert_int_eq(snap_cursor_finish(&c, err, sizeof(err)), 0);
	ck_assert(snap_get_u32(&c) == 0);
	ck_assert_int_eq(snap_cursor_finish(&c, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "section 'VCPU' #5: shorter than expected");
	snap_reader_free(&r);
	free(buf);
}
END_TEST

START_TEST(writer_errors)
{
	struct snap_writer w;
	const uint8_t *data;
	uint8_t *big = calloc(1, SNAP_FILE_MAX);
	char err[256];
	size_t len;

	ck_assert_ptr_nonnull(big);
	snap_writer_init(&w, X86);
	snap_begin(&w, "VCPU", 0);
	snap_end(&w);
	snap_begin(&w, "VCPU", 0);
	snap_end(&w);
	ck_assert_int_eq(snap_writer_finish(&w, &data, &len, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "the state would not load: section 'VCPU' #0 appears twice");
	snap_writer_free(&w);

	/* Past 64 MiB: remembered, the later puts ignored, reported at the end. */
	snap_writer_init(&w, X86);
	snap_begin(&w, "BIG ", 0);
	snap_put_bytes(&w, big, SNAP_FILE_MAX - 24 - 16 - 24);
	snap_put_u8(&w, 1);
	snap_put_u64(&w, 1);
	snap_end(&w);
	snap_begin(&w, "MORE", 0);
	snap_end(&w);
	ck_assert_int_eq(snap_writer_finish(&w, &data, &len, err, sizeof(err)), -EFBIG);
	ck_assert_str_eq(err, "the state is larger than 64 MiB");
	snap_writer_free(&w);

	/* Exactly 64 MiB loads. */
	snap_writer_init(&w, X86);
	snap_begin(&w, "BIG ", 0);
	snap_put_bytes(&w, big, SNAP_FILE_MAX - 24 - 16 - 24);
	snap_end(&w);
	ck_assert_msg(snap_writer_finish(&w, &data, &len, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(len, SNAP_FILE_MAX);
	snap_writer_free(&w);
	free(big);
}
END_TEST

static void save_good(const char *path)
{
	struct snap_writer w;
	char err[512];

	snap_writer_init(&w, X86);
	snap_begin(&w, "VCPU", 0);
	snap_put_u32(&w, 42);
	snap_end(&w);
	ck_assert_msg(snap_writer_save(&w, path, err, sizeof(err)) == 0, "%s", err);
	/* Saving again (to the same path: a replace) hands out the same file. */
	ck_assert_msg(snap_writer_save(&w, path, err, sizeof(err)) == 0, "%s", err);
	snap_writer_free(&w);
}

START_TEST(save_is_atomic)
{
	struct snap_reader r;
	struct snap_cursor c;
	struct stat st;
	char err[512], tmp[256];
	const char *path;

	dir = scratch_dir_make("vmm-snapshot");
	path = scratch_path("state");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	ck_assert_int_eq(close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)), 0);
	save_good(path); /* replaces the empty file */
	ck_assert_int_eq(access(tmp, F_OK), -1);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_msg(snap_reader_load(&r, path, X86, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(snap_section(&r, "VCPU", 0, &c), 0);
	ck_assert_uint_eq(snap_get_u32(&c), 42);
	ck_assert_int_eq(snap_cursor_finish(&c, err, sizeof(err)), 0);
	snap_reader_free(&r);

	/* A stale .tmp is reported, and left, and the file is untouched. */
	ck_assert_int_eq(close(open(tmp, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)), 0);
	{
		struct snap_writer w;

		snap_writer_init(&w, X86);
		ck_assert_int_eq(snap_writer_save(&w, path, err, sizeof(err)), -EEXIST);
		ck_assert_ptr_nonnull(strstr(err, ".tmp' exists"));
		snap_writer_free(&w);
	}
	ck_assert_int_eq(access(tmp, F_OK), 0);
	ck_assert_msg(snap_reader_load(&r, path, X86, err, sizeof(err)) == 0, "%s", err);
	snap_reader_free(&r);
	scratch_dir_remove();
}
END_TEST

START_TEST(save_into_missing_directory)
{
	struct snap_writer w;
	char err[512], path[256];

	dir = scratch_dir_make("vmm-snapshot");
	snprintf(path, sizeof(path), "%s/no-such-dir/state", dir);
	snap_writer_init(&w, X86);
	ck_assert_int_eq(snap_writer_save(&w, path, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, path) && strstr(err, "No such file or directory"), "%s", err);
	snap_writer_free(&w);
	scratch_dir_remove();
}
END_TEST

/* Expects load to fail with @want and a message holding @part and (@named) the path. */
static void expect_load_error_named(const char *path, int want, const char *part, bool named)
{
	struct snap_reader r;
	char err[512] = "";
	int ret = snap_reader_load(&r, path, X86, err, sizeof(err));

	ck_assert_msg(ret == want && strstr(err, part) && (!named || strstr(err, path)),
	              "load %s: %d \"%s\", expected %d \"%s\"", path, ret, err, want, part);
	ck_assert_ptr_null(r.index);
	ck_assert_ptr_null(r.owned);
}

static void expect_load_error(const char *path, int want, const char *part)
{
	expect_load_error_named(path, want, part, true);
}

START_TEST(load_refuses_what_is_not_a_state_file)
{
	struct timespec t0, t1;
	size_t len;
	uint8_t *buf = good_file(&len);
	const char *path;
	int fd;

	dir = scratch_dir_make("vmm-snapshot");
	path = scratch_path("fifo");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_load_error(path, -EINVAL, "not a regular file");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 2);
	expect_load_error(dir, -EISDIR, "a directory");
	expect_load_error(scratch_path("missing"), -ENOENT, "No such file or directory");

	path = scratch_path("short");
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_eq(write(fd, buf, len - 1), (ssize_t)len - 1);
	close(fd);
	expect_load_error(path, -EINVAL,
	                  "truncated in section 'END ' #0 (4 bytes of payload, 7 left)");
	/* A name that is not printable ASCII is escaped in the message. */
	expect_load_error_named(scratch_path("bad\x01name"), -ENOENT, "bad\\x01name", false);
	scratch_dir_remove();
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("snapshot_file");
	TCase *tc = tcase_create("snapshot_file");

	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, header_errors);
	tcase_add_test(tc, section_errors);
	tcase_add_test(tc, section_limit);
	tcase_add_test(tc, cursor_overrun_and_leftover);
	tcase_add_test(tc, writer_errors);
	tcase_add_test(tc, save_is_atomic);
	tcase_add_test(tc, save_into_missing_directory);
	tcase_add_test(tc, load_refuses_what_is_not_a_state_file);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
