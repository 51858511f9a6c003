/*
 * Private to the x86_64 kernel loaders (boot.c, boot_bzimage.c, boot_elf.c): the loading
 * context, and the helpers every kernel type shares (memory map, command line, initrd).
 *
 * Every loader works in two phases: first it validates the whole image and decides where
 * everything goes (nothing written yet), then it writes. Guest memory is only written once the
 * kernel, command line and initrd are all known to fit.
 */
#ifndef VMM_ARCH_X86_64_BOOT_INTERNAL_H
#define VMM_ARCH_X86_64_BOOT_INTERNAL_H

#include <asm/bootparam.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86_64/boot.h"

#define X86_BOOT_PAGE      4096ULL
#define X86_BOOT_LOADER_ID 0xff       /* type_of_loader: "undefined" boot loader */
#define X86_BOOT_FLAG      0xAA55     /* setup_header.boot_flag */
#define X86_BOOT_HDR_MAGIC 0x53726448 /* setup_header.header: "HdrS" */
#define X86_E820_RAM       1
#define X86_E820_RESERVED  2
#define X86_MEMMAP_MAX     4 /* low RAM, EBDA..1 MiB reserved, RAM from 1 MiB, RAM at 4 GiB */

/* What x86_load_kernel gathered and checked before handing over to a loader. */
struct x86_boot {
	const struct guest_memory *mem;
	const uint8_t *kernel; /* the whole kernel file (untrusted contents) */
	size_t kernel_size;
	const uint8_t *initrd; /* NULL when initrd_size is 0 */
	uint64_t initrd_size;
	const char *cmdline;  /* never NULL; "" when there is none */
	uint64_t cmdline_len; /* without the NUL; X86_CMDLINE_MAX when it is at least that long */
	uint64_t low_end;     /* end of the RAM region at 0, capped at the 32-bit hole; > 1 MiB */
	uint64_t high_size;   /* bytes of RAM at X86_MMIO_HOLE_END; 0 when there is none */
	const char *reason;   /* set with the error return; static string */
};

/* One entry of the guest memory map, used for both the e820 table and the PVH memmap. */
struct x86_mem_range {
	uint64_t addr;
	uint64_t size;
	uint32_t type; /* X86_E820_* (the PVH memmap types have the same values) */
};

/* Sets b->reason and returns @err, so that loaders can write "return x86_boot_fail(...)". */
int x86_boot_fail(struct x86_boot *b, int err, const char *reason);

/* Fills @out with the guest memory map; returns the number of entries (<= X86_MEMMAP_MAX). */
unsigned x86_boot_memmap(const struct x86_boot *b, struct x86_mem_range out[X86_MEMMAP_MAX]);

/*
 * Chooses where the initrd goes: the highest page-aligned address at or above 1 MiB whose
 * range ends at or below min(@limit, low_end) and does not overlap the kernel's
 * [@kernel_start, @kernel_end). Sets *@addr (0 when there is no initrd). Returns 0 or -ENOSPC.
 */
int x86_boot_place_initrd(struct x86_boot *b, uint64_t limit, uint64_t kernel_start,
                          uint64_t kernel_end, uint64_t *addr) MUST_CHECK;

/* Writes the command line (with its NUL) at X86_CMDLINE_ADDR and the initrd at @initrd_addr. */
int x86_boot_write_cmdline_initrd(struct x86_boot *b, uint64_t initrd_addr) MUST_CHECK;

/*
 * Fills the loader-owned zero page fields every kernel type shares: e820 table, command line
 * pointer, initrd location, type_of_loader and vid_mode. The caller fills the rest of @bp.
 */
void x86_boot_fill_zero_page(const struct x86_boot *b, struct boot_params *bp,
                             uint64_t initrd_addr);

/* Writes @bp at X86_ZERO_PAGE_ADDR. */
int x86_boot_write_zero_page(struct x86_boot *b, const struct boot_params *bp) MUST_CHECK;

/* Image type checks (magic numbers only) and the loaders. Loaders return 0 or -errno. */
bool x86_is_elf(const uint8_t *data, size_t size);
bool x86_is_bzimage(const uint8_t *data, size_t size);
int x86_load_elf(struct x86_boot *b, struct boot_info *out) MUST_CHECK;
int x86_load_bzimage(struct x86_boot *b, struct boot_info *out) MUST_CHECK;

#endif
