/*
 * arm64 Image loader, and raw payloads (a file without the Image header, as kvmtool loads
 * them: at RAM base + 0x80000, run from its first byte). The 64-byte header (booting.rst, "Call the
 * kernel image") is, little endian: code0, code1 (u32), text_offset, image_size, flags, res2, res3,
 * res4 (u64), magic "ARM\x64" (u32), res5 (u32, PE header offset). Two phases: check the file and
 * decide where everything goes, then write.
 */
#include "arch/aarch64/boot.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "arch/aarch64/layout.h"

#define IMG_HDR_SIZE        64
#define IMG_TEXT_OFFSET     8
#define IMG_IMAGE_SIZE      16
#define IMG_FLAGS           24
#define IMG_MAGIC           56
#define IMG_MAGIC_VALUE     0x644d5241U /* "ARM\x64" */
#define IMG_FLAG_BE         (1ULL << 0) /* bits 1-2 (page size) and 3 (placement) are hints */
#define IMG_KERNEL_ALIGN    (2 * MIB)   /* the Image goes text_offset above a 2 MiB boundary */
#define IMG_PAGE            (4 * KIB)
#define INITRD_WINDOW_ALIGN (1 * GIB)  /* initrd and kernel in one 1 GiB aligned window... */
#define INITRD_WINDOW_SIZE  (32 * GIB) /* ...of at most 32 GiB */
#define RAW_PAYLOAD_OFFSET  0x80000    /* where kvmtool puts a file without an Image header */

/* What has been checked so far, and the reason for the first failure. */
struct a64_load {
	const struct guest_memory *mem;
	const uint8_t *kernel; /* the whole file; contents untrusted */
	size_t kernel_size;
	const uint8_t *initrd; /* NULL when initrd_size is 0 */
	uint64_t initrd_size;
	uint64_t text_offset;
	uint64_t image_size;
	uint64_t ram_base, ram_end;
	bool raw; /* no Image header: a raw payload */
	const char *reason;
};

static int fail(struct a64_load *l, int err, const char *reason)
{
	l->reason = reason;
	return err;
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;

	while (bytes--)
		v = (v << 8) | p[bytes];
	return v;
}

static int has_prefix(const struct a64_load *l, size_t off, const char *magic, size_t len)
{
	return l->kernel_size >= off + len && !memcmp(l->kernel + off, magic, len);
}

/*
 * Recognises the files people mistake for an Image before looking for the Image magic; a file
 * that is none of them and has no Image header is a raw payload.
 */
static int check_format(struct a64_load *l)
{
	if (has_prefix(l, 0, "\x1f\x8b", 2))
		return fail(l, -ENOEXEC,
		            "gzip-compressed: decompress it (e.g. Debian's /boot/vmlinuz-*) "
		            "with gunzip to get the Image");
	if (has_prefix(l, 0, "\177ELF", 4))
		return fail(l, -ENOEXEC, "an ELF vmlinux: boot arch/arm64/boot/Image instead");
	/* CONFIG_EFI_ZBOOT's vmlinuz.efi: a PE file with "zimg" after "MZ" and no Image magic. */
	if (has_prefix(l, 0, "MZ", 2) && has_prefix(l, 4, "zimg", 4))
		return fail(l, -ENOEXEC,
		            "an EFI zboot image (vmlinuz.efi): boot the uncompressed "
		            "arch/arm64/boot/Image instead");
	l->raw = l->kernel_size < IMG_HDR_SIZE ||
	         get_le(l->kernel + IMG_MAGIC, 4) != IMG_MAGIC_VALUE;
	return 0;
}

static int check_header(struct a64_load *l)
{
	uint64_t flags;

	if (l->raw) { /* run from its first byte, nothing after it to clear */
		l->text_offset = RAW_PAYLOAD_OFFSET;
		l->image_size = l->kernel_size;
		return 0;
	}
	flags = get_le(l->kernel + IMG_FLAGS, 8);
	l->text_offset = get_le(l->kernel + IMG_TEXT_OFFSET, 8);
	l->image_size = get_le(l->kernel + IMG_IMAGE_SIZE, 8);
	if (flags & IMG_FLAG_BE)
		return fail(l, -ENOEXEC, "big-endian kernel: vmm runs little-endian guests only");
	/* Before 3.17 image_size was 0 and text_offset of unspecified endianness. */
	if (l->image_size == 0)
		return fail(l, -ENOEXEC,
		            "no image_size in the header (Linux before 3.17): not supported");
	/*
	 * 0x80000 until 5.8, 0 since; ARM64_RANDOMIZE_TEXT_OFFSET picked page multiples below
	 * 2 MiB. Anything else is not an offset within the 2 MiB block.
	 */
	if (l->text_offset % IMG_PAGE || l->text_offset >= IMG_KERNEL_ALIGN)
		return fail(l, -ENOEXEC, "bad text_offset: not a 4 KiB multiple below 2 MiB");
	if (l->kernel_size > l->image_size)
		return fail(l, -ENOEXEC,
		            "file is larger than the header's image_size: corrupt Image");
	return 0;
}

static int find_ram(struct a64_load *l)
{
	const struct mem_region *r = &l->mem->regions[0];

	if (l->mem->nr_regions == 0 || r->size == 0 || add_overflows(r->gpa, r->size, &l->ram_end))
		return fail(l, -EINVAL, "no guest RAM region");
	if (r->gpa % IMG_KERNEL_ALIGN)
		return fail(l, -EINVAL, "guest RAM does not start on a 2 MiB boundary");
	l->ram_base = r->gpa;
	return 0;
}

/* The initrd's highest page-aligned place in [lo, top), or -ENOSPC. */
static int place_initrd(struct a64_load *l, uint64_t lo, uint64_t top, uint64_t *start)
{
	*start = 0;
	if (l->initrd_size == 0)
		return 0;
	if (top < lo || l->initrd_size > top - lo)
		return fail(l, -ENOSPC,
		            "initrd does not fit in RAM between the kernel and the device tree");
	*start = ALIGN_DOWN(top - l->initrd_size, IMG_PAGE); /* >= lo: lo is page aligned */
	return 0;
}

/*
 * Kernel at ram_base + text_offset: the 2 MiB aligned base as close to the start of RAM as
 * possible, which booting.rst asks of kernels without flag bit 3 and which suits those with
 * it while RAM ends below 2^48. The device tree goes in the top 2 MiB block (kernels before 4.2
 * wanted it within 512 MiB of the kernel; those are not catered for), the initrd below it.
 */
static int place(struct a64_load *l, struct arm64_boot_info *info)
{
	uint64_t ram_size = l->ram_end - l->ram_base;
	uint64_t kernel_end, window_end;
	int ret;

	/* No wrap: ram_base is 2 MiB aligned with RAM above it, text_offset is below 2 MiB. */
	info->entry = l->ram_base + l->text_offset;
	if (!range_within(info->entry, l->image_size, l->ram_base, ram_size))
		return fail(l, -ENOSPC, "kernel does not fit in RAM");
	kernel_end = info->entry + l->image_size;
	if (ram_size < ARM64_FDT_MAX_SIZE)
		return fail(l, -ENOSPC, "kernel leaves no room for the device tree");
	info->dtb_addr = ALIGN_DOWN(l->ram_end - ARM64_FDT_MAX_SIZE, ARM64_FDT_MAX_SIZE);
	if (info->dtb_addr < kernel_end)
		return fail(l, -ENOSPC, "kernel leaves no room for the device tree");
	if (add_overflows(ALIGN_DOWN(info->entry, INITRD_WINDOW_ALIGN), INITRD_WINDOW_SIZE,
	                  &window_end))
		window_end = UINT64_MAX;
	/* ALIGN_UP cannot wrap: kernel_end <= dtb_addr, which is 2 MiB aligned. */
	ret = place_initrd(l, ALIGN_UP(kernel_end, IMG_PAGE), MIN(info->dtb_addr, window_end),
	                   &info->initrd_start);
	info->initrd_size = l->initrd_size;
	return ret;
}

/* Everything fits: the file, zeroes up to image_size (the region may be reused), the initrd. */
static int write_guest(struct a64_load *l, const struct arm64_boot_info *info)
{
	uint64_t bss_size = l->image_size - l->kernel_size;
	uint8_t *kernel = gpa_to_hva(l->mem, info->entry, l->image_size);

	/* place() checked both ranges against the RAM region: these cannot fail. */
	if (!kernel)
		return fail(l, -EFAULT, "cannot write the kernel to guest memory");
	memcpy(kernel, l->kernel, l->kernel_size);
	memset(kernel + l->kernel_size, 0, bss_size);
	if (l->initrd_size && guest_write(l->mem, info->initrd_start, l->initrd, l->initrd_size))
		return fail(l, -EFAULT, "cannot write the initrd to guest memory");
	return 0;
}

static int gather(struct a64_load *l, const struct guest_memory *mem,
                  const struct boot_image *kernel, const struct boot_image *initrd)
{
	*l = (struct a64_load){.mem = mem};
	if (!mem)
		return fail(l, -EINVAL, "no guest RAM region");
	if (!kernel || !kernel->data || kernel->size == 0)
		return fail(l, -ENOEXEC, "kernel image is empty");
	l->kernel = kernel->data;
	l->kernel_size = kernel->size;
	if (initrd && initrd->size) {
		if (!initrd->data)
			return fail(l, -EINVAL, "initrd has no data");
		l->initrd = initrd->data;
		l->initrd_size = initrd->size;
	}
	return 0;
}

int arm64_load_image(const struct guest_memory *mem, const struct boot_image *kernel,
                     const struct boot_image *initrd, struct arm64_boot_info *out,
                     const char **reason)
{
	struct a64_load l;
	struct arm64_boot_info info = {0};
	int ret;

	if (!(ret = gather(&l, mem, kernel, initrd)) && !(ret = check_format(&l)) &&
	    !(ret = check_header(&l)) && !(ret = find_ram(&l)) && !(ret = place(&l, &info)))
		ret = write_guest(&l, &info);
	if (reason)
		*reason = ret ? l.reason : NULL;
	info.raw = l.raw;
	if (!ret && out)
		*out = info;
	return ret;
}
