/*
 * newc cpio writer (see initramfs.h). Layout of one entry: a 110-byte ASCII header (the magic
 * "070701" and 13 fields of 8 hex digits), the NUL-terminated name, zero padding to 4 bytes,
 * the data, zero padding to 4 bytes. The caller's thread owns the struct cpio.
 */
#include "vmm/initramfs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CPIO_HDR_LEN   110
#define CPIO_FIELDS    13
#define CPIO_BLOCK     512
#define CPIO_TRAILER   "TRAILER!!!"
#define CPIO_MAX_MAJOR 0xfffu
#define CPIO_MAX_MINOR 0xfffffu

/* Header field indexes, after the magic. */
enum {
	F_INO,
	F_MODE,
	F_UID,
	F_GID,
	F_NLINK,
	F_MTIME,
	F_FILESIZE,
	F_DEVMAJOR,
	F_DEVMINOR,
	F_RDEVMAJOR,
	F_RDEVMINOR,
	F_NAMESIZE,
	F_CHECK,
};

struct entry {
	const char *name;
	uint32_t ino, mode, nlink, rdev_major, rdev_minor;
	const void *data;
	size_t size;
};

void cpio_init(struct cpio *c)
{
	*c = (struct cpio){.next_ino = 1};
}

void cpio_free(struct cpio *c)
{
	free(c->buf);
	*c = (struct cpio){0};
}

static void set_err(struct cpio *c, int err)
{
	if (!c->err)
		c->err = err;
}

/* Bytes @n rounded up to 4, or false on overflow. */
static bool align4(size_t n, size_t *out)
{
	if (add_overflows(n, (size_t)3, out))
		return false;
	*out &= ~(size_t)3;
	return true;
}

/* Makes room for @n more bytes; returns 0 or -ENOMEM. */
static int reserve(struct cpio *c, size_t n)
{
	size_t need, cap = c->cap ? c->cap : 4096;
	uint8_t *buf;

	if (add_overflows(c->len, n, &need))
		return -ENOMEM;
	if (need <= c->cap)
		return 0;
	while (cap < need)
		if (mul_overflows(cap, (size_t)2, &cap))
			cap = need;
	buf = realloc(c->buf, cap);
	if (!buf)
		return -ENOMEM;
	c->buf = buf;
	c->cap = cap;
	return 0;
}

static bool valid_name(const char *name)
{
	size_t len = strlen(name);
	const char *p = name;

	if (len == 0 || len >= PATH_MAX || name[0] == '/')
		return false;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/' && !*++p)
			return false; /* trailing slash: an empty last component */
	}
	return true;
}

/* Writes the 110-byte header of @e with @namesize at @dst. */
static void put_header(uint8_t *dst, const struct entry *e, uint32_t namesize)
{
	const uint32_t f[CPIO_FIELDS] = {
	        [F_INO] = e->ino,
	        [F_MODE] = e->mode,
	        [F_NLINK] = e->nlink,
	        [F_FILESIZE] = (uint32_t)e->size,
	        [F_RDEVMAJOR] = e->rdev_major,
	        [F_RDEVMINOR] = e->rdev_minor,
	        [F_NAMESIZE] = namesize,
	};
	char hex[9];

	memcpy(dst, "070701", 6);
	for (unsigned i = 0; i < CPIO_FIELDS; i++) {
		snprintf(hex, sizeof(hex), "%08X", f[i]);
		memcpy(dst + 6 + 8 * i, hex, 8);
	}
}

/* Appends @e; the name and size are already checked. Returns 0 or -errno. */
static int put_entry(struct cpio *c, const struct entry *e)
{
	size_t namesize = strlen(e->name) + 1, head, body, total;
	uint8_t *p;
	int ret;

	if (!align4(CPIO_HDR_LEN + namesize, &head) || !align4(e->size, &body) ||
	    add_overflows(head, body, &total))
		return -ENOMEM;
	ret = reserve(c, total);
	if (ret)
		return ret;
	p = c->buf + c->len;
	memset(p, 0, total);
	put_header(p, e, (uint32_t)namesize);
	memcpy(p + CPIO_HDR_LEN, e->name, namesize);
	if (e->size)
		memcpy(p + head, e->data, e->size);
	c->len += total;
	return 0;
}

/* Checks and appends a non-trailer entry, taking the next inode number. */
static void add_entry(struct cpio *c, struct entry *e, unsigned perm)
{
	int ret;

	if (c->err)
		return;
	if (c->finished || !valid_name(e->name) || (perm & ~07777u) || e->size > UINT32_MAX ||
	    (e->size && !e->data)) {
		set_err(c, -EINVAL);
		return;
	}
	if (c->next_ino == 0) {
		set_err(c, -EOVERFLOW);
		return;
	}
	e->ino = c->next_ino;
	e->mode |= perm;
	ret = put_entry(c, e);
	if (ret)
		set_err(c, ret);
	else
		c->next_ino++;
}

void cpio_add_dir(struct cpio *c, const char *name, unsigned mode)
{
	struct entry e = {.name = name, .mode = S_IFDIR, .nlink = 2};

	add_entry(c, &e, mode);
}

void cpio_add_file(struct cpio *c, const char *name, unsigned mode, const void *data, size_t len)
{
	struct entry e = {.name = name, .mode = S_IFREG, .nlink = 1, .data = data, .size = len};

	add_entry(c, &e, mode);
}

void cpio_add_chardev(struct cpio *c, const char *name, unsigned mode, unsigned major,
                      unsigned minor)
{
	struct entry e = {.name = name,
	                  .mode = S_IFCHR,
	                  .nlink = 1,
	                  .rdev_major = major,
	                  .rdev_minor = minor};

	if (major > CPIO_MAX_MAJOR || minor > CPIO_MAX_MINOR) {
		set_err(c, -EINVAL);
		return;
	}
	add_entry(c, &e, mode);
}

static uint32_t hex_field(const uint8_t *hdr, unsigned field)
{
	uint32_t v = 0;

	for (unsigned i = 0; i < 8; i++) {
		uint8_t ch = hdr[6 + 8 * field + i];

		v = v << 4 | (uint32_t)(ch <= '9' ? ch - '0' : ch - 'A' + 10);
	}
	return v;
}

/*
 * The mode of the entry named @name[0..namelen) already in the archive, or 0 when there is none.
 * Walks the entries this writer produced, still checking every offset against c->len.
 */
static uint32_t find_entry(const struct cpio *c, const char *name, size_t namelen)
{
	size_t off = 0;

	while (c->len - off >= CPIO_HDR_LEN) {
		const uint8_t *hdr = c->buf + off;
		size_t namesize = hex_field(hdr, F_NAMESIZE), head, body;

		if (!align4(CPIO_HDR_LEN + namesize, &head) ||
		    !align4(hex_field(hdr, F_FILESIZE), &body) || head > c->len - off ||
		    body > c->len - off - head)
			return 0;
		if (namesize == namelen + 1 && !memcmp(hdr + CPIO_HDR_LEN, name, namelen))
			return hex_field(hdr, F_MODE);
		off += head + body;
	}
	return 0;
}

void cpio_add_file_with_parents(struct cpio *c, const char *path, unsigned mode, const void *data,
                                size_t len)
{
	char dir[PATH_MAX];

	if (c->err)
		return;
	if (!valid_name(path)) {
		set_err(c, -EINVAL);
		return;
	}
	for (const char *slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
		size_t n = (size_t)(slash - path);
		uint32_t existing = find_entry(c, path, n);

		if (existing && !S_ISDIR(existing)) {
			set_err(c, -ENOTDIR);
			return;
		}
		if (existing)
			continue;
		memcpy(dir, path, n); /* n < strlen(path) < PATH_MAX */
		dir[n] = '\0';
		cpio_add_dir(c, dir, 0755);
	}
	cpio_add_file(c, path, mode, data, len);
}

int cpio_finish(struct cpio *c)
{
	struct entry e = {.name = CPIO_TRAILER, .nlink = 1};
	size_t padded;
	int ret;

	if (c->err)
		return c->err;
	if (c->finished) {
		set_err(c, -EINVAL);
		return c->err;
	}
	ret = put_entry(c, &e);
	if (!ret && add_overflows(c->len, (size_t)CPIO_BLOCK - 1, &padded))
		ret = -ENOMEM;
	if (!ret) {
		padded &= ~(size_t)(CPIO_BLOCK - 1);
		ret = reserve(c, padded - c->len);
	}
	if (ret) {
		set_err(c, ret);
		return ret;
	}
	memset(c->buf + c->len, 0, padded - c->len);
	c->len = padded;
	c->finished = true;
	return 0;
}
