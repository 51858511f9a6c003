/*
 * The whole-file reader every user-named file goes through (vmm/boot_image.c): a regular file
 * whole and NUL-terminated, an empty one (an error only for a kernel or initrd); a FIFO (with or
 * without a writer), a directory, a character device and a missing file refused at once with their
 * one-line messages; the size bound; a file that yields fewer bytes than its size (sysfs) and one
 * truncated after loading (a mapping would have died of SIGBUS); kmod_read_file as the same reader
 * with its 64 MiB bound.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/scratch_dir.h"
#include "tests/unit/unit.h"
#include "vmm/boot_image.h"
#include "vmm/kmod.h"

#define SYSFS_SHORT "/sys/kernel/mm/transparent_hugepage/enabled"

static const char *write_file(const char *name, const void *data, size_t len)
{
	const char *path = scratch_path(name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

/* Runs boot_image_map with stderr captured; returns its result and the text in @msg. */
static int map_capturing(const char *what, const char *path, struct boot_image *img, char *msg,
                         size_t msglen)
{
	FILE *tmp = tmpfile();
	int saved = dup(STDERR_FILENO), ret;
	size_t n;

	ck_assert_ptr_nonnull(tmp);
	fflush(stderr);
	dup2(fileno(tmp), STDERR_FILENO);
	ret = boot_image_map(what, path, img);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(tmp);
	n = fread(msg, 1, msglen - 1, tmp);
	msg[n] = '\0';
	fclose(tmp);
	return ret;
}

START_TEST(regular_and_empty)
{
	static const char text[] = "not NUL-terminated on disk";
	uint8_t *buf;
	size_t len;
	struct boot_image img;
	char msg[256];

	scratch_dir_make("vmm-boot-image");
	ck_assert_int_eq(boot_image_read_file(write_file("a", text, 26), 1024, &buf, &len), 0);
	ck_assert_uint_eq(len, 26);
	ck_assert_mem_eq(buf, text, 26);
	ck_assert_uint_eq(buf[26], 0);
	free(buf);
	ck_assert_int_eq(boot_image_read_file(write_file("empty", "", 0), 1024, &buf, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(buf[0], 0);
	free(buf);
	/* The bound: @max bytes are fine, one more is -EFBIG. */
	ck_assert_int_eq(boot_image_read_file(scratch_path("a"), 26, &buf, &len), 0);
	free(buf);
	ck_assert_int_eq(boot_image_read_file(scratch_path("a"), 25, &buf, &len), -EFBIG);
	/* boot_image_map gives a heap copy; unmap frees it and is safe twice. */
	ck_assert_int_eq(map_capturing("kernel", scratch_path("a"), &img, msg, sizeof(msg)), 0);
	ck_assert_str_eq(msg, "");
	ck_assert_uint_eq(img.size, 26);
	ck_assert_mem_eq(img.data, text, 26);
	boot_image_unmap(&img);
	boot_image_unmap(&img);
	ck_assert_ptr_null(img.data);
	/* No kernel or initrd is empty: that is an error for boot_image_map. */
	ck_assert_int_eq(map_capturing("initrd", scratch_path("empty"), &img, msg, sizeof(msg)),
	                 -ENODATA);
	ck_assert_ptr_null(img.data);
	ck_assert_ptr_nonnull(strstr(msg, "empty': the file is empty\n"));
	scratch_dir_remove();
}
END_TEST

/* Nothing but a regular file is read, and none of them makes the open wait. */
START_TEST(not_regular_files)
{
	static const struct {
		const char *name; /* in the scratch dir, or an absolute path */
		int ret;
		const char *message;
	} cases[] = {
	        {"fifo", -EINVAL, "not a regular file (a FIFO)"},
	        {"fifo-with-writer", -EINVAL, "not a regular file (a FIFO)"},
	        {"subdir", -EISDIR, "not a regular file (a directory)"},
	        {"/dev/null", -EINVAL, "not a regular file (a character device)"},
	        {"missing", -ENOENT, "No such file or directory"},
	};
	int writer;

	scratch_dir_make("vmm-boot-image");
	ck_assert_int_eq(mkfifo(scratch_path("fifo"), 0600), 0);
	ck_assert_int_eq(mkfifo(scratch_path("fifo-with-writer"), 0600), 0);
	ck_assert_int_eq(mkdir(scratch_path("subdir"), 0700), 0);
	/* A writer that never writes: a blocking read would wait for it forever. */
	writer = open(scratch_path("fifo-with-writer"), O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(writer, 0);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *path =
		        cases[i].name[0] == '/' ? cases[i].name : scratch_path(cases[i].name);
		struct boot_image img = {(const uint8_t *)"x", 1};
		char msg[512], want[512];
		uint8_t *buf = NULL;
		size_t len = 0;

		ck_assert_msg(boot_image_read_file(path, BOOT_IMAGE_MAX, &buf, &len) ==
		                      cases[i].ret,
		              "%s", path);
		ck_assert_ptr_null(buf);
		ck_assert_int_eq(map_capturing("initrd", path, &img, msg, sizeof(msg)),
		                 cases[i].ret);
		ck_assert_ptr_null(img.data);
		snprintf(want, sizeof(want), "vmm: initrd '%s': %s\n", path, cases[i].message);
		ck_assert_str_eq(msg, want);
	}
	close(writer);
	scratch_dir_remove();
}
END_TEST

/* A regular file whose size promises more than a read gives: sysfs files say 4096 bytes. */
START_TEST(shrinks_while_read)
{
	struct boot_image img;
	struct stat st;
	uint8_t *buf;
	size_t len;
	char msg[256];

	if (stat(SYSFS_SHORT, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 64) {
		fprintf(stderr, "shrinks_while_read: no %s here, skipped\n", SYSFS_SHORT);
		return;
	}
	ck_assert_int_eq(boot_image_read_file(SYSFS_SHORT, BOOT_IMAGE_MAX, &buf, &len), -EIO);
	ck_assert_int_eq(map_capturing("kernel", SYSFS_SHORT, &img, msg, sizeof(msg)), -EIO);
	ck_assert_str_eq(msg, "vmm: kernel '" SYSFS_SHORT "': the file shrank while it was read\n");
}
END_TEST

/* Truncating the file once it is loaded changes nothing: a mapping would die of SIGBUS. */
START_TEST(truncated_after_loading)
{
	static uint8_t data[256 * 1024];
	struct boot_image img;
	char msg[256];
	unsigned sum = 0, want = 0;

	for (size_t i = 0; i < sizeof(data); i++) {
		data[i] = (uint8_t)(i * 7 + (i >> 12));
		want += data[i];
	}
	scratch_dir_make("vmm-boot-image");
	write_file("kernel", data, sizeof(data));
	ck_assert_int_eq(map_capturing("kernel", scratch_path("kernel"), &img, msg, sizeof(msg)),
	                 0);
	ck_assert_int_eq(truncate(scratch_path("kernel"), 0), 0);
	for (size_t i = 0; i < img.size; i++)
		sum += img.data[i];
	ck_assert_uint_eq(img.size, sizeof(data));
	ck_assert_uint_eq(sum, want);
	boot_image_unmap(&img);
	scratch_dir_remove();
}
END_TEST

/* kmod_read_file is the same reader, bounded at 64 MiB (a sparse file is not read at all). */
START_TEST(kmod_reader)
{
	uint8_t *buf;
	size_t len;
	int fd;

	scratch_dir_make("vmm-boot-image");
	ck_assert_int_eq(kmod_read_file(write_file("modules.dep", "a.ko:\n", 6), &buf, &len), 0);
	ck_assert_uint_eq(len, 6);
	ck_assert_str_eq((char *)buf, "a.ko:\n");
	free(buf);
	fd = open(scratch_path("huge.ko"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 64 * MIB + 1), 0);
	close(fd);
	ck_assert_int_eq(kmod_read_file(scratch_path("huge.ko"), &buf, &len), -EFBIG);
	ck_assert_int_eq(mkfifo(scratch_path("fifo.ko"), 0600), 0);
	ck_assert_int_eq(kmod_read_file(scratch_path("fifo.ko"), &buf, &len), -EINVAL);
	scratch_dir_remove();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("boot_image");
	TCase *tc = tcase_create("reader");

	tcase_add_test(tc, regular_and_empty);
	tcase_add_test(tc, not_regular_files);
	tcase_add_test(tc, shrinks_while_read);
	tcase_add_test(tc, truncated_after_loading);
	tcase_add_test(tc, kmod_reader);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
