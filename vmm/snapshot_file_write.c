/*
 * Snapshot state files: the writer (format in snapshot_file.h). It builds the file in memory,
 * checks it with the reader before handing it out, and saves it by write, fsync and rename, so
 * a crash leaves the old file or the new one, never a mix.
 */
#include "vmm/snapshot_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "vmm/snapshot_file_internal.h"

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Appends @n bytes (the file staying within @limit) and returns them, or NULL (sticky error). */
static uint8_t *room(struct snap_writer *w, size_t n, size_t limit)
{
	uint8_t *p;

	if (w->error)
		return NULL;
	if (n > limit - w->len) {
		w->error = -EFBIG;
		return NULL;
	}
	if (n > w->cap - w->len) {
		size_t cap = w->cap ? w->cap : 4096;

		while (cap < w->len + n)
			cap *= 2;
		cap = MIN(cap, (size_t)SNAP_FILE_MAX);
		p = realloc(w->buf, cap);
		if (!p) {
			w->error = -ENOMEM;
			return NULL;
		}
		w->buf = p;
		w->cap = cap;
	}
	p = w->buf + w->len;
	w->len += n;
	return p;
}

/* Appends payload bytes: the file leaves room for END. */
static void put(struct snap_writer *w, const void *src, size_t n)
{
	uint8_t *p;

	assert(w->in_section && !w->finished);
	p = room(w, n, SNAP_FILE_MAX - SNAP_END_SECTION_SIZE);
	if (p && n)
		memcpy(p, src, n);
}

void snap_writer_init(struct snap_writer *w, uint32_t arch)
{
	uint8_t *h;

	*w = (struct snap_writer){0};
	h = room(w, SNAP_HEADER_SIZE, SNAP_FILE_MAX);
	if (!h)
		return;
	memcpy(h, SNAP_MAGIC, 8);
	put_le(h + 8, SNAP_FORMAT_VERSION, 4);
	put_le(h + 12, arch, 4);
	put_le(h + 16, 0, 8); /* set by snap_writer_finish() */
}

void snap_begin(struct snap_writer *w, const char *tag, uint32_t instance)
{
	uint8_t *h;

	assert(!w->in_section && !w->finished);
	snap_check_tag(tag);
	assert(memcmp(tag, SNAP_END_TAG, 4) != 0);
	w->in_section = true;
	if (!w->error && w->nr_sections >= SNAP_MAX_SECTIONS - 1)
		w->error = -E2BIG;
	w->nr_sections++;
	w->open = w->len;
	h = room(w, SNAP_SECTION_HEADER, SNAP_FILE_MAX - SNAP_END_SECTION_SIZE);
	if (!h)
		return;
	memcpy(h, tag, 4);
	put_le(h + 4, instance, 4);
	put_le(h + 8, 0, 8); /* the length is set by snap_end() */
}

void snap_put_u8(struct snap_writer *w, uint8_t v)
{
	put(w, &v, 1);
}

static void put_int(struct snap_writer *w, uint64_t v, unsigned bytes)
{
	uint8_t b[8];

	put_le(b, v, bytes);
	put(w, b, bytes);
}

void snap_put_u16(struct snap_writer *w, uint16_t v)
{
	put_int(w, v, 2);
}

void snap_put_u32(struct snap_writer *w, uint32_t v)
{
	put_int(w, v, 4);
}

void snap_put_u64(struct snap_writer *w, uint64_t v)
{
	put_int(w, v, 8);
}

void snap_put_bytes(struct snap_writer *w, const void *p, size_t n)
{
	put(w, p, n);
}

void snap_end(struct snap_writer *w)
{
	size_t len;
	uint8_t *pad;

	assert(w->in_section && !w->finished);
	w->in_section = false;
	if (w->error)
		return;
	len = w->len - w->open - SNAP_SECTION_HEADER; /* below SNAP_FILE_MAX: fits a u32 */
	put_le(w->buf + w->open + 8, len, 4);
	pad = room(w, snap_padded((uint32_t)len) - len, SNAP_FILE_MAX - SNAP_END_SECTION_SIZE);
	if (pad)
		memset(pad, 0, snap_padded((uint32_t)len) - len);
}

static void sticky_message(int error, char *err, size_t errlen)
{
	if (error == -ENOMEM)
		snprintf(err, errlen, "out of memory while building the state");
	else if (error == -EFBIG)
		snprintf(err, errlen, "the state is larger than %d MiB", SNAP_FILE_MAX_MIB);
	else
		snprintf(err, errlen, "more than %d sections", SNAP_MAX_SECTIONS);
}

int snap_writer_finish(struct snap_writer *w, const uint8_t **data, size_t *len, char *err,
                       size_t errlen)
{
	struct snap_reader check;
	char why[200];
	size_t end = w->len;
	uint8_t *e;

	assert(!w->in_section);
	if (!w->finished) {
		e = room(w, SNAP_END_SECTION_SIZE, SNAP_FILE_MAX);
		if (!e) {
			sticky_message(w->error, err, errlen);
			return w->error;
		}
		memcpy(e, SNAP_END_TAG, 4);
		put_le(e + 4, 0, 4);  /* instance */
		put_le(e + 8, 4, 4);  /* length */
		put_le(e + 12, 0, 4); /* reserved */
		/* The header's length first: the crc covers it. */
		put_le(w->buf + 16, w->len - SNAP_HEADER_SIZE, 8);
		put_le(e + 16, crc32(crc32(0, Z_NULL, 0), w->buf, (uInt)end), 4);
		put_le(e + 20, 0, 4);
		/* What would not load is not written: a (tag, instance) begun twice, say. */
		if (snap_reader_parse(&check, w->buf, w->len, snap_le32(w->buf + 12), why,
		                      sizeof(why))) {
			w->len = end;
			snprintf(err, errlen, "the state would not load: %s", why);
			return -EINVAL;
		}
		snap_reader_free(&check);
		w->finished = true;
	}
	*data = w->buf;
	*len = w->len;
	return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t done = write(fd, p, n);

		if (done < 0 && errno == EINTR)
			continue;
		if (done < 0)
			return -errno;
		p += done;
		n -= (size_t)done;
	}
	return 0;
}

/* Syncs the directory holding @path, so the rename is durable. */
static int sync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	int fd, ret = 0;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* Writes @tmp (new, 0600) with @data and renames it to @path. Says which step failed. */
static int write_atomic(const char *path, const char *tmp, const uint8_t *data, size_t len,
                        const char **step)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), ret;

	*step = "creating";
	if (fd < 0)
		return -errno;
	*step = "writing";
	ret = write_all(fd, data, len);
	if (!ret && fsync(fd) < 0) {
		*step = "syncing";
		ret = -errno;
	}
	if (close(fd) < 0 && !ret) {
		*step = "closing";
		ret = -errno;
	}
	if (!ret && rename(tmp, path) < 0) {
		*step = "renaming";
		ret = -errno;
	}
	if (ret)
		unlink(tmp);
	return ret;
}

int snap_writer_save(struct snap_writer *w, const char *path, char *err, size_t errlen)
{
	struct snap_quoted name = snap_quote(path, strlen(path));
	const uint8_t *data;
	const char *step;
	char why[200], *tmp;
	size_t len;
	int ret = snap_writer_finish(w, &data, &len, why, sizeof(why));

	if (ret) {
		snprintf(err, errlen, "state file '%s': %s", name.s, why);
		return ret;
	}
	if (asprintf(&tmp, "%s.tmp", path) < 0) {
		snprintf(err, errlen, "state file '%s': out of memory", name.s);
		return -ENOMEM;
	}
	ret = write_atomic(path, tmp, data, len, &step);
	free(tmp);
	if (ret == -EEXIST)
		snprintf(err, errlen,
		         "state file '%s': '%s.tmp' exists (another save, or one that crashed: "
		         "remove it)",
		         name.s, name.s);
	else if (ret)
		snprintf(err, errlen, "state file '%s': %s '%s.tmp': %s", name.s, step, name.s,
		         strerror(-ret));
	else if ((ret = sync_dir(path)))
		snprintf(err, errlen,
		         "state file '%s': written, but syncing its directory failed: %s", name.s,
		         strerror(-ret));
	return ret;
}

void snap_writer_free(struct snap_writer *w)
{
	free(w->buf);
	*w = (struct snap_writer){0};
}
