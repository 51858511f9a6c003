#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/config.h"
#include "vmm/log.h"

#define STATE_FILE    "state"
#define RAM_FILE      "ram"
#define CONF_TAG      "CONF"
#define SCAN_PAGE     4096
#define MAX_ARG_BYTES 4096

int snapshot_add(struct snapshot_parts *p, const char *tag, uint32_t instance,
                 snapshot_save_fn save, snapshot_load_fn load, void *opaque)
{
	return snapshot_add_quiescing(p, tag, instance, NULL, save, load, opaque);
}

int snapshot_add_quiescing(struct snapshot_parts *p, const char *tag, uint32_t instance,
                           void (*quiesce)(void *opaque), snapshot_save_fn save,
                           snapshot_load_fn load, void *opaque)
{
	if (p->count == p->capacity) {
		unsigned capacity = p->capacity ? 2 * p->capacity : 16;
		struct snapshot_part *parts = realloc(p->parts, capacity * sizeof(*parts));

		if (!parts)
			return -ENOMEM;
		p->parts = parts;
		p->capacity = capacity;
	}
	p->parts[p->count] = (struct snapshot_part){.instance = instance,
	                                            .quiesce = quiesce,
	                                            .save = save,
	                                            .load = load,
	                                            .opaque = opaque};
	memcpy(p->parts[p->count].tag, tag, 4);
	p->count++;
	return 0;
}

void snapshot_unsupported(struct snapshot_parts *p, const char *what)
{
	if (!p->unsupported)
		p->unsupported = what;
}

void snapshot_parts_free(struct snapshot_parts *p)
{
	free(p->parts);
	*p = (struct snapshot_parts){0};
}

/* "DIR/NAME" into @buf; false (with @err) when it does not fit. */
static bool join(char *buf, size_t len, const char *dir, const char *name, char *err, size_t errlen)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) < len)
		return true;
	snprintf(err, errlen, "snapshot directory path too long");
	return false;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zeros[SCAN_PAGE];

	return memcmp(p, zeros, len) == 0;
}

/* Writes each run of non-zero pages of @host at @offset on; zero pages stay holes. */
static int write_region(int fd, const uint8_t *host, uint64_t size, uint64_t offset)
{
	uint64_t pos = 0;

	while (pos < size) {
		uint64_t end;

		if (all_zero(host + pos, SCAN_PAGE)) {
			pos += SCAN_PAGE;
			continue;
		}
		for (end = pos + SCAN_PAGE; end < size && !all_zero(host + end, SCAN_PAGE);)
			end += SCAN_PAGE;
		while (pos < end) {
			ssize_t n = pwrite(fd, host + pos, end - pos, (off_t)(offset + pos));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			pos += (uint64_t)n;
		}
	}
	return 0;
}

static int save_ram(const struct guest_memory *mem, const char *dir, char *err, size_t errlen)
{
	char path[4096], tmp[4096 + 8];
	uint64_t offset = 0;
	int fd, ret = 0;

	if (!join(path, sizeof(path), dir, RAM_FILE, err, errlen))
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return ret;
	}
	for (unsigned i = 0; i < mem->nr_regions; i++)
		offset += mem->regions[i].size;
	if (ftruncate(fd, (off_t)offset) < 0)
		ret = -errno;
	offset = 0;
	for (unsigned i = 0; i < mem->nr_regions && !ret; i++) {
		const struct mem_region *r = &mem->regions[i];

		ret = write_region(fd, r->host, r->size, offset);
		offset += r->size;
	}
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	close(fd);
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		unlink(tmp);
	}
	return ret;
}

static void put_string(struct snap_writer *w, const char *s)
{
	uint32_t len = (uint32_t)strlen(s);

	snap_put_u32(w, len);
	snap_put_bytes(w, s, len);
}

/* The options that built the machine, as config_parse recorded them. */
static void save_config(const struct vm_config *cfg, struct snap_writer *w)
{
	snap_begin(w, CONF_TAG, 0);
	snap_put_u32(w, cfg->nr_machine_args);
	for (unsigned i = 0; i < cfg->nr_machine_args; i++) {
		const struct config_arg *a = &cfg->machine_args[i];

		put_string(w, config_option_name(a->opt));
		snap_put_u8(w, a->value != NULL);
		if (a->value)
			put_string(w, a->value);
	}
	snap_end(w);
}

int snapshot_save(const struct snapshot_parts *p, const struct guest_memory *mem,
                  const struct vm_config *config, const char *dir, char *err, size_t errlen)
{
	struct snap_writer w;
	char path[4096];
	int ret = 0;

	if (p->unsupported) {
		snprintf(err, errlen, "this VM has %s, whose state snapshots do not save yet",
		         p->unsupported);
		return -ENOTSUP;
	}
	if (mem->shared) {
		snprintf(err, errlen,
		         "snapshots of a VM with --share or --run are not supported yet");
		return -ENOTSUP;
	}
	if (!join(path, sizeof(path), dir, STATE_FILE, err, errlen))
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return ret;
	}
	for (unsigned i = 0; i < p->count; i++)
		if (p->parts[i].quiesce)
			p->parts[i].quiesce(p->parts[i].opaque);
	snap_writer_init(&w, SNAP_ARCH_HOST);
	save_config(config, &w);
	for (unsigned i = 0; i < p->count && !ret; i++) {
		char why[200] = "";

		snap_begin(&w, p->parts[i].tag, p->parts[i].instance);
		ret = p->parts[i].save(p->parts[i].opaque, &w, why, sizeof(why));
		snap_end(&w);
		if (ret)
			snprintf(err, errlen, "saving %.4s %u: %s", p->parts[i].tag,
			         p->parts[i].instance, why);
	}
	/* RAM first: a state file is only ever next to the RAM it belongs to. */
	if (!ret) {
		unlink(path);
		ret = save_ram(mem, dir, err, errlen);
	}
	if (!ret) {
		char tmp[4096 + 8];

		/* A .tmp a crash left behind: this directory is the snapshot being replaced. */
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		unlink(tmp);
		ret = snap_writer_save(&w, path, err, errlen);
	}
	snap_writer_free(&w);
	return ret;
}

static char *get_string(struct snap_cursor *c)
{
	uint32_t len = 0;
	char *s;

	len = snap_get_u32(c);
	if (len > MAX_ARG_BYTES || !(s = calloc(1, (size_t)len + 1)))
		return NULL;
	snap_get_bytes(c, s, len);
	if (strlen(s) != len) { /* a NUL inside */
		free(s);
		return NULL;
	}
	return s;
}

int snapshot_config_parse(struct snapshot_config *sc, char *err, size_t errlen)
{
	struct snap_cursor c;
	uint32_t count = 0;

	if (snap_section(&sc->reader, CONF_TAG, 0, &c)) {
		snprintf(err, errlen, "the state file has no machine configuration");
		return -EINVAL;
	}
	count = snap_get_u32(&c);
	if (count > CONFIG_MAX_MACHINE_ARGS) {
		snprintf(err, errlen, "the state file has %u options, more than %d", count,
		         CONFIG_MAX_MACHINE_ARGS);
		return -EINVAL;
	}
	sc->argv = calloc(2 * (size_t)count + 2, sizeof(*sc->argv));
	if (!sc->argv || !(sc->argv[0] = strdup("vmm")))
		return -ENOMEM;
	sc->argc = 1;
	for (uint32_t i = 0; i < count; i++) {
		char *name = get_string(&c), *opt;
		uint8_t has_value = 0;

		if (!name) {
			snprintf(err, errlen, "the state file's option %u is not a string", i);
			return -EINVAL;
		}
		opt = malloc(strlen(name) + 3);
		if (opt)
			sprintf(opt, "--%s", name);
		free(name);
		if (!opt)
			return -ENOMEM;
		sc->argv[sc->argc++] = opt;
		has_value = snap_get_u8(&c);
		if (has_value && !(sc->argv[sc->argc++] = get_string(&c))) {
			snprintf(err, errlen, "the state file's option %u has a bad value", i);
			return -EINVAL;
		}
	}
	return snap_cursor_finish(&c, err, errlen);
}

int snapshot_config_load(const char *dir, struct snapshot_config *out, char *err, size_t errlen)
{
	char path[4096], why[256] = "";
	int ret;

	*out = (struct snapshot_config){0};
	if (!join(path, sizeof(path), dir, STATE_FILE, err, errlen))
		return -ENAMETOOLONG;
	ret = snap_reader_load(&out->reader, path, SNAP_ARCH_HOST, why, sizeof(why));
	if (!ret)
		ret = snapshot_config_parse(out, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "--restore %s: %s", dir, why[0] ? why : strerror(-ret));
		snapshot_config_free(out);
	}
	return ret;
}

void snapshot_config_free(struct snapshot_config *sc)
{
	for (int i = 0; sc->argv && i < sc->argc; i++)
		free(sc->argv[i]);
	free(sc->argv);
	snap_reader_free(&sc->reader);
	*sc = (struct snapshot_config){0};
}

/* pread()s all of [@from, @to) of @fd into @dst. */
static int read_range(int fd, uint8_t *dst, uint64_t from, uint64_t to)
{
	while (from < to) {
		ssize_t n = pread(fd, dst, to - from, (off_t)from);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		dst += n;
		from += (uint64_t)n;
	}
	return 0;
}

/*
 * Copies [@from, @to) of @fd into region @r at @dst (an offset in it): in the kernel, file to
 * memfd (sendfile), so no page of the mapping faults in vmm (nested, a fault costs far more
 * than the copy); by pread() into the mapping where sendfile cannot.
 */
static int copy_range(int fd, struct mem_region *r, uint64_t dst, uint64_t from, uint64_t to)
{
	off_t in = (off_t)from;

	if (r->fd < 0 || lseek(r->fd, (off_t)(r->fd_offset + dst), SEEK_SET) < 0)
		return read_range(fd, r->host + dst, from, to);
	while ((uint64_t)in < to) {
		ssize_t n = sendfile(r->fd, fd, &in, MIN(to - (uint64_t)in, 1ULL << 30));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EINVAL || errno == ENOSYS) && (uint64_t)in == from)
			return read_range(fd, r->host + dst, from, to);
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
	}
	return 0;
}

/*
 * Copies region @r's part of the ram file @fd, from @offset on, into its (fresh, zeroed) memfd:
 * only the data, found with SEEK_DATA and SEEK_HOLE, so the holes cost nothing.
 */
static int copy_region(int fd, uint64_t offset, struct mem_region *r)
{
	uint64_t pos = offset, end = offset + r->size;
	int ret;

	while (pos < end) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			return 0; /* nothing but holes from here on */
		if (data < 0)
			return -errno;
		if ((uint64_t)data >= end)
			return 0;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		pos = MIN((uint64_t)hole, end);
		ret = copy_range(fd, r, (uint64_t)data - offset, (uint64_t)data, pos);

		if (ret)
			return ret;
	}
	return 0;
}

int snapshot_map_ram(struct guest_memory *mem, const char *dir, char *err, size_t errlen)
{
	char path[4096];
	uint64_t total = 0, offset = 0;
	struct stat st;
	int fd, ret = 0;

	if (!join(path, sizeof(path), dir, RAM_FILE, err, errlen))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return ret;
	}
	for (unsigned i = 0; i < mem->nr_regions; i++)
		total += mem->regions[i].size;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != total) {
		snprintf(err, errlen, "%s: not a regular file of %llu bytes (the guest's RAM)",
		         path, (unsigned long long)total);
		close(fd);
		return -EINVAL;
	}
	/* Over the anonymous mapping, at the same place: its alignment and the slots stay. */
	for (unsigned i = 0; i < mem->nr_regions && !ret; i++) {
		struct mem_region *r = &mem->regions[i];

		/* Shared RAM (a vhost-user daemon maps it too) gets a copy of the file instead. */
		if (mem->shared) {
			ret = copy_region(fd, offset, r);
			if (ret)
				snprintf(err, errlen, "cannot read %s: %s", path, strerror(-ret));
		} else if (mmap(r->host, r->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
		                fd, (off_t)offset) == MAP_FAILED) {
			ret = -errno;
			snprintf(err, errlen, "cannot map %s: %s", path, strerror(errno));
		}
		offset += r->size;
	}
	close(fd);
	return ret;
}

int snapshot_load_parts(const struct snapshot_parts *p, const struct snapshot_config *sc, char *err,
                        size_t errlen)
{

	if (p->unsupported) {
		snprintf(err, errlen, "this VM has %s, whose state snapshots do not restore yet",
		         p->unsupported);
		return -ENOTSUP;
	}
	/* Every section must belong to a part of this machine, and every part have one. */
	if (snap_count(&sc->reader, NULL) != p->count + 1) {
		snprintf(err, errlen, "the state file has %u parts, this machine %u",
		         snap_count(&sc->reader, NULL) - 1, p->count);
		return -EINVAL;
	}
	for (unsigned i = 0; i < p->count; i++) {
		const struct snapshot_part *part = &p->parts[i];
		struct snap_cursor c;
		char why[200] = "";
		int ret;

		if (snap_section(&sc->reader, part->tag, part->instance, &c)) {
			snprintf(err, errlen, "the state file has no %.4s %u", part->tag,
			         part->instance);
			return -EINVAL;
		}
		ret = part->load(part->opaque, &c, why, sizeof(why));
		if (ret) {
			snprintf(err, errlen, "%.4s %u: %s", part->tag, part->instance, why);
			return ret;
		}
	}
	return 0;
}
