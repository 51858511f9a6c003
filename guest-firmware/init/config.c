/*
 * Parsers of the test-run init's /vmm/ files (formats in config.h). The bytes come from vmm's
 * generated initramfs, so they are trusted more than guest memory is, but every length and
 * field is still checked: a bad file becomes one error line, never a crash. Pure functions,
 * no state.
 */
#include "guest-firmware/init/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static bool has_control(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

static bool ends_with(const char *p, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(p + len - n, suffix, n) == 0;
}

/* Why @p[0..len) is not an absolute, canonical path shorter than INIT_PATH_MAX; NULL if it is. */
static const char *path_problem(const char *p, size_t len)
{
	size_t start = 1;

	if (len == 0)
		return "empty path";
	if (len >= INIT_PATH_MAX)
		return "path longer than 4095 bytes";
	if (memchr(p, '\0', len))
		return "NUL byte in the path";
	if (p[0] != '/')
		return "path not absolute";
	if (len == 1)
		return NULL;
	if (p[len - 1] == '/')
		return "path ends in '/'";
	while (start <= len) {
		const char *slash = memchr(p + start, '/', len - start);
		size_t end = slash ? (size_t)(slash - p) : len;
		size_t n = end - start;

		if (n == 0)
			return "empty path component ('//')";
		if ((n == 1 && p[start] == '.') ||
		    (n == 2 && p[start] == '.' && p[start + 1] == '.'))
			return "'.' or '..' path component";
		start = end + 1;
	}
	return NULL;
}

/* Why @p[0..len) is not a module path (see init_parse_modules()); NULL if it is. */
static const char *module_problem(const char *p, size_t len)
{
	static const char *const suffixes[] = {".ko", ".ko.xz", ".ko.zst", ".ko.gz"};
	const char *problem = path_problem(p, len);
	size_t base_len = 0;

	if (problem)
		return problem;
	if (has_control(p, len))
		return "control character in the path";
	while (p[len - 1 - base_len] != '/') /* stops at p[0] at the latest */
		base_len++;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (ends_with(p, len, suffixes[i]) && base_len > strlen(suffixes[i]))
			return NULL;
	}
	return "not a module file name (NAME.ko, .ko.xz, .ko.zst or .ko.gz)";
}

int init_parse_modules(char *buf, size_t len, const char **paths, unsigned max, unsigned *count,
                       char *err, size_t errlen)
{
	unsigned n = 0;
	size_t pos = 0;

	*count = 0;
	while (pos < len) {
		char *line = buf + pos;
		char *nl = memchr(line, '\n', len - pos);
		size_t line_len;
		const char *problem;

		if (!nl)
			return fail(err, errlen, -EINVAL,
			            "modules: line %u does not end in a newline", n + 1);
		line_len = (size_t)(nl - line);
		problem = module_problem(line, line_len);
		if (problem)
			return fail(err, errlen, -EINVAL, "modules: line %u: %s", n + 1, problem);
		if (n == max)
			return fail(err, errlen, -E2BIG, "modules: more than %u lines", max);
		*nl = '\0';
		paths[n++] = line;
		pos += line_len + 1;
	}
	*count = n;
	return 0;
}

unsigned init_module_flags(const char *path)
{
	size_t len = strlen(path);

	if (ends_with(path, len, ".xz") || ends_with(path, len, ".zst") ||
	    ends_with(path, len, ".gz"))
		return MODULE_INIT_COMPRESSED_FILE;
	return 0;
}

/* True when @dir is @top or below it ("/proc", "/proc/x"; not "/process"). */
static bool under(const char *dir, const char *top)
{
	size_t n = strlen(top);

	return strncmp(dir, top, n) == 0 && (dir[n] == '\0' || dir[n] == '/');
}

/* The rules for one record's fields, whichever record it is. */
static int check_fields(const char *tag, const char *dir, const char *mode, unsigned rec, char *err,
                        size_t errlen)
{
	size_t tag_len = strlen(tag);
	const char *problem = path_problem(dir, strlen(dir));

	if (tag_len == 0 || tag_len > INIT_TAG_MAX)
		return fail(err, errlen, -EINVAL, "mounts: record %u: tag of %zu bytes (1 to %d)",
		            rec, tag_len, INIT_TAG_MAX);
	if (has_control(tag, tag_len))
		return fail(err, errlen, -EINVAL, "mounts: record %u: control character in the tag",
		            rec);
	if (!problem && has_control(dir, strlen(dir)))
		problem = "control character in the path";
	if (problem)
		return fail(err, errlen, -EINVAL, "mounts: record %u (tag '%s'): directory: %s",
		            rec, tag, problem);
	if (strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
		return fail(err, errlen, -EINVAL,
		            "mounts: record %u (tag '%s'): mode is not \"ro\" or \"rw\"", rec, tag);
	return 0;
}

/* The rules that relate record @m (number @rec, 1-based) to the root and to @prev[0..n). */
static int check_place(const struct init_mount *m, const struct init_mount *prev, unsigned n,
                       unsigned rec, char *err, size_t errlen)
{
	if (n == 0) {
		if (strcmp(m->tag, INIT_ROOT_TAG) != 0 || strcmp(m->dir, "/") != 0 || !m->read_only)
			return fail(err, errlen, -EINVAL,
			            "mounts: the first record is not the root (%s, /, ro)",
			            INIT_ROOT_TAG);
		return 0;
	}
	if (strcmp(m->dir, "/") == 0 || under(m->dir, "/proc") || under(m->dir, "/sys") ||
	    under(m->dir, "/dev"))
		return fail(
		        err, errlen, -EINVAL,
		        "mounts: record %u (tag '%s'): a share cannot go on /, /proc, /sys or /dev",
		        rec, m->tag);
	for (unsigned i = 0; i < n; i++) {
		if (strcmp(prev[i].tag, m->tag) == 0)
			return fail(err, errlen, -EINVAL, "mounts: record %u: tag '%s' used twice",
			            rec, m->tag);
		if (strcmp(prev[i].dir, m->dir) == 0)
			return fail(err, errlen, -EINVAL,
			            "mounts: record %u (tag '%s'): its directory is used twice",
			            rec, m->tag);
	}
	return 0;
}

int init_parse_mounts(const char *buf, size_t len, struct init_mount *mounts, unsigned max,
                      unsigned *count, char *err, size_t errlen)
{
	unsigned n = 0;
	size_t pos = 0;

	*count = 0;
	if (len == 0)
		return fail(err, errlen, -EINVAL, "mounts: empty (no root record)");
	/* Every field ends in a NUL: with the last byte one, each strlen() below stays inside. */
	if (buf[len - 1] != '\0')
		return fail(err, errlen, -EINVAL, "mounts: the last field does not end in a NUL");
	while (pos < len) {
		const char *field[3];
		struct init_mount m;
		int ret;

		for (unsigned i = 0; i < 3; i++) {
			if (pos == len)
				return fail(err, errlen, -EINVAL,
				            "mounts: record %u has %u fields, not 3", n + 1, i);
			field[i] = buf + pos;
			pos += strlen(field[i]) + 1;
		}
		if (n == max)
			return fail(err, errlen, -E2BIG, "mounts: more than %u records", max);
		ret = check_fields(field[0], field[1], field[2], n + 1, err, errlen);
		if (ret)
			return ret;
		m = (struct init_mount){field[0], field[1], strcmp(field[2], "ro") == 0};
		ret = check_place(&m, mounts, n, n + 1, err, errlen);
		if (ret)
			return ret;
		mounts[n++] = m;
	}
	*count = n;
	return 0;
}

int init_check_cwd(const char *buf, size_t len, char *err, size_t errlen)
{
	const char *problem;

	if (len && buf[len - 1] == '\n')
		return fail(err, errlen, -EINVAL,
		            "cwd: ends in a newline (the file holds the bare path)");
	problem = path_problem(buf, len);
	if (problem)
		return fail(err, errlen, -EINVAL, "cwd: %s", problem);
	return 0;
}

int init_check_cmd(const char *buf, size_t len, char *err, size_t errlen)
{
	if (len > INIT_CMD_MAX)
		return fail(err, errlen, -EINVAL, "cmd: longer than %d bytes", INIT_CMD_MAX);
	if (memchr(buf, '\0', len))
		return fail(err, errlen, -EINVAL, "cmd: holds a NUL byte");
	return 0;
}

int init_check_term(const char *buf, size_t len, char *err, size_t errlen)
{
	if (len == 0 || len > INIT_TERM_MAX)
		return fail(err, errlen, -EINVAL, "term: %zu bytes (1 to %d)", len, INIT_TERM_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '+' || c == '-'))
			return fail(err, errlen, -EINVAL,
			            "term: byte %zu is not one of A-Z a-z 0-9 . _ + -", i + 1);
	}
	return 0;
}

static const struct {
	const char *name;
	size_t max;
	bool required;
} record_kinds[] = {
        {"mounts", INIT_MOUNTS_FILE_MAX, true},
        {"cwd", INIT_CWD_FILE_MAX, true},
        {"cmd", INIT_CMD_FILE_MAX, true},
        {"term", INIT_TERM_FILE_MAX, false},
};

#define NR_RECORD_KINDS (sizeof(record_kinds) / sizeof(record_kinds[0]))

/*
 * The header line at @p (@avail bytes there): its kind (NR_RECORD_KINDS for the end line)
 * and length, and the header's size in *@used. -EAGAIN while it has no newline yet.
 */
static int parse_header(const char *p, size_t avail, unsigned *kind, size_t *length, size_t *used,
                        char *err, size_t errlen)
{
	const char *nl = memchr(p, '\n', min_size(avail, INIT_RECORD_HEADER_MAX));
	const char *space, *digits;
	size_t value = 0;

	if (!nl)
		return avail < INIT_RECORD_HEADER_MAX
		               ? -EAGAIN
		               : fail(err, errlen, -EINVAL, "records: a header line is too long");
	space = memchr(p, ' ', (size_t)(nl - p));
	if (!space)
		return fail(err, errlen, -EINVAL, "records: a header line is not \"NAME LENGTH\"");
	digits = space + 1;
	if (digits == nl || (digits[0] == '0' && nl - digits > 1))
		return fail(err, errlen, -EINVAL, "records: a length is empty or has a leading 0");
	for (const char *d = digits; d < nl; d++) {
		if (*d < '0' || *d > '9' || d - digits >= 9)
			return fail(err, errlen, -EINVAL,
			            "records: a length is not a decimal number below 10^9");
		value = value * 10 + (size_t)(*d - '0');
	}
	*kind = NR_RECORD_KINDS;
	for (unsigned i = 0; i < NR_RECORD_KINDS; i++) {
		if ((size_t)(space - p) == strlen(record_kinds[i].name) &&
		    !memcmp(p, record_kinds[i].name, (size_t)(space - p)))
			*kind = i;
	}
	if (*kind == NR_RECORD_KINDS && !((size_t)(space - p) == 3 && !memcmp(p, "end", 3)))
		return fail(err, errlen, -EINVAL, "records: unknown name '%.*s'",
		            (int)min_size((size_t)(space - p), 16), p);
	if (*kind == NR_RECORD_KINDS ? value != 0 : value > record_kinds[*kind].max)
		return fail(err, errlen, -EINVAL, "records: %s: length %zu (at most %zu)",
		            *kind == NR_RECORD_KINDS ? "end" : record_kinds[*kind].name, value,
		            *kind == NR_RECORD_KINDS ? (size_t)0 : record_kinds[*kind].max);
	*length = value;
	*used = (size_t)(nl - p) + 1;
	return 0;
}

int init_parse_records(const char *buf, size_t len, struct init_record *out, unsigned *count,
                       char *err, size_t errlen)
{
	bool seen[NR_RECORD_KINDS] = {false};
	size_t pos = 0;
	unsigned n = 0;

	*count = 0;
	for (;;) {
		size_t length = 0, used = 0;
		unsigned kind = 0;
		int ret = parse_header(buf + pos, len - pos, &kind, &length, &used, err, errlen);

		if (ret)
			return ret;
		pos += used;
		if (kind == NR_RECORD_KINDS)
			break;
		if (seen[kind])
			return fail(err, errlen, -EINVAL, "records: %s given twice",
			            record_kinds[kind].name);
		if (length > len - pos)
			return -EAGAIN;
		seen[kind] = true;
		out[n++] = (struct init_record){record_kinds[kind].name, buf + pos, length};
		pos += length;
	}
	if (pos != len)
		return fail(err, errlen, -EINVAL, "records: %zu bytes after the end", len - pos);
	for (unsigned i = 0; i < NR_RECORD_KINDS; i++) {
		if (record_kinds[i].required && !seen[i])
			return fail(err, errlen, -EINVAL, "records: no %s", record_kinds[i].name);
	}
	*count = n;
	return 0;
}
