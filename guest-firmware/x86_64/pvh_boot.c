/*
 * pvh_boot: entered through the PVH note (32-bit protected mode, EBX = struct hvm_start_info;
 * entry_pvh.S switches to long mode). Checks the entry state, the start info (magic, version),
 * its memory map, command line and initrd module against the expectations on the command line
 * (see boot_checks.h), and exits through the debug-exit port with 0 or the first failed code.
 */
#include "boot_checks.h"
#include "fw.h"

/* xen/include/public/arch-x86/hvm/start_info.h */
#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
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

#define LOW_RAM_LIMIT 0xC0000000ULL

static struct fw_mem_entry map[FW_MAX_MEM_ENTRIES];

/* True when [addr, addr + len) is a plausible low-RAM range (so safe to read). */
static int in_low_ram(uint64_t addr, uint64_t len)
{
	return addr != 0 && addr < LOW_RAM_LIMIT && len <= LOW_RAM_LIMIT - addr;
}

static void check_memmap(struct fw_checks *c, const struct hvm_start_info *si,
                         const struct fw_expect *exp)
{
	const struct hvm_memmap_table_entry *t;
	unsigned n = si->memmap_entries;

	if (!fw_check(c,
	              n > 0 && n <= FW_MAX_MEM_ENTRIES &&
	                      in_low_ram(si->memmap_paddr, (uint64_t)n * sizeof(*t)),
	              FW_FAIL_MEMMAP, "memmap_paddr and memmap_entries plausible"))
		return;
	t = (const struct hvm_memmap_table_entry *)(uintptr_t)si->memmap_paddr;
	for (unsigned i = 0; i < n; i++)
		map[i] = (struct fw_mem_entry){t[i].addr, t[i].size, t[i].type};
	fw_check_memmap(c, map, n, exp);
}

static void check_modules(struct fw_checks *c, const struct hvm_start_info *si,
                          const struct fw_expect *exp)
{
	const struct hvm_modlist_entry *mod;
	unsigned want = exp->valid && exp->initrd_size ? 1 : 0;

	uart_puts("vmm-firmware:   nr_modules = ");
	uart_put_dec(si->nr_modules);
	uart_puts("\n");
	if (!exp->valid) {
		fw_check(c, 0, FW_FAIL_PARAMS, "modules: no fwtest.initrd_size to compare with");
		return;
	}
	if (!fw_check(c, si->nr_modules == want, FW_FAIL_MODULES,
	              want ? "one module (the initrd)" : "no modules without an initrd"))
		return;
	if (!want) {
		fw_check_initrd(c, 0, 0, exp);
		return;
	}
	if (!fw_check(c, in_low_ram(si->modlist_paddr, sizeof(*mod)), FW_FAIL_MODULES,
	              "modlist_paddr plausible"))
		return;
	mod = (const struct hvm_modlist_entry *)(uintptr_t)si->modlist_paddr;
	fw_check_initrd(c, mod->paddr, mod->size, exp);
}

void fw_main(uint64_t boot_arg)
{
	const struct hvm_start_info *si = (const struct hvm_start_info *)(uintptr_t)boot_arg;
	struct fw_checks c = {0};
	struct fw_expect exp;

	uart_puts("vmm-firmware: pvh_boot: checking hvm_start_info\n");
	fw_check_entry_pvh32(&c);
	if (!fw_check(&c, in_low_ram(boot_arg, sizeof(*si)) && boot_arg % 8 == 0,
	              FW_FAIL_BOOT_STRUCT, "hvm_start_info address (EBX) is in low RAM"))
		fw_checks_finish(&c);
	uart_puts("vmm-firmware:   magic = ");
	uart_put_hex(si->magic);
	uart_puts(", version = ");
	uart_put_dec(si->version);
	uart_puts("\n");
	fw_check(&c, si->magic == HVM_START_MAGIC, FW_FAIL_BOOT_STRUCT,
	         "hvm_start_info magic 0x336ec578");
	fw_check(&c, si->version == 1, FW_FAIL_BOOT_STRUCT, "hvm_start_info version 1");

	fw_check_cmdline(&c, si->cmdline_paddr, &exp);
	check_memmap(&c, si, &exp);
	check_modules(&c, si, &exp);
	fw_checks_finish(&c);
}
