/*
 * The newc cpio writer: archives parsed back field by field here, and listed and extracted by
 * the system cpio tool, bad names and modes rejected, the empty archive.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/initramfs.h"

struct parsed {
	char name[PATH_MAX];
	uint32_t f[13]; /* ino mode uid gid nlink mtime filesize devmaj devmin rdevmaj rdevmin
	                   namesize check */
	const uint8_t *data;
};

enum { P_INO, P_MODE, P_UID, P_GID, P_NLINK, P_MTIME, P_SIZE, P_RMAJ = 9, P_RMIN = 10 };

static uint32_t hex8(const uint8_t *p)
{
	char s[9];

	memcpy(s, p, 8);
	s[8] = '\0';
	ck_assert_uint_eq(strspn(s, "0123456789abcdefABCDEF"), 8);
	return (uint32_t)strtoul(s, NULL, 16);
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Parses @buf strictly into @out (up to @max entries, the trailer included); returns the count. */
static unsigned parse_archive(const uint8_t *buf, size_t len, struct parsed *out, unsigned max)
{
	size_t off = 0;
	unsigned n = 0;

	ck_assert_uint_eq(len % 512, 0);
	for (;;) {
		struct parsed *e = &out[n];
		size_t namesize, name_end, data_end;

		ck_assert_uint_lt(n, max);
		ck_assert_uint_eq(off % 4, 0);
		ck_assert_uint_le(off + 110, len);
		ck_assert_int_eq(memcmp(buf + off, "070701", 6), 0);
		for (unsigned i = 0; i < 13; i++)
			e->f[i] = hex8(buf + off + 6 + 8 * i);
		namesize = e->f[11];
		ck_assert_uint_gt(namesize, 1);
		ck_assert_uint_lt(namesize, sizeof(e->name));
		name_end = off + 110 + namesize;
		ck_assert_uint_le(name_end, len);
		ck_assert_uint_eq(buf[name_end - 1], 0);
		memcpy(e->name, buf + off + 110, namesize);
		ck_assert_uint_eq(strlen(e->name) + 1, namesize);
		ck_assert(all_zero(buf + name_end, (4 - name_end % 4) % 4));
		off = (name_end + 3) & ~(size_t)3;
		e->data = buf + off;
		data_end = off + e->f[P_SIZE];
		ck_assert_uint_le(data_end, len);
		ck_assert(all_zero(buf + data_end, (4 - data_end % 4) % 4));
		off = (data_end + 3) & ~(size_t)3;
		/* reproducible and unprivileged: owner root, mtime 0, no check sum, no st_dev */
		ck_assert_uint_eq(e->f[P_UID], 0);
		ck_assert_uint_eq(e->f[P_GID], 0);
		ck_assert_uint_eq(e->f[P_MTIME], 0);
		ck_assert_uint_eq(e->f[7] | e->f[8] | e->f[12], 0);
		n++;
		if (!strcmp(e->name, "TRAILER!!!"))
			break;
	}
	ck_assert_uint_le(len - off, 511);
	ck_assert(all_zero(buf + off, len - off));
	return n;
}

static const uint8_t init_data[] = {0x7f, 'E', 'L', 'F', 0, 0, 1, 2, 3, '\n', 0xff, 0xfe, 0};
static const uint8_t ko_a[] = {'a'};
static const uint8_t ko_b[] = {1, 2, 3, 4};

/* The archive most tests look at. */
static void build_sample(struct cpio *c)
{
	cpio_init(c);
	cpio_add_dir(c, "dev", 0755);
	cpio_add_chardev(c, "dev/console", 0600, 5, 1);
	cpio_add_chardev(c, "dev/big", 0620, 0xfff, 0xfffff);
	cpio_add_file(c, "init", 0755, init_data, sizeof(init_data));
	cpio_add_file_with_parents(c, "vmm/modules/a.ko", 0644, ko_a, sizeof(ko_a));
	cpio_add_file_with_parents(c, "vmm/modules/b.ko", 0640, ko_b, sizeof(ko_b));
	cpio_add_file_with_parents(c, "vmm/empty", 0600, NULL, 0);
	cpio_add_dir(c, "tmp", 01777);
	ck_assert_int_eq(cpio_finish(c), 0);
}

START_TEST(parse_back)
{
	static const struct {
		const char *name;
		uint32_t mode, nlink;
		const uint8_t *data;
		uint32_t size;
	} want[] = {
	        {"dev", S_IFDIR | 0755, 2, NULL, 0},
	        {"dev/console", S_IFCHR | 0600, 1, NULL, 0},
	        {"dev/big", S_IFCHR | 0620, 1, NULL, 0},
	        {"init", S_IFREG | 0755, 1, init_data, sizeof(init_data)},
	        {"vmm", S_IFDIR | 0755, 2, NULL, 0},
	        {"vmm/modules", S_IFDIR | 0755, 2, NULL, 0},
	        {"vmm/modules/a.ko", S_IFREG | 0644, 1, ko_a, sizeof(ko_a)},
	        {"vmm/modules/b.ko", S_IFREG | 0640, 1, ko_b, sizeof(ko_b)},
	        {"vmm/empty", S_IFREG | 0600, 1, NULL, 0},
	        {"tmp", S_IFDIR | 01777, 2, NULL, 0},
	        {"TRAILER!!!", 0, 1, NULL, 0},
	};
	struct parsed e[16];
	struct cpio c;
	unsigned n;

	build_sample(&c);
	n = parse_archive(c.buf, c.len, e, 16);
	ck_assert_uint_eq(n, ARRAY_SIZE(want));
	for (unsigned i = 0; i < n; i++) {
		ck_assert_str_eq(e[i].name, want[i].name);
		ck_assert_uint_eq(e[i].f[P_MODE], want[i].mode);
		ck_assert_uint_eq(e[i].f[P_NLINK], want[i].nlink);
		ck_assert_uint_eq(e[i].f[P_SIZE], want[i].size);
		if (want[i].size)
			ck_assert_int_eq(memcmp(e[i].data, want[i].data, want[i].size), 0);
		/* inode numbers: unique, 1.. in order; the trailer has 0 */
		ck_assert_uint_eq(e[i].f[P_INO], i + 1 < n ? i + 1 : 0);
	}
	ck_assert_uint_eq(e[1].f[P_RMAJ], 5);
	ck_assert_uint_eq(e[1].f[P_RMIN], 1);
	ck_assert_uint_eq(e[2].f[P_RMAJ], 0xfff);
	ck_assert_uint_eq(e[2].f[P_RMIN], 0xfffff);
	ck_assert_uint_eq(e[3].f[P_RMAJ] | e[3].f[P_RMIN], 0);
	cpio_free(&c);
	ck_assert_ptr_null(c.buf);
}
END_TEST

static void write_archive(const struct cpio *c, char *path)
{
	int fd;

	strcpy(path, "/tmp/vmm-test-cpio-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, c->buf, c->len), (ssize_t)c->len);
	close(fd);
}

/* Runs @cmd through the shell; returns its stdout (at most @len - 1 bytes) and exit status. */
static int run(const char *cmd, char *out, size_t len)
{
	FILE *f = popen(cmd, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	return pclose(f);
}

START_TEST(cpio_tool_lists)
{
	char path[64], cmd[256], out[4096], perms[16];
	unsigned links, uid, gid, major, minor;
	struct cpio c;
	char *line;

	build_sample(&c);
	write_archive(&c, path);
	snprintf(cmd, sizeof(cmd), "cpio -i --list --quiet < %s", path);
	ck_assert_int_eq(run(cmd, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "dev\ndev/console\ndev/big\ninit\nvmm\nvmm/modules\n"
	                      "vmm/modules/a.ko\nvmm/modules/b.ko\nvmm/empty\ntmp\n");

	snprintf(cmd, sizeof(cmd), "cpio -i --list -v --numeric-uid-gid --quiet < %s", path);
	ck_assert_int_eq(run(cmd, out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "drwxr-xr-x") == out, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "drwxrwxrwt")); /* tmp, 01777 */
	ck_assert_ptr_nonnull(strstr(out, "-rwxr-xr-x"));
	ck_assert_ptr_nonnull(strstr(out, "-rw-r-----"));
	line = strstr(out, "crw-------");
	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(
	        sscanf(line, "%15s %u %u %u %u, %u", perms, &links, &uid, &gid, &major, &minor), 6);
	ck_assert_uint_eq(uid, 0);
	ck_assert_uint_eq(gid, 0);
	ck_assert_uint_eq(major, 5);
	ck_assert_uint_eq(minor, 1);
	line = strstr(out, "crw--w----");
	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(
	        sscanf(line, "%15s %u %u %u %u, %u", perms, &links, &uid, &gid, &major, &minor), 6);
	ck_assert_uint_eq(major, 0xfff);
	ck_assert_uint_eq(minor, 0xfffff);
	unlink(path);
	cpio_free(&c);
}
END_TEST

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void check_file(const char *dir, const char *name, unsigned mode, const void *data,
                       size_t len)
{
	char path[PATH_MAX], got[64];
	struct stat st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_msg(lstat(path, &st) == 0, "%s", path);
	ck_assert_msg(st.st_mode == (S_IFREG | mode), "%s: %o", name, st.st_mode);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	n = fread(got, 1, sizeof(got), f);
	fclose(f);
	ck_assert_uint_eq(n, len);
	ck_assert(len == 0 || memcmp(got, data, len) == 0);
}

static void check_dir(const char *dir, const char *name, unsigned mode)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_msg(lstat(path, &st) == 0, "%s", path);
	ck_assert_msg(st.st_mode == (S_IFDIR | mode), "%s: %o", name, st.st_mode);
}

START_TEST(cpio_tool_extracts)
{
	char path[64], dir[64] = "/tmp/vmm-test-cpio-dir-XXXXXX", cmd[512], out[256];
	struct cpio c;

	build_sample(&c);
	write_archive(&c, path);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	/* device nodes need privilege to create: the listing test covers them */
	snprintf(cmd, sizeof(cmd),
	         "cd %s && cpio -i -d --quiet --no-absolute-filenames --nonmatching 'dev/*' < %s",
	         dir, path);
	ck_assert_int_eq(run(cmd, out, sizeof(out)), 0);
	check_file(dir, "init", 0755, init_data, sizeof(init_data));
	check_file(dir, "vmm/modules/a.ko", 0644, ko_a, sizeof(ko_a));
	check_file(dir, "vmm/modules/b.ko", 0640, ko_b, sizeof(ko_b));
	check_file(dir, "vmm/empty", 0600, NULL, 0);
	check_dir(dir, "dev", 0755);
	check_dir(dir, "vmm", 0755);
	check_dir(dir, "vmm/modules", 0755);
	check_dir(dir, "tmp", 01777);
	ck_assert_int_eq(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
	unlink(path);
	cpio_free(&c);
}
END_TEST

START_TEST(empty_archive)
{
	char path[64], cmd[256], out[256];
	struct parsed e[2];
	struct cpio c;

	cpio_init(&c);
	ck_assert_int_eq(cpio_finish(&c), 0);
	ck_assert_uint_eq(c.len, 512);
	ck_assert_uint_eq(parse_archive(c.buf, c.len, e, 2), 1);
	ck_assert_str_eq(e[0].name, "TRAILER!!!");
	ck_assert_uint_eq(e[0].f[P_MODE] | e[0].f[P_SIZE] | e[0].f[P_INO], 0);
	write_archive(&c, path);
	snprintf(cmd, sizeof(cmd), "cpio -i --list --quiet < %s", path);
	ck_assert_int_eq(run(cmd, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
	unlink(path);
	cpio_free(&c);
}
END_TEST

START_TEST(bad_names)
{
	static const char *const bad[] = {"",     "/init", "/",    "..",  "a/../b", "a/..",
	                                  "../a", "a//b",  "a/",   "./a", ".",      "a/./b",
	                                  "//a",  "a/b/",  "../.", "x/.."};
	static const char good[] = "ok";
	char long_name[PATH_MAX + 1];

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		struct cpio c;

		cpio_init(&c);
		cpio_add_file(&c, bad[i], 0644, good, 2);
		ck_assert_msg(c.err == -EINVAL, "'%s': %d", bad[i], c.err);
		ck_assert_uint_eq(c.len, 0);
		cpio_add_dir(&c, "fine", 0755); /* sticky: nothing more is added */
		ck_assert_uint_eq(c.len, 0);
		ck_assert_int_eq(cpio_finish(&c), -EINVAL);
		cpio_free(&c);

		cpio_init(&c);
		cpio_add_file_with_parents(&c, bad[i], 0644, good, 2);
		ck_assert_msg(c.err == -EINVAL && c.len == 0, "'%s': %d", bad[i], c.err);
		cpio_add_dir(&c, bad[i], 0755);
		cpio_add_chardev(&c, bad[i], 0600, 1, 3);
		ck_assert_int_eq(cpio_finish(&c), -EINVAL);
		cpio_free(&c);
	}
	memset(long_name, 'a', PATH_MAX);
	long_name[PATH_MAX] = '\0';
	{
		struct cpio c;

		cpio_init(&c);
		cpio_add_file(&c, "a..b", 0644, good, 2); /* ".." inside a name is fine */
		cpio_add_file(&c, ".hidden", 0644, good, 2);
		ck_assert_int_eq(c.err, 0);
		cpio_add_file(&c, long_name, 0644, good, 2);
		ck_assert_int_eq(cpio_finish(&c), -EINVAL);
		cpio_free(&c);
	}
}
END_TEST

START_TEST(bad_modes_sizes_devices)
{
	static const char data[4] = "abc";
	struct cpio c;

	cpio_init(&c);
	cpio_add_file(&c, "f", S_IFREG | 0644, data, 4);
	ck_assert_int_eq(cpio_finish(&c), -EINVAL);
	cpio_free(&c);

	cpio_init(&c);
	cpio_add_dir(&c, "d", 010755);
	ck_assert_int_eq(c.err, -EINVAL);
	cpio_free(&c);

	/* the size field is 32 bits: rejected before the data is touched */
	cpio_init(&c);
	cpio_add_file(&c, "big", 0644, data, (size_t)UINT32_MAX + 1);
	ck_assert_int_eq(c.err, -EINVAL);
	ck_assert_uint_eq(c.len, 0);
	cpio_free(&c);

	cpio_init(&c);
	cpio_add_file(&c, "null", 0644, NULL, 1);
	ck_assert_int_eq(c.err, -EINVAL);
	cpio_free(&c);

	cpio_init(&c);
	cpio_add_chardev(&c, "dev/x", 0600, 0x1000, 0);
	ck_assert_int_eq(c.err, -EINVAL);
	cpio_free(&c);

	cpio_init(&c);
	cpio_add_chardev(&c, "dev/x", 0600, 0, 0x100000);
	ck_assert_int_eq(c.err, -EINVAL);
	cpio_free(&c);

	/* adds after the trailer, and a second trailer */
	cpio_init(&c);
	ck_assert_int_eq(cpio_finish(&c), 0);
	cpio_add_file(&c, "late", 0644, data, 4);
	ck_assert_int_eq(c.err, -EINVAL);
	ck_assert_uint_eq(c.len, 512);
	ck_assert_int_eq(cpio_finish(&c), -EINVAL);
	cpio_free(&c);

	cpio_init(&c);
	ck_assert_int_eq(cpio_finish(&c), 0);
	ck_assert_int_eq(cpio_finish(&c), -EINVAL);
	cpio_free(&c);
}
END_TEST

START_TEST(parents_once)
{
	struct parsed e[16];
	struct cpio c;
	unsigned n;

	cpio_init(&c);
	cpio_add_dir(&c, "x", 0700);
	cpio_add_file_with_parents(&c, "x/y", 0644, "1", 1);
	cpio_add_file_with_parents(&c, "a/b/c", 0644, "2", 1);
	cpio_add_file_with_parents(&c, "a/b/d", 0644, "3", 1);
	cpio_add_file_with_parents(&c, "a/e", 0644, "4", 1);
	cpio_add_file_with_parents(&c, "top", 0644, "5", 1);
	cpio_add_file_with_parents(&c, "ab/f", 0644, "6", 1); /* "a" is not a prefix match */
	ck_assert_int_eq(cpio_finish(&c), 0);
	n = parse_archive(c.buf, c.len, e, 16);
	ck_assert_uint_eq(n, 11);
	ck_assert_str_eq(e[0].name, "x");
	ck_assert_uint_eq(e[0].f[P_MODE], S_IFDIR | 0700); /* the existing dir is kept */
	ck_assert_str_eq(e[1].name, "x/y");
	ck_assert_str_eq(e[2].name, "a");
	ck_assert_uint_eq(e[2].f[P_MODE], S_IFDIR | 0755);
	ck_assert_str_eq(e[3].name, "a/b");
	ck_assert_str_eq(e[4].name, "a/b/c");
	ck_assert_str_eq(e[5].name, "a/b/d");
	ck_assert_str_eq(e[6].name, "a/e");
	ck_assert_str_eq(e[7].name, "top");
	ck_assert_str_eq(e[8].name, "ab");
	ck_assert_str_eq(e[9].name, "ab/f");
	ck_assert_str_eq(e[10].name, "TRAILER!!!");
	cpio_free(&c);

	/* a parent that is a file */
	cpio_init(&c);
	cpio_add_file(&c, "f", 0644, "1", 1);
	cpio_add_file_with_parents(&c, "f/g", 0644, "2", 1);
	ck_assert_int_eq(cpio_finish(&c), -ENOTDIR);
	cpio_free(&c);
}
END_TEST

START_TEST(reproducible_and_padding)
{
	static const uint8_t data[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	struct cpio a, b;
	struct parsed e[32];

	build_sample(&a);
	build_sample(&b);
	ck_assert_uint_eq(a.len, b.len);
	ck_assert_int_eq(memcmp(a.buf, b.buf, a.len), 0);
	cpio_free(&a);
	cpio_free(&b);

	/* every name length mod 4 and data length mod 4; the parser checks every pad is zero */
	cpio_init(&a);
	for (unsigned i = 0; i < 8; i++) {
		char name[16];

		snprintf(name, sizeof(name), "%.*s", (int)(i + 1), "abcdefgh");
		cpio_add_file(&a, name, 0644, data, i + 1);
	}
	ck_assert_int_eq(cpio_finish(&a), 0);
	ck_assert_uint_eq(parse_archive(a.buf, a.len, e, 32), 9);
	for (unsigned i = 0; i < 8; i++) {
		ck_assert_uint_eq(e[i].f[P_SIZE], i + 1);
		ck_assert_int_eq(memcmp(e[i].data, data, i + 1), 0);
	}
	cpio_free(&a);
}
END_TEST

START_TEST(grows_past_first_buffer)
{
	static uint8_t big[100000];
	struct parsed e[4];
	struct cpio c;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	cpio_init(&c);
	cpio_add_file(&c, "big", 0644, big, sizeof(big));
	cpio_add_file(&c, "big2", 0644, big, sizeof(big) - 1);
	ck_assert_int_eq(cpio_finish(&c), 0);
	ck_assert_uint_eq(parse_archive(c.buf, c.len, e, 4), 3);
	ck_assert_int_eq(memcmp(e[0].data, big, sizeof(big)), 0);
	ck_assert_int_eq(memcmp(e[1].data, big, sizeof(big) - 1), 0);
	cpio_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("initramfs");
	TCase *tc = tcase_create("initramfs");

	tcase_add_test(tc, parse_back);
	tcase_add_test(tc, cpio_tool_lists);
	tcase_add_test(tc, cpio_tool_extracts);
	tcase_add_test(tc, empty_archive);
	tcase_add_test(tc, bad_names);
	tcase_add_test(tc, bad_modes_sizes_devices);
	tcase_add_test(tc, parents_once);
	tcase_add_test(tc, reproducible_and_padding);
	tcase_add_test(tc, grows_past_first_buffer);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
