/*
 * libFuzzer target: vmm/snapshot_file.c's reader, the input being a whole state file parsed
 * for an x86_64 guest. A file that parses is then read as a loader would: every section, found
 * both by iteration and by snap_section(), through a cursor taking u8/u16/u32/u64/bytes in a
 * pattern set by the section's first byte (so some reads run past the payload), then
 * snap_cursor_finish(). Checks that an error is one line of printable ASCII, that finish agrees
 * with what was read, that an overrun reads zeros, and that a parsed file's sections,
 * written again by the writer, parse to the same sections. An input ending in an END section is
 * also parsed with its checksum corrected, so that mutations reach the rules past it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"
#include "vmm/snapshot_file.h"

#define ARCH SNAP_ARCH_X86_64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void check_message(const char *err)
{
	if (!err[0])
		abort();
	for (const char *c = err; *c; c++)
		if (*c < 0x20 || *c >= 0x7f)
			abort();
}

/* Reads @c as the pattern in its first byte says; aborts if finish disagrees with the reads. */
static void read_section(struct snap_cursor *c)
{
	uint8_t pattern = snap_get_u8(c), buf[64];
	uint32_t expect_pos = c->len ? 1 : 0;
	bool overrun = c->len == 0;
	char err[256] = "";

	for (unsigned i = 0; i < 64 && !overrun; i++) {
		unsigned op = (pattern >> (i % 4 * 2)) & 3, n = 1u << op;
		uint64_t v = 0;

		if (i % 5 == 4) /* bytes: a length from the pattern, sometimes past the end */
			n = (unsigned)(pattern + i) % sizeof(buf);
		overrun = n > snap_cursor_left(c);
		memset(buf, 0xa5, sizeof(buf));
		if (i % 5 == 4)
			snap_get_bytes(c, buf, n);
		else if (op == 0)
			v = snap_get_u8(c);
		else if (op == 1)
			v = snap_get_u16(c);
		else if (op == 2)
			v = snap_get_u32(c);
		else
			v = snap_get_u64(c);
		if (overrun && v)
			abort(); /* an overrun reads zeros */
		for (unsigned j = 0; overrun && i % 5 == 4 && j < n; j++)
			if (buf[j])
				abort();
		expect_pos += overrun ? 0 : n;
	}
	if (!overrun && c->pos != expect_pos)
		abort();
	if (snap_cursor_finish(c, err, sizeof(err)) != (overrun || c->pos != c->len ? -EINVAL : 0))
		abort();
	if (err[0])
		check_message(err);
}

/* Writes @r's sections again and checks the result parses to the same sections. */
static void rewrite(const struct snap_reader *r)
{
	struct snap_writer w;
	struct snap_reader again;
	struct snap_cursor c, d;
	const uint8_t *data;
	uint8_t buf[256];
	char err[256];
	size_t len, it = 0;

	snap_writer_init(&w, ARCH);
	while (snap_next(r, NULL, &it, &c)) {
		snap_begin(&w, c.tag, c.instance);
		while (snap_cursor_left(&c)) {
			size_t n = MIN(snap_cursor_left(&c), sizeof(buf));

			snap_get_bytes(&c, buf, n);
			snap_put_bytes(&w, buf, n);
		}
		snap_end(&w);
	}
	if (snap_writer_finish(&w, &data, &len, err, sizeof(err)) ||
	    snap_reader_parse(&again, data, len, ARCH, err, sizeof(err)))
		abort();
	if (snap_count(&again, NULL) != snap_count(r, NULL))
		abort();
	for (it = 0; snap_next(r, NULL, &it, &c);) {
		if (snap_section(&again, c.tag, c.instance, &d) || c.len != d.len ||
		    (c.len && memcmp(c.p, d.p, c.len)))
			abort();
	}
	snap_reader_free(&again);
	snap_writer_free(&w);
}

static void parse_and_read(const uint8_t *data, size_t size)
{
	struct snap_reader r;
	struct snap_cursor c, found;
	char err[256] = "";
	size_t it = 0;
	unsigned n = 0;

	if (snap_reader_parse(&r, data, size, ARCH, err, sizeof(err))) {
		check_message(err);
		if (r.index || r.nr)
			abort();
		return;
	}
	while (snap_next(&r, NULL, &it, &c)) {
		if (strlen(c.tag) != 4 || snap_section(&r, c.tag, c.instance, &found) ||
		    found.p != c.p || found.len != c.len)
			abort();
		read_section(&c);
		n++;
	}
	if (n != snap_count(&r, NULL) || n >= SNAP_MAX_SECTIONS)
		abort();
	rewrite(&r);
	snap_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;

	parse_and_read(data, size);
	/*
	 * Almost every mutation fails the checksum: when the input ends in an END section, parse
	 * it again with the checksum made right, so the rules after it and the cursors are fuzzed.
	 */
	if (size < SNAP_HEADER_SIZE + 24 || memcmp(data + size - 24, SNAP_END_TAG, 4))
		return 0;
	fixed = malloc(size);
	if (!fixed)
		abort();
	memcpy(fixed, data, size);
	put_le32(fixed + size - 8, (uint32_t)crc32(crc32(0, Z_NULL, 0), fixed, (uInt)(size - 24)));
	parse_and_read(fixed, size);
	free(fixed);
	return 0;
}
