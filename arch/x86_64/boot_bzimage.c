/*
 * Linux bzImage loader (Documentation/arch/x86/boot.rst), 64-bit entry only: boot protocol
 * 2.12 or later with XLF_KERNEL_64. The protected-mode code is loaded high, the real-mode
 * setup code is not loaded at all; the zero page gets the kernel's setup header plus the
 * loader fields, and the vCPU enters at load address + 0x200 in long mode.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "arch/x86_64/boot_internal.h"
#include "arch/x86_64/layout.h"

#define BZ_HDR_OFFSET    0x1f1 /* struct setup_header in the file and in boot_params */
#define BZ_JUMP_OFFSET   0x201 /* second byte of the jump: header length past 0x202 */
#define BZ_MAGIC_OFFSET  0x202
#define BZ_ENTRY64       0x200 /* 64-bit entry, from the start of the protected-mode code */
#define BZ_HEAP_END      0xfe00
#define BZ_SECTOR        512
#define BZ_DEFAULT_SECTS 4          /* setup_sects 0 means 4 */
#define BZ_DEFAULT_LIMIT 0x37FFFFFF /* initrd_addr_max when the kernel gives none */

/* End of the header fields we rely on (init_size, protocol 2.10+), as a file offset. */
#define BZ_HDR_NEEDED_END                                                                          \
	(BZ_HDR_OFFSET + offsetof(struct setup_header, init_size) + sizeof(uint32_t))

_Static_assert(offsetof(struct boot_params, hdr) == BZ_HDR_OFFSET, "setup header offset");
_Static_assert(sizeof(struct boot_params) == 4096, "zero page size");

/* The validated facts about one bzImage, and where it goes. */
struct bz_kernel {
	struct setup_header hdr; /* as in the file, zero past the header's declared length */
	uint64_t code_offset;    /* protected-mode code in the file */
	uint64_t code_size;
	uint64_t load;      /* guest-physical load address of the protected-mode code */
	uint64_t footprint; /* bytes the kernel needs from load: max(init_size, code_size) */
	uint64_t avoid_start, avoid_end; /* what the initrd must not overlap */
};

bool x86_is_bzimage(const uint8_t *data, size_t size)
{
	uint32_t magic;

	if (size < BZ_MAGIC_OFFSET + sizeof(magic))
		return false;
	memcpy(&magic, data + BZ_MAGIC_OFFSET, sizeof(magic));
	return magic == X86_BOOT_HDR_MAGIC;
}

static int bz_read_header(struct x86_boot *b, struct bz_kernel *k)
{
	/* From 0x1f1 to 0x202 + the byte at 0x201 (x86_is_bzimage checked size > 0x205). */
	size_t end = BZ_MAGIC_OFFSET + (size_t)b->kernel[BZ_JUMP_OFFSET];

	if (b->kernel_size < end)
		return x86_boot_fail(b, -ENOEXEC, "truncated setup header");
	memset(&k->hdr, 0, sizeof(k->hdr));
	memcpy(&k->hdr, b->kernel + BZ_HDR_OFFSET, MIN(end - BZ_HDR_OFFSET, sizeof(k->hdr)));

	if (k->hdr.boot_flag != X86_BOOT_FLAG)
		return x86_boot_fail(b, -ENOEXEC, "bad bzImage boot_flag (expected 0xAA55)");
	if (k->hdr.version < 0x0206)
		return x86_boot_fail(b, -ENOEXEC, "boot protocol older than 2.06 is not supported");
	if (k->hdr.version < 0x020c)
		return x86_boot_fail(b, -ENOEXEC,
		                     "boot protocol older than 2.12 has no 64-bit entry point");
	if (end < BZ_HDR_NEEDED_END)
		return x86_boot_fail(b, -ENOEXEC,
		                     "setup header too short for its protocol version");
	if (!(k->hdr.xloadflags & XLF_KERNEL_64))
		return x86_boot_fail(b, -ENOEXEC,
		                     "kernel has no 64-bit entry point (XLF_KERNEL_64)");
	if (!(k->hdr.loadflags & LOADED_HIGH))
		return x86_boot_fail(b, -ENOEXEC,
		                     "zImage kernels (not LOADED_HIGH) are not supported");
	return 0;
}

/* Locates the protected-mode code: after the (setup_sects + 1) sectors of setup code. */
static int bz_find_code(struct x86_boot *b, struct bz_kernel *k)
{
	uint64_t sects = k->hdr.setup_sects ? k->hdr.setup_sects : BZ_DEFAULT_SECTS;

	k->code_offset = (sects + 1) * BZ_SECTOR;     /* at most 256 * 512 */
	k->code_size = (uint64_t)k->hdr.syssize * 16; /* at most 64 GiB, no overflow */
	if (k->code_size == 0)
		return x86_boot_fail(b, -ENOEXEC, "bzImage has no protected-mode code");
	if (k->code_offset > b->kernel_size || k->code_size > b->kernel_size - k->code_offset)
		return x86_boot_fail(b, -ENOEXEC, "truncated bzImage");
	return 0;
}

/*
 * Loads at pref_address when the kernel is relocatable and its whole footprint fits there,
 * otherwise at 1 MiB. Whatever the load address, the 64-bit decompressor then runs at
 * pref_address (LOAD_PHYSICAL_ADDR) or above and needs init_size bytes there, so that range
 * must be RAM too, and the initrd is kept clear of both.
 */
static int bz_place_kernel(struct x86_boot *b, struct bz_kernel *k)
{
	uint64_t pref = k->hdr.pref_address, init_size = k->hdr.init_size;

	k->footprint = MAX(init_size, k->code_size);
	k->load = X86_HIGH_MEM_START;
	if (k->hdr.relocatable_kernel && pref >= X86_HIGH_MEM_START &&
	    range_within(pref, k->footprint, 0, b->low_end))
		k->load = pref;
	if (!range_within(k->load, k->footprint, 0, b->low_end))
		return x86_boot_fail(b, -ENOSPC, "kernel does not fit in RAM");
	k->avoid_start = k->load;
	k->avoid_end = k->load + k->footprint;
	if (pref > k->load) {
		if (!range_within(pref, init_size, 0, b->low_end))
			return x86_boot_fail(b, -ENOSPC, "kernel does not fit in RAM");
		k->avoid_end = MAX(k->avoid_end, pref + init_size);
	}
	return 0;
}

static int bz_check_cmdline(struct x86_boot *b, const struct bz_kernel *k)
{
	/* cmdline_size is the longest command line the kernel takes, without the NUL. */
	if (b->cmdline_len > k->hdr.cmdline_size || b->cmdline_len + 1 > X86_CMDLINE_MAX)
		return x86_boot_fail(b, -E2BIG,
		                     "command line longer than the kernel accepts (cmdline_size)");
	return 0;
}

static void bz_fill_zero_page(const struct x86_boot *b, const struct bz_kernel *k,
                              struct boot_params *bp, uint64_t initrd_addr)
{
	memset(bp, 0, sizeof(*bp));
	bp->hdr = k->hdr;
	/* Fields the loader owns: start from the kernel's, then keep only what we set. */
	bp->hdr.loadflags = LOADED_HIGH | CAN_USE_HEAP; /* no QUIET, KEEP_SEGMENTS or KASLR */
	bp->hdr.heap_end_ptr = BZ_HEAP_END;
	bp->hdr.code32_start = (uint32_t)k->load;
	bp->hdr.ramdisk_image = 0;
	bp->hdr.ramdisk_size = 0;
	bp->hdr.ext_loader_ver = 0;
	bp->hdr.ext_loader_type = 0;
	bp->hdr.hardware_subarch = 0; /* X86_SUBARCH_PC */
	bp->hdr.hardware_subarch_data = 0;
	bp->hdr.setup_data = 0; /* no setup_data list */
	x86_boot_fill_zero_page(b, bp, initrd_addr);
}

int x86_load_bzimage(struct x86_boot *b, struct boot_info *out)
{
	struct bz_kernel k;
	struct boot_params bp;
	uint64_t limit, initrd_addr;
	int ret;

	if ((ret = bz_read_header(b, &k)) || (ret = bz_find_code(b, &k)) ||
	    (ret = bz_place_kernel(b, &k)) || (ret = bz_check_cmdline(b, &k)))
		return ret;
	limit = k.hdr.initrd_addr_max ? k.hdr.initrd_addr_max : BZ_DEFAULT_LIMIT;
	ret = x86_boot_place_initrd(b, limit + 1, k.avoid_start, k.avoid_end, &initrd_addr);
	if (ret)
		return ret;

	/* Everything fits: write. */
	if (guest_write(b->mem, k.load, b->kernel + k.code_offset, k.code_size))
		return x86_boot_fail(b, -EFAULT, "cannot write the kernel");
	if ((ret = x86_boot_write_cmdline_initrd(b, initrd_addr)))
		return ret;
	bz_fill_zero_page(b, &k, &bp, initrd_addr);
	if ((ret = x86_boot_write_zero_page(b, &bp)))
		return ret;
	*out = (struct boot_info){
	        .mode = X86_ENTRY_LONG64,
	        .entry = k.load + BZ_ENTRY64,
	        .boot_params = X86_ZERO_PAGE_ADDR,
	        .initrd_addr = initrd_addr,
	        .initrd_size = b->initrd_size,
	};
	return 0;
}
