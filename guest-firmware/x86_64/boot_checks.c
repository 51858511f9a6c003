/* Boot-protocol checks shared by elf64_boot and pvh_boot; see boot_checks.h. */
#include "boot_checks.h"

#include "fw.h"

#define EBDA_START     0x9FC00ULL
#define HIGH_MEM_START 0x100000ULL
#define HOLE_START     (3 * FW_GIB)
#define HOLE_END       (4 * FW_GIB)
#define PAGE_SIZE      4096ULL
#define CMDLINE_MAX    0x10000ULL

#define RFLAGS_IF 0x200ULL
#define RFLAGS_TF 0x100ULL
#define CR0_PE    0x1ULL
#define CR0_PG    0x80000000ULL
#define CR4_PAE   0x20ULL
#define EFER_LME  0x100ULL
#define EFER_LMA  0x400ULL

static void detail(const char *what, uint64_t value)
{
	uart_puts("vmm-firmware:   ");
	uart_puts(what);
	uart_puts(" = ");
	uart_put_hex(value);
	uart_puts("\n");
}

static void print_entry_state(void)
{
	detail("cs", fw_entry_state.cs);
	detail("ds", fw_entry_state.ds);
	detail("es", fw_entry_state.es);
	detail("ss", fw_entry_state.ss);
	detail("rflags", fw_entry_state.rflags);
	detail("cr0", fw_entry_state.cr0);
	detail("cr4", fw_entry_state.cr4);
	detail("efer", fw_entry_state.efer);
}

static int flat_selectors(void)
{
	const struct fw_entry_state *s = &fw_entry_state;

	return s->cs == 0x10 && s->ds == 0x18 && s->es == 0x18 && s->ss == 0x18;
}

void fw_check_entry_long64(struct fw_checks *c)
{
	const struct fw_entry_state *s = &fw_entry_state;
	int ok = flat_selectors() && !(s->rflags & RFLAGS_IF) && (s->cr0 & CR0_PE) &&
	         (s->cr0 & CR0_PG) && (s->cr4 & CR4_PAE) && (s->efer & EFER_LMA);

	print_entry_state();
	fw_check(c, ok, FW_FAIL_ENTRY_STATE,
	         "entry state: long mode, paging on, CS 0x10, data 0x18, interrupts off");
}

void fw_check_entry_pvh32(struct fw_checks *c)
{
	const struct fw_entry_state *s = &fw_entry_state;
	int ok = flat_selectors() && !(s->rflags & (RFLAGS_IF | RFLAGS_TF)) && (s->cr0 & CR0_PE) &&
	         !(s->cr0 & CR0_PG) && !(s->efer & EFER_LMA);

	print_entry_state();
	fw_check(c, ok, FW_FAIL_ENTRY_STATE,
	         "entry state: 32-bit protected mode, paging off, CS 0x10, data 0x18, interrupts "
	         "off");
}

static int param_u64(const char *cmdline, const char *key, int allow_suffix, uint64_t *out)
{
	const char *value;
	size_t len;

	if (!fw_param(cmdline, key, &value, &len) || fw_parse_u64(value, len, allow_suffix, out)) {
		uart_puts("vmm-firmware:   missing or malformed parameter ");
		uart_puts(key);
		uart_puts("=\n");
		return 0;
	}
	return 1;
}

/* The tail of @cmdline after the token "fwtest.end", or NULL. */
static const char *after_end_marker(const char *cmdline)
{
	static const char marker[] = "fwtest.end";
	const char *p = cmdline;

	for (; *p; p++) {
		if ((p == cmdline || p[-1] == ' ') && fw_starts_with(p, marker) &&
		    (p[sizeof(marker) - 1] == ' ' || p[sizeof(marker) - 1] == '\0'))
			return p + sizeof(marker) - 1;
	}
	return NULL;
}

void fw_check_cmdline(struct fw_checks *c, uint64_t addr, struct fw_expect *exp)
{
	const char *cmdline = (const char *)(uintptr_t)addr;
	const char *tail;
	uint64_t fnv = 0;
	size_t len;

	exp->valid = 0;
	detail("cmdline address", addr);
	if (!fw_check(c, addr != 0 && addr < HOLE_START, FW_FAIL_CMDLINE,
	              "command line address is in low RAM"))
		return;
	len = fw_strnlen(cmdline, CMDLINE_MAX);
	uart_puts("vmm-firmware: cmdline: ");
	uart_puts(cmdline);
	uart_puts("\n");
	if (!fw_check(c, len < CMDLINE_MAX, FW_FAIL_CMDLINE, "command line is NUL-terminated"))
		return;
	fw_check(c, fw_starts_with(cmdline, "fwtest.begin "), FW_FAIL_CMDLINE,
	         "command line starts with the user's string");
	tail = after_end_marker(cmdline);
	fw_check(c, tail && fw_has_token(tail, "console=ttyS0"), FW_FAIL_CMDLINE_DEFAULTS,
	         "console=ttyS0 follows the user's string");

	exp->valid = param_u64(cmdline, "fwtest.mem", 1, &exp->mem) &&
	             param_u64(cmdline, "fwtest.initrd_size", 0, &exp->initrd_size) &&
	             (exp->initrd_size == 0 || param_u64(cmdline, "fwtest.initrd_fnv", 0, &fnv));
	exp->initrd_fnv = (uint32_t)fnv;
	fw_check(c, exp->valid, FW_FAIL_PARAMS, "fwtest.* parameters present");
}

static void sort_entries(struct fw_mem_entry *map, unsigned n)
{
	for (unsigned i = 1; i < n; i++) {
		struct fw_mem_entry e = map[i];
		unsigned j = i;

		for (; j > 0 && map[j - 1].addr > e.addr; j--)
			map[j] = map[j - 1];
		map[j] = e;
	}
}

static int overlaps(const struct fw_mem_entry *a, const struct fw_mem_entry *b)
{
	return a->addr < b->addr + b->size && b->addr < a->addr + a->size;
}

/* RAM entries of @map, sorted, with touching ones merged, into @ram. Returns the count. */
static unsigned ram_ranges(const struct fw_mem_entry *map, unsigned n, struct fw_mem_entry *ram)
{
	unsigned count = 0;

	for (unsigned i = 0; i < n; i++) {
		if (map[i].type == FW_E820_RAM)
			ram[count++] = map[i];
	}
	sort_entries(ram, count);
	for (unsigned i = 1; i < count;) {
		if (ram[i - 1].addr + ram[i - 1].size == ram[i].addr) {
			ram[i - 1].size += ram[i].size;
			for (unsigned j = i + 1; j < count; j++)
				ram[j - 1] = ram[j];
			count--;
		} else {
			i++;
		}
	}
	return count;
}

static unsigned expected_ram(uint64_t mem, struct fw_mem_entry *ram)
{
	uint64_t low_top = mem < HOLE_START ? mem : HOLE_START;
	unsigned n = 0;

	ram[n++] = (struct fw_mem_entry){0, EBDA_START, FW_E820_RAM};
	ram[n++] = (struct fw_mem_entry){HIGH_MEM_START, low_top - HIGH_MEM_START, FW_E820_RAM};
	if (mem > HOLE_START)
		ram[n++] = (struct fw_mem_entry){HOLE_END, mem - HOLE_START, FW_E820_RAM};
	return n;
}

static int sane_entries(const struct fw_mem_entry *map, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (map[i].size == 0 || map[i].addr + map[i].size < map[i].addr)
			return 0;
	}
	return 1;
}

/* True when non-RAM entries cover [@lo, @hi) without gaps (they may be split). */
static int covered_by_reserved(const struct fw_mem_entry *map, unsigned n, uint64_t lo, uint64_t hi)
{
	uint64_t pos = lo;
	int advanced = 1;

	while (pos < hi && advanced) {
		advanced = 0;
		for (unsigned i = 0; i < n; i++) {
			if (map[i].type != FW_E820_RAM && map[i].addr <= pos &&
			    map[i].addr + map[i].size > pos) {
				pos = map[i].addr + map[i].size;
				advanced = 1;
			}
		}
	}
	return pos >= hi;
}

static int reserved_clear_of_ram(const struct fw_mem_entry *map, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		for (unsigned j = 0; j < n; j++) {
			if (map[i].type != FW_E820_RAM && map[j].type == FW_E820_RAM &&
			    overlaps(&map[i], &map[j]))
				return 0;
		}
	}
	return 1;
}

void fw_check_memmap(struct fw_checks *c, const struct fw_mem_entry *map, unsigned n,
                     const struct fw_expect *exp)
{
	struct fw_mem_entry ram[FW_MAX_MEM_ENTRIES], want[3];
	unsigned n_ram, n_want;
	int same;

	for (unsigned i = 0; i < n; i++) {
		uart_puts("vmm-firmware: memmap: ");
		uart_put_hex(map[i].addr);
		uart_puts(" + ");
		uart_put_hex(map[i].size);
		uart_puts(" type ");
		uart_put_dec(map[i].type);
		uart_puts("\n");
	}
	if (!fw_check(c, n > 0 && n <= FW_MAX_MEM_ENTRIES && sane_entries(map, n), FW_FAIL_MEMMAP,
	              "memory map has 1..128 well-formed entries"))
		return;
	if (!exp->valid) {
		fw_check(c, 0, FW_FAIL_PARAMS, "memory map: no fwtest.mem to compare with");
		return;
	}
	n_ram = ram_ranges(map, n, ram);
	n_want = expected_ram(exp->mem, want);
	same = n_ram == n_want;
	for (unsigned i = 0; same && i < n_ram; i++)
		same = ram[i].addr == want[i].addr && ram[i].size == want[i].size;
	if (!same) {
		for (unsigned i = 0; i < n_want; i++) {
			detail("expected RAM start", want[i].addr);
			detail("expected RAM size", want[i].size);
		}
	}
	fw_check(c, same, FW_FAIL_MEMMAP, "memory map RAM ranges match --mem");
	fw_check(c, covered_by_reserved(map, n, EBDA_START, HIGH_MEM_START), FW_FAIL_MEMMAP,
	         "memory map reserves [0x9fc00, 0x100000)");
	fw_check(c, reserved_clear_of_ram(map, n), FW_FAIL_MEMMAP,
	         "memory map: no reserved entry overlaps RAM");
}

void fw_check_initrd(struct fw_checks *c, uint64_t addr, uint64_t size, const struct fw_expect *exp)
{
	uint64_t low_top, end, top_addr;
	int placed;

	detail("initrd address", addr);
	detail("initrd size", size);
	if (!exp->valid) {
		fw_check(c, 0, FW_FAIL_PARAMS, "initrd: no fwtest.initrd_size to compare with");
		return;
	}
	if (exp->initrd_size == 0) {
		fw_check(c, addr == 0 && size == 0, FW_FAIL_INITRD_SIZE,
		         "no initrd given, none announced");
		return;
	}
	if (!fw_check(c, size == exp->initrd_size, FW_FAIL_INITRD_SIZE,
	              "initrd size matches the file"))
		return;
	low_top = exp->mem < HOLE_START ? exp->mem : HOLE_START;
	end = addr + size;
	placed = addr % PAGE_SIZE == 0 && addr >= HIGH_MEM_START &&
	         addr >= (uint64_t)(uintptr_t)__image_end && end > addr && end <= low_top;
	if (!fw_check(c, placed, FW_FAIL_INITRD_PLACE,
	              "initrd page-aligned, above 1 MiB and the kernel, inside low RAM"))
		return;
	top_addr = (low_top - size) & ~(PAGE_SIZE - 1);
	if (addr != top_addr)
		detail("expected initrd address", top_addr);
	fw_check(c, addr == top_addr, FW_FAIL_INITRD_TOP,
	         "initrd at the highest page-aligned address of low RAM");
	fw_check(c, fw_fnv1a((const void *)(uintptr_t)addr, size) == exp->initrd_fnv,
	         FW_FAIL_INITRD_DATA, "initrd contents match (FNV-1a)");
}
