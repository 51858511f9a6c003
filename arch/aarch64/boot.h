/*
 * arm64 Linux Image loader (Documentation/arch/arm64/booting.rst). It takes whole files as
 * buffers and touches only guest memory, so it builds and is tested on any host.
 */
#ifndef VMM_ARCH_AARCH64_BOOT_H
#define VMM_ARCH_AARCH64_BOOT_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/boot_image.h"
#include "vmm/memory.h"

struct arm64_boot_info {
	uint64_t entry;        /* guest-physical address of the Image's first byte: PC at entry */
	uint64_t dtb_addr;     /* where the caller writes the device tree (X0); ARM64_FDT_MAX_SIZE
	                          bytes, 2 MiB aligned, reserved there */
	uint64_t initrd_start; /* 0 and size 0 when there is no initrd */
	uint64_t initrd_size;
	bool raw; /* the file had no Image header: loaded as a raw payload */
};

/*
 * Loads the arm64 Image (or raw payload) @kernel into the single RAM region of @mem
 * (mem->regions[0], whose base must be 2 MiB aligned), copies @initrd (NULL, or data NULL and
 * size 0, for none) and fills @out. Returns 0, or -ENOEXEC (not a usable arm64 Image), -ENOSPC
 * (does not fit in RAM), -EINVAL (bad RAM or initrd arguments) or -EFAULT, with *@reason (if
 * @reason is not NULL) set to a static one-line explanation; *@reason is set to NULL on success.
 *
 * The kernel file's contents are untrusted: every header field is checked and everything is
 * placed before guest memory is written. @out is written only on success. Placement:
 *  - the Image at RAM base + text_offset, with image_size bytes from there inside RAM; the
 *    part past the file's end (BSS) is zeroed. A file without the Image magic (or shorter
 *    than its header) that is not a gzip, ELF or EFI zboot file, which are refused as
 *    mistaken for an Image, is a raw payload: at RAM base + 0x80000, its own size;
 *  - the device tree slot: the highest 2 MiB aligned 2 MiB block of RAM, above the kernel;
 *  - the initrd: the highest page-aligned address between the kernel's end and the device
 *    tree slot, and inside the 32 GiB window from the 1 GiB boundary below the kernel.
 */
int arm64_load_image(const struct guest_memory *mem, const struct boot_image *kernel,
                     const struct boot_image *initrd, struct arm64_boot_info *out,
                     const char **reason) MUST_CHECK;

#endif
