#include "arch/x86_64/aml.h"

#include <string.h>

#define AML_ZERO_OP          0x00
#define AML_ONE_OP           0x01
#define AML_NAME_OP          0x08
#define AML_BYTE_PREFIX      0x0a
#define AML_WORD_PREFIX      0x0b
#define AML_DWORD_PREFIX     0x0c
#define AML_STRING_PREFIX    0x0d
#define AML_QWORD_PREFIX     0x0e
#define AML_SCOPE_OP         0x10
#define AML_BUFFER_OP        0x11
#define AML_PACKAGE_OP       0x12
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX    0x5b
#define AML_DEVICE_OP        0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR        '\\'

#define PKGLEN_RESERVED 4 /* the longest PkgLength, shrunk when the block ends */
#define BUFSIZE_BYTES   5 /* DWordPrefix + 4 bytes: the resource template's size */

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	*a = (struct aml){.buf = buf, .cap = cap};
}

bool aml_ok(const struct aml *a)
{
	return !a->overflow && a->depth == 0;
}

void aml_bytes(struct aml *a, const void *data, size_t len)
{
	if (a->overflow || len > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, data, len);
	a->len += len;
}

static void byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void le(struct aml *a, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		byte(a, (uint8_t)(v >> (8 * i)));
}

static void name_seg(struct aml *a, const char *seg, size_t n)
{
	char s[4] = {'_', '_', '_', '_'};

	memcpy(s, seg, n > 4 ? 4 : n);
	aml_bytes(a, s, 4);
}

void aml_name_string(struct aml *a, const char *path)
{
	const char *p = path;
	unsigned segs = 1;

	while (*p == AML_ROOT_CHAR || *p == '^')
		byte(a, (uint8_t)*p++);
	for (const char *q = p; *q; q++)
		segs += *q == '.';
	if (!*p) {
		byte(a, AML_ZERO_OP); /* NullName */
		return;
	}
	if (segs == 2)
		byte(a, AML_DUAL_NAME_PREFIX);
	else if (segs > 2) {
		byte(a, AML_MULTI_NAME_PREFIX);
		byte(a, (uint8_t)segs);
	}
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);

		name_seg(a, p, n);
		p += n + (dot != NULL);
	}
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0)
		byte(a, AML_ZERO_OP);
	else if (v == 1)
		byte(a, AML_ONE_OP);
	else if (v <= 0xff) {
		byte(a, AML_BYTE_PREFIX);
		le(a, v, 1);
	} else if (v <= 0xffff) {
		byte(a, AML_WORD_PREFIX);
		le(a, v, 2);
	} else if (v <= 0xffffffff) {
		byte(a, AML_DWORD_PREFIX);
		le(a, v, 4);
	} else {
		byte(a, AML_QWORD_PREFIX);
		le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

uint32_t aml_eisaid_value(const char *id)
{
	uint16_t vendor = (uint16_t)(((id[0] - 0x40) & 0x1f) << 10 | ((id[1] - 0x40) & 0x1f) << 5 |
	                             ((id[2] - 0x40) & 0x1f));
	uint32_t product = 0;

	for (int i = 3; i < 7; i++) {
		char c = id[i];
		product = product << 4 | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	/* Stored big-endian: vendor bytes, then product bytes. */
	return (uint32_t)(vendor >> 8) | (uint32_t)(vendor & 0xff) << 8 | (product >> 8) << 16 |
	       (product & 0xff) << 24;
}

void aml_eisaid(struct aml *a, const char *id)
{
	byte(a, AML_DWORD_PREFIX);
	le(a, aml_eisaid_value(id), 4);
}

void aml_name(struct aml *a, const char *path)
{
	byte(a, AML_NAME_OP);
	aml_name_string(a, path);
}

static void open_block(struct aml *a)
{
	static const uint8_t reserved[PKGLEN_RESERVED];

	if (a->depth == AML_MAX_DEPTH) {
		a->overflow = true;
		return;
	}
	a->open[a->depth++] = a->len;
	aml_bytes(a, reserved, sizeof(reserved));
}

void aml_scope(struct aml *a, const char *path)
{
	byte(a, AML_SCOPE_OP);
	open_block(a);
	aml_name_string(a, path);
}

void aml_device(struct aml *a, const char *path)
{
	byte(a, AML_EXT_OP_PREFIX);
	byte(a, AML_DEVICE_OP);
	open_block(a);
	aml_name_string(a, path);
}

void aml_package(struct aml *a, unsigned count)
{
	byte(a, AML_PACKAGE_OP);
	open_block(a);
	byte(a, (uint8_t)count);
}

void aml_resource_template(struct aml *a)
{
	static const uint8_t size[BUFSIZE_BYTES] = {AML_DWORD_PREFIX};

	byte(a, AML_BUFFER_OP);
	open_block(a);
	aml_bytes(a, size, sizeof(size));
}

void aml_end(struct aml *a)
{
	size_t start, body, total;
	unsigned n;

	if (a->overflow || a->depth == 0) {
		a->overflow = true;
		return;
	}
	start = a->open[--a->depth];
	/* A resource template (BufferOp) ends with the end tag and knows its byte count. */
	if (start > 0 && a->buf[start - 1] == AML_BUFFER_OP) {
		static const uint8_t end_tag[2] = {0x79, 0x00};
		uint32_t count;

		aml_bytes(a, end_tag, sizeof(end_tag));
		if (a->overflow)
			return;
		count = (uint32_t)(a->len - (start + PKGLEN_RESERVED + BUFSIZE_BYTES));
		for (unsigned i = 0; i < 4; i++)
			a->buf[start + PKGLEN_RESERVED + 1 + i] = (uint8_t)(count >> (8 * i));
	}
	body = a->len - (start + PKGLEN_RESERVED);
	/* PkgLength counts its own bytes: 1 byte up to 63, else 2-4 bytes of 4+8n bits. */
	if (body + 1 <= 0x3f)
		n = 1;
	else if (body + 2 <= 0xfff)
		n = 2;
	else if (body + 3 <= 0xfffff)
		n = 3;
	else
		n = 4;
	total = body + n;
	if (n == 1) {
		a->buf[start] = (uint8_t)total;
	} else {
		a->buf[start] = (uint8_t)((n - 1) << 6 | (total & 0xf));
		for (unsigned i = 1; i < n; i++)
			a->buf[start + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	memmove(a->buf + start + n, a->buf + start + PKGLEN_RESERVED, body);
	a->len -= PKGLEN_RESERVED - n;
}

void aml_io(struct aml *a, uint16_t base, uint8_t len)
{
	const uint8_t d[8] = {0x47, 0x01, (uint8_t)base, (uint8_t)(base >> 8), (uint8_t)base,
	                      (uint8_t)(base >> 8), 0x01, len};

	aml_bytes(a, d, sizeof(d));
}

void aml_irq_noflags(struct aml *a, unsigned irq)
{
	uint16_t mask = (uint16_t)(1u << (irq & 15));
	const uint8_t d[3] = {0x22, (uint8_t)mask, (uint8_t)(mask >> 8)};

	aml_bytes(a, d, sizeof(d));
}

void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t len)
{
	byte(a, 0x86);
	le(a, 9, 2);
	byte(a, 0x01); /* read-write */
	le(a, base, 4);
	le(a, len, 4);
}

void aml_interrupt(struct aml *a, uint32_t gsi, bool edge, bool active_low)
{
	byte(a, 0x89);
	le(a, 6, 2);
	byte(a, (uint8_t)(0x01 | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0))); /* consumer */
	byte(a, 1);
	le(a, gsi, 4);
}

/* Address space descriptors: type, general flags (producer, min and max fixed), type flags. */
static void address_head(struct aml *a, uint8_t tag, uint16_t len, uint8_t type,
                         uint8_t type_flags)
{
	byte(a, tag);
	le(a, len, 2);
	byte(a, type);
	byte(a, 0x0c);
	byte(a, type_flags);
}

void aml_word_bus_number(struct aml *a, uint16_t min, uint16_t max)
{
	address_head(a, 0x88, 13, 2, 0);
	le(a, 0, 2); /* granularity */
	le(a, min, 2);
	le(a, max, 2);
	le(a, 0, 2); /* translation */
	le(a, (uint32_t)(max - min + 1), 2);
}

void aml_dword_memory(struct aml *a, uint32_t min, uint32_t len)
{
	address_head(a, 0x87, 23, 0, 0x01); /* read-write, non-cacheable */
	le(a, 0, 4);
	le(a, min, 4);
	le(a, min + len - 1, 4);
	le(a, 0, 4);
	le(a, len, 4);
}

void aml_qword_memory(struct aml *a, uint64_t min, uint64_t len)
{
	address_head(a, 0x8a, 43, 0, 0x01);
	le(a, 0, 8);
	le(a, min, 8);
	le(a, min + len - 1, 8);
	le(a, 0, 8);
	le(a, len, 8);
}
