#include "arch/x86_64/aml.h"

#include <string.h>

/* Opcodes and prefixes (ACPI 6.5, 20.3). */
#define AML_ZERO_OP           0x00
#define AML_ONE_OP            0x01
#define AML_NAME_OP           0x08
#define AML_BYTE_PREFIX       0x0a
#define AML_WORD_PREFIX       0x0b
#define AML_DWORD_PREFIX      0x0c
#define AML_STRING_PREFIX     0x0d
#define AML_QWORD_PREFIX      0x0e
#define AML_SCOPE_OP          0x10
#define AML_BUFFER_OP         0x11
#define AML_PACKAGE_OP        0x12
#define AML_METHOD_OP         0x14
#define AML_DUAL_NAME_PREFIX  0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX     0x5b
#define AML_DEVICE_OP         0x82 /* after AML_EXT_OP_PREFIX */
#define AML_RETURN_OP         0xa4
#define AML_ROOT_CHAR         '\\'
#define AML_PARENT_CHAR       '^'
#define AML_NULL_NAME         0x00

/* Resource descriptor tags (ACPI 6.5, 6.4). */
#define RES_IRQ_NOFLAGS  0x22 /* small item 0x4, 2 bytes */
#define RES_IO           0x47 /* small item 0x8, 7 bytes */
#define RES_END_TAG      0x79 /* small item 0xf, 1 byte */
#define RES_MEMORY32_FIX 0x86
#define RES_DWORD_SPACE  0x87
#define RES_WORD_SPACE   0x88
#define RES_EXT_IRQ      0x89
#define RES_QWORD_SPACE  0x8a

#define RES_SPACE_MEMORY   0
#define RES_SPACE_BUS      2
#define RES_PRODUCER_FIXED 0x0c /* producer, positive decode, min and max fixed */
#define RES_MEM_RW         0x01 /* read-write, non-cacheable */

#define PKGLEN_MAX   4 /* bytes reserved for a PkgLength, shrunk when the block ends */
#define INTEGER_MAX  9 /* QWordPrefix and 8 bytes: reserved for a buffer's size */
#define PKGLEN_LIMIT 0x0fffffff

enum { BLOCK_TERM, BLOCK_BUFFER, BLOCK_RESOURCES };

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	*a = (struct aml){.buf = buf, .cap = cap};
}

bool aml_ok(const struct aml *a)
{
	return !a->error && a->depth == 0;
}

void aml_bytes(struct aml *a, const void *data, size_t len)
{
	if (a->error || len > a->cap - a->len) {
		a->error = true;
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

unsigned aml_pkglength(size_t body, uint8_t out[4])
{
	size_t total;
	unsigned n;

	/* One byte holds 6 bits; each further byte adds 8 to the 4 low bits of the first. */
	if (body + 1 <= 0x3f)
		n = 1;
	else if (body + 2 <= 0xfff)
		n = 2;
	else if (body + 3 <= 0xfffff)
		n = 3;
	else if (body <= PKGLEN_LIMIT - 4)
		n = 4;
	else
		return 0;
	total = body + n;
	if (n == 1) {
		out[0] = (uint8_t)total;
		return 1;
	}
	out[0] = (uint8_t)((n - 1) << 6 | (total & 0xf));
	for (unsigned i = 1; i < n; i++)
		out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	return n;
}

static bool lead_char(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool name_char(char c)
{
	return lead_char(c) || (c >= '0' && c <= '9');
}

/* Writes one NameSeg from @p; returns the characters consumed, or 0 for a bad segment. */
static size_t name_seg(struct aml *a, const char *p)
{
	char seg[4] = {'_', '_', '_', '_'};
	size_t n = 0;

	while (name_char(p[n]) && n < sizeof(seg)) {
		seg[n] = p[n];
		n++;
	}
	if (n == 0 || !lead_char(p[0]) || (p[n] != '.' && p[n] != '\0'))
		return 0;
	aml_bytes(a, seg, sizeof(seg));
	return n;
}

void aml_name_string(struct aml *a, const char *path)
{
	const char *p = path;
	unsigned segs = 1;

	if (*p == AML_ROOT_CHAR)
		byte(a, (uint8_t)*p++);
	else
		while (*p == AML_PARENT_CHAR)
			byte(a, (uint8_t)*p++);
	if (!*p) {
		byte(a, AML_NULL_NAME);
		return;
	}
	for (const char *q = p; *q; q++)
		segs += *q == '.';
	if (segs > 255) {
		a->error = true;
		return;
	}
	if (segs == 2) {
		byte(a, AML_DUAL_NAME_PREFIX);
	} else if (segs > 2) {
		byte(a, AML_MULTI_NAME_PREFIX);
		byte(a, (uint8_t)segs);
	}
	for (unsigned i = 0; i < segs; i++) {
		size_t n = name_seg(a, p);

		if (n == 0) {
			a->error = true;
			return;
		}
		p += n + (p[n] == '.');
	}
}

static unsigned encode_integer(uint64_t v, uint8_t out[INTEGER_MAX])
{
	unsigned n;

	if (v <= 1) {
		out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	if (v <= 0xff) {
		out[0] = AML_BYTE_PREFIX;
		n = 1;
	} else if (v <= 0xffff) {
		out[0] = AML_WORD_PREFIX;
		n = 2;
	} else if (v <= 0xffffffff) {
		out[0] = AML_DWORD_PREFIX;
		n = 4;
	} else {
		out[0] = AML_QWORD_PREFIX;
		n = 8;
	}
	for (unsigned i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + n;
}

void aml_integer(struct aml *a, uint64_t value)
{
	uint8_t enc[INTEGER_MAX];

	aml_bytes(a, enc, encode_integer(value, enc));
}

void aml_string(struct aml *a, const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p > 0x7f)
			a->error = true;
	byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint32_t aml_eisaid_value(const char *id)
{
	uint32_t vendor = 0, product = 0;

	if (strlen(id) != 7)
		return 0;
	/* Three letters in 5 bits each ('A' is 1), then four hex digits. */
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return 0;
		vendor = vendor << 5 | (uint32_t)(id[i] - 'A' + 1);
	}
	for (int i = 3; i < 7; i++) {
		int d = hex_digit(id[i]);

		if (d < 0)
			return 0;
		product = product << 4 | (uint32_t)d;
	}
	/* Both halves are stored big-endian in a little-endian DWord. */
	return vendor >> 8 | (vendor & 0xff) << 8 | (product >> 8) << 16 | (product & 0xff) << 24;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = aml_eisaid_value(id);

	if (!v)
		a->error = true;
	byte(a, AML_DWORD_PREFIX);
	le(a, v, 4);
}

void aml_name(struct aml *a, const char *path)
{
	byte(a, AML_NAME_OP);
	aml_name_string(a, path);
}

void aml_return(struct aml *a)
{
	byte(a, AML_RETURN_OP);
}

/* Reserves room for the PkgLength (and a buffer's size), filled in by aml_end(). */
static void open_block(struct aml *a, uint8_t kind)
{
	static const uint8_t reserved[PKGLEN_MAX + INTEGER_MAX];
	size_t start = a->len;

	if (a->depth == AML_MAX_DEPTH)
		a->error = true;
	aml_bytes(a, reserved, PKGLEN_MAX + (kind == BLOCK_TERM ? 0 : INTEGER_MAX));
	if (a->error)
		return;
	a->open[a->depth++] = (struct aml_block){.start = start, .kind = kind};
}

void aml_scope(struct aml *a, const char *path)
{
	byte(a, AML_SCOPE_OP);
	open_block(a, BLOCK_TERM);
	aml_name_string(a, path);
}

void aml_device(struct aml *a, const char *path)
{
	byte(a, AML_EXT_OP_PREFIX);
	byte(a, AML_DEVICE_OP);
	open_block(a, BLOCK_TERM);
	aml_name_string(a, path);
}

void aml_method(struct aml *a, const char *path, unsigned nargs)
{
	if (nargs > 7)
		a->error = true;
	byte(a, AML_METHOD_OP);
	open_block(a, BLOCK_TERM);
	aml_name_string(a, path);
	byte(a, (uint8_t)(nargs & 7)); /* not serialized, sync level 0 */
}

void aml_package(struct aml *a, unsigned count)
{
	if (count > 255)
		a->error = true;
	byte(a, AML_PACKAGE_OP);
	open_block(a, BLOCK_TERM);
	byte(a, (uint8_t)count);
}

void aml_buffer(struct aml *a)
{
	byte(a, AML_BUFFER_OP);
	open_block(a, BLOCK_BUFFER);
}

void aml_resource_template(struct aml *a)
{
	byte(a, AML_BUFFER_OP);
	open_block(a, BLOCK_RESOURCES);
}

void aml_end(struct aml *a)
{
	static const uint8_t end_tag[2] = {RES_END_TAG, 0}; /* checksum 0: "not computed" */
	uint8_t head[PKGLEN_MAX + INTEGER_MAX];
	struct aml_block b;
	size_t data, data_len;
	unsigned pl, n = 0;

	if (a->depth == 0)
		a->error = true;
	if (a->error)
		return;
	b = a->open[--a->depth];
	if (b.kind == BLOCK_RESOURCES)
		aml_bytes(a, end_tag, sizeof(end_tag));
	if (a->error)
		return;
	data = b.start + PKGLEN_MAX + (b.kind == BLOCK_TERM ? 0 : INTEGER_MAX);
	data_len = a->len - data;
	/* A buffer's contents start with its byte count, then come the bytes. */
	if (b.kind != BLOCK_TERM)
		n = encode_integer(data_len, head + PKGLEN_MAX);
	pl = aml_pkglength(n + data_len, head);
	if (pl == 0) {
		a->error = true;
		return;
	}
	memmove(head + pl, head + PKGLEN_MAX, n);
	/* Shrinking the reservation moves the contents down; this only ever shortens. */
	memcpy(a->buf + b.start, head, pl + n);
	memmove(a->buf + b.start + pl + n, a->buf + data, data_len);
	a->len = b.start + pl + n + data_len;
}

static bool in_resource_template(struct aml *a)
{
	if (a->depth == 0 || a->open[a->depth - 1].kind != BLOCK_RESOURCES)
		a->error = true;
	return !a->error;
}

void aml_io(struct aml *a, uint16_t base, uint8_t len)
{
	if (!in_resource_template(a))
		return;
	byte(a, RES_IO);
	byte(a, 0x01); /* 16-bit decode */
	le(a, base, 2);
	le(a, base, 2);
	byte(a, 1); /* alignment */
	byte(a, len);
}

void aml_irq_noflags(struct aml *a, unsigned irq)
{
	if (irq > 15)
		a->error = true;
	if (!in_resource_template(a))
		return;
	byte(a, RES_IRQ_NOFLAGS);
	le(a, 1u << irq, 2);
}

void aml_memory32_fixed(struct aml *a, uint32_t base, uint32_t len)
{
	if (!in_resource_template(a))
		return;
	byte(a, RES_MEMORY32_FIX);
	le(a, 9, 2);
	byte(a, 0x01); /* read-write */
	le(a, base, 4);
	le(a, len, 4);
}

void aml_interrupt(struct aml *a, uint32_t gsi, bool edge, bool active_low)
{
	if (!in_resource_template(a))
		return;
	byte(a, RES_EXT_IRQ);
	le(a, 6, 2);
	/* Bit 0 consumer, bit 1 edge, bit 2 active-low; bit 3 (shared) and bit 4 (wake) clear. */
	byte(a, (uint8_t)(0x01 | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0)));
	byte(a, 1); /* one interrupt */
	le(a, gsi, 4);
}

/* Word, DWord and QWord address space descriptors: @width bytes per field. */
static void address_space(struct aml *a, uint8_t tag, unsigned width, uint8_t type,
                          uint8_t type_flags, uint64_t min, uint64_t len)
{
	uint64_t limit = width == 8 ? UINT64_MAX : (1ull << (8 * width)) - 1;

	if (len == 0 || len > limit || min > limit || len - 1 > limit - min)
		a->error = true;
	if (!in_resource_template(a))
		return;
	byte(a, tag);
	le(a, 3 + 5 * width, 2);
	byte(a, type);
	byte(a, RES_PRODUCER_FIXED);
	byte(a, type_flags);
	le(a, 0, width); /* granularity */
	le(a, min, width);
	le(a, min + len - 1, width);
	le(a, 0, width); /* translation offset */
	le(a, len, width);
}

void aml_word_bus_number(struct aml *a, uint16_t min, uint32_t len)
{
	address_space(a, RES_WORD_SPACE, 2, RES_SPACE_BUS, 0, min, len);
}

void aml_dword_memory(struct aml *a, uint32_t min, uint32_t len)
{
	address_space(a, RES_DWORD_SPACE, 4, RES_SPACE_MEMORY, RES_MEM_RW, min, len);
}

void aml_qword_memory(struct aml *a, uint64_t min, uint64_t len)
{
	address_space(a, RES_QWORD_SPACE, 8, RES_SPACE_MEMORY, RES_MEM_RW, min, len);
}
