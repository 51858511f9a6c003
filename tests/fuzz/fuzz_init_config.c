/*
 * libFuzzer target: the test-run init's config parsers (guest-firmware/init/config.c), which
 * read what vmm --run writes into the initramfs. The input: a selector byte (modulo 6: modules,
 * mounts, cwd, cmd, term, the --save-ready records), then the file's bytes, in an exactly sized
 * buffer so ASan sees any read past it. Parsed results must point into the buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "guest-firmware/init/config.h"
#include "tests/fuzz/fuzz.h"

#define MAX_ENTRIES 16

static bool inside(const char *p, const char *buf, size_t len)
{
	return p >= buf && p < buf + len;
}

static void modules(char *buf, size_t len)
{
	const char *paths[MAX_ENTRIES];
	unsigned count = 0;
	char err[256];

	if (init_parse_modules(buf, len, paths, MAX_ENTRIES, &count, err, sizeof(err)))
		return;
	if (count > MAX_ENTRIES)
		abort();
	for (unsigned i = 0; i < count; i++) {
		if (!inside(paths[i], buf, len) || !memchr(paths[i], '\0', buf + len - paths[i]))
			abort();
		(void)init_module_flags(paths[i]);
	}
}

static void mounts(const char *buf, size_t len)
{
	struct init_mount m[MAX_ENTRIES];
	unsigned count = 0;
	char err[256];

	if (init_parse_mounts(buf, len, m, MAX_ENTRIES, &count, err, sizeof(err)))
		return;
	if (count > MAX_ENTRIES)
		abort();
	for (unsigned i = 0; i < count; i++)
		if (!inside(m[i].tag, buf, len) || !inside(m[i].dir, buf, len))
			abort();
}

/* The records a --save-ready init reads from its status port: whole, or any beginning. */
static void records(const char *buf, size_t len)
{
	struct init_record rec[INIT_MAX_RECORDS];
	unsigned count = 0;
	char err[256];

	if (init_parse_records(buf, len, rec, &count, err, sizeof(err)))
		return;
	if (count > INIT_MAX_RECORDS)
		abort();
	for (unsigned i = 0; i < count; i++)
		if (rec[i].len && (!inside(rec[i].data, buf, len) ||
		                   !inside(rec[i].data + rec[i].len - 1, buf, len)))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	uint8_t which = fz_u8(&f) % 6;
	const uint8_t *rest;
	char err[256];
	size_t len;
	char *buf;

	rest = fz_rest(&f, &len);
	buf = malloc(len ? len : 1);
	if (!buf)
		abort();
	memcpy(buf, rest, len);
	switch (which) {
	case 0:
		modules(buf, len);
		break;
	case 1:
		mounts(buf, len);
		break;
	case 2:
		(void)init_check_cwd(buf, len, err, sizeof(err));
		break;
	case 3:
		(void)init_check_cmd(buf, len, err, sizeof(err));
		break;
	case 5:
		records(buf, len);
		break;
	default:
		(void)init_check_term(buf, len, err, sizeof(err));
		break;
	}
	free(buf);
	return 0;
}
