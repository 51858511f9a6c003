/*
 * Snapshot state files: the reader and its cursors (format in snapshot_file.h; the writer is
 * snapshot_file_write.c). The file is hostile: every offset is checked against what is left of
 * the buffer before it is used, one rule at a time, each failure one line naming the rule and
 * the section; tags and paths are quoted with anything but printable ASCII escaped, so the
 * lines are ASCII whatever the file holds.
 */
#include "vmm/snapshot_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "vmm/boot_image.h"
#include "vmm/snapshot_file_internal.h"

/* One section of a parsed file. */
struct snap_entry {
	uint8_t tag[4];
	uint32_t instance;
	uint32_t len; /* payload bytes */
	size_t at;    /* offset of its header */
};

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)snap_le32(p) | (uint64_t)snap_le32(p + 4) << 32;
}

/* Printable ASCII as is, the rest (and ' and \) as \xNN; cut short at 255 characters. */
struct snap_quoted snap_quote(const void *s, size_t n)
{
	const uint8_t *b = s;
	struct snap_quoted q;
	size_t o = 0;

	for (size_t i = 0; i < n && o + 5 <= sizeof(q.s); i++) {
		if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\'' && b[i] != '\\')
			q.s[o++] = (char)b[i];
		else
			o += (size_t)snprintf(q.s + o, 5, "\\x%02x", b[i]);
	}
	q.s[o] = 0;
	return q;
}

/* ---- parsing: one function per rule ---- */

/* "an aarch64 guest" / "x86_64 guests" for @arch, in @out. */
static const char *arch_guests(uint32_t arch, bool plural, char *out, size_t outlen)
{
	const char *name = arch == SNAP_ARCH_X86_64    ? "x86_64"
	                   : arch == SNAP_ARCH_AARCH64 ? "aarch64"
	                                               : NULL;

	if (name)
		snprintf(out, outlen, plural ? "%s guests" : "an %s guest", name);
	else
		snprintf(out, outlen,
		         plural ? "guests of ELF machine %u" : "a guest of ELF machine %u", arch);
	return out;
}

static int check_header(const uint8_t *buf, size_t len, uint32_t expected_arch, char *err,
                        size_t errlen)
{
	uint32_t version, arch;
	char got[48], want[48];

	if (len < SNAP_HEADER_SIZE) {
		snprintf(err, errlen, "truncated: %zu bytes, less than the %d-byte header", len,
		         SNAP_HEADER_SIZE);
		return -EINVAL;
	}
	if (memcmp(buf, SNAP_MAGIC, 8)) {
		snprintf(err, errlen, "not a vmm snapshot state file");
		return -EINVAL;
	}
	version = snap_le32(buf + 8);
	if (version != SNAP_FORMAT_VERSION) {
		snprintf(err, errlen, "written by snapshot format %u; this vmm reads format %d",
		         version, SNAP_FORMAT_VERSION);
		return -EINVAL;
	}
	if (len > SNAP_FILE_MAX) {
		snprintf(err, errlen, "%zu bytes, more than a state file's %d MiB", len,
		         SNAP_FILE_MAX_MIB);
		return -EINVAL;
	}
	arch = snap_le32(buf + 12);
	if (arch != expected_arch) {
		snprintf(err, errlen, "a snapshot of %s; this vmm runs %s",
		         arch_guests(arch, false, got, sizeof(got)),
		         arch_guests(expected_arch, true, want, sizeof(want)));
		return -EINVAL;
	}
	return 0;
}

/* "section 'VCPU' #1" (or "the header" for NULL: no section yet) for messages. */
struct section_name {
	char s[300];
};

static struct section_name section_name(const struct snap_entry *e)
{
	struct section_name n;

	if (e)
		snprintf(n.s, sizeof(n.s), "section '%s' #%u", snap_quote(e->tag, 4).s,
		         e->instance);
	else
		snprintf(n.s, sizeof(n.s), "the header");
	return n;
}

static int add_entry(struct snap_reader *r, unsigned *cap, const struct snap_entry *e)
{
	if (r->nr == *cap) {
		unsigned n = *cap ? *cap * 2 : 16;
		struct snap_entry *grown = realloc(r->index, n * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		r->index = grown;
		*cap = n;
	}
	r->index[r->nr++] = *e;
	return 0;
}

/* The first END section found, @e: it ends the @len-byte file. */
static int check_end(size_t len, const struct snap_entry *e, char *err, size_t errlen)
{
	if (e->instance != 0) {
		snprintf(err, errlen, "the END section has instance %u, not 0", e->instance);
		return -EINVAL;
	}
	if (e->len != 4) {
		snprintf(err, errlen, "the END section holds %u bytes, not 4", e->len);
		return -EINVAL;
	}
	if (len - e->at > SNAP_END_SECTION_SIZE) {
		snprintf(err, errlen, "%zu bytes of data after the END section",
		         len - e->at - SNAP_END_SECTION_SIZE);
		return -EINVAL;
	}
	return 0;
}

/*
 * Walks the sections from the header to END, indexing them (END not included) and setting
 * *@end_at to END's offset. Checks that each lies inside the @len bytes, their number, and
 * END. @declared is the header's length, for the message of a file cut short.
 */
static int walk(struct snap_reader *r, const uint8_t *buf, size_t len, uint64_t declared,
                size_t *end_at, char *err, size_t errlen)
{
	const struct snap_entry *prev = NULL;
	unsigned cap = 0, count = 0;
	size_t at = SNAP_HEADER_SIZE;
	struct snap_entry e;

	for (;; at += SNAP_SECTION_HEADER + snap_padded(e.len), count++) {
		size_t left = len - at;

		if (left == 0) {
			snprintf(err, errlen, "%s after %s (no END section)",
			         declared > len - SNAP_HEADER_SIZE ? "truncated" : "the file ends",
			         section_name(prev).s);
			return -EINVAL;
		}
		if (left < SNAP_SECTION_HEADER) {
			snprintf(err, errlen, "truncated after %s (%zu bytes of a section header)",
			         section_name(prev).s, left);
			return -EINVAL;
		}
		if (count == SNAP_MAX_SECTIONS) {
			snprintf(err, errlen, "more than %d sections", SNAP_MAX_SECTIONS);
			return -EINVAL;
		}
		memcpy(e.tag, buf + at, 4);
		e.instance = snap_le32(buf + at + 4);
		e.len = snap_le32(buf + at + 8);
		e.at = at;
		if (snap_padded(e.len) > left - SNAP_SECTION_HEADER) {
			snprintf(err, errlen, "truncated in %s (%u bytes of payload, %zu left)",
			         section_name(&e).s, e.len, left - SNAP_SECTION_HEADER);
			return -EINVAL;
		}
		if (!memcmp(e.tag, SNAP_END_TAG, 4)) {
			*end_at = at;
			return check_end(len, &e, err, errlen);
		}
		if (add_entry(r, &cap, &e)) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		prev = &r->index[r->nr - 1];
	}
}

/* The section at @e (END included) has a printable tag, and zero reserved word and padding. */
static int check_fields(const uint8_t *buf, const struct snap_entry *e, char *err, size_t errlen)
{
	const uint8_t *pad = buf + e->at + SNAP_SECTION_HEADER + e->len;
	uint32_t reserved = snap_le32(buf + e->at + 12);

	if (!snap_tag_valid(e->tag)) {
		snprintf(err, errlen, "%s: the tag is not printable ASCII", section_name(e).s);
		return -EINVAL;
	}
	if (reserved) {
		snprintf(err, errlen, "%s: reserved field is 0x%x, not 0", section_name(e).s,
		         reserved);
		return -EINVAL;
	}
	for (size_t i = 0; i < snap_padded(e->len) - e->len; i++) {
		if (pad[i]) {
			snprintf(err, errlen, "%s: non-zero padding after the payload",
			         section_name(e).s);
			return -EINVAL;
		}
	}
	return 0;
}

static int compare_entries(const void *a, const void *b)
{
	const struct snap_entry *x = a, *y = b;
	int c = memcmp(x->tag, y->tag, 4);

	if (c)
		return c;
	return x->instance < y->instance ? -1 : x->instance > y->instance;
}

/* Sorts the index by (tag, instance) and refuses a pair that appears twice. */
static int check_duplicates(struct snap_reader *r, char *err, size_t errlen)
{
	if (r->nr > 1)
		qsort(r->index, r->nr, sizeof(*r->index), compare_entries);
	for (unsigned i = 1; i < r->nr; i++) {
		if (!compare_entries(&r->index[i - 1], &r->index[i])) {
			snprintf(err, errlen, "%s appears twice", section_name(&r->index[i]).s);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse(struct snap_reader *r, const uint8_t *buf, size_t len, uint32_t expected_arch,
                 char *err, size_t errlen)
{
	size_t end_at = 0;
	uint64_t declared;
	struct snap_entry end;
	int ret = check_header(buf, len, expected_arch, err, errlen);

	if (ret)
		return ret;
	declared = get_le64(buf + 16);
	ret = walk(r, buf, len, declared, &end_at, err, errlen);
	if (ret)
		return ret;
	if (declared != len - SNAP_HEADER_SIZE) {
		snprintf(err, errlen,
		         "length mismatch: the header says %llu bytes follow it, not %zu",
		         (unsigned long long)declared, len - SNAP_HEADER_SIZE);
		return -EINVAL;
	}
	if (snap_le32(buf + end_at + SNAP_SECTION_HEADER) !=
	    crc32(crc32(0, Z_NULL, 0), buf, (uInt)end_at)) {
		snprintf(err, errlen, "checksum mismatch: the file is corrupt");
		return -EINVAL;
	}
	end = (struct snap_entry){.len = 4, .at = end_at};
	memcpy(end.tag, SNAP_END_TAG, 4);
	if ((ret = check_fields(buf, &end, err, errlen)))
		return ret;
	for (unsigned i = 0; i < r->nr; i++)
		if ((ret = check_fields(buf, &r->index[i], err, errlen)))
			return ret;
	return check_duplicates(r, err, errlen);
}

int snap_reader_parse(struct snap_reader *r, const uint8_t *buf, size_t len, uint32_t expected_arch,
                      char *err, size_t errlen)
{
	int ret;

	*r = (struct snap_reader){.data = buf, .len = len, .arch = expected_arch};
	ret = parse(r, buf, len, expected_arch, err, errlen);
	if (ret)
		snap_reader_free(r);
	return ret;
}

static const char *read_error(int ret)
{
	switch (ret) {
	case -EISDIR:
		return "a directory, not a state file";
	case -EINVAL:
		return "not a regular file";
	case -EFBIG:
		return "larger than a state file's " STR(SNAP_FILE_MAX_MIB) " MiB";
	case -EIO:
		return "read failed (or the file shrank while it was read)";
	default:
		return strerror(-ret);
	}
}

int snap_reader_load(struct snap_reader *r, const char *path, uint32_t expected_arch, char *err,
                     size_t errlen)
{
	struct snap_quoted name = snap_quote(path, strlen(path));
	uint8_t *buf;
	size_t len;
	char why[300];
	int ret = boot_image_read_file(path, SNAP_FILE_MAX, &buf, &len);

	*r = (struct snap_reader){0};
	if (ret) {
		snprintf(err, errlen, "state file '%s': %s", name.s, read_error(ret));
		return ret;
	}
	ret = snap_reader_parse(r, buf, len, expected_arch, why, sizeof(why));
	if (ret) {
		free(buf);
		snprintf(err, errlen, "state file '%s': %s", name.s, why);
		return ret;
	}
	r->owned = buf;
	return 0;
}

void snap_reader_free(struct snap_reader *r)
{
	free(r->index);
	free(r->owned);
	*r = (struct snap_reader){0};
}

/* ---- sections and cursors ---- */

static void cursor_at(const struct snap_reader *r, const struct snap_entry *e,
                      struct snap_cursor *c)
{
	*c = (struct snap_cursor){
	        .p = r->data + e->at + SNAP_SECTION_HEADER, .len = e->len, .instance = e->instance};
	memcpy(c->tag, e->tag, 4);
}

int snap_section(const struct snap_reader *r, const char *tag, uint32_t instance,
                 struct snap_cursor *c)
{
	static const uint8_t empty[1];
	struct snap_entry key = {.instance = instance};
	const struct snap_entry *e;

	snap_check_tag(tag);
	memcpy(key.tag, tag, 4);
	e = r->nr ? bsearch(&key, r->index, r->nr, sizeof(key), compare_entries) : NULL;
	if (!e) {
		*c = (struct snap_cursor){.p = empty, .instance = instance};
		memcpy(c->tag, tag, 4);
		return -ENOENT;
	}
	cursor_at(r, e, c);
	return 0;
}

/* The first index entry with @tag (NULL: the first entry), or r->nr. */
static size_t first_with(const struct snap_reader *r, const char *tag)
{
	size_t lo = 0, hi = r->nr;

	while (tag && lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(r->index[mid].tag, tag, 4) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

unsigned snap_count(const struct snap_reader *r, const char *tag)
{
	unsigned n = 0;

	if (tag)
		snap_check_tag(tag);
	for (size_t i = first_with(r, tag); i < r->nr; i++, n++)
		if (tag && memcmp(r->index[i].tag, tag, 4))
			break;
	return n;
}

bool snap_next(const struct snap_reader *r, const char *tag, size_t *iter, struct snap_cursor *c)
{
	size_t i;

	if (tag)
		snap_check_tag(tag);
	i = *iter ? *iter - 1 : first_with(r, tag);
	if (i >= r->nr || (tag && memcmp(r->index[i].tag, tag, 4)))
		return false;
	cursor_at(r, &r->index[i], c);
	*iter = i + 2; /* the next entry, plus one: 0 means "start" */
	return true;
}

/* The next @n bytes of the payload, or NULL (and overrun from now on) when fewer are left. */
static const uint8_t *take(struct snap_cursor *c, size_t n)
{
	const uint8_t *p;

	if (c->overrun || n > (size_t)(c->len - c->pos)) {
		c->overrun = true;
		c->pos = c->len;
		return NULL;
	}
	p = c->p + c->pos;
	c->pos += (uint32_t)n;
	return p;
}

uint8_t snap_get_u8(struct snap_cursor *c)
{
	const uint8_t *p = take(c, 1);

	return p ? *p : 0;
}

uint16_t snap_get_u16(struct snap_cursor *c)
{
	const uint8_t *p = take(c, 2);

	return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t snap_get_u32(struct snap_cursor *c)
{
	const uint8_t *p = take(c, 4);

	return p ? snap_le32(p) : 0;
}

uint64_t snap_get_u64(struct snap_cursor *c)
{
	const uint8_t *p = take(c, 8);

	return p ? get_le64(p) : 0;
}

void snap_get_bytes(struct snap_cursor *c, void *p, size_t n)
{
	const uint8_t *src = take(c, n);

	if (!n)
		return;
	if (src)
		memcpy(p, src, n);
	else
		memset(p, 0, n);
}

size_t snap_cursor_left(const struct snap_cursor *c)
{
	return c->len - c->pos;
}

int snap_cursor_finish(const struct snap_cursor *c, char *err, size_t errlen)
{
	struct snap_quoted tag = snap_quote(c->tag, 4);

	if (c->overrun) {
		snprintf(err, errlen, "section '%s' #%u: shorter than expected", tag.s,
		         c->instance);
		return -EINVAL;
	}
	if (c->pos != c->len) {
		snprintf(err, errlen, "section '%s' #%u: %u bytes left over", tag.s, c->instance,
		         c->len - c->pos);
		return -EINVAL;
	}
	return 0;
}
