/* x86_load_kernel: bzImage, PVH ELF and plain ELF64 loading into fake guest memory. */
#include <asm/bootparam.h>
#include <check.h>
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/boot.h"
#include "arch/x86_64/layout.h"
#include "tests/unit/unit.h"
#include "vmm/memory.h"

#define RAM_SIZE (64 * MIB)
#define IMG_MAX  (16 * KIB)
#define HDR(f)   (0x1f1 + offsetof(struct setup_header, f))

/* The synthetic bzImage: 4 setup sectors, then 4 KiB of code, preferring 16 MiB. */
#define BZ_SECTS     4
#define BZ_CODE_OFF  ((BZ_SECTS + 1) * 512)
#define BZ_CODE_SIZE 4096
#define BZ_PREF      (16 * MIB)
#define BZ_INIT_SIZE (8 * MIB)

/* The synthetic ELF: two PT_LOAD segments (the first with bss) and one PT_NOTE. */
#define ELF_PADDR    (2 * MIB)
#define ELF_PADDR2   (3 * MIB)
#define ELF_ENTRY    (ELF_PADDR + 0x10)
#define ELF_PVH      (ELF_PADDR + 0x40)
#define ELF_NOTE_OFF 0x300
#define ELF_SEG_OFF  0x400
#define ELF_SEG2_OFF 0x600
#define ELF_SIZE     0x700

static struct guest_memory mem;
static uint8_t img[IMG_MAX];
static size_t img_size;

#define PUT(off, type, val)                                                                        \
	do {                                                                                       \
		type put_v_ = (type)(val);                                                         \
		memcpy(img + (off), &put_v_, sizeof(put_v_));                                      \
	} while (0)
#define BZ_SET(field, val) PUT(HDR(field), __typeof__(((struct setup_header *)0)->field), val)

static void setup(void)
{
	memset(&mem, 0, sizeof(mem));
	ck_assert_int_eq(guest_memory_add(&mem, 0, RAM_SIZE), 0);
}

static void teardown(void)
{
	guest_memory_free(&mem);
}

static void gread(uint64_t gpa, void *buf, size_t len)
{
	ck_assert_int_eq(guest_read(&mem, gpa, buf, len), 0);
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static void bz_build(void)
{
	memset(img, 0, sizeof(img));
	BZ_SET(setup_sects, BZ_SECTS);
	BZ_SET(syssize, BZ_CODE_SIZE / 16);
	BZ_SET(boot_flag, 0xAA55);
	BZ_SET(jump, 0x6aeb); /* jmp +0x6a: header ends at 0x26c */
	memcpy(img + HDR(header), "HdrS", 4);
	BZ_SET(version, 0x020f);
	BZ_SET(loadflags, LOADED_HIGH | QUIET_FLAG);
	BZ_SET(initrd_addr_max, 0x7fffffff);
	BZ_SET(kernel_alignment, 2 * MIB);
	BZ_SET(relocatable_kernel, 1);
	BZ_SET(xloadflags, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
	BZ_SET(cmdline_size, 255);
	BZ_SET(setup_data, 0x1234); /* must not reach the guest */
	BZ_SET(pref_address, BZ_PREF);
	BZ_SET(init_size, BZ_INIT_SIZE);
	for (size_t i = 0; i < BZ_CODE_SIZE; i++)
		img[BZ_CODE_OFF + i] = pattern(i);
	img_size = BZ_CODE_OFF + BZ_CODE_SIZE;
}

static void elf_phdr_put(unsigned i, uint32_t type, uint64_t off, uint64_t paddr, uint64_t filesz,
                         uint64_t memsz, uint64_t align)
{
	Elf64_Phdr ph = {.p_type = type, .p_offset = off, .p_paddr = paddr, .p_filesz = filesz};

	ph.p_memsz = memsz;
	ph.p_align = align;
	memcpy(img + sizeof(Elf64_Ehdr) + i * sizeof(ph), &ph, sizeof(ph));
}

/* Writes one note at @off, padded to @align; returns its size. */
static size_t put_note(size_t off, const char *name, uint32_t type, const void *desc,
                       uint32_t descsz, size_t align)
{
	Elf64_Nhdr nh = {(uint32_t)strlen(name) + 1, descsz, type};
	size_t desc_off = off + ALIGN_UP(sizeof(nh) + nh.n_namesz, align);

	memcpy(img + off, &nh, sizeof(nh));
	memcpy(img + off + sizeof(nh), name, nh.n_namesz);
	memcpy(img + desc_off, desc, descsz);
	return ALIGN_UP(desc_off - off + descsz, align);
}

/* Builds the ELF; @pvh_descsz 0 means no PVH note, 8 writes the entry as a 64-bit value. */
static void elf_build_aligned(uint32_t pvh_descsz, size_t note_align)
{
	Elf64_Ehdr eh = {.e_type = ET_EXEC,
	                 .e_machine = EM_X86_64,
	                 .e_version = EV_CURRENT,
	                 .e_entry = ELF_ENTRY,
	                 .e_phoff = sizeof(Elf64_Ehdr),
	                 .e_ehsize = sizeof(Elf64_Ehdr),
	                 .e_phentsize = sizeof(Elf64_Phdr),
	                 .e_phnum = 3};
	uint64_t entry = ELF_PVH;
	uint32_t other[3] = {1, 2, 3};
	size_t notes = 0;

	memset(img, 0, sizeof(img));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	memcpy(img, &eh, sizeof(eh));
	/* A note before the PVH one, sized so that 4- and 8-byte padding place it differently. */
	notes += put_note(ELF_NOTE_OFF, "Linux", 1, other, sizeof(other), note_align);
	if (pvh_descsz)
		notes += put_note(ELF_NOTE_OFF + notes, "Xen", 18, &entry, pvh_descsz, note_align);
	elf_phdr_put(0, PT_LOAD, ELF_SEG_OFF, ELF_PADDR, 0x200, 0x1000, 4096); /* with bss */
	elf_phdr_put(1, PT_LOAD, ELF_SEG2_OFF, ELF_PADDR2, 0x100, 0x100, 4096);
	elf_phdr_put(2, PT_NOTE, ELF_NOTE_OFF, 0, notes, 0, note_align);
	for (size_t i = ELF_SEG_OFF; i < ELF_SIZE; i++)
		img[i] = pattern(i);
	img_size = ELF_SIZE;
}

static void elf_build(uint32_t pvh_descsz)
{
	elf_build_aligned(pvh_descsz, 4);
}

static int load(const char *cmdline, const uint8_t *initrd, size_t initrd_size,
                struct boot_info *info, const char **reason)
{
	return x86_load_kernel(&mem, &(struct boot_image){img, img_size},
	                       &(struct boot_image){initrd, initrd_size}, cmdline, info, reason);
}

static void check_e820(const struct boot_e820_entry *e, unsigned n, uint64_t high)
{
	const struct boot_e820_entry want[] = {{0, X86_EBDA_START, 1},
	                                       {X86_EBDA_START, 1 * MIB - X86_EBDA_START, 2},
	                                       {1 * MIB, RAM_SIZE - 1 * MIB, 1},
	                                       {4 * GIB, high, 1}};

	ck_assert_uint_eq(n, high ? 4 : 3);
	for (unsigned i = 0; i < n; i++) {
		ck_assert_uint_eq(e[i].addr, want[i].addr);
		ck_assert_uint_eq(e[i].size, want[i].size);
		ck_assert_uint_eq(e[i].type, want[i].type);
	}
}

static void check_cmdline(const char *want)
{
	char got[512];

	ck_assert_uint_lt(strlen(want), sizeof(got));
	gread(X86_CMDLINE_ADDR, got, strlen(want) + 1);
	ck_assert_str_eq(got, want);
}

static void check_initrd(const struct boot_info *info, const uint8_t *data, size_t size,
                         uint64_t want_addr)
{
	uint8_t *got = malloc(size);

	ck_assert_uint_eq(info->initrd_addr, want_addr);
	ck_assert_uint_eq(info->initrd_size, size);
	ck_assert_uint_eq(want_addr % 4096, 0);
	gread(want_addr, got, size);
	ck_assert_mem_eq(got, data, size);
	free(got);
}

START_TEST(bzimage_loads_at_pref_address)
{
	static uint8_t initrd[5000];
	const uint64_t initrd_at = ALIGN_DOWN(RAM_SIZE - sizeof(initrd), 4096);
	struct boot_params bp;
	struct boot_info info;
	const char *reason = "unset";
	uint8_t code[BZ_CODE_SIZE];

	bz_build();
	memset(initrd, 0x5a, sizeof(initrd));
	ck_assert_int_eq(load("console=ttyS0 quiet", initrd, sizeof(initrd), &info, &reason), 0);
	ck_assert_ptr_null(reason);
	ck_assert_int_eq(info.mode, X86_ENTRY_LONG64);
	ck_assert_uint_eq(info.entry, BZ_PREF + 0x200);
	ck_assert_uint_eq(info.boot_params, X86_ZERO_PAGE_ADDR);
	gread(BZ_PREF, code, sizeof(code));
	ck_assert_mem_eq(code, img + BZ_CODE_OFF, sizeof(code));
	gread(X86_ZERO_PAGE_ADDR, &bp, sizeof(bp));
	ck_assert_uint_eq(bp.hdr.header, 0x53726448);
	ck_assert_uint_eq(bp.hdr.version, 0x020f);
	ck_assert_uint_eq(bp.hdr.init_size, BZ_INIT_SIZE);
	ck_assert_uint_eq(bp.hdr.type_of_loader, 0xff);
	ck_assert_uint_eq(bp.hdr.loadflags, LOADED_HIGH | CAN_USE_HEAP);
	ck_assert_uint_eq(bp.hdr.heap_end_ptr, 0xfe00);
	ck_assert_uint_eq(bp.hdr.vid_mode, 0xffff);
	ck_assert_uint_eq(bp.hdr.setup_data, 0);
	ck_assert_uint_eq(bp.hdr.cmd_line_ptr, X86_CMDLINE_ADDR);
	ck_assert_uint_eq(bp.ext_cmd_line_ptr, 0);
	ck_assert_uint_eq(bp.hdr.ramdisk_image, initrd_at);
	ck_assert_uint_eq(bp.hdr.ramdisk_size, sizeof(initrd));
	ck_assert_uint_eq(bp.ext_ramdisk_image, 0);
	ck_assert_uint_eq(bp.ext_ramdisk_size, 0);
	check_e820(bp.e820_table, bp.e820_entries, 0);
	check_cmdline("console=ttyS0 quiet");
	check_initrd(&info, initrd, sizeof(initrd), initrd_at);
}
END_TEST

START_TEST(bzimage_falls_back_to_1mib)
{
	struct boot_info info;
	const char *reason;
	uint8_t code[BZ_CODE_SIZE];

	bz_build();
	BZ_SET(relocatable_kernel, 0); /* not relocatable: 1 MiB even though 16 MiB fits */
	ck_assert_int_eq(load(NULL, NULL, 0, &info, &reason), 0);
	ck_assert_uint_eq(info.entry, 1 * MIB + 0x200);
	ck_assert_uint_eq(info.initrd_addr, 0);
	gread(1 * MIB, code, sizeof(code));
	ck_assert_mem_eq(code, img + BZ_CODE_OFF, sizeof(code));
	check_cmdline("");

	bz_build();
	BZ_SET(pref_address, 0); /* relocatable, but no preferred address */
	BZ_SET(setup_sects, 0);  /* 0 means 4, the builder's layout */
	ck_assert_int_eq(load("", NULL, 0, &info, &reason), 0);
	ck_assert_uint_eq(info.entry, 1 * MIB + 0x200);
}
END_TEST

START_TEST(bzimage_initrd_limits)
{
	static uint8_t initrd[3 * 4096 + 1];
	struct boot_params bp;
	struct boot_info info;
	const char *reason;

	memset(initrd, 0xa5, sizeof(initrd));
	/* Below initrd_addr_max, page aligned. */
	bz_build();
	BZ_SET(initrd_addr_max, 40 * MIB - 1);
	ck_assert_int_eq(load("x", initrd, sizeof(initrd), &info, &reason), 0);
	check_initrd(&info, initrd, sizeof(initrd), ALIGN_DOWN(40 * MIB - sizeof(initrd), 4096));
	/* The limit lands inside the kernel's [16 MiB, 24 MiB): the initrd goes below it. */
	bz_build();
	BZ_SET(initrd_addr_max, 20 * MIB - 1);
	ck_assert_int_eq(load("x", initrd, sizeof(initrd), &info, &reason), 0);
	check_initrd(&info, initrd, sizeof(initrd), ALIGN_DOWN(BZ_PREF - sizeof(initrd), 4096));
	gread(X86_ZERO_PAGE_ADDR, &bp, sizeof(bp));
	ck_assert_uint_eq(bp.hdr.ramdisk_image, info.initrd_addr);
	/* A kernel loaded at 1 MiB still decompresses at pref_address: keep clear of both. */
	bz_build();
	BZ_SET(relocatable_kernel, 0);
	BZ_SET(initrd_addr_max, 20 * MIB - 1);
	ck_assert_int_eq(load("x", initrd, sizeof(initrd), &info, &reason), -ENOSPC);
	/* An empty initrd is no initrd. */
	bz_build();
	ck_assert_int_eq(load("x", initrd, 0, &info, &reason), 0);
	ck_assert_uint_eq(info.initrd_addr, 0);
	gread(X86_ZERO_PAGE_ADDR, &bp, sizeof(bp));
	ck_assert_uint_eq(bp.hdr.ramdisk_image, 0);
	ck_assert_uint_eq(bp.hdr.ramdisk_size, 0);
}
END_TEST

START_TEST(bzimage_cmdline_at_limit)
{
	char line[256];
	struct boot_info info;
	const char *reason;

	memset(line, 'a', 255);
	line[255] = '\0';
	bz_build(); /* cmdline_size 255: 255 characters plus the NUL are fine */
	ck_assert_int_eq(load(line, NULL, 0, &info, &reason), 0);
	check_cmdline(line);
}
END_TEST

START_TEST(e820_includes_ram_above_4g)
{
	struct boot_params bp;
	struct boot_info info;
	const char *reason;

	ck_assert_int_eq(guest_memory_add(&mem, 4 * GIB, 16 * MIB), 0);
	bz_build();
	ck_assert_int_eq(load("", NULL, 0, &info, &reason), 0);
	gread(X86_ZERO_PAGE_ADDR, &bp, sizeof(bp));
	check_e820(bp.e820_table, bp.e820_entries, 16 * MIB);
}
END_TEST

START_TEST(elf_plain_loads_segments)
{
	static uint8_t initrd[8192];
	struct boot_params bp;
	struct boot_info info;
	const char *reason;
	uint8_t seg[0x1000], want[0x1000];

	memset(gpa_to_hva(&mem, ELF_PADDR, 0x1000), 0xcc, 0x1000); /* the bss must be zeroed */
	memset(initrd, 0x11, sizeof(initrd));
	elf_build(0);
	ck_assert_int_eq(load("root=/dev/vda", initrd, sizeof(initrd), &info, &reason), 0);
	ck_assert_int_eq(info.mode, X86_ENTRY_LONG64);
	ck_assert_uint_eq(info.entry, ELF_ENTRY);
	ck_assert_uint_eq(info.boot_params, X86_ZERO_PAGE_ADDR);
	memset(want, 0, sizeof(want));
	memcpy(want, img + ELF_SEG_OFF, 0x200);
	gread(ELF_PADDR, seg, sizeof(seg));
	ck_assert_mem_eq(seg, want, sizeof(want));
	gread(ELF_PADDR2, seg, 0x100);
	ck_assert_mem_eq(seg, img + ELF_SEG2_OFF, 0x100);
	gread(X86_ZERO_PAGE_ADDR, &bp, sizeof(bp));
	ck_assert_uint_eq(bp.hdr.boot_flag, 0xAA55);
	ck_assert_uint_eq(bp.hdr.header, 0x53726448);
	ck_assert_uint_eq(bp.hdr.version, 0x020f);
	ck_assert_uint_eq(bp.hdr.type_of_loader, 0xff);
	ck_assert_uint_eq(bp.hdr.cmd_line_ptr, X86_CMDLINE_ADDR);
	ck_assert_uint_eq(bp.hdr.ramdisk_image, RAM_SIZE - sizeof(initrd));
	ck_assert_uint_eq(bp.hdr.ramdisk_size, sizeof(initrd));
	check_e820(bp.e820_table, bp.e820_entries, 0);
	check_cmdline("root=/dev/vda");
	check_initrd(&info, initrd, sizeof(initrd), RAM_SIZE - sizeof(initrd));
}
END_TEST

struct pvh_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct pvh_memmap {
	uint64_t addr, size;
	uint32_t type, reserved;
};

static void check_pvh(uint64_t initrd_addr, uint64_t initrd_size, uint64_t high)
{
	struct pvh_info si;
	struct pvh_memmap mm[4];
	uint64_t mod[4];
	struct boot_e820_entry e820[4];

	gread(X86_PVH_INFO_ADDR, &si, sizeof(si));
	ck_assert_uint_eq(si.magic, 0x336ec578);
	ck_assert_uint_eq(si.version, 1);
	ck_assert_uint_eq(si.cmdline_paddr, X86_CMDLINE_ADDR);
	ck_assert_uint_eq(si.rsdp_paddr, 0);
	ck_assert_uint_eq(si.nr_modules, initrd_size ? 1 : 0);
	if (initrd_size) {
		ck_assert(si.modlist_paddr >= X86_PVH_INFO_ADDR + sizeof(si));
		gread(si.modlist_paddr, mod, sizeof(mod));
		ck_assert_uint_eq(mod[0], initrd_addr);
		ck_assert_uint_eq(mod[1], initrd_size);
	}
	ck_assert(si.memmap_paddr >= X86_PVH_INFO_ADDR + sizeof(si));
	ck_assert(si.memmap_paddr + si.memmap_entries * sizeof(mm[0]) <=
	          X86_PVH_INFO_ADDR + X86_PVH_INFO_SIZE);
	ck_assert_uint_le(si.memmap_entries, 4);
	gread(si.memmap_paddr, mm, si.memmap_entries * sizeof(mm[0]));
	for (unsigned i = 0; i < si.memmap_entries; i++)
		e820[i] = (struct boot_e820_entry){mm[i].addr, mm[i].size, mm[i].type};
	check_e820(e820, si.memmap_entries, high);
}

START_TEST(elf_pvh_start_info)
{
	static uint8_t initrd[4096 * 3];
	struct boot_info info;
	const char *reason;

	ck_assert_int_eq(guest_memory_add(&mem, 4 * GIB, 2 * MIB), 0);
	memset(initrd, 0x22, sizeof(initrd));
	elf_build(4);
	ck_assert_int_eq(load("console=hvc0", initrd, sizeof(initrd), &info, &reason), 0);
	ck_assert_int_eq(info.mode, X86_ENTRY_PVH32);
	ck_assert_uint_eq(info.entry, ELF_PVH);
	ck_assert_uint_eq(info.boot_params, X86_PVH_INFO_ADDR);
	check_initrd(&info, initrd, sizeof(initrd), RAM_SIZE - sizeof(initrd));
	check_pvh(info.initrd_addr, sizeof(initrd), 2 * MIB);
	check_cmdline("console=hvc0");
}
END_TEST

START_TEST(elf_pvh_linux_style_notes)
{
	struct boot_info info;
	const char *reason;

	/* Linux emits the entry as a .quad; notes in an 8-aligned segment pad to 8. */
	for (size_t align = 4; align <= 8; align += 4) {
		elf_build_aligned(8, align);
		ck_assert_int_eq(load(NULL, NULL, 0, &info, &reason), 0);
		ck_assert_int_eq(info.mode, X86_ENTRY_PVH32);
		ck_assert_uint_eq(info.entry, ELF_PVH);
		check_pvh(0, 0, 0);
	}
}
END_TEST

/* The bad-input table: a base image, up to two patches (offset, width, value), a size cut. */
enum base { BASE_EMPTY, BASE_GARBAGE, BASE_BZ, BASE_ELF, BASE_PVH, BASE_PVH8 };

static void build(enum base base)
{
	memset(img, 0x5a, sizeof(img));
	img_size = base == BASE_GARBAGE ? sizeof(img) : 0;
	if (base == BASE_BZ)
		bz_build();
	else if (base != BASE_EMPTY && base != BASE_GARBAGE)
		elf_build(base == BASE_ELF ? 0 : base == BASE_PVH ? 4 : 8);
}

#define FIELD(type, f, base) (base) + offsetof(type, f), sizeof(((type *)0)->f)
#define BZ(f)                FIELD(struct setup_header, f, 0x1f1)
#define EH(f)                FIELD(Elf64_Ehdr, f, 0)
#define PH(i, f)             FIELD(Elf64_Phdr, f, sizeof(Elf64_Ehdr) + (i) * sizeof(Elf64_Phdr))
#define XEN_NOTE             (ELF_NOTE_OFF + 32) /* after the 32-byte "Linux" note */

struct patch {
	size_t off, width;
	uint64_t val;
};

/* One row per bad input; clang-format would put every field on its own line. */
/* clang-format off */
static const struct bad_case {
	const char *what;
	enum base base;
	struct patch patch[2];
	size_t size;        /* cut the image to this size; 0 keeps it */
	size_t cmdline_len; /* 0: "console=ttyS0" */
	size_t initrd_size;
	int err;
	const char *reason;
} bad_cases[] = {
	{"empty file", BASE_EMPTY, {{0}}, 0, 0, 0, -ENOEXEC, "kernel image is empty"},
	{"garbage", BASE_GARBAGE, {{0}}, 0, 0, 0, -ENOEXEC, "not a bzImage or ELF64 kernel"},
	{"ELF magic only", BASE_ELF, {{0}}, SELFMAG, 0, 0, -ENOEXEC, "truncated ELF header"},
	{"truncated bzImage", BASE_BZ, {{0}}, BZ_CODE_OFF + BZ_CODE_SIZE - 16, 0, 0, -ENOEXEC,
	 "truncated bzImage"},
	{"huge syssize", BASE_BZ, {{BZ(syssize), 0xffffffff}}, 0, 0, 0, -ENOEXEC,
	 "truncated bzImage"},
	{"truncated setup header", BASE_BZ, {{0}}, 0x210, 0, 0, -ENOEXEC, "truncated setup header"},
	{"bad boot_flag", BASE_BZ, {{BZ(boot_flag), 0x55AA}}, 0, 0, 0, -ENOEXEC, "boot_flag"},
	{"protocol 2.05", BASE_BZ, {{BZ(version), 0x0205}}, 0, 0, 0, -ENOEXEC, "older than 2.06"},
	{"protocol 2.10", BASE_BZ, {{BZ(version), 0x020a}}, 0, 0, 0, -ENOEXEC, "older than 2.12"},
	{"no XLF_KERNEL_64", BASE_BZ, {{BZ(xloadflags), XLF_CAN_BE_LOADED_ABOVE_4G}}, 0, 0, 0,
	 -ENOEXEC, "no 64-bit entry point"},
	{"short setup header", BASE_BZ, {{0x201, 1, 0x30}}, 0, 0, 0, -ENOEXEC,
	 "setup header too short"},
	{"zImage", BASE_BZ, {{BZ(loadflags), 0}}, 0, 0, 0, -ENOEXEC, "LOADED_HIGH"},
	{"no protected-mode code", BASE_BZ, {{BZ(syssize), 0}}, 0, 0, 0, -ENOEXEC,
	 "no protected-mode code"},
	{"init_size too big", BASE_BZ, {{BZ(init_size), 0xfffff000}}, 0, 0, 0, -ENOSPC,
	 "kernel does not fit in RAM"},
	{"decompression area past RAM", BASE_BZ,
	 {{BZ(relocatable_kernel), 0}, {BZ(pref_address), RAM_SIZE - 4 * MIB}}, 0, 0, 0, -ENOSPC,
	 "kernel does not fit in RAM"},
	{"command line too long", BASE_BZ, {{0}}, 0, 256, 0, -E2BIG,
	 "command line longer than the kernel accepts"},
	{"initrd bigger than RAM", BASE_BZ, {{0}}, 0, 0, RAM_SIZE, -ENOSPC, "initrd does not fit"},
	{"no room below initrd_addr_max", BASE_BZ,
	 {{BZ(relocatable_kernel), 0}, {BZ(initrd_addr_max), 2 * MIB - 1}}, 0, 0, 4096, -ENOSPC,
	 "initrd does not fit"},
	{"ELF truncated phdrs", BASE_ELF, {{EH(e_phoff), ELF_SIZE - 8}}, 0, 0, 0, -ENOEXEC,
	 "truncated ELF program headers"},
	{"ELF phoff wraps", BASE_ELF, {{EH(e_phoff), UINT64_MAX - 8}}, 0, 0, 0, -ENOEXEC,
	 "truncated ELF program headers"},
	{"ELF phnum huge", BASE_ELF, {{EH(e_phnum), 0xffff}}, 0, 0, 0, -ENOEXEC,
	 "truncated ELF program headers"},
	{"ELF phnum zero", BASE_ELF, {{EH(e_phnum), 0}}, 0, 0, 0, -ENOEXEC, "no loadable segment"},
	{"ELF phentsize", BASE_ELF, {{EH(e_phentsize), 32}}, 0, 0, 0, -ENOEXEC,
	 "program header entry size"},
	{"ELF segment past EOF", BASE_ELF, {{PH(1, p_filesz), 0x200}}, 0, 0, 0, -ENOEXEC,
	 "truncated ELF"},
	{"ELF offset wraps", BASE_ELF, {{PH(0, p_offset), UINT64_MAX - 4}}, 0, 0, 0, -ENOEXEC,
	 "truncated ELF"},
	{"ELF filesz > memsz", BASE_ELF, {{PH(1, p_memsz), 0x80}}, 0, 0, 0, -ENOEXEC,
	 "larger in the file"},
	{"ELF segment outside RAM", BASE_ELF, {{PH(1, p_paddr), 1 * GIB}}, 0, 0, 0, -ENOSPC,
	 "ELF segment outside RAM"},
	{"ELF paddr wraps", BASE_ELF, {{PH(0, p_paddr), UINT64_MAX - 0xfff}}, 0, 0, 0, -ENOSPC,
	 "ELF segment outside RAM"},
	{"ELF segment below 1 MiB", BASE_ELF, {{PH(0, p_paddr), 0x8000}}, 0, 0, 0, -EINVAL,
	 "below 1 MiB"},
	{"ELF wrong machine", BASE_ELF, {{EH(e_machine), EM_386}}, 0, 0, 0, -ENOEXEC,
	 "not for x86_64"},
	{"ELF wrong class", BASE_ELF, {{EI_CLASS, 1, ELFCLASS32}}, 0, 0, 0, -ENOEXEC, "not 64-bit"},
	{"ELF big-endian", BASE_ELF, {{EI_DATA, 1, ELFDATA2MSB}}, 0, 0, 0, -ENOEXEC,
	 "not little-endian"},
	{"ELF not ET_EXEC", BASE_ELF, {{EH(e_type), ET_DYN}}, 0, 0, 0, -ENOEXEC,
	 "not an executable"},
	{"ELF no PT_LOAD", BASE_PVH, {{PH(0, p_type), PT_NULL}, {PH(1, p_type), PT_NULL}}, 0, 0, 0,
	 -ENOEXEC, "no loadable segment"},
	{"ELF entry outside", BASE_ELF, {{EH(e_entry), 0x1000}}, 0, 0, 0, -ENOEXEC,
	 "entry point outside"},
	{"ELF command line too long", BASE_ELF, {{0}}, 0, X86_CMDLINE_MAX, 0, -E2BIG,
	 "65535 bytes"},
	{"ELF initrd too big", BASE_ELF, {{0}}, 0, 0, RAM_SIZE, -ENOSPC, "initrd does not fit"},
	{"PVH note bad size", BASE_PVH, {{XEN_NOTE + 4, 4, 2}}, 0, 0, 0, -ENOEXEC,
	 "PVH entry note has a bad size"},
	{"PVH entry above 4 GiB", BASE_PVH8, {{XEN_NOTE + 16, 8, 5 * GIB}}, 0, 0, 0, -ENOEXEC,
	 "above 4 GiB"},
	{"PVH entry outside", BASE_PVH, {{XEN_NOTE + 16, 4, 0x2000}}, 0, 0, 0, -ENOEXEC,
	 "entry point outside"},
	{"PVH note descsz huge", BASE_PVH, {{XEN_NOTE + 4, 4, 0xffffffff}}, 0, 0, 0, -ENOEXEC,
	 "malformed ELF note"},
	{"note namesz huge", BASE_PVH, {{ELF_NOTE_OFF, 4, 0xfffffffd}}, 0, 0, 0, -ENOEXEC,
	 "malformed ELF note"},
	{"PT_NOTE past EOF", BASE_PVH, {{PH(2, p_offset), ELF_SIZE - 8}}, 0, 0, 0, -ENOEXEC,
	 "truncated ELF"},
	{"PVH command line too long", BASE_PVH, {{0}}, 0, 100000, 0, -E2BIG, "65535 bytes"},
};
/* clang-format on */

START_TEST(bad_inputs)
{
	const struct bad_case *c = &bad_cases[_i];
	char *cmdline = malloc(c->cmdline_len + 1);
	uint8_t *initrd = calloc(1, c->initrd_size + 1);
	struct boot_info info = {.entry = 0xdead};
	const char *reason = NULL;
	int ret;

	ck_assert_ptr_nonnull(cmdline);
	ck_assert_ptr_nonnull(initrd);
	memset(cmdline, 'a', c->cmdline_len);
	cmdline[c->cmdline_len] = '\0';
	build(c->base);
	for (unsigned i = 0; i < ARRAY_SIZE(c->patch); i++)
		memcpy(img + c->patch[i].off, &c->patch[i].val,
		       c->patch[i].width); /* little-endian */
	if (c->size)
		img_size = c->size;
	ret = load(c->cmdline_len ? cmdline : "console=ttyS0", initrd, c->initrd_size, &info,
	           &reason);
	ck_assert_msg(ret == c->err, "%s: got %d, want %d", c->what, ret, c->err);
	ck_assert_msg(reason && strstr(reason, c->reason), "%s: reason '%s', want '%s'", c->what,
	              reason ? reason : "(null)", c->reason);
	ck_assert_msg(!strchr(reason, '\n'), "%s: reason has a newline", c->what);
	ck_assert_uint_eq(info.entry, 0xdead); /* untouched on failure */
	free(cmdline);
	free(initrd);
}
END_TEST

/* Random byte changes in the headers must give 0 or an error with a reason, never a crash. */
START_TEST(mutated_headers_never_crash)
{
	static const struct {
		enum base base;
		size_t from, len; /* where to change bytes */
	} kinds[] = {{BASE_BZ, 0x1f0, 0x80}, {BASE_ELF, 0, 0x380}, {BASE_PVH, 0, 0x380}};
	static uint8_t initrd[4096];
	unsigned seed = 1;

	for (unsigned round = 0; round < 6000; round++) {
		unsigned k = round % ARRAY_SIZE(kinds);
		struct boot_info info;
		const char *reason = NULL;
		int ret;

		build(kinds[k].base);
		for (unsigned n = 0; n < 1 + round % 8; n++) {
			size_t off = kinds[k].from + (size_t)rand_r(&seed) % kinds[k].len;
			img[off] = (uint8_t)rand_r(&seed);
		}
		if (rand_r(&seed) % 4 == 0)
			img_size = (size_t)rand_r(&seed) % img_size;
		ret = load("console=ttyS0", initrd, sizeof(initrd), &info, &reason);
		ck_assert(ret == 0 || (ret < 0 && reason));
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("x86_boot");
	TCase *tc = tcase_create("x86_boot");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, bzimage_loads_at_pref_address);
	tcase_add_test(tc, bzimage_falls_back_to_1mib);
	tcase_add_test(tc, bzimage_initrd_limits);
	tcase_add_test(tc, bzimage_cmdline_at_limit);
	tcase_add_test(tc, e820_includes_ram_above_4g);
	tcase_add_test(tc, elf_plain_loads_segments);
	tcase_add_test(tc, elf_pvh_start_info);
	tcase_add_test(tc, elf_pvh_linux_style_notes);
	tcase_add_loop_test(tc, bad_inputs, 0, (int)ARRAY_SIZE(bad_cases));
	tcase_add_test(tc, mutated_headers_never_crash);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
