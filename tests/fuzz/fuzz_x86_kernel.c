/*
 * libFuzzer target: the x86_64 kernel loaders (arch/x86_64/boot*.c), built twice: as
 * fuzz_bzimage (FUZZ_BZIMAGE: the input's kernel always carries the setup header's magic
 * numbers, so the bzImage loader runs) and as fuzz_elf (FUZZ_ELF: it always starts with the ELF
 * magic). The input: a flags byte (bit 0: RAM at 4 GiB too), le16 command-line length, le32
 * initrd size, then the kernel file. RAM: 64 MiB at 0 (and 16 MiB at 4 GiB).
 */
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/boot.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"

#define LOW_RAM    (64 * MIB)
#define HIGH_RAM   (16 * MIB)
#define INITRD_MAX (64 * KIB)
#define CMDLINE    4096

static struct guest_memory low, both;
static uint8_t initrd[INITRD_MAX];
static char cmdline[CMDLINE + 1];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	fz_memory_init(&low, 0, LOW_RAM, 0);
	memset(&both, 0, sizeof(both));
	fz_must(guest_memory_add(&both, 0, LOW_RAM), "guest RAM");
	fz_must(guest_memory_add(&both, 4 * GIB, HIGH_RAM), "guest RAM");
	memset(initrd, 0xa5, sizeof(initrd));
	memset(cmdline, 'c', CMDLINE);
	return 0;
}

/* Keeps the fuzzer inside one loader: the magic numbers it checks first are always there. */
static void force_magic(uint8_t *k, size_t len)
{
#ifdef FUZZ_ELF
	static const uint8_t elf[] = {0x7f, 'E', 'L', 'F'};

	if (len >= sizeof(elf))
		memcpy(k, elf, sizeof(elf));
#else
	if (len >= 0x206) {
		k[0x1fe] = 0x55;
		k[0x1ff] = 0xaa;
		memcpy(k + 0x202, "HdrS", 4);
	}
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	uint8_t flags = fz_u8(&f);
	uint16_t cmdline_len = fz_u16(&f) % (CMDLINE + 1);
	uint32_t initrd_size = fz_u32(&f) % (INITRD_MAX + 1);
	const struct guest_memory *mem = flags & 1 ? &both : &low;
	const char *reason = NULL;
	struct boot_info info;
	const uint8_t *rest;
	size_t len;
	uint8_t *kernel;

	rest = fz_rest(&f, &len);
	kernel = malloc(len ? len : 1); /* exactly sized: ASan sees any read past the file */
	if (!kernel)
		abort();
	memcpy(kernel, rest, len);
	force_magic(kernel, len);
	cmdline[cmdline_len] = '\0';
	if (x86_load_kernel(mem, &(struct boot_image){kernel, len},
	                    &(struct boot_image){initrd_size ? initrd : NULL, initrd_size},
	                    flags & 2 ? NULL : cmdline, &info, &reason) &&
	    !reason)
		abort(); /* every failure names its reason */
	cmdline[cmdline_len] = 'c';
	free(kernel);
	return 0;
}
