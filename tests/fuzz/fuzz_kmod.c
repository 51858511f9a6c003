/*
 * libFuzzer target: vmm/kmod.c's parsers. The input: a selector byte; bit 0 clear: the whole
 * rest is a kernel image for kmod_kernel_release; set: le16 modules.dep length, le16
 * modules.builtin length (0xffff: no such file), those two files' bytes, then up to 8 module
 * names separated by newlines for kmod_resolve over a private directory holding the two files
 * (rewritten for every input; removed at exit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/kmod.h"
#include "vmm/log.h"

#define MAX_NAMES 8

static char dir[64], dep_path[96], builtin_path[96];

static void cleanup(void)
{
	unlink(dep_path);
	unlink(builtin_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	snprintf(dir, sizeof(dir), "%s/vmm-fuzz-kmod-XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir))
		abort();
	snprintf(dep_path, sizeof(dep_path), "%s/modules.dep", dir);
	snprintf(builtin_path, sizeof(builtin_path), "%s/modules.builtin", dir);
	atexit(cleanup);
	return 0;
}

static void put_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *f = fopen(path, "w");

	if (!f || fwrite(data, 1, len, f) != len || fclose(f))
		abort();
}

static void release(const uint8_t *data, size_t size)
{
	uint8_t *image = malloc(size ? size : 1); /* exactly sized for ASan */
	char out[65];
	size_t outlen = 1 + size % sizeof(out);

	if (!image)
		abort();
	memcpy(image, data, size);
	if (kmod_kernel_release(image, size, out, outlen) == 0 && strlen(out) >= outlen)
		abort();
	free(image);
}

static void resolve(struct fz *f)
{
	uint16_t dep_len = fz_u16(f), builtin_len = fz_u16(f);
	const char *names[MAX_NAMES];
	struct kmod_list list = {0};
	unsigned nr = 0;
	const uint8_t *rest;
	char err[256];
	size_t len;
	char *text;

	dep_len = (uint16_t)(dep_len < f->n ? dep_len : f->n);
	put_file(dep_path, f->p, dep_len);
	f->p += dep_len;
	f->n -= dep_len;
	unlink(builtin_path);
	if (builtin_len != 0xffff) {
		builtin_len = (uint16_t)(builtin_len < f->n ? builtin_len : f->n);
		put_file(builtin_path, f->p, builtin_len);
		f->p += builtin_len;
		f->n -= builtin_len;
	}
	rest = fz_rest(f, &len);
	text = malloc(len + 1);
	if (!text)
		abort();
	memcpy(text, rest, len);
	text[len] = '\0';
	for (char *s = text, *end; nr < MAX_NAMES; s = end + 1) {
		names[nr++] = s;
		end = strchr(s, '\n');
		if (!end)
			break;
		*end = '\0';
	}
	if (kmod_resolve(dir, names, nr, &list, err, sizeof(err)) == 0) {
		for (unsigned i = 0; i < list.nr; i++)
			if (!list.paths[i] || list.paths[i][0] == '/')
				abort(); /* paths come back relative to the directory */
	}
	kmod_list_free(&list);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);

	if (fz_u8(&f) & 1)
		resolve(&f);
	else
		release(f.p, f.n);
	return 0;
}
