/*
 * Kernel module resolution against synthetic module trees in temp dirs (load order, dedup,
 * built-ins, errors), and the kernel release read from synthetic kernel images.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/kmod.h"

static const char base_dep[] =
        "kernel/lib/leaf.ko:\n"
        "kernel/lib/mid-dep.ko: kernel/lib/leaf.ko\n"
        "kernel/drivers/top_mod.ko.xz: kernel/lib/mid-dep.ko kernel/lib/leaf.ko\n"
        "\n"
        "kernel/drivers/other.ko.zst: kernel/lib/leaf.ko\n"
        "kernel/fs/shared-user.ko.gz:\tkernel/lib/base.ko kernel/lib/mid-dep.ko "
        "kernel/lib/leaf.ko\n"
        "kernel/lib/base.ko: kernel/lib/leaf.ko\n"
        "kernel/x/wide.ko: kernel/x/d1.ko kernel/x/d2.ko kernel/x/d3.ko\n"
        "kernel/x/d1.ko: kernel/x/d2.ko kernel/x/d3.ko\n"
        "kernel/x/d2.ko: kernel/x/d3.ko\n"
        "kernel/x/d3.ko:";
static const char base_builtin[] = "kernel/drivers/virtio/virtio.ko\n"
                                   "kernel/fs/ext4/ext4.ko\n"
                                   "kernel/drivers/block/virtio-blk.ko\n";

struct tree {
	char dir[64];
};

static void put(const char *dir, const char *file, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	ck_assert_int_eq(fclose(f), 0);
}

/* A temp module dir with @dep as modules.dep and @builtin as modules.builtin (NULL: none). */
static void tree_make(struct tree *t, const char *dep, const char *builtin)
{
	strcpy(t->dir, "/tmp/vmm-test-kmod-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t->dir));
	if (dep)
		put(t->dir, "modules.dep", dep);
	if (builtin)
		put(t->dir, "modules.builtin", builtin);
}

static void tree_remove(struct tree *t)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/modules.dep", t->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/modules.builtin", t->dir);
	unlink(path);
	ck_assert_int_eq(rmdir(t->dir), 0);
}

static void check_list(const struct kmod_list *l, const char *const *want, unsigned nr)
{
	ck_assert_uint_eq(l->nr, nr);
	for (unsigned i = 0; i < nr; i++)
		ck_assert_str_eq(l->paths[i], want[i]);
}

START_TEST(order_dedup_builtin)
{
	static const char *const names[] = {"top-mod", "virtio", "other",     "shared_user",
	                                    "leaf",    "ext4",   "virtio_blk"};
	static const char *const want[] = {
	        "kernel/lib/leaf.ko",           "kernel/lib/mid-dep.ko",
	        "kernel/drivers/top_mod.ko.xz", "kernel/drivers/other.ko.zst",
	        "kernel/lib/base.ko",           "kernel/fs/shared-user.ko.gz",
	};
	struct kmod_list l;
	struct tree t;
	char err[256] = "";

	tree_make(&t, base_dep, base_builtin);
	ck_assert_int_eq(kmod_resolve(t.dir, names, ARRAY_SIZE(names), &l, err, sizeof(err)), 0);
	check_list(&l, want, ARRAY_SIZE(want));
	kmod_list_free(&l);
	ck_assert_ptr_null(l.paths);
	kmod_list_free(&l);
	tree_remove(&t);
}
END_TEST

START_TEST(reverse_listed_order)
{
	static const char *const names[] = {"wide", "d1"};
	static const char *const want[] = {"kernel/x/d3.ko", "kernel/x/d2.ko", "kernel/x/d1.ko",
	                                   "kernel/x/wide.ko"};
	struct kmod_list l;
	struct tree t;
	char err[256];

	tree_make(&t, base_dep, base_builtin);
	ck_assert_int_eq(kmod_resolve(t.dir, names, 2, &l, err, sizeof(err)), 0);
	check_list(&l, want, 4);
	kmod_list_free(&l);
	tree_remove(&t);
}
END_TEST

START_TEST(name_forms)
{
	static const char *const names[] = {"mid_dep",      "top-mod.ko.xz",      "other.ko",
	                                    "leaf.ko.gz",   "shared-user.ko.zst", "virtio-blk",
	                                    "virtio_blk.ko"};
	static const char *const want[] = {
	        "kernel/lib/leaf.ko",           "kernel/lib/mid-dep.ko",
	        "kernel/drivers/top_mod.ko.xz", "kernel/drivers/other.ko.zst",
	        "kernel/lib/base.ko",           "kernel/fs/shared-user.ko.gz",
	};
	struct kmod_list l;
	struct tree t;
	char err[256];

	tree_make(&t, base_dep, base_builtin);
	ck_assert_int_eq(kmod_resolve(t.dir, names, ARRAY_SIZE(names), &l, err, sizeof(err)), 0);
	check_list(&l, want, ARRAY_SIZE(want));
	kmod_list_free(&l);
	/* nothing asked, nothing needed */
	ck_assert_int_eq(kmod_resolve(t.dir, NULL, 0, &l, err, sizeof(err)), 0);
	ck_assert_uint_eq(l.nr, 0);
	kmod_list_free(&l);
	tree_remove(&t);
}
END_TEST

START_TEST(missing_module)
{
	static const char *const names[] = {"leaf", "virtiofs"};
	static const char *const odd[] = {"", "leaf.o", ".ko", "kernel/lib/leaf"};
	struct kmod_list l;
	struct tree t;
	char err[256], want[256];

	tree_make(&t, base_dep, base_builtin);
	ck_assert_int_eq(kmod_resolve(t.dir, names, 2, &l, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "module 'virtiofs' is neither built into the kernel nor in %s",
	         t.dir);
	ck_assert_str_eq(err, want);
	ck_assert_uint_eq(l.nr, 0);
	ck_assert_ptr_null(l.paths);
	for (unsigned i = 0; i < ARRAY_SIZE(odd); i++) {
		ck_assert_int_eq(kmod_resolve(t.dir, &odd[i], 1, &l, err, sizeof(err)), -ENOENT);
		ck_assert_msg(strstr(err, "is neither built into") != NULL, "'%s': %s", odd[i],
		              err);
	}
	/* a tiny or absent err buffer is not overrun */
	ck_assert_int_eq(kmod_resolve(t.dir, names, 2, &l, err, 4), -ENOENT);
	ck_assert_str_eq(err, "mod");
	ck_assert_int_eq(kmod_resolve(t.dir, names, 2, &l, NULL, 0), -ENOENT);
	tree_remove(&t);
}
END_TEST

START_TEST(missing_files)
{
	static const char *const names[] = {"top_mod", "ext4"};
	static const char *const want[] = {"kernel/lib/leaf.ko", "kernel/lib/mid-dep.ko",
	                                   "kernel/drivers/top_mod.ko.xz"};
	struct kmod_list l;
	struct tree t;
	char err[256];

	tree_make(&t, NULL, base_builtin);
	ck_assert_int_eq(kmod_resolve(t.dir, names, 2, &l, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "modules.dep") && strstr(err, t.dir) && strstr(err, "depmod"),
	              "%s", err);
	tree_remove(&t);

	/* no modules.builtin: nothing is built in */
	tree_make(&t, base_dep, NULL);
	ck_assert_int_eq(kmod_resolve(t.dir, names, 1, &l, err, sizeof(err)), 0);
	check_list(&l, want, 3);
	kmod_list_free(&l);
	ck_assert_int_eq(kmod_resolve(t.dir, names, 2, &l, err, sizeof(err)), -ENOENT);
	tree_remove(&t);

	ck_assert_int_eq(kmod_resolve("/nonexistent/vmm-kmod", names, 1, &l, err, sizeof(err)),
	                 -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/vmm-kmod/modules.dep"));
}
END_TEST

/* Resolves "leaf" against a tree with @dep; returns the result, with the error in @err. */
static int resolve_dep(const char *dep, const char *builtin, char *err, size_t errlen)
{
	static const char *const names[] = {"leaf"};
	struct kmod_list l;
	struct tree t;
	int ret;

	tree_make(&t, dep, builtin);
	ret = kmod_resolve(t.dir, names, 1, &l, err, errlen);
	kmod_list_free(&l);
	tree_remove(&t);
	return ret;
}

START_TEST(malformed_lines)
{
	static const struct {
		const char *dep;
		unsigned line;
	} cases[] = {
	        {"kernel/lib/leaf.ko:\nkernel/a.ko:\nkernel/b.ko kernel/c.ko\n", 3},
	        {"kernel/lib/leaf.ko:\n: kernel/a.ko\n", 2},
	        {"kernel/lib/leaf.ko :\n", 1},
	        {"kernel/lib/leaf.ko:\nkernel/a b.ko:\n", 2},
	        {"kernel/lib/leaf.ko:\nkernel/a.o:\n", 2},
	        {"kernel/lib/leaf.ko:\nkernel/a.ko: kernel/b.ko.bz2\n", 2},
	        {"kernel/lib/leaf.ko:\nkernel/a.ko: .ko\n", 2},
	        {"kernel/lib/leaf.ko:\n\n\nkernel/a.ko: kernel/\n", 4},
	};
	char err[256], want[64];

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		ck_assert_int_eq(resolve_dep(cases[i].dep, base_builtin, err, sizeof(err)),
		                 -EINVAL);
		snprintf(want, sizeof(want), "modules.dep:%u: malformed line", cases[i].line);
		ck_assert_msg(strstr(err, want) != NULL, "case %u: %s", i, err);
	}
	ck_assert_int_eq(
	        resolve_dep("kernel/lib/leaf.ko:\n", "kernel/a.ko\nkernel/b.c\n", err, sizeof(err)),
	        -EINVAL);
	ck_assert_msg(strstr(err, "modules.builtin:2: malformed line") != NULL, "%s", err);
	/* CR line ends and blank lines are fine */
	ck_assert_int_eq(resolve_dep("\r\nkernel/lib/leaf.ko:\r\n  \n", "kernel/a.ko\r\n\n", err,
	                             sizeof(err)),
	                 0);
}
END_TEST

START_TEST(paths_must_stay_inside)
{
	static const char *const bad[] = {
	        "kernel/lib/leaf.ko: kernel/../../../etc/evil.ko\n",
	        "kernel/lib/leaf.ko: ../evil.ko\n",
	        "kernel/lib/../leaf.ko:\n",
	        "../kernel/lib/leaf.ko:\n",
	        "kernel/lib/leaf.ko: /lib/modules/6.1.0/kernel/evil.ko\n",
	        "kernel/lib/leaf.ko: kernel/..\n",
	};
	static const char *const names[] = {"abs"};
	static const char *const want[] = {"kernel/lib/leaf.ko", "kernel/abs.ko"};
	char err[256], dep[512];
	struct kmod_list l;
	struct tree t;

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		ck_assert_int_eq(resolve_dep(bad[i], base_builtin, err, sizeof(err)), -EINVAL);
		ck_assert_msg(strstr(err, "modules.dep:1: malformed line") != NULL, "%u: %s", i,
		              err);
	}

	/* absolute paths under the dir are accepted and made relative; a sibling is not under */
	tree_make(&t, "", NULL);
	snprintf(dep, sizeof(dep),
	         "%s/kernel/abs.ko: %s//kernel/lib/leaf.ko\n%s/kernel/lib/leaf.ko:\n", t.dir, t.dir,
	         t.dir);
	put(t.dir, "modules.dep", dep);
	ck_assert_int_eq(kmod_resolve(t.dir, names, 1, &l, err, sizeof(err)), 0);
	check_list(&l, want, 2);
	kmod_list_free(&l);
	snprintf(dep, sizeof(dep), "%s/", t.dir); /* a trailing slash on the dir */
	ck_assert_int_eq(kmod_resolve(dep, names, 1, &l, err, sizeof(err)), 0);
	check_list(&l, want, 2);
	kmod_list_free(&l);
	snprintf(dep, sizeof(dep), "kernel/abs.ko: %sx/kernel/lib/leaf.ko\n", t.dir);
	put(t.dir, "modules.dep", dep);
	ck_assert_int_eq(kmod_resolve(t.dir, names, 1, &l, err, sizeof(err)), -EINVAL);
	tree_remove(&t);
}
END_TEST

/* A buffer of @len bytes with an x86 setup header whose kernel_version points at @at. */
static uint8_t *bzimage(size_t len, uint16_t kver, size_t at, const char *text)
{
	uint8_t *img = calloc(1, len);

	ck_assert_ptr_nonnull(img);
	memcpy(img + 0x202, "HdrS", 4);
	img[0x206] = 0x0f; /* boot protocol 2.15 */
	img[0x207] = 0x02;
	img[0x20e] = (uint8_t)kver;
	img[0x20f] = (uint8_t)(kver >> 8);
	if (text)
		memcpy(img + at, text, strlen(text));
	return img;
}

START_TEST(release_bzimage)
{
	static const char banner[] =
	        "6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC";
	char out[65];
	uint8_t *img;

	img = bzimage(0x4000, 0x3000, 0x3200, banner);
	ck_assert_int_eq(kmod_kernel_release(img, 0x4000, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "6.1.0-28-cloud-amd64");
	ck_assert_int_eq(kmod_kernel_release(img, 0x4000, out, 21), 0);
	ck_assert_int_eq(kmod_kernel_release(img, 0x4000, out, 20), -ERANGE);
	/* the string cut by the end of the image */
	ck_assert_int_eq(kmod_kernel_release(img, 0x3200 + 10, out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(kmod_kernel_release(img, 0x3200, out, sizeof(out)), -ENOENT);
	/* a truncated header */
	ck_assert_int_eq(kmod_kernel_release(img, 0x20f, out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(kmod_kernel_release(img, 0x206, out, sizeof(out)), -ENOENT);
	free(img);

	/* NUL-terminated, and at the very end of the image */
	img = bzimage(0x1000, 0x0df0, 0xff0, "6.1.0-nul");
	ck_assert_int_eq(kmod_kernel_release(img, 0x1000, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "6.1.0-nul");
	free(img);
	img = bzimage(0x1000, 0x0df7, 0xff7, "6.1.0-end");
	ck_assert_int_eq(kmod_kernel_release(img, 0x1000, out, sizeof(out)), -ENOENT);
	free(img);

	/* a pointer past the end, a zero pointer, an empty or unprintable string */
	img = bzimage(0x1000, 0xff00, 0, NULL);
	ck_assert_int_eq(kmod_kernel_release(img, 0x1000, out, sizeof(out)), -ENOENT);
	free(img);
	img = bzimage(0x1000, 0, 0x200, "6.1.0 ");
	ck_assert_int_eq(kmod_kernel_release(img, 0x1000, out, sizeof(out)), -ENOENT);
	free(img);
	img = bzimage(0x1000, 0x400, 0x600, " 6.1.0 ");
	ck_assert_int_eq(kmod_kernel_release(img, 0x1000, out, sizeof(out)), -ENOENT);
	free(img);
	img = bzimage(0x1000, 0x400, 0x600, "6.1\x01.0 ");
	ck_assert_int_eq(kmod_kernel_release(img, 0x1000, out, sizeof(out)), -ENOENT);
	free(img);
}
END_TEST

START_TEST(release_banner)
{
	static const char line[] = "Linux version 6.1.0-x-arm64 (debian-kernel@lists.debian.org) "
	                           "(gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP";
	size_t len = 1 << 16;
	uint8_t *img = malloc(len);
	char out[64];

	ck_assert_ptr_nonnull(img);
	for (size_t i = 0; i < len; i++)
		img[i] = (uint8_t)(i * 131 + 7);
	memcpy(img + 100, "Linux version %s", 16); /* a format string is not the banner */
	memcpy(img + 300, "Linux version ", 14);   /* nor one that runs into garbage */
	memcpy(img + 40000, line, strlen(line));
	ck_assert_int_eq(kmod_kernel_release(img, len, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "6.1.0-x-arm64");
	ck_assert_int_eq(kmod_kernel_release(img, len, out, 6), -ERANGE);
	/* the banner cut by the end of the buffer: mid-release, and right after "version " */
	ck_assert_int_eq(kmod_kernel_release(img, 40000 + 20, out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(kmod_kernel_release(img, 40000 + 14, out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(kmod_kernel_release(img, 40000 + 8, out, sizeof(out)), -ENOENT);
	/* none at all */
	memset(img + 40000, 'x', strlen(line));
	ck_assert_int_eq(kmod_kernel_release(img, len, out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(kmod_kernel_release(img, 0, out, sizeof(out)), -ENOENT);
	ck_assert_int_eq(kmod_kernel_release(NULL, 0, out, sizeof(out)), -ENOENT);
	free(img);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kmod");
	TCase *tc = tcase_create("kmod");

	tcase_add_test(tc, order_dedup_builtin);
	tcase_add_test(tc, reverse_listed_order);
	tcase_add_test(tc, name_forms);
	tcase_add_test(tc, missing_module);
	tcase_add_test(tc, missing_files);
	tcase_add_test(tc, malformed_lines);
	tcase_add_test(tc, paths_must_stay_inside);
	tcase_add_test(tc, release_bzimage);
	tcase_add_test(tc, release_banner);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
