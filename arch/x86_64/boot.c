/*
 * x86_64 kernel loading: detects the image type and hands over to the ELF or bzImage loader;
 * holds what every loader shares (guest memory map, command line, initrd placement, zero page).
 */
#include "arch/x86_64/boot.h"

#include <errno.h>
#include <string.h>

#include "arch/x86_64/boot_internal.h"
#include "arch/x86_64/layout.h"

int x86_boot_fail(struct x86_boot *b, int err, const char *reason)
{
	b->reason = reason;
	return err;
}

unsigned x86_boot_memmap(const struct x86_boot *b, struct x86_mem_range out[X86_MEMMAP_MAX])
{
	unsigned n = 0;

	/* low_end > 1 MiB was checked by x86_load_kernel, so no entry is empty. */
	out[n++] = (struct x86_mem_range){0, X86_EBDA_START, X86_E820_RAM};
	out[n++] = (struct x86_mem_range){X86_EBDA_START, X86_HIGH_MEM_START - X86_EBDA_START,
	                                  X86_E820_RESERVED};
	out[n++] = (struct x86_mem_range){X86_HIGH_MEM_START, b->low_end - X86_HIGH_MEM_START,
	                                  X86_E820_RAM};
	if (b->high_size)
		out[n++] = (struct x86_mem_range){X86_MMIO_HOLE_END, b->high_size, X86_E820_RAM};
	return n;
}

int x86_boot_place_initrd(struct x86_boot *b, uint64_t limit, uint64_t kernel_start,
                          uint64_t kernel_end, uint64_t *addr)
{
	uint64_t top = MIN(limit, b->low_end);
	uint64_t size = b->initrd_size;
	uint64_t at;

	*addr = 0;
	if (size == 0)
		return 0;
	if (size > top)
		goto nospace;
	/* Highest candidate first; if it hits the kernel, try just below the kernel. */
	at = ALIGN_DOWN(top - size, X86_BOOT_PAGE);
	if (at < kernel_end && kernel_start < at + size) {
		if (kernel_start < size)
			goto nospace;
		at = ALIGN_DOWN(kernel_start - size, X86_BOOT_PAGE);
	}
	if (at < X86_HIGH_MEM_START)
		goto nospace;
	*addr = at;
	return 0;
nospace:
	return x86_boot_fail(b, -ENOSPC, "initrd does not fit in RAM below the kernel's limit");
}

int x86_boot_write_cmdline_initrd(struct x86_boot *b, uint64_t initrd_addr)
{
	int ret = guest_write(b->mem, X86_CMDLINE_ADDR, b->cmdline, b->cmdline_len + 1);

	if (!ret && b->initrd_size)
		ret = guest_write(b->mem, initrd_addr, b->initrd, b->initrd_size);
	return ret ? x86_boot_fail(b, ret, "cannot write the command line or initrd") : 0;
}

void x86_boot_fill_zero_page(const struct x86_boot *b, struct boot_params *bp, uint64_t initrd_addr)
{
	struct x86_mem_range map[X86_MEMMAP_MAX];
	unsigned n = x86_boot_memmap(b, map);

	for (unsigned i = 0; i < n; i++) {
		bp->e820_table[i].addr = map[i].addr;
		bp->e820_table[i].size = map[i].size;
		bp->e820_table[i].type = map[i].type;
	}
	bp->e820_entries = (uint8_t)n;
	bp->hdr.type_of_loader = X86_BOOT_LOADER_ID;
	bp->hdr.vid_mode = 0xffff; /* "normal" text mode: no video mode switch */
	bp->hdr.cmd_line_ptr = (uint32_t)X86_CMDLINE_ADDR;
	bp->ext_cmd_line_ptr = 0;
	if (b->initrd_size) {
		bp->hdr.ramdisk_image = (uint32_t)initrd_addr;
		bp->ext_ramdisk_image = (uint32_t)(initrd_addr >> 32);
		bp->hdr.ramdisk_size = (uint32_t)b->initrd_size;
		bp->ext_ramdisk_size = (uint32_t)(b->initrd_size >> 32);
	}
}

int x86_boot_write_zero_page(struct x86_boot *b, const struct boot_params *bp)
{
	int ret = guest_write(b->mem, X86_ZERO_PAGE_ADDR, bp, sizeof(*bp));

	return ret ? x86_boot_fail(b, ret, "cannot write the zero page") : 0;
}

/* Finds the low RAM region (at 0) and the optional one at 4 GiB. */
static int find_ram(struct x86_boot *b)
{
	const struct guest_memory *mem = b->mem;

	for (unsigned i = 0; i < mem->nr_regions && i < MEM_MAX_REGIONS; i++) {
		if (mem->regions[i].gpa == 0)
			b->low_end = MIN(mem->regions[i].size, X86_MMIO_HOLE_START);
		else if (mem->regions[i].gpa == X86_MMIO_HOLE_END)
			b->high_size = mem->regions[i].size;
	}
	if (b->low_end <= X86_HIGH_MEM_START)
		return x86_boot_fail(b, -EINVAL, "guest RAM at address 0 must extend past 1 MiB");
	return 0;
}

static int gather(struct x86_boot *b, const struct guest_memory *mem,
                  const struct boot_image *kernel, const struct boot_image *initrd,
                  const char *cmdline)
{
	*b = (struct x86_boot){.mem = mem, .cmdline = cmdline ? cmdline : ""};
	if (!kernel || !kernel->data || kernel->size == 0)
		return x86_boot_fail(b, -ENOEXEC, "kernel image is empty");
	b->kernel = kernel->data;
	b->kernel_size = kernel->size;
	if (initrd && initrd->size) {
		if (!initrd->data)
			return x86_boot_fail(b, -EINVAL, "initrd has no data");
		b->initrd = initrd->data;
		b->initrd_size = initrd->size;
	}
	/* Bounded: anything reaching X86_CMDLINE_MAX is too long for every kernel type. */
	b->cmdline_len = strnlen(b->cmdline, X86_CMDLINE_MAX);
	return find_ram(b);
}

int x86_load_kernel(const struct guest_memory *mem, const struct boot_image *kernel,
                    const struct boot_image *initrd, const char *cmdline, struct boot_info *out,
                    const char **reason)
{
	struct x86_boot b;
	struct boot_info info = {0};
	int ret = gather(&b, mem, kernel, initrd, cmdline);

	if (!ret) {
		if (x86_is_elf(b.kernel, b.kernel_size))
			ret = x86_load_elf(&b, &info);
		else if (x86_is_bzimage(b.kernel, b.kernel_size))
			ret = x86_load_bzimage(&b, &info);
		else
			ret = x86_boot_fail(&b, -ENOEXEC, "not a bzImage or ELF64 kernel");
	}
	if (reason)
		*reason = ret ? b.reason : NULL;
	if (!ret && out)
		*out = info;
	return ret;
}
