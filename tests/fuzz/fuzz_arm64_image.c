/*
 * libFuzzer target: the arm64 Image loader (arch/aarch64/boot.c), arch-neutral, into 32 MiB of
 * RAM at ARM64_RAM_BASE. The input: le32 initrd size, then the Image file. A successful load
 * must place the kernel, initrd and device tree slot inside RAM.
 */
#include <stdlib.h>
#include <string.h>

#include "arch/aarch64/boot.h"
#include "arch/aarch64/layout.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"

#define RAM        (32 * MIB)
#define INITRD_MAX (64 * KIB)

static struct guest_memory mem;
static uint8_t initrd[INITRD_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	fz_memory_init(&mem, ARM64_RAM_BASE, RAM, 0);
	memset(initrd, 0xa5, sizeof(initrd));
	return 0;
}

static bool in_ram(uint64_t addr, uint64_t len)
{
	return addr >= ARM64_RAM_BASE && len <= RAM && addr - ARM64_RAM_BASE <= RAM - len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	uint32_t initrd_size = fz_u32(&f) % (INITRD_MAX + 1);
	const char *reason = NULL;
	struct arm64_boot_info info;
	const uint8_t *rest;
	size_t len;
	uint8_t *kernel;
	int ret;

	rest = fz_rest(&f, &len);
	kernel = malloc(len ? len : 1);
	if (!kernel)
		abort();
	memcpy(kernel, rest, len);
	ret = arm64_load_image(&mem, &(struct boot_image){kernel, len},
	                       &(struct boot_image){initrd_size ? initrd : NULL, initrd_size},
	                       &info, &reason);
	if (ret && !reason)
		abort();
	if (!ret && (!in_ram(info.entry, len) || !in_ram(info.dtb_addr, 2 * MIB) ||
	             (info.initrd_size && !in_ram(info.initrd_start, info.initrd_size))))
		abort();
	free(kernel);
	return 0;
}
