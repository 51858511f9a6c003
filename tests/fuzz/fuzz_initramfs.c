/*
 * libFuzzer target: the newc cpio writer vmm builds --run's initramfs with (vmm/initramfs.c),
 * whose names come from host paths and which reads back its own archive to find parents. The
 * input, split at NUL bytes, is up to 32 entries: the first byte of each is the kind (modulo 4:
 * directory, file, file with parents, character device), the next two its mode (le16), the
 * rest its name (file contents: the name again). A finished archive must be whole newc records
 * ("070701" headers, 4-byte aligned) ending in TRAILER!!!, a multiple of 512 bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/initramfs.h"

#define MAX_ENTRIES 32
#define HDR_LEN     110

static uint32_t hex8(const uint8_t *p)
{
	char s[9];

	memcpy(s, p, 8);
	s[8] = '\0';
	return (uint32_t)strtoul(s, NULL, 16);
}

/* Walks the archive's records; aborts on one that does not fit or is malformed. */
static void check(const struct cpio *c)
{
	size_t at = 0;

	if (c->len % 512)
		abort();
	for (;;) {
		uint32_t namesize, filesize;
		size_t end;

		if (c->len - at < HDR_LEN || memcmp(c->buf + at, "070701", 6))
			abort();
		filesize = hex8(c->buf + at + 54);
		namesize = hex8(c->buf + at + 94);
		end = at + HDR_LEN + namesize;
		if (namesize == 0 || end > c->len || c->buf[end - 1] != '\0')
			abort();
		if (namesize == 11 && !memcmp(c->buf + at + HDR_LEN, "TRAILER!!!", 11))
			return;
		end = ALIGN_UP(end, 4) + filesize;
		if (end > c->len)
			abort();
		at = ALIGN_UP(end, 4);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	struct cpio c;
	unsigned n = 0;

	if (!copy)
		abort();
	memcpy(copy, data, size);
	copy[size] = '\0';
	cpio_init(&c);
	for (char *p = copy; p < copy + size && n < MAX_ENTRIES; p += strlen(p) + 1, n++) {
		size_t len = strlen(p);
		unsigned mode = len >= 3 ? ((uint8_t)p[1] | (uint8_t)p[2] << 8) : 0644;
		const char *name = len >= 3 ? p + 3 : "";

		switch (len ? (uint8_t)p[0] % 4 : 0) {
		case 0:
			cpio_add_dir(&c, name, mode);
			break;
		case 1:
			cpio_add_file(&c, name, mode, name, strlen(name));
			break;
		case 2:
			cpio_add_file_with_parents(&c, name, mode, name, strlen(name));
			break;
		default:
			cpio_add_chardev(&c, name, mode, mode >> 4, mode & 0xf);
			break;
		}
	}
	if (cpio_finish(&c) == 0)
		check(&c);
	cpio_free(&c);
	free(copy);
	return 0;
}
