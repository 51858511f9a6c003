/*
 * Kernel release detection and module dependency resolution (see kmod.h). modules.dep has one
 * line per loadable module, "path: dep dep ...", listing every dependency transitively with the
 * deepest last; modules.builtin has one path per built-in module. Both files are read whole and
 * checked line by line before any lookup. Stateless; every buffer is local to one call.
 */
#include "vmm/kmod.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/boot_image.h"

#define KMOD_NAME_MAX 64 /* the kernel's MODULE_NAME_LEN is 56 */
#define KMOD_FILE_MAX (64 * MIB)
#define KMOD_SPACES   " \t\r"

#define BZ_HDRS_OFF    0x202
#define BZ_VERSION_OFF 0x206
#define BZ_KVER_OFF    0x20e
#define BZ_SETUP_BASE  0x200
#define LINUX_BANNER   "Linux version "

/* One modules.dep line: tok[first] is the module's path, tok[first + 1 .. first + nr) its deps. */
struct dep_entry {
	char name[KMOD_NAME_MAX];
	size_t first, nr;
};

struct dep_table {
	const char **tok;
	size_t nr_tok, cap_tok;
	struct dep_entry *ents;
	size_t nr_ents, cap_ents;
	char (*builtin)[KMOD_NAME_MAX];
	size_t nr_builtin, cap_builtin;
};

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...) PRINTF(4, 5);

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* @arr grown to hold @nr + 1 elements of @size bytes, *@cap updated; NULL when out of memory. */
static void *grow(void *arr, size_t *cap, size_t nr, size_t size)
{
	size_t ncap;
	void *p;

	if (nr < *cap)
		return arr;
	if (mul_overflows(*cap ? *cap : 8, (size_t)2, &ncap))
		return NULL;
	p = reallocarray(arr, ncap, size);
	if (p)
		*cap = ncap;
	return p;
}

int kmod_read_file(const char *path, uint8_t **out, size_t *len)
{
	return boot_image_read_file(path, KMOD_FILE_MAX, out, len);
}

/* kmod_read_file for a text file: no NUL bytes inside. Returns 0 or -errno. */
static int read_text(const char *path, char **out)
{
	uint8_t *buf;
	size_t len;
	int ret = kmod_read_file(path, &buf, &len);

	if (ret)
		return ret;
	if (memchr(buf, '\0', len)) {
		free(buf);
		return -EINVAL;
	}
	*out = (char *)buf;
	return 0;
}

/*
 * The module name of @path ("kernel/fs/fuse/virtiofs.ko.xz" or "virtiofs" gives "virtiofs"),
 * '-' turned to '_', into @out. With @need_suffix the .ko[.xz|.zst|.gz] suffix is required.
 */
static int module_name(const char *path, bool need_suffix, char out[KMOD_NAME_MAX])
{
	static const char *const suffixes[] = {".ko", ".ko.xz", ".ko.zst", ".ko.gz"};
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	size_t len = strlen(base), stem = need_suffix ? 0 : len;

	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		size_t n = strlen(suffixes[i]);

		if (len > n && !strcmp(base + len - n, suffixes[i]))
			stem = len - n;
	}
	if (stem == 0 || stem >= KMOD_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < stem; i++)
		out[i] = base[i] == '-' ? '_' : base[i];
	out[stem] = '\0';
	return 0;
}

/*
 * @path made relative to @dir (@dirlen bytes, trailing slashes dropped): a relative path as is,
 * an absolute one only when it lies under @dir. NULL when it escapes @dir, has a ".." component
 * or is empty.
 */
static const char *rel_path(const char *dir, size_t dirlen, const char *path)
{
	if (path[0] == '/') {
		if (dirlen == 0 || strncmp(path, dir, dirlen) != 0)
			return NULL;
		path += dirlen;
		if (dir[dirlen - 1] != '/' && *path != '/')
			return NULL;
		while (*path == '/')
			path++;
	}
	if (!*path)
		return NULL;
	for (const char *p = path; *p; p += strcspn(p, "/"), p += *p == '/') {
		if (!strncmp(p, "..", 2) && (p[2] == '/' || !p[2]))
			return NULL;
	}
	return path;
}

static int push_tok(struct dep_table *t, const char *tok)
{
	const char **p = grow(t->tok, &t->cap_tok, t->nr_tok, sizeof(*t->tok));

	if (!p)
		return -ENOMEM;
	t->tok = p;
	t->tok[t->nr_tok++] = tok;
	return 0;
}

/* Checks a path token of @fname line @line and appends it; returns 0 or -errno with @err set. */
static int add_path(struct dep_table *t, const char *dir, size_t dirlen, char *tok,
                    char name[KMOD_NAME_MAX], const char *fname, unsigned line, char *err,
                    size_t errlen)
{
	const char *rel = rel_path(dir, dirlen, tok);

	if (!rel || module_name(rel, true, name))
		return fail(err, errlen, -EINVAL, "%s:%u: malformed line: bad module path '%s'",
		            fname, line, tok);
	if (push_tok(t, rel))
		return fail(err, errlen, -ENOMEM, "%s: out of memory", fname);
	return 0;
}

/* Parses modules.dep line @line, "path: dep dep ...", from @s (modified in place). */
static int parse_dep_line(struct dep_table *t, const char *dir, size_t dirlen, char *s,
                          const char *fname, unsigned line, char *err, size_t errlen)
{
	char *colon = strchr(s, ':'), *tok, *save = NULL, scratch[KMOD_NAME_MAX];
	struct dep_entry *e;
	int ret;

	s += strspn(s, KMOD_SPACES);
	if (!*s)
		return 0;
	if (!colon || colon == s || strcspn(s, KMOD_SPACES) < (size_t)(colon - s))
		return fail(err, errlen, -EINVAL, "%s:%u: malformed line: expected 'path: deps...'",
		            fname, line);
	*colon = '\0';
	e = grow(t->ents, &t->cap_ents, t->nr_ents, sizeof(*t->ents));
	if (!e)
		return fail(err, errlen, -ENOMEM, "%s: out of memory", fname);
	t->ents = e;
	e += t->nr_ents;
	e->first = t->nr_tok;
	ret = add_path(t, dir, dirlen, s, e->name, fname, line, err, errlen);
	for (tok = strtok_r(colon + 1, KMOD_SPACES, &save); tok && !ret;
	     tok = strtok_r(NULL, KMOD_SPACES, &save))
		ret = add_path(t, dir, dirlen, tok, scratch, fname, line, err, errlen);
	if (ret)
		return ret;
	e->nr = t->nr_tok - e->first;
	t->nr_ents++;
	return 0;
}

/* Parses modules.builtin line @line: one module path, or nothing. */
static int parse_builtin_line(struct dep_table *t, char *s, const char *fname, unsigned line,
                              char *err, size_t errlen)
{
	char *save = NULL, *tok = strtok_r(s, KMOD_SPACES, &save);
	char(*b)[KMOD_NAME_MAX];

	if (!tok)
		return 0;
	b = grow(t->builtin, &t->cap_builtin, t->nr_builtin, sizeof(*t->builtin));
	if (!b)
		return fail(err, errlen, -ENOMEM, "%s: out of memory", fname);
	t->builtin = b;
	if (strtok_r(NULL, KMOD_SPACES, &save) || module_name(tok, true, t->builtin[t->nr_builtin]))
		return fail(err, errlen, -EINVAL, "%s:%u: malformed line", fname, line);
	t->nr_builtin++;
	return 0;
}

/* Reads @dir/@file and hands each line to the parser for @file. Keeps the text in *@text. */
static int load(struct dep_table *t, const char *dir, const char *file, char **text, char *err,
                size_t errlen)
{
	size_t dirlen = strlen(dir);
	char fname[PATH_MAX];
	unsigned line = 0;
	bool dep = !strcmp(file, "modules.dep");
	int ret;

	if ((size_t)snprintf(fname, sizeof(fname), "%s/%s", dir, file) >= sizeof(fname))
		return fail(err, errlen, -ENAMETOOLONG, "module dir '%s': path too long", dir);
	ret = read_text(fname, text);
	if (ret == -ENOENT && !dep)
		return 0;
	if (ret)
		return fail(err, errlen, ret, "cannot read %s: %s%s", fname, strerror(-ret),
		            dep ? " (run depmod?)" : "");
	while (dirlen > 1 && dir[dirlen - 1] == '/')
		dirlen--;
	for (char *s = *text, *nl; *s && !ret; s = nl ? nl + 1 : s + strlen(s)) {
		nl = strchr(s, '\n');
		if (nl)
			*nl = '\0';
		if (++line == 0)
			return fail(err, errlen, -EFBIG, "%s: too many lines", fname);
		ret = dep ? parse_dep_line(t, dir, dirlen, s, fname, line, err, errlen)
		          : parse_builtin_line(t, s, fname, line, err, errlen);
	}
	return ret;
}

static bool is_builtin(const struct dep_table *t, const char *name)
{
	for (size_t i = 0; i < t->nr_builtin; i++)
		if (!strcmp(t->builtin[i], name))
			return true;
	return false;
}

static const struct dep_entry *find_dep(const struct dep_table *t, const char *name)
{
	for (size_t i = 0; i < t->nr_ents; i++)
		if (!strcmp(t->ents[i].name, name))
			return &t->ents[i];
	return NULL;
}

/* Appends a copy of @path to @l unless it is already there. */
static int list_add(struct kmod_list *l, const char *path)
{
	char **paths, *copy;

	for (unsigned i = 0; i < l->nr; i++)
		if (!strcmp(l->paths[i], path))
			return 0;
	if (l->nr == UINT_MAX || !(copy = strdup(path)))
		return -ENOMEM;
	paths = reallocarray(l->paths, (size_t)l->nr + 1, sizeof(*paths));
	if (!paths) {
		free(copy);
		return -ENOMEM;
	}
	paths[l->nr++] = copy;
	l->paths = paths;
	return 0;
}

/* Adds @name's dependencies (deepest first) and then its own file to @out. */
static int resolve_one(const struct dep_table *t, const char *dir, const char *name,
                       struct kmod_list *out, char *err, size_t errlen)
{
	const struct dep_entry *e = NULL;
	char norm[KMOD_NAME_MAX];
	int ret = 0;

	if (!strchr(name, '/') && !module_name(name, false, norm)) {
		if (is_builtin(t, norm))
			return 0;
		e = find_dep(t, norm);
	}
	if (!e)
		return fail(err, errlen, -ENOENT,
		            "module '%s' is neither built into the kernel nor in %s", name, dir);
	for (size_t i = e->nr - 1; i >= 1 && !ret; i--)
		ret = list_add(out, t->tok[e->first + i]);
	if (!ret)
		ret = list_add(out, t->tok[e->first]);
	if (ret)
		return fail(err, errlen, ret, "module '%s': out of memory", name);
	return 0;
}

int kmod_resolve(const char *dir, const char *const *names, unsigned nr_names,
                 struct kmod_list *out, char *err, size_t errlen)
{
	struct dep_table t = {0};
	char *dep_text = NULL, *builtin_text = NULL;
	int ret;

	*out = (struct kmod_list){0};
	ret = load(&t, dir, "modules.dep", &dep_text, err, errlen);
	if (!ret)
		ret = load(&t, dir, "modules.builtin", &builtin_text, err, errlen);
	for (unsigned i = 0; i < nr_names && !ret; i++)
		ret = resolve_one(&t, dir, names[i], out, err, errlen);
	free(t.tok);
	free(t.ents);
	free(t.builtin);
	free(dep_text);
	free(builtin_text);
	if (ret)
		kmod_list_free(out);
	return ret;
}

void kmod_list_free(struct kmod_list *l)
{
	for (unsigned i = 0; i < l->nr; i++)
		free(l->paths[i]);
	free(l->paths);
	*l = (struct kmod_list){0};
}

/*
 * Copies the release at @s[0..avail) into @out: printable ASCII up to a space or NUL. With
 * @need_space only a space ends it (the banner goes on with " (builder@host)").
 */
static int copy_release(const uint8_t *s, size_t avail, bool need_space, char *out, size_t outlen)
{
	size_t n = 0;

	while (n < avail && s[n] > ' ' && s[n] < 0x7f)
		n++;
	if (n == 0 || n == avail || (s[n] != ' ' && (need_space || s[n] != '\0')))
		return -ENOENT;
	if (n >= outlen)
		return -ERANGE;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* The release from an x86 setup header; -ENOENT when @image is not a bzImage that has one. */
static int bzimage_release(const uint8_t *image, size_t len, char *out, size_t outlen)
{
	size_t off;

	if (len < BZ_KVER_OFF + 2 || memcmp(image + BZ_HDRS_OFF, "HdrS", 4) != 0 ||
	    get_le16(image + BZ_VERSION_OFF) < 0x200 || get_le16(image + BZ_KVER_OFF) == 0)
		return -ENOENT;
	off = BZ_SETUP_BASE + (size_t)get_le16(image + BZ_KVER_OFF);
	if (off >= len)
		return -ENOENT;
	return copy_release(image + off, len - off, false, out, outlen);
}

int kmod_kernel_release(const uint8_t *image, size_t len, char *out, size_t outlen)
{
	const size_t blen = strlen(LINUX_BANNER);
	const uint8_t *p = image, *end = image + len;
	int ret;

	if (!image)
		return -ENOENT;
	ret = bzimage_release(image, len, out, outlen);
	if (ret != -ENOENT)
		return ret;
	while ((p = memmem(p, (size_t)(end - p), LINUX_BANNER, blen))) {
		p += blen;
		if (p < end && *p >= '0' && *p <= '9') {
			ret = copy_release(p, (size_t)(end - p), true, out, outlen);
			if (ret != -ENOENT)
				return ret;
		}
	}
	return -ENOENT;
}
