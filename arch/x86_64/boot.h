/*
 * x86_64 kernel loaders: Linux bzImage (boot protocol 2.06+, 64-bit entry), ELF vmlinux with a
 * PVH entry note (32-bit entry with hvm_start_info), and plain ELF64 (64-bit entry with a zero
 * page). Loaders take whole files as buffers so they can be tested without KVM.
 */
#ifndef VMM_ARCH_X86_64_BOOT_H
#define VMM_ARCH_X86_64_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/boot_image.h"
#include "vmm/memory.h"

enum x86_entry_mode {
	/* Long mode, paging on (0..4 GiB identity), RSI = zero page: bzImage and plain ELF64. */
	X86_ENTRY_LONG64,
	/* 32-bit protected mode, paging off, EBX = hvm_start_info: PVH. */
	X86_ENTRY_PVH32,
};

struct boot_info {
	enum x86_entry_mode mode;
	uint64_t entry;       /* guest-physical entry point */
	uint64_t boot_params; /* zero page (LONG64) or hvm_start_info (PVH32) address */
	uint64_t initrd_addr; /* 0 when there is no initrd */
	uint64_t initrd_size;
};

/*
 * Loads @kernel (bzImage, PVH ELF or plain ELF64, detected from its contents) into @mem, places
 * @initrd (data may be NULL) and @cmdline (NUL-terminated, may be NULL), writes the boot
 * parameters (zero page with e820 map, or hvm_start_info with memory map and initrd module) and
 * fills @out. @mem must hold one region at guest-physical 0 ("low RAM") and optionally one at
 * 4 GiB. Returns 0, or -EINVAL/-ENOEXEC/-ENOSPC/-E2BIG with *@reason set to a static one-line
 * explanation ("truncated bzImage", "initrd does not fit below ...", ...).
 *
 * The kernel file's contents are untrusted: every offset and size in it is checked, and the
 * whole image is validated and placed before guest memory is written. @out is written only on
 * success. Placement: a bzImage at pref_address (relocatable, fits) or 1 MiB; ELF segments at
 * p_paddr, which must lie in the RAM at 0 at or above 1 MiB (below is ours: GDT, page tables,
 * zero page or PVH start info, command line, EBDA, ACPI). The initrd goes at the highest
 * page-aligned address below the kernel's initrd_addr_max (bzImage) and the top of low RAM,
 * clear of the kernel and at or above 1 MiB.
 */
int x86_load_kernel(const struct guest_memory *mem, const struct boot_image *kernel,
                    const struct boot_image *initrd, const char *cmdline, struct boot_info *out,
                    const char **reason);

#endif
