/*
 * What snapshot_file.c (the reader and cursors) and snapshot_file_write.c (the writer) share;
 * not for other files.
 */
#ifndef VMM_VMM_SNAPSHOT_FILE_INTERNAL_H
#define VMM_VMM_SNAPSHOT_FILE_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vmm/snapshot_file.h"

#define SNAP_END_SECTION_SIZE (SNAP_SECTION_HEADER + 8) /* header, crc32, 4 bytes of padding */

static inline uint32_t snap_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A payload's length with its padding. */
static inline size_t snap_padded(uint32_t len)
{
	return ((size_t)len + 7) & ~(size_t)7;
}

/* A tag is 4 bytes of printable ASCII ("PIC "). */
static inline bool snap_tag_valid(const void *tag)
{
	const uint8_t *b = tag;

	for (int i = 0; i < 4; i++)
		if (b[i] < 0x20 || b[i] >= 0x7f)
			return false;
	return true;
}

/* A tag from the caller: a programming error if it is not 4 printable characters. */
static inline void snap_check_tag(const char *tag)
{
	assert(tag && strnlen(tag, 5) == 4 && snap_tag_valid(tag));
	(void)tag;
}

/* @n bytes of @s (a tag, a path) for a message: printable ASCII, the rest as \xNN. */
struct snap_quoted {
	char s[256];
};

struct snap_quoted snap_quote(const void *s, size_t n);

#endif
