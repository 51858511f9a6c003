/* The test-run init's /vmm/ file parsers (guest-firmware/init/config.c), fed good and bad bytes. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest-firmware/init/config.h"
#include "tests/unit/unit.h"
#include "vmm/run_ready.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* A literal with NULs inside, and its length without the compiler's terminator. */
#define BYTES(s) s, sizeof(s) - 1

struct bytes_case {
	const char *data;
	size_t len;
	int ret;
};

/* A failure leaves one non-empty line in @err. */
static void check_err(const char *err, const char *what)
{
	ck_assert_msg(err[0] != '\0', "%s: empty message", what);
	ck_assert_msg(!strchr(err, '\n'), "%s: message '%s' is not one line", what, err);
}

/* Copies @data into a buffer the parser may change; the paths it returns point there. */
static int parse_modules(const char *data, size_t len, const char **paths, unsigned max,
                         unsigned *n, char *err)
{
	static char buf[2 * INIT_PATH_MAX];

	ck_assert_uint_lt(len, sizeof(buf));
	memcpy(buf, data, len);
	buf[len] = '\0';
	return init_parse_modules(buf, len, paths, max, n, err, 256);
}

START_TEST(modules_good)
{
	static const char text[] = "/vmm/modules/virtio_console.ko\n"
	                           "/vmm/modules/kernel/fs/fuse/virtiofs.ko.xz\n"
	                           "/a.ko.zst\n"
	                           "/b c.ko.gz\n";
	const char *paths[8];
	unsigned n = 99;
	char err[256];

	ck_assert_int_eq(parse_modules(text, strlen(text), paths, 8, &n, err), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(paths[0], "/vmm/modules/virtio_console.ko");
	ck_assert_str_eq(paths[1], "/vmm/modules/kernel/fs/fuse/virtiofs.ko.xz");
	ck_assert_str_eq(paths[2], "/a.ko.zst");
	ck_assert_str_eq(paths[3], "/b c.ko.gz");

	ck_assert_int_eq(parse_modules("", 0, paths, 8, &n, err), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(parse_modules("", 0, paths, 0, &n, err), 0);
}
END_TEST

START_TEST(modules_bad)
{
	static const struct bytes_case cases[] = {
	        {BYTES("/a.ko"), -EINVAL},                /* no final newline */
	        {BYTES("/a.ko\n/b.ko"), -EINVAL},         /* the same on line 2 */
	        {BYTES("\n"), -EINVAL},                   /* empty line */
	        {BYTES("/a.ko\n\n"), -EINVAL},            /* empty line after a good one */
	        {BYTES("a.ko\n"), -EINVAL},               /* relative */
	        {BYTES("./a.ko\n"), -EINVAL},             /* relative */
	        {BYTES(" /a.ko\n"), -EINVAL},             /* leading space: relative */
	        {BYTES("/a.ko\r\n"), -EINVAL},            /* CRLF: control character */
	        {BYTES("/a\t.ko\n"), -EINVAL},            /* control character */
	        {BYTES("/a\x7f.ko\n"), -EINVAL},          /* DEL */
	        {BYTES("/a\0.ko\n"), -EINVAL},            /* NUL inside a line */
	        {BYTES("/x/../a.ko\n"), -EINVAL},         /* ".." component */
	        {BYTES("/x/./a.ko\n"), -EINVAL},          /* "." component */
	        {BYTES("//a.ko\n"), -EINVAL},             /* empty component */
	        {BYTES("/x//a.ko\n"), -EINVAL},           /* empty component */
	        {BYTES("/a.ko/\n"), -EINVAL},             /* trailing slash */
	        {BYTES("/\n"), -EINVAL},                  /* no file name */
	        {BYTES("/a.o\n"), -EINVAL},               /* not a module */
	        {BYTES("/a.ko.bz2\n"), -EINVAL},          /* unsupported compression */
	        {BYTES("/a.KO\n"), -EINVAL},              /* suffixes are lower case */
	        {BYTES("/.ko\n"), -EINVAL},               /* no name before the suffix */
	        {BYTES("/x/.ko.xz\n"), -EINVAL},          /* no name before the suffix */
	        {BYTES("/a.ko\n/b.ko\n/c.ko\n"), -E2BIG}, /* more than max (2) */
	};
	const char *paths[2];
	char err[256];

	for (unsigned i = 0; i < ARRAY_LEN(cases); i++) {
		unsigned n = 99;
		int ret;

		err[0] = '\0';
		ret = parse_modules(cases[i].data, cases[i].len, paths, 2, &n, err);
		ck_assert_msg(ret == cases[i].ret, "case %u: %d", i, ret);
		ck_assert_msg(n == 0, "case %u: count %u set on failure", i, n);
		check_err(err, "modules");
	}
}
END_TEST

START_TEST(modules_path_length)
{
	char line[INIT_PATH_MAX + 8];
	const char *paths[1];
	unsigned n;
	char err[256];

	/* 4095 bytes is the longest path. */
	memset(line, 'a', sizeof(line));
	line[0] = '/';
	memcpy(line + INIT_PATH_MAX - 1 - 3, ".ko\n", 4);
	ck_assert_int_eq(parse_modules(line, INIT_PATH_MAX, paths, 1, &n, err), 0);
	ck_assert_uint_eq(strlen(paths[0]), INIT_PATH_MAX - 1);

	memset(line, 'a', sizeof(line));
	line[0] = '/';
	memcpy(line + INIT_PATH_MAX - 3, ".ko\n", 4);
	ck_assert_int_eq(parse_modules(line, INIT_PATH_MAX + 1, paths, 1, &n, err), -EINVAL);
	check_err(err, "long module path");
}
END_TEST

START_TEST(module_flags)
{
	ck_assert_uint_eq(init_module_flags("/m/a.ko"), 0);
	ck_assert_uint_eq(init_module_flags("/m/a.ko.xz"), MODULE_INIT_COMPRESSED_FILE);
	ck_assert_uint_eq(init_module_flags("/m/a.ko.zst"), MODULE_INIT_COMPRESSED_FILE);
	ck_assert_uint_eq(init_module_flags("/m/a.ko.gz"), MODULE_INIT_COMPRESSED_FILE);
	ck_assert_uint_eq(MODULE_INIT_COMPRESSED_FILE, 4);
}
END_TEST

#define ROOT "vmm-root\0/\0ro\0"

START_TEST(mounts_good)
{
	static const char root_only[] = ROOT;
	static const char shares[] = ROOT "src\0/home/u/src\0rw\0"
	                                  "data set\0/tmp/data\0ro\0"
	                                  "p\0/process\0rw\0"
	                                  "d\0/devices/x\0ro\0";
	struct init_mount m[8];
	unsigned n = 99;
	char err[256];

	ck_assert_int_eq(init_parse_mounts(root_only, sizeof(root_only) - 1, m, 8, &n, err, 256),
	                 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(m[0].tag, "vmm-root");
	ck_assert_str_eq(m[0].dir, "/");
	ck_assert(m[0].read_only);

	ck_assert_int_eq(init_parse_mounts(shares, sizeof(shares) - 1, m, 8, &n, err, 256), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(m[1].tag, "src");
	ck_assert_str_eq(m[1].dir, "/home/u/src");
	ck_assert(!m[1].read_only);
	ck_assert_str_eq(m[2].tag, "data set");
	ck_assert_str_eq(m[2].dir, "/tmp/data");
	ck_assert(m[2].read_only);
	ck_assert_str_eq(m[3].dir, "/process");
	ck_assert_str_eq(m[4].dir, "/devices/x");
}
END_TEST

START_TEST(mounts_bad)
{
	static const struct bytes_case cases[] = {
	        {BYTES(""), -EINVAL},                   /* no root */
	        {BYTES("\0"), -EINVAL},                 /* one empty field */
	        {BYTES("vmm-root\0/\0ro"), -EINVAL},    /* last field without its NUL */
	        {BYTES("vmm-root\0/\0"), -EINVAL},      /* 2 fields */
	        {BYTES(ROOT "x\0/x\0"), -EINVAL},       /* a record cut short */
	        {BYTES(ROOT "x\0"), -EINVAL},           /* a record cut short */
	        {BYTES("root\0/\0ro\0"), -EINVAL},      /* first record not the root tag */
	        {BYTES("vmm-root\0/x\0ro\0"), -EINVAL}, /* root not on / */
	        {BYTES("vmm-root\0/\0rw\0"), -EINVAL},  /* root writable */
	        {BYTES("x\0/x\0rw\0" ROOT), -EINVAL},   /* root not first */
	        {BYTES(ROOT "\0/x\0rw\0"), -EINVAL},    /* empty tag */
	        {BYTES(ROOT "0123456789012345678901234567890123456\0/x\0rw\0"), -EINVAL}, /* 37 */
	        {BYTES(ROOT "a\nb\0/x\0rw\0"), -EINVAL},     /* control character in the tag */
	        {BYTES(ROOT "vmm-root\0/x\0rw\0"), -EINVAL}, /* the root's tag again */
	        {BYTES(ROOT "x\0/\0rw\0"), -EINVAL},         /* a share on / */
	        {BYTES(ROOT "x\0x\0rw\0"), -EINVAL},         /* relative */
	        {BYTES(ROOT "x\0\0rw\0"), -EINVAL},          /* empty directory */
	        {BYTES(ROOT "x\0/a//b\0rw\0"), -EINVAL},     /* empty component */
	        {BYTES(ROOT "x\0/a/\0rw\0"), -EINVAL},       /* trailing slash */
	        {BYTES(ROOT "x\0/a/..\0rw\0"), -EINVAL},     /* ".." */
	        {BYTES(ROOT "x\0/./a\0rw\0"), -EINVAL},      /* "." */
	        {BYTES(ROOT "x\0/a\nb\0rw\0"), -EINVAL}, /* control character in the directory */
	        {BYTES(ROOT "x\0/proc\0rw\0"), -EINVAL}, /* kernel file systems */
	        {BYTES(ROOT "x\0/sys/fs\0rw\0"), -EINVAL},
	        {BYTES(ROOT "x\0/dev/shm\0rw\0"), -EINVAL},
	        {BYTES(ROOT "x\0/a\0RO\0"), -EINVAL}, /* mode */
	        {BYTES(ROOT "x\0/a\0\0"), -EINVAL},
	        {BYTES(ROOT "x\0/a\0ro \0"), -EINVAL},
	        {BYTES(ROOT "x\0/a\0ro\0x\0/b\0ro\0"), -EINVAL},           /* tag twice */
	        {BYTES(ROOT "x\0/a\0ro\0y\0/a\0ro\0"), -EINVAL},           /* directory twice */
	        {BYTES(ROOT "a\0/a\0ro\0b\0/b\0ro\0c\0/c\0ro\0"), -E2BIG}, /* more than max (3) */
	};
	struct init_mount m[3];
	char err[256];

	for (unsigned i = 0; i < ARRAY_LEN(cases); i++) {
		unsigned n = 99;
		int ret;

		err[0] = '\0';
		ret = init_parse_mounts(cases[i].data, cases[i].len, m, 3, &n, err, sizeof(err));
		ck_assert_msg(ret == cases[i].ret, "case %u: %d (%s)", i, ret, err);
		ck_assert_msg(n == 0, "case %u: count %u set on failure", i, n);
		check_err(err, "mounts");
	}
}
END_TEST

START_TEST(mounts_limits)
{
	char buf[64 + INIT_PATH_MAX];
	struct init_mount m[2];
	size_t len = sizeof(ROOT) - 1;
	unsigned n;
	char err[256];

	/* A 36-byte tag and a 4095-byte directory are the longest. */
	memcpy(buf, ROOT, len);
	memcpy(buf + len, "012345678901234567890123456789012345", 37);
	len += 37;
	buf[len] = '/';
	memset(buf + len + 1, 'd', INIT_PATH_MAX - 2);
	len += INIT_PATH_MAX - 1;
	buf[len++] = '\0';
	memcpy(buf + len, "rw", 3);
	len += 3;
	ck_assert_int_eq(init_parse_mounts(buf, len, m, 2, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(strlen(m[1].tag), INIT_TAG_MAX);
	ck_assert_uint_eq(strlen(m[1].dir), INIT_PATH_MAX - 1);

	/* One more directory byte is too long. */
	len = sizeof(ROOT) - 1 + 37;
	memset(buf + len + 1, 'd', INIT_PATH_MAX - 1);
	len += INIT_PATH_MAX;
	buf[len++] = '\0';
	memcpy(buf + len, "rw", 3);
	len += 3;
	ck_assert_int_eq(init_parse_mounts(buf, len, m, 2, &n, err, sizeof(err)), -EINVAL);
	check_err(err, "long directory");
}
END_TEST

START_TEST(cwd)
{
	static const struct bytes_case cases[] = {
	        {BYTES("/"), 0},
	        {BYTES("/home/u/src"), 0},
	        {BYTES("/home/u/with space/\xc3\xa9"), 0},
	        {BYTES("/a\tb"), 0}, /* the host's directory name, whatever its bytes */
	        {BYTES(""), -EINVAL},
	        {BYTES("src"), -EINVAL},
	        {BYTES("/home/u\n"), -EINVAL},
	        {BYTES("\n"), -EINVAL},
	        {BYTES("/a\0b"), -EINVAL},
	        {BYTES("/a/"), -EINVAL},
	        {BYTES("/a//b"), -EINVAL},
	        {BYTES("/a/../b"), -EINVAL},
	};
	char big[INIT_PATH_MAX + 1];
	char err[256];

	for (unsigned i = 0; i < ARRAY_LEN(cases); i++) {
		int ret;

		err[0] = '\0';
		ret = init_check_cwd(cases[i].data, cases[i].len, err, sizeof(err));
		ck_assert_msg(ret == cases[i].ret, "case %u: %d", i, ret);
		if (ret)
			check_err(err, "cwd");
	}
	memset(big, 'c', sizeof(big));
	big[0] = '/';
	ck_assert_int_eq(init_check_cwd(big, INIT_PATH_MAX - 1, err, sizeof(err)), 0);
	ck_assert_int_eq(init_check_cwd(big, INIT_PATH_MAX, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(cmd)
{
	char *big = malloc(INIT_CMD_MAX + 1);
	char err[256];

	ck_assert_int_eq(init_check_cmd(BYTES("make -C 'a b' check\necho \"$?\"\n"), err, 256), 0);
	ck_assert_int_eq(init_check_cmd(BYTES(""), err, 256), 0);
	ck_assert_int_eq(init_check_cmd(BYTES("true\0false"), err, 256), -EINVAL);
	check_err(err, "cmd");
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', INIT_CMD_MAX + 1);
	ck_assert_int_eq(init_check_cmd(big, INIT_CMD_MAX, err, 256), 0);
	ck_assert_int_eq(init_check_cmd(big, INIT_CMD_MAX + 1, err, 256), -EINVAL);
	check_err(err, "cmd");
	free(big);
}
END_TEST

START_TEST(term)
{
	static const struct bytes_case cases[] = {
	        {BYTES("linux"), 0},
	        {BYTES("xterm-256color"), 0},
	        {BYTES("screen.xterm-256color"), 0},
	        {BYTES("rxvt_unicode+x"), 0},
	        {BYTES("0123456789012345678901234567890123456789012345678901234567890123"), 0},
	        {BYTES("01234567890123456789012345678901234567890123456789012345678901234"),
	         -EINVAL}, /* 65 */
	        {BYTES(""), -EINVAL},
	        {BYTES("xterm\n"), -EINVAL},
	        {BYTES("xterm 256"), -EINVAL},
	        {BYTES("a=b"), -EINVAL},
	        {BYTES("a/b"), -EINVAL},
	        {BYTES("a\0b"), -EINVAL},
	        {BYTES("\xc3\xa9"), -EINVAL},
	};
	char err[256];

	for (unsigned i = 0; i < ARRAY_LEN(cases); i++) {
		int ret;

		err[0] = '\0';
		ret = init_check_term(cases[i].data, cases[i].len, err, sizeof(err));
		ck_assert_msg(ret == cases[i].ret, "case %u: %d", i, ret);
		if (ret)
			check_err(err, "term");
	}
}
END_TEST

/* The records of a --save-ready restore, parsed from a heap copy so ASan sees reads past it. */
static int parse_records(const char *data, size_t len, struct init_record *rec, unsigned *n,
                         char *err)
{
	char *buf = malloc(len ? len : 1);
	int ret;

	ck_assert_ptr_nonnull(buf);
	memcpy(buf, data, len);
	ret = init_parse_records(buf, len, rec, n, err, 256);
	if (ret == 0) /* the records point into buf: check them before it goes */
		for (unsigned i = 0; i < *n; i++)
			ck_assert(rec[i].data >= buf && rec[i].data + rec[i].len <= buf + len);
	free(buf);
	return ret;
}

#define RECORDS_OK "mounts 14\nvmm-root\0/\0ro\0cwd 4\n/srvcmd 6\nexit 3term 5\nxtermend 0\n"

START_TEST(records_good)
{
	static const char whole[] = RECORDS_OK;
	struct init_record rec[INIT_MAX_RECORDS];
	unsigned n = 9;
	char err[256] = "";

	ck_assert_int_eq(parse_records(BYTES(whole), rec, &n, err), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(rec[0].name, "mounts");
	ck_assert_uint_eq(rec[0].len, 14);
	ck_assert_str_eq(rec[1].name, "cwd");
	ck_assert_uint_eq(rec[2].len, 6);
	ck_assert_str_eq(rec[3].name, "term");
	/* Any beginning of it is a correct beginning that needs more bytes. */
	for (size_t len = 0; len < sizeof(whole) - 1; len++) {
		err[0] = '\0';
		ck_assert_msg(parse_records(whole, len, rec, &n, err) == -EAGAIN,
		              "a beginning of %zu bytes: %s", len, err);
	}
	/* term is optional, and the order is free. */
	ck_assert_int_eq(parse_records(BYTES("cmd 0\ncwd 1\n/mounts 14\nvmm-root\0/\0ro\0end 0\n"),
	                               rec, &n, err),
	                 0);
	ck_assert_uint_eq(n, 3);
}
END_TEST

START_TEST(records_bad)
{
	static const struct bytes_case bad[] = {
	        {BYTES(RECORDS_OK "x"), -EINVAL},                   /* bytes after the end */
	        {BYTES("cwd 1\n/cmd 0\nend 0\n"), -EINVAL},         /* no mounts */
	        {BYTES("mounts 0\ncmd 0\nend 0\n"), -EINVAL},       /* no cwd */
	        {BYTES("mounts 0\ncwd 1\n/end 0\n"), -EINVAL},      /* no cmd */
	        {BYTES("cmd 0\ncmd 0\n"), -EINVAL},                 /* twice */
	        {BYTES("shell 0\n"), -EINVAL},                      /* unknown name */
	        {BYTES("cmd\n"), -EINVAL},                          /* no length */
	        {BYTES("cmd \n"), -EINVAL},                         /* empty length */
	        {BYTES("cmd 01\n"), -EINVAL},                       /* leading zero */
	        {BYTES("cmd -1\n"), -EINVAL},                       /* not decimal */
	        {BYTES("cmd 1x\n"), -EINVAL},                       /* not decimal */
	        {BYTES("cmd 1234567890\n"), -EINVAL},               /* 10 digits */
	        {BYTES("cmd 999999999\n"), -EINVAL},                /* over the cmd limit */
	        {BYTES("term 65\n"), -EINVAL},                      /* over the term limit */
	        {BYTES("cwd 4096\n"), -EINVAL},                     /* over the cwd limit */
	        {BYTES("end 1\n"), -EINVAL},                        /* end with a length */
	        {BYTES("\0md 0\n"), -EINVAL},                       /* NUL in the name */
	        {BYTES("cmd 0 \n"), -EINVAL},                       /* trailing space */
	        {BYTES("mounts 12345678901234567890123"), -EINVAL}, /* header over 24 bytes */
	};
	struct init_record rec[INIT_MAX_RECORDS];
	unsigned n;
	char err[256];

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err[0] = '\0';
		n = 7;
		ck_assert_msg(parse_records(bad[i].data, bad[i].len, rec, &n, err) == bad[i].ret,
		              "case %zu", i);
		check_err(err, "records");
		ck_assert_uint_eq(n, 0);
	}
}
END_TEST

START_TEST(records_limits)
{
	/* A cmd of exactly INIT_CMD_MAX bytes is taken; its header says so in 6 digits. */
	size_t len = 0, cap = INIT_CMD_MAX + 64;
	char *buf = malloc(cap);
	struct init_record rec[INIT_MAX_RECORDS];
	unsigned n;
	char err[256];

	ck_assert_ptr_nonnull(buf);
	len += (size_t)sprintf(buf, "mounts 0\ncwd 1\n/cmd %d\n", INIT_CMD_MAX);
	memset(buf + len, 'x', INIT_CMD_MAX);
	len += INIT_CMD_MAX;
	memcpy(buf + len, "end 0\n", 6);
	len += 6;
	ck_assert_int_eq(parse_records(buf, len, rec, &n, err), 0);
	ck_assert_uint_eq(rec[2].len, INIT_CMD_MAX);
	/* One byte short of the whole cmd: more is needed. */
	ck_assert_int_eq(parse_records(buf, len - 7, rec, &n, err), -EAGAIN);
	free(buf);
}
END_TEST

/* What vmm sends (run_records) is what the init takes, field for field. */
START_TEST(records_from_vmm)
{
	static const char mounts[] = "vmm-root\0/\0ro\0data\0/data\0rw\0";
	struct init_record rec[INIT_MAX_RECORDS];
	struct init_mount m[INIT_MAX_MOUNTS];
	unsigned n, nm;
	char err[256] = "", *buf;
	size_t len;

	ck_assert_int_eq(run_records("echo 'a b'\nexit 3", "/srv/x y", "xterm", mounts,
	                             sizeof(mounts) - 1, &buf, &len),
	                 0);
	ck_assert_msg(init_parse_records(buf, len, rec, &n, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(rec[0].name, "mounts");
	ck_assert_int_eq(init_parse_mounts(rec[0].data, rec[0].len, m, INIT_MAX_MOUNTS, &nm, err,
	                                   sizeof(err)),
	                 0);
	ck_assert_uint_eq(nm, 2);
	ck_assert_str_eq(m[1].dir, "/data");
	ck_assert_int_eq(init_check_cwd(rec[1].data, rec[1].len, err, sizeof(err)), 0);
	ck_assert(rec[1].len == 8 && !memcmp(rec[1].data, "/srv/x y", 8));
	ck_assert(rec[2].len == 17 && !memcmp(rec[2].data, "echo 'a b'\nexit 3", 17));
	ck_assert(rec[3].len == 5 && !memcmp(rec[3].data, "xterm", 5));
	free(buf);
}
END_TEST

static Suite *init_config_suite(void)
{
	Suite *s = suite_create("init_config");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, modules_good);
	tcase_add_test(tc, modules_bad);
	tcase_add_test(tc, modules_path_length);
	tcase_add_test(tc, module_flags);
	tcase_add_test(tc, mounts_good);
	tcase_add_test(tc, mounts_bad);
	tcase_add_test(tc, mounts_limits);
	tcase_add_test(tc, cwd);
	tcase_add_test(tc, cmd);
	tcase_add_test(tc, term);
	tcase_add_test(tc, records_good);
	tcase_add_test(tc, records_bad);
	tcase_add_test(tc, records_limits);
	tcase_add_test(tc, records_from_vmm);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(init_config_suite());
}
