/*
 * ELF64 kernel loader. With a Xen PHYS32_ENTRY note the kernel boots the PVH way (32-bit entry,
 * paging off, EBX = hvm_start_info); without one it is entered at e_entry in long mode with a
 * zero page, which is how a Linux vmlinux boots (its e_entry is physical).
 *
 * Segments load at p_paddr and must lie wholly inside the RAM region at 0, at or above 1 MiB:
 * everything below 1 MiB holds our boot structures (GDT, page tables, zero page, PVH start
 * info, command line) or is reserved (EBDA, ACPI tables, BIOS area). Segments in RAM above
 * 4 GiB are refused: neither the PVH entry nor our 0..4 GiB identity map can reach them.
 */
#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "arch/x86_64/boot_internal.h"
#include "arch/x86_64/layout.h"

/* From Xen's public elfnote.h and arch-x86/hvm/start_info.h. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define XEN_HVM_START_MAGIC      0x336ec578
#define XEN_HVM_START_VERSION    1

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr; /* 0: the kernel scans the BIOS area for the RSDP */
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

/* What goes at X86_PVH_INFO_ADDR: the start info, then the module list, then the memory map. */
struct pvh_area {
	struct hvm_start_info info;
	struct hvm_modlist_entry module;
	struct hvm_memmap_table_entry memmap[X86_MEMMAP_MAX];
};

_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info layout");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry layout");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry layout");
_Static_assert(offsetof(struct pvh_area, module) == 56, "PVH area layout");
_Static_assert(sizeof(struct pvh_area) <= X86_PVH_INFO_SIZE, "PVH area too big");
_Static_assert(X86_CMDLINE_MAX == 65536, "update the command line reason string");

/* The validated facts about one ELF kernel. */
struct elf_kernel {
	Elf64_Ehdr eh;
	uint64_t start, end; /* smallest range holding every PT_LOAD segment */
	bool pvh;
	uint64_t pvh_entry;
};

bool x86_is_elf(const uint8_t *data, size_t size)
{
	return size >= SELFMAG && memcmp(data, ELFMAG, SELFMAG) == 0;
}

static bool in_file(const struct x86_boot *b, uint64_t offset, uint64_t len)
{
	return range_within(offset, len, 0, b->kernel_size);
}

static int elf_check_ehdr(struct x86_boot *b, struct elf_kernel *k)
{
	uint64_t ph_size;

	if (b->kernel_size < EI_NIDENT)
		return x86_boot_fail(b, -ENOEXEC, "truncated ELF header");
	if (b->kernel[EI_CLASS] != ELFCLASS64)
		return x86_boot_fail(b, -ENOEXEC, "ELF is not 64-bit (ELFCLASS64)");
	if (b->kernel[EI_DATA] != ELFDATA2LSB)
		return x86_boot_fail(b, -ENOEXEC, "ELF is not little-endian");
	if (b->kernel_size < sizeof(k->eh))
		return x86_boot_fail(b, -ENOEXEC, "truncated ELF header");
	memcpy(&k->eh, b->kernel, sizeof(k->eh));
	if (k->eh.e_machine != EM_X86_64)
		return x86_boot_fail(b, -ENOEXEC, "ELF is not for x86_64 (EM_X86_64)");
	if (k->eh.e_type != ET_EXEC)
		return x86_boot_fail(b, -ENOEXEC, "ELF is not an executable (ET_EXEC)");
	if (k->eh.e_phnum == 0)
		return x86_boot_fail(b, -ENOEXEC, "ELF has no loadable segment");
	if (k->eh.e_phentsize != sizeof(Elf64_Phdr))
		return x86_boot_fail(b, -ENOEXEC, "bad ELF program header entry size");
	ph_size = (uint64_t)k->eh.e_phnum * sizeof(Elf64_Phdr); /* at most 65535 * 56 */
	if (!in_file(b, k->eh.e_phoff, ph_size))
		return x86_boot_fail(b, -ENOEXEC, "truncated ELF program headers");
	return 0;
}

/* Program header @i; elf_check_ehdr made sure the table lies inside the file. */
static void elf_phdr(const struct x86_boot *b, const struct elf_kernel *k, unsigned i,
                     Elf64_Phdr *ph)
{
	memcpy(ph, b->kernel + k->eh.e_phoff + (uint64_t)i * sizeof(*ph), sizeof(*ph));
}

static int elf_check_load(struct x86_boot *b, const Elf64_Phdr *ph, struct elf_kernel *k)
{
	if (!in_file(b, ph->p_offset, ph->p_filesz))
		return x86_boot_fail(b, -ENOEXEC,
		                     "truncated ELF: segment past the end of the file");
	if (ph->p_filesz > ph->p_memsz)
		return x86_boot_fail(b, -ENOEXEC, "ELF segment larger in the file than in memory");
	if (ph->p_memsz == 0)
		return 0;
	if (!range_within(ph->p_paddr, ph->p_memsz, 0, b->low_end))
		return x86_boot_fail(b, -ENOSPC, "ELF segment outside RAM");
	if (ph->p_paddr < X86_HIGH_MEM_START)
		return x86_boot_fail(b, -EINVAL,
		                     "ELF segment below 1 MiB (reserved for boot data)");
	k->start = MIN(k->start, ph->p_paddr);
	k->end = MAX(k->end, ph->p_paddr + ph->p_memsz);
	return 0;
}

/* Reads the PHYS32_ENTRY value: 4 bytes, or 8 (Linux emits a .quad) with the top half zero. */
static int elf_pvh_entry(struct x86_boot *b, const Elf64_Nhdr *nh, const uint8_t *desc,
                         struct elf_kernel *k)
{
	uint32_t entry32;
	uint64_t entry64;

	if (k->pvh)
		return 0; /* the first note wins */
	if (nh->n_descsz == sizeof(entry32)) {
		memcpy(&entry32, desc, sizeof(entry32));
		entry64 = entry32;
	} else if (nh->n_descsz == sizeof(entry64)) {
		memcpy(&entry64, desc, sizeof(entry64));
		if (entry64 > UINT32_MAX)
			return x86_boot_fail(b, -ENOEXEC, "PVH entry point above 4 GiB");
	} else {
		return x86_boot_fail(b, -ENOEXEC,
		                     "PVH entry note has a bad size (not 4 or 8 bytes)");
	}
	k->pvh = true;
	k->pvh_entry = entry64;
	return 0;
}

static bool is_pvh_note(const Elf64_Nhdr *nh, const uint8_t *name)
{
	return nh->n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh->n_namesz == 4 &&
	       memcmp(name, "Xen", 4) == 0;
}

/*
 * Walks the notes of one PT_NOTE segment looking for the PVH entry note. Offsets are relative
 * to the segment; name and descriptor are padded to the segment's alignment (4, or 8).
 */
static int elf_scan_notes(struct x86_boot *b, const Elf64_Phdr *ph, struct elf_kernel *k)
{
	uint64_t align = ph->p_align == 8 ? 8 : 4;
	uint64_t size = ph->p_filesz, pos = 0;
	const uint8_t *seg;
	int ret;

	if (!in_file(b, ph->p_offset, ph->p_filesz))
		return x86_boot_fail(b, -ENOEXEC, "truncated ELF: note past the end of the file");
	seg = b->kernel + ph->p_offset;
	/* Each round moves pos forward by at least sizeof(Elf64_Nhdr) and never past size. */
	while (size - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		uint64_t name = pos + sizeof(nh), desc;

		memcpy(&nh, seg + pos, sizeof(nh));
		if (nh.n_namesz > size - name)
			return x86_boot_fail(b, -ENOEXEC, "malformed ELF note");
		desc = ALIGN_UP(name + nh.n_namesz, align); /* all values < 2^63: no wrap */
		if (desc > size || nh.n_descsz > size - desc)
			return x86_boot_fail(b, -ENOEXEC, "malformed ELF note");
		if (is_pvh_note(&nh, seg + name) && (ret = elf_pvh_entry(b, &nh, seg + desc, k)))
			return ret;
		pos = MIN(ALIGN_UP(desc + nh.n_descsz, align), size);
	}
	return 0;
}

static int elf_scan(struct x86_boot *b, struct elf_kernel *k)
{
	uint64_t entry;
	int ret = elf_check_ehdr(b, k);

	k->start = UINT64_MAX;
	k->end = 0;
	k->pvh = false;
	for (unsigned i = 0; !ret && i < k->eh.e_phnum; i++) {
		Elf64_Phdr ph;

		elf_phdr(b, k, i, &ph);
		if (ph.p_type == PT_LOAD)
			ret = elf_check_load(b, &ph, k);
		else if (ph.p_type == PT_NOTE)
			ret = elf_scan_notes(b, &ph, k);
	}
	if (ret)
		return ret;
	if (k->end == 0)
		return x86_boot_fail(b, -ENOEXEC, "ELF has no loadable segment");
	entry = k->pvh ? k->pvh_entry : k->eh.e_entry;
	if (entry < k->start || entry >= k->end)
		return x86_boot_fail(b, -ENOEXEC, "entry point outside the loaded segments");
	return 0;
}

static int elf_write_segments(struct x86_boot *b, const struct elf_kernel *k)
{
	for (unsigned i = 0; i < k->eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *host;

		elf_phdr(b, k, i, &ph);
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		host = gpa_to_hva(b->mem, ph.p_paddr, ph.p_memsz);
		if (!host)
			return x86_boot_fail(b, -EFAULT, "cannot write the kernel");
		memcpy(host, b->kernel + ph.p_offset, ph.p_filesz);
		memset(host + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz); /* bss */
	}
	return 0;
}

static int elf_write_pvh_info(struct x86_boot *b, uint64_t initrd_addr)
{
	struct x86_mem_range map[X86_MEMMAP_MAX];
	struct pvh_area area;
	unsigned n = x86_boot_memmap(b, map);

	memset(&area, 0, sizeof(area));
	area.info.magic = XEN_HVM_START_MAGIC;
	area.info.version = XEN_HVM_START_VERSION;
	area.info.cmdline_paddr = X86_CMDLINE_ADDR;
	area.info.memmap_paddr = X86_PVH_INFO_ADDR + offsetof(struct pvh_area, memmap);
	area.info.memmap_entries = n;
	if (b->initrd_size) {
		area.info.nr_modules = 1;
		area.info.modlist_paddr = X86_PVH_INFO_ADDR + offsetof(struct pvh_area, module);
		area.module.paddr = initrd_addr;
		area.module.size = b->initrd_size;
	}
	for (unsigned i = 0; i < n; i++) {
		area.memmap[i].addr = map[i].addr;
		area.memmap[i].size = map[i].size;
		area.memmap[i].type = map[i].type;
	}
	if (guest_write(b->mem, X86_PVH_INFO_ADDR, &area, sizeof(area)))
		return x86_boot_fail(b, -EFAULT, "cannot write the PVH start info");
	return 0;
}

/*
 * The zero page for a vmlinux entered at startup_64: what Linux reads there (e820 table, command
 * line, initrd) plus a setup header that looks like a protocol 2.15 bzImage's.
 */
static int elf_write_zero_page(struct x86_boot *b, uint64_t initrd_addr)
{
	struct boot_params bp;

	memset(&bp, 0, sizeof(bp));
	bp.hdr.boot_flag = X86_BOOT_FLAG;
	bp.hdr.header = X86_BOOT_HDR_MAGIC;
	bp.hdr.version = 0x020f;
	bp.hdr.loadflags = LOADED_HIGH;
	bp.hdr.cmdline_size = (uint32_t)(X86_CMDLINE_MAX - 1);
	x86_boot_fill_zero_page(b, &bp, initrd_addr);
	return x86_boot_write_zero_page(b, &bp);
}

int x86_load_elf(struct x86_boot *b, struct boot_info *out)
{
	struct elf_kernel k;
	uint64_t initrd_addr;
	int ret = elf_scan(b, &k);

	if (ret)
		return ret;
	if (b->cmdline_len + 1 > X86_CMDLINE_MAX)
		return x86_boot_fail(b, -E2BIG, "command line longer than 65535 bytes");
	if ((ret = x86_boot_place_initrd(b, b->low_end, k.start, k.end, &initrd_addr)))
		return ret;

	/* Everything fits: write. */
	if ((ret = elf_write_segments(b, &k)) ||
	    (ret = x86_boot_write_cmdline_initrd(b, initrd_addr)))
		return ret;
	ret = k.pvh ? elf_write_pvh_info(b, initrd_addr) : elf_write_zero_page(b, initrd_addr);
	if (ret)
		return ret;
	*out = (struct boot_info){
	        .mode = k.pvh ? X86_ENTRY_PVH32 : X86_ENTRY_LONG64,
	        .entry = k.pvh ? k.pvh_entry : k.eh.e_entry,
	        .boot_params = k.pvh ? X86_PVH_INFO_ADDR : X86_ZERO_PAGE_ADDR,
	        .initrd_addr = initrd_addr,
	        .initrd_size = b->initrd_size,
	};
	return 0;
}
