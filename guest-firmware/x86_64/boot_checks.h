/*
 * Boot-protocol checks shared by the elf64_boot (zero page) and pvh_boot (hvm_start_info)
 * payloads. Each payload turns its boot structure into plain values and runs the same checks.
 *
 * The host-side test passes its expectations on the kernel command line, between two marker
 * tokens, so the payload can also check that the user's string comes first:
 *   fwtest.begin fwtest.mem=64M fwtest.initrd_size=100000 fwtest.initrd_fnv=0x1234abcd fwtest.end
 * fwtest.initrd_size=0 means "no initrd expected".
 *
 * Results are recorded with fw_check() (fw.h): the payload exits through the debug-exit port
 * with the code of the first failed check, or 0.
 */
#ifndef VMM_GUEST_FIRMWARE_X86_64_BOOT_CHECKS_H
#define VMM_GUEST_FIRMWARE_X86_64_BOOT_CHECKS_H

#include <stdint.h>

#include "fw.h"

/* Exit codes, one per check. */
enum fw_fail_code {
	FW_FAIL_ENTRY_STATE = 0x10, /* segments, mode or flags at entry */
	FW_FAIL_BOOT_STRUCT = 0x11, /* boot structure address, magic or version */
	FW_FAIL_CMDLINE = 0x12,     /* missing, unterminated, not starting with the user's string */
	FW_FAIL_CMDLINE_DEFAULTS = 0x13, /* console=ttyS0 not appended after the user's string */
	FW_FAIL_PARAMS = 0x14,           /* fwtest.* parameters missing or malformed */
	FW_FAIL_MEMMAP = 0x15,           /* memory map differs from the expected one */
	FW_FAIL_MODULES = 0x16,          /* PVH module list (count, address) */
	FW_FAIL_INITRD_SIZE = 0x17,      /* size differs (or an initrd when none was given) */
	FW_FAIL_INITRD_PLACE = 0x18, /* not page-aligned, below 1 MiB, over the image, beyond RAM */
	FW_FAIL_INITRD_TOP = 0x19,   /* not at the highest page-aligned address of low RAM */
	FW_FAIL_INITRD_DATA = 0x1a,  /* FNV-1a of the bytes differs */
};

#define FW_E820_RAM        1
#define FW_E820_RESERVED   2
#define FW_MAX_MEM_ENTRIES 128

struct fw_mem_entry {
	uint64_t addr, size;
	uint32_t type;
};

/* What the test expects, read from the command line. */
struct fw_expect {
	int valid;
	uint64_t mem;
	uint64_t initrd_size; /* 0: no initrd */
	uint32_t initrd_fnv;
};

/* Entry-state checks: long mode (zero-page entry) or 32-bit protected mode (PVH). */
void fw_check_entry_long64(struct fw_checks *c);
void fw_check_entry_pvh32(struct fw_checks *c);

/* Checks the command line at guest-physical @addr and reads the expectations from it. */
void fw_check_cmdline(struct fw_checks *c, uint64_t addr, struct fw_expect *exp);

/* Checks @n entries of @map (any order) against the map vmm promises for exp->mem. */
void fw_check_memmap(struct fw_checks *c, const struct fw_mem_entry *map, unsigned n,
                     const struct fw_expect *exp);

/* Checks the initrd the boot structure names (0, 0 when it names none). */
void fw_check_initrd(struct fw_checks *c, uint64_t addr, uint64_t size,
                     const struct fw_expect *exp);

#endif
