/*
 * elf64_boot: entered as a plain ELF64 (long mode, RSI = Linux zero page). Checks the entry
 * state, the e820 map, the command line and the initrd the zero page describes against the
 * expectations on the command line (see boot_checks.h), and exits through the debug-exit port
 * with 0 or the code of the first failed check.
 */
#include "boot_checks.h"
#include "fw.h"

/* struct boot_params offsets (Linux Documentation/arch/x86/zero-page.rst, boot.rst). */
#define ZP_EXT_RAMDISK_IMAGE 0x0c0
#define ZP_EXT_RAMDISK_SIZE  0x0c4
#define ZP_EXT_CMD_LINE_PTR  0x0c8
#define ZP_E820_ENTRIES      0x1e8
#define ZP_RAMDISK_IMAGE     0x218
#define ZP_RAMDISK_SIZE      0x21c
#define ZP_CMD_LINE_PTR      0x228
#define ZP_E820_TABLE        0x2d0
#define ZP_E820_MAX          128
#define ZP_SIZE              4096

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

static uint32_t zp_u32(const uint8_t *zp, unsigned off)
{
	uint32_t v;

	memcpy(&v, zp + off, sizeof(v));
	return v;
}

static struct fw_mem_entry map[ZP_E820_MAX];

void fw_main(uint64_t boot_arg)
{
	const uint8_t *zp = (const uint8_t *)(uintptr_t)boot_arg;
	struct fw_checks c = {0};
	struct fw_expect exp;
	unsigned n;

	uart_puts("vmm-firmware: elf64_boot: checking the zero page\n");
	fw_check_entry_long64(&c);
	if (!fw_check(&c, boot_arg != 0 && boot_arg % 16 == 0 && boot_arg + ZP_SIZE <= 0x9FC00,
	              FW_FAIL_BOOT_STRUCT, "zero page address (RSI) is in low RAM"))
		fw_checks_finish(&c);

	fw_check_cmdline(
	        &c, zp_u32(zp, ZP_CMD_LINE_PTR) | (uint64_t)zp_u32(zp, ZP_EXT_CMD_LINE_PTR) << 32,
	        &exp);

	n = zp[ZP_E820_ENTRIES];
	if (fw_check(&c, n <= ZP_E820_MAX, FW_FAIL_MEMMAP, "e820_entries at most 128")) {
		for (unsigned i = 0; i < n; i++) {
			struct e820_entry e;

			memcpy(&e, zp + ZP_E820_TABLE + i * sizeof(e), sizeof(e));
			map[i] = (struct fw_mem_entry){e.addr, e.size, e.type};
		}
		fw_check_memmap(&c, map, n, &exp);
	}

	fw_check_initrd(
	        &c, zp_u32(zp, ZP_RAMDISK_IMAGE) | (uint64_t)zp_u32(zp, ZP_EXT_RAMDISK_IMAGE) << 32,
	        zp_u32(zp, ZP_RAMDISK_SIZE) | (uint64_t)zp_u32(zp, ZP_EXT_RAMDISK_SIZE) << 32,
	        &exp);
	fw_checks_finish(&c);
}
