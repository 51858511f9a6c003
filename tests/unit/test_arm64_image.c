/*
 * arm64_load_image: arm64 Image header checks and placement, and raw payloads, into fake guest
 * memory.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/aarch64/boot.h"
#include "arch/aarch64/layout.h"
#include "tests/unit/unit.h"
#include "vmm/memory.h"

#define RAM_BASE ARM64_RAM_BASE
#define RAM_SIZE (32 * MIB)
#define RAM_END  (RAM_BASE + RAM_SIZE)
#define DTB_AT   (RAM_END - 2 * MIB) /* the top 2 MiB block */
#define SENTINEL 0xcc

/* The synthetic Image: a 40 KiB file, and an image_size that is not a page multiple. */
#define IMG_FILE  (40 * KIB + 123)
#define IMG_SIZE  (3 * MIB + 0x1234)
#define IMG_MAX   (64 * KIB)
#define IMG_FLAGS 0xa /* little-endian, 4 KiB pages, anywhere in physical memory */

/* Header field offsets (booting.rst), kept apart from the loader's own. */
#define H_CODE0       0
#define H_TEXT_OFFSET 8
#define H_IMAGE_SIZE  16
#define H_FLAGS       24
#define H_MAGIC       56

static struct guest_memory mem;
static uint8_t img[IMG_MAX];
static size_t img_size;

static void put_le(size_t off, unsigned width, uint64_t val)
{
	for (unsigned i = 0; i < width; i++)
		img[off + i] = (uint8_t)(val >> (8 * i));
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static void image_build(void)
{
	static uint8_t body[IMG_MAX];

	if (!body[1]) /* pattern(1) != 0: the body is built once */
		for (size_t i = 0; i < sizeof(body); i++)
			body[i] = pattern(i);
	memcpy(img, body, sizeof(img));
	put_le(H_CODE0, 4, 0x91005a4d); /* "MZ" + add: what EFI-stub kernels start with */
	put_le(H_TEXT_OFFSET, 8, 0);
	put_le(H_IMAGE_SIZE, 8, IMG_SIZE);
	put_le(H_FLAGS, 8, IMG_FLAGS);
	for (size_t off = 32; off < H_MAGIC; off += 8)
		put_le(off, 8, 0); /* res2..res4 */
	put_le(H_MAGIC, 4, 0x644d5241);
	img_size = IMG_FILE;
}

static void fill_ram(const struct guest_memory *m)
{
	memset(m->regions[0].host, SENTINEL, m->regions[0].size);
}

static void setup(void)
{
	memset(&mem, 0, sizeof(mem));
	ck_assert_int_eq(guest_memory_add(&mem, RAM_BASE, RAM_SIZE), 0);
	fill_ram(&mem);
	image_build();
}

static void teardown(void)
{
	guest_memory_free(&mem);
}

static int load(const struct guest_memory *m, const uint8_t *initrd, size_t initrd_size,
                struct arm64_boot_info *info, const char **reason)
{
	return arm64_load_image(m, &(struct boot_image){img, img_size},
	                        &(struct boot_image){initrd, initrd_size}, info, reason);
}

/* True when [gpa, gpa + len) holds only @byte. */
static int all_bytes(const struct guest_memory *m, uint64_t gpa, uint64_t len, uint8_t byte)
{
	static uint8_t want[64 * KIB];
	const uint8_t *p = gpa_to_hva(m, gpa, len);

	ck_assert_ptr_nonnull(p);
	memset(want, byte, sizeof(want));
	for (uint64_t done = 0, n; done < len; done += n) {
		n = MIN(len - done, sizeof(want));
		if (memcmp(p + done, want, n))
			return 0;
	}
	return 1;
}

static void check_kernel(const struct guest_memory *m, const struct arm64_boot_info *info)
{
	const uint8_t *got = gpa_to_hva(m, info->entry, IMG_SIZE);

	ck_assert_ptr_nonnull(got);
	ck_assert_mem_eq(got, img, img_size);
	ck_assert(all_bytes(m, info->entry + img_size, IMG_SIZE - img_size, 0)); /* BSS */
}

static void check_initrd(const struct guest_memory *m, const struct arm64_boot_info *info,
                         const uint8_t *data, size_t size)
{
	const uint8_t *got = gpa_to_hva(m, info->initrd_start, size);

	ck_assert_uint_eq(info->initrd_size, size);
	ck_assert_uint_eq(info->initrd_start % (4 * KIB), 0);
	ck_assert_ptr_nonnull(got);
	ck_assert_mem_eq(got, data, size);
}

/* Kernel, initrd and device tree slot are disjoint, in that order, all inside RAM. */
static void check_layout(const struct guest_memory *m, const struct arm64_boot_info *info)
{
	uint64_t base = m->regions[0].gpa, end = base + m->regions[0].size;

	ck_assert_uint_eq(info->dtb_addr % (2 * MIB), 0);
	ck_assert_uint_le(info->dtb_addr + ARM64_FDT_MAX_SIZE, end);
	ck_assert_uint_gt(info->dtb_addr + 2 * ARM64_FDT_MAX_SIZE, end); /* the highest block */
	ck_assert_uint_ge(info->entry, base);
	if (info->initrd_size) {
		ck_assert_uint_ge(info->initrd_start, info->entry + IMG_SIZE);
		ck_assert_uint_le(info->initrd_start + info->initrd_size, info->dtb_addr);
	} else {
		ck_assert_uint_eq(info->initrd_start, 0);
		ck_assert_uint_le(info->entry + IMG_SIZE, info->dtb_addr);
	}
}

START_TEST(image_loads_at_ram_base)
{
	static uint8_t initrd[5000];
	struct arm64_boot_info info;
	const char *reason = "unset";

	for (size_t i = 0; i < sizeof(initrd); i++)
		initrd[i] = (uint8_t)(i ^ 0x5a);
	ck_assert_int_eq(load(&mem, initrd, sizeof(initrd), &info, &reason), 0);
	ck_assert_ptr_null(reason);
	ck_assert_uint_eq(info.entry, RAM_BASE);
	ck_assert_uint_eq(info.dtb_addr, DTB_AT);
	ck_assert_uint_eq(info.initrd_start, ALIGN_DOWN(DTB_AT - sizeof(initrd), 4 * KIB));
	check_kernel(&mem, &info);
	check_initrd(&mem, &info, initrd, sizeof(initrd));
	check_layout(&mem, &info);
	/* Nothing written past the kernel but the initrd. */
	ck_assert(all_bytes(&mem, RAM_BASE + IMG_SIZE, info.initrd_start - RAM_BASE - IMG_SIZE,
	                    SENTINEL));
	ck_assert(all_bytes(&mem, DTB_AT, 2 * MIB, SENTINEL));
}
END_TEST

START_TEST(text_offset_honoured)
{
	struct arm64_boot_info info;
	const char *reason;

	put_le(H_TEXT_OFFSET, 8, 0x80000);
	ck_assert_int_eq(load(&mem, NULL, 0, &info, &reason), 0);
	ck_assert_uint_eq(info.entry, RAM_BASE + 0x80000);
	check_kernel(&mem, &info);
	check_layout(&mem, &info);
	ck_assert(all_bytes(&mem, RAM_BASE, 0x80000, SENTINEL)); /* below the Image: untouched */

	/* The largest meaningful offset: the last page of the 2 MiB block. */
	put_le(H_TEXT_OFFSET, 8, 2 * MIB - 4 * KIB);
	ck_assert_int_eq(load(&mem, NULL, 0, &info, &reason), 0);
	ck_assert_uint_eq(info.entry, RAM_BASE + 2 * MIB - 4 * KIB);
	check_kernel(&mem, &info);
}
END_TEST

START_TEST(no_initrd)
{
	struct arm64_boot_info info;
	const char *reason;

	ck_assert_int_eq(
	        arm64_load_image(&mem, &(struct boot_image){img, img_size}, NULL, &info, &reason),
	        0);
	ck_assert_uint_eq(info.initrd_start, 0);
	ck_assert_uint_eq(info.initrd_size, 0);
	check_layout(&mem, &info);
	/* A file exactly image_size long has no BSS. */
	put_le(H_IMAGE_SIZE, 8, img_size);
	ck_assert_int_eq(load(&mem, NULL, 0, &info, NULL), 0);
	ck_assert_mem_eq(gpa_to_hva(&mem, RAM_BASE, img_size), img, img_size);
}
END_TEST

/* Any 2 MiB aligned base works, and a RAM size that is not a 2 MiB multiple. */
START_TEST(other_ram_bases)
{
	static const uint64_t bases[] = {0, 1 * GIB, 2 * MIB};
	static const uint8_t initrd[4096 * 2 + 1] = {1, 2, 3};
	const uint64_t size = 33 * MIB + 64 * KIB; /* a page multiple even with 64 KiB pages */

	for (unsigned i = 0; i < ARRAY_SIZE(bases); i++) {
		struct guest_memory m = {0};
		struct arm64_boot_info info;
		const char *reason;

		ck_assert_int_eq(guest_memory_add(&m, bases[i], size), 0);
		fill_ram(&m);
		ck_assert_int_eq(load(&m, initrd, sizeof(initrd), &info, &reason), 0);
		ck_assert_uint_eq(info.entry, bases[i]);
		ck_assert_uint_eq(info.dtb_addr, bases[i] + 30 * MIB);
		check_kernel(&m, &info);
		check_initrd(&m, &info, initrd, sizeof(initrd));
		check_layout(&m, &info);
		guest_memory_free(&m);
	}
}
END_TEST

/* The initrd may fill the whole gap between the kernel's end (page aligned) and the DTB. */
START_TEST(initrd_fills_the_gap)
{
	const uint64_t gap_start = RAM_BASE + ALIGN_UP(IMG_SIZE, 4 * KIB);
	const size_t gap = DTB_AT - gap_start;
	uint8_t *initrd = malloc(gap + 1);
	struct arm64_boot_info info;
	const char *reason;

	ck_assert_ptr_nonnull(initrd);
	memset(initrd, 0x77, gap + 1);
	ck_assert_int_eq(load(&mem, initrd, gap, &info, &reason), 0);
	ck_assert_uint_eq(info.initrd_start, gap_start);
	check_initrd(&mem, &info, initrd, gap);
	check_layout(&mem, &info);
	ck_assert_int_eq(load(&mem, initrd, gap + 1, &info, &reason), -ENOSPC);
	free(initrd);
}
END_TEST

/* The kernel may reach right up to the DTB slot. */
START_TEST(kernel_up_to_the_dtb)
{
	struct arm64_boot_info info;
	const char *reason;

	put_le(H_IMAGE_SIZE, 8, DTB_AT - RAM_BASE);
	ck_assert_int_eq(load(&mem, NULL, 0, &info, &reason), 0);
	ck_assert_uint_eq(info.dtb_addr, DTB_AT);
	ck_assert(all_bytes(&mem, RAM_BASE + img_size, DTB_AT - RAM_BASE - img_size, 0));
	ck_assert(all_bytes(&mem, DTB_AT, 2 * MIB, SENTINEL));
}
END_TEST

/* booting.rst: kernel and initrd within one 1 GiB aligned window of at most 32 GiB. */
START_TEST(initrd_stays_in_32g_window)
{
	static const uint8_t initrd[4096] = {9};
	struct guest_memory m = {0};
	struct arm64_boot_info info;
	const char *reason;
	int ret = guest_memory_add(&m, RAM_BASE, 40 * GIB); /* untouched pages cost nothing */

	if (ret == -ENOMEM) {
		fprintf(stderr, "initrd_stays_in_32g_window: skipped, cannot map 40 GiB\n");
		return;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(load(&m, initrd, sizeof(initrd), &info, &reason), 0);
	ck_assert_uint_eq(info.dtb_addr, RAM_BASE + 40 * GIB - 2 * MIB);
	ck_assert_uint_eq(info.initrd_start, ALIGN_DOWN(RAM_BASE, GIB) + 32 * GIB - 4096);
	check_initrd(&m, &info, initrd, sizeof(initrd));
	guest_memory_free(&m);
}
END_TEST

/*
 * Files without the Image header are raw payloads, as kvmtool loads them: at RAM base +
 * 0x80000, the file as it is and nothing after it, the device tree where an Image's goes; too
 * big for RAM, or reaching the device tree's block, is still refused.
 */
START_TEST(raw_payloads)
{
	static uint8_t big[RAM_SIZE];
	const uint64_t at = RAM_BASE + 0x80000;
	struct arm64_boot_info info;
	const char *reason = NULL;

	put_le(H_MAGIC, 4, 0x644d5242); /* not "ARM\x64" */
	ck_assert_int_eq(load(&mem, NULL, 0, &info, &reason), 0);
	ck_assert(info.raw);
	ck_assert_uint_eq(info.entry, at);
	ck_assert_uint_eq(info.dtb_addr, DTB_AT);
	ck_assert_mem_eq(gpa_to_hva(&mem, at, img_size), img, img_size);
	ck_assert(all_bytes(&mem, at + img_size, 4096, SENTINEL));
	ck_assert(all_bytes(&mem, RAM_BASE, 0x80000, SENTINEL));

	fill_ram(&mem);
	img_size = 7; /* shorter than an Image header: a few instructions */
	ck_assert_int_eq(load(&mem, NULL, 0, &info, &reason), 0);
	ck_assert(info.raw);
	ck_assert_mem_eq(gpa_to_hva(&mem, at, 7), img, 7);
	ck_assert(all_bytes(&mem, at + 7, 4096, SENTINEL));

	image_build(); /* an Image is not raw */
	ck_assert_int_eq(load(&mem, NULL, 0, &info, &reason), 0);
	ck_assert(!info.raw);

	memset(big, 0x5a, sizeof(big));
	for (uint64_t size = RAM_SIZE - 0x80000 + 1, i = 0; i < 2; i++, size = DTB_AT - at + 1) {
		ck_assert_int_eq(arm64_load_image(&mem, &(struct boot_image){big, size}, NULL,
		                                  &info, &reason),
		                 -ENOSPC);
		ck_assert_ptr_nonnull(reason);
		ck_assert(
		        strstr(reason, i ? "no room for the device tree" : "does not fit in RAM"));
	}
}
END_TEST

/* The bad-input table: the synthetic Image with up to two patches, a size cut, an initrd. */
enum base { BASE_IMAGE, BASE_EMPTY, BASE_NULL };
enum ram { RAM_OK, RAM_MISALIGNED, RAM_NONE };

struct patch {
	size_t off;
	unsigned width;
	uint64_t val;
};

/* One row per bad input; clang-format would put every field on its own line. */
/* clang-format off */
static const struct bad_case {
	const char *what;
	enum base base;
	struct patch patch[2];
	size_t size;         /* cut the file to this size; 0 keeps it */
	uint64_t initrd_size;
	enum ram ram;
	int err;
	const char *reason;
} bad_cases[] = {
	{"empty file", BASE_EMPTY, {{0}}, 0, 0, RAM_OK, -ENOEXEC, "empty"},
	{"no data", BASE_NULL, {{0}}, 0, 0, RAM_OK, -ENOEXEC, "empty"},
	{"gzip", BASE_IMAGE, {{0, 2, 0x8b1f}}, 0, 0, RAM_OK, -ENOEXEC, "gunzip"},
	{"gzip, 2 bytes", BASE_IMAGE, {{0, 2, 0x8b1f}}, 2, 0, RAM_OK, -ENOEXEC, "gunzip"},
	{"ELF", BASE_IMAGE, {{0, 4, 0x464c457f}}, 0, 0, RAM_OK, -ENOEXEC, "ELF vmlinux"},
	{"EFI zboot", BASE_IMAGE, {{0, 2, 0x5a4d}, {4, 4, 0x676d697a}}, 0, 0, RAM_OK, -ENOEXEC,
	 "zboot"},
	{"big-endian", BASE_IMAGE, {{H_FLAGS, 8, IMG_FLAGS | 1}}, 0, 0, RAM_OK, -ENOEXEC,
	 "big-endian"},
	{"image_size 0", BASE_IMAGE, {{H_IMAGE_SIZE, 8, 0}}, 0, 0, RAM_OK, -ENOEXEC,
	 "no image_size"},
	{"text_offset not page aligned", BASE_IMAGE, {{H_TEXT_OFFSET, 8, 0x80800}}, 0, 0, RAM_OK,
	 -ENOEXEC, "text_offset"},
	{"text_offset 2 MiB", BASE_IMAGE, {{H_TEXT_OFFSET, 8, 2 * MIB}}, 0, 0, RAM_OK, -ENOEXEC,
	 "text_offset"},
	{"text_offset huge", BASE_IMAGE, {{H_TEXT_OFFSET, 8, UINT64_MAX & ~0xfffULL}}, 0, 0,
	 RAM_OK, -ENOEXEC, "text_offset"},
	{"file > image_size", BASE_IMAGE, {{H_IMAGE_SIZE, 8, IMG_FILE - 1}}, 0, 0, RAM_OK,
	 -ENOEXEC, "larger than the header's image_size"},
	{"image_size > RAM", BASE_IMAGE, {{H_IMAGE_SIZE, 8, RAM_SIZE + 1}}, 0, 0, RAM_OK, -ENOSPC,
	 "does not fit in RAM"},
	{"image_size wraps", BASE_IMAGE, {{H_IMAGE_SIZE, 8, UINT64_MAX}, {H_TEXT_OFFSET, 8, 4096}},
	 0, 0, RAM_OK, -ENOSPC, "does not fit in RAM"},
	{"text_offset pushes kernel out", BASE_IMAGE,
	 {{H_IMAGE_SIZE, 8, RAM_SIZE - 4096}, {H_TEXT_OFFSET, 8, 8192}}, 0, 0, RAM_OK, -ENOSPC,
	 "does not fit in RAM"},
	{"no room for the DTB", BASE_IMAGE, {{H_IMAGE_SIZE, 8, DTB_AT - RAM_BASE + 1}}, 0, 0,
	 RAM_OK, -ENOSPC, "no room for the device tree"},
	{"kernel fills RAM", BASE_IMAGE, {{H_IMAGE_SIZE, 8, RAM_SIZE}}, 0, 0, RAM_OK, -ENOSPC,
	 "no room for the device tree"},
	{"initrd too big for the gap", BASE_IMAGE, {{0}}, 0, DTB_AT - RAM_BASE - 3 * MIB, RAM_OK,
	 -ENOSPC, "initrd does not fit"},
	{"initrd bigger than RAM", BASE_IMAGE, {{0}}, 0, 2 * RAM_SIZE, RAM_OK, -ENOSPC,
	 "initrd does not fit"},
	{"initrd, kernel up to the DTB", BASE_IMAGE, {{H_IMAGE_SIZE, 8, DTB_AT - RAM_BASE}}, 0, 1,
	 RAM_OK, -ENOSPC, "initrd does not fit"},
	{"RAM not 2 MiB aligned", BASE_IMAGE, {{0}}, 0, 0, RAM_MISALIGNED, -EINVAL, "2 MiB"},
	{"no RAM", BASE_IMAGE, {{0}}, 0, 0, RAM_NONE, -EINVAL, "no guest RAM"},
};
/* clang-format on */

static void prepare_ram(enum ram ram)
{
	if (ram == RAM_OK)
		return;
	guest_memory_free(&mem);
	if (ram == RAM_MISALIGNED) {
		ck_assert_int_eq(guest_memory_add(&mem, RAM_BASE + 1 * MIB, RAM_SIZE), 0);
		fill_ram(&mem);
	}
}

START_TEST(bad_inputs)
{
	const struct bad_case *c = &bad_cases[_i];
	uint8_t *initrd = malloc(c->initrd_size + 1);
	const struct arm64_boot_info untouched = {0xdead, 0xbeef, 0xf00d, 0xcafe, true};
	struct arm64_boot_info info = untouched;
	struct boot_image kernel = {img, img_size};
	const char *reason = NULL;
	int ret;

	ck_assert_ptr_nonnull(initrd);
	memset(initrd, 0x33, c->initrd_size + 1);
	prepare_ram(c->ram);
	for (unsigned i = 0; i < ARRAY_SIZE(c->patch); i++)
		put_le(c->patch[i].off, c->patch[i].width, c->patch[i].val);
	if (c->size)
		kernel.size = c->size;
	if (c->base != BASE_IMAGE)
		kernel = (struct boot_image){c->base == BASE_EMPTY ? img : NULL, 0};
	ret = arm64_load_image(&mem, &kernel, &(struct boot_image){initrd, c->initrd_size}, &info,
	                       &reason);
	ck_assert_msg(ret == c->err, "%s: got %d, want %d", c->what, ret, c->err);
	ck_assert_msg(reason && strstr(reason, c->reason), "%s: reason '%s', want '%s'", c->what,
	              reason ? reason : "(null)", c->reason);
	ck_assert_msg(!strchr(reason, '\n'), "%s: reason has a newline", c->what);
	ck_assert_msg(!memcmp(&info, &untouched, sizeof(info)), "%s: out written", c->what);
	if (mem.nr_regions)
		ck_assert_msg(all_bytes(&mem, mem.regions[0].gpa, RAM_SIZE, SENTINEL),
		              "%s: guest memory written", c->what);
	free(initrd);
}
END_TEST

START_TEST(initrd_without_data)
{
	struct arm64_boot_info info = {0};
	const char *reason = NULL;

	ck_assert_int_eq(load(&mem, NULL, 4096, &info, &reason), -EINVAL);
	ck_assert_ptr_nonnull(reason);
	ck_assert(all_bytes(&mem, RAM_BASE, RAM_SIZE, SENTINEL));
	ck_assert_int_eq(
	        arm64_load_image(NULL, &(struct boot_image){img, img_size}, NULL, &info, &reason),
	        -EINVAL);
}
END_TEST

/* Random byte changes in the header must give 0 or an error with a reason, never a crash. */
START_TEST(mutated_headers_never_crash)
{
	static uint8_t initrd[3 * 4096];
	unsigned seed = 1;

	for (unsigned round = 0; round < 4000; round++) {
		struct arm64_boot_info info;
		const char *reason = NULL;
		int ret;

		image_build();
		put_le(H_IMAGE_SIZE, 8, IMG_MAX); /* keep successful loads cheap */
		for (unsigned n = 0; n < 1 + round % 6; n++)
			img[(size_t)rand_r(&seed) % 64] = (uint8_t)rand_r(&seed);
		if (rand_r(&seed) % 4 == 0)
			img_size = (size_t)rand_r(&seed) % (img_size + 1);
		ret = load(&mem, initrd, sizeof(initrd), &info, &reason);
		ck_assert(ret == 0 || (ret < 0 && reason));
		if (ret == 0)
			ck_assert(info.dtb_addr >= info.initrd_start + sizeof(initrd));
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("arm64_image");
	TCase *tc = tcase_create("arm64_image");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, image_loads_at_ram_base);
	tcase_add_test(tc, text_offset_honoured);
	tcase_add_test(tc, no_initrd);
	tcase_add_test(tc, other_ram_bases);
	tcase_add_test(tc, initrd_fills_the_gap);
	tcase_add_test(tc, kernel_up_to_the_dtb);
	tcase_add_test(tc, initrd_stays_in_32g_window);
	tcase_add_test(tc, raw_payloads);
	tcase_add_loop_test(tc, bad_inputs, 0, (int)ARRAY_SIZE(bad_cases));
	tcase_add_test(tc, initrd_without_data);
	tcase_add_test(tc, mutated_headers_never_crash);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
