/*
 * bench/arm64_payload.c: the aarch64 payloads of bench/boot's host rows, one file that vmm and
 * QEMU's virt machine both boot as an arm64 Linux Image (so both load it the same way and pass
 * the device tree in x0). It finds its console UART in that device tree (the first node whose
 * compatible is ns16550a, ns16550 or arm,pl011, at the root's #address-cells), writes '!' to
 * it, then powers off through PSCI SYSTEM_OFF over HVC (the first-write payload) or, built with
 * -DIDLE, waits for interrupts forever with them masked (the memory row: the bench reads the
 * VMM's /proc/PID/smaps, then kills it).
 *
 * Freestanding and position independent (PC-relative addressing only, no pointers in data),
 * linked by bench/arm64_payload.ld at 0 and turned into a flat Image with objcopy. Built by
 * bench/boot with aarch64-linux-gnu-gcc at run time.
 */
#include <stdint.h>

#define FDT_MAGIC       0xd00dfeedu
#define FDT_BEGIN_NODE  1u
#define FDT_END_NODE    2u
#define FDT_PROP        3u
#define FDT_NOP         4u
#define PSCI_SYSTEM_OFF 0x84000008u

void payload_main(const uint8_t *fdt);

/*
 * The arm64 Image header (Documentation/arch/arm64/booting.rst): a branch to the code, text
 * offset 0, the image size from the linker script, flags 0xa (little endian, 4 KiB pages,
 * anywhere in RAM), and the "ARM\x64" magic at offset 56. x0 holds the device tree on entry.
 */
__asm__("	.section .head, \"ax\"\n"
        "	.globl	_head\n"
        "_head:\n"
        "	b	entry\n"
        "	.long	0\n"
        "	.quad	0\n"
        "	.quad	_image_size\n"
        "	.quad	0xa\n"
        "	.quad	0, 0, 0\n"
        "	.ascii	\"ARM\\x64\"\n"
        "	.long	0\n"
        "entry:\n"
        "	msr	daifset, #0xf\n"
        "	adrp	x1, stack_top\n"
        "	add	x1, x1, :lo12:stack_top\n"
        "	mov	sp, x1\n"
        "	bl	payload_main\n"
        "1:	wfi\n"
        "	b	1b\n");

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t str_len(const char *s)
{
	uint32_t n = 0;

	while (s[n])
		n++;
	return n;
}

static int str_eq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* 1 for a 16550, 2 for a PL011, 0 otherwise: compatible is a list of NUL-terminated strings. */
static int uart_kind(const char *compat, uint32_t len)
{
	uint32_t i = 0;

	while (i < len) {
		const char *s = compat + i;

		if (str_eq(s, "ns16550a") || str_eq(s, "ns16550"))
			return 1;
		if (str_eq(s, "arm,pl011"))
			return 2;
		i += str_len(s) + 1;
	}
	return 0;
}

struct uart {
	uint64_t base;
	int kind; /* as uart_kind() */
	int wide; /* 32-bit register accesses (PL011, or reg-io-width 4) */
};

/* Walks the flattened device tree for the console UART; returns 0 when found. */
static int find_uart(const uint8_t *fdt, struct uart *out)
{
	const uint8_t *p, *strs;
	uint32_t acells = 2, depth = 0;
	struct uart cur = {0, 0, 0};
	int have_reg = 0;

	if (be32(fdt) != FDT_MAGIC)
		return -1;
	p = fdt + be32(fdt + 8);
	strs = fdt + be32(fdt + 12);
	for (int steps = 0; steps < 100000; steps++) {
		uint32_t tok = be32(p), len;
		const char *name;

		p += 4;
		switch (tok) {
		case FDT_BEGIN_NODE:
			p += (str_len((const char *)p) + 4) & ~3u;
			depth++;
			cur.kind = 0;
			cur.wide = 0;
			have_reg = 0;
			break;
		case FDT_END_NODE:
			if (cur.kind && have_reg) {
				if (cur.kind == 2)
					cur.wide = 1;
				*out = cur;
				return 0;
			}
			depth--;
			cur.kind = 0;
			have_reg = 0;
			break;
		case FDT_PROP:
			len = be32(p);
			name = (const char *)strs + be32(p + 4);
			p += 8;
			if (depth == 1 && str_eq(name, "#address-cells") && len == 4)
				acells = be32(p);
			else if (str_eq(name, "compatible"))
				cur.kind = uart_kind((const char *)p, len);
			else if (str_eq(name, "reg-io-width") && len == 4)
				cur.wide = be32(p) == 4;
			else if (str_eq(name, "reg") && len >= 4 * acells && acells >= 1 &&
			         acells <= 2) {
				cur.base = acells == 2 ? (uint64_t)be32(p) << 32 | be32(p + 4)
				                       : be32(p);
				have_reg = 1;
			}
			p += (len + 3) & ~3u;
			break;
		case FDT_NOP:
			break;
		default: /* FDT_END or garbage */
			return -1;
		}
	}
	return -1;
}

#ifndef IDLE
static void psci_system_off(void)
{
	register uint64_t x0 __asm__("x0") = PSCI_SYSTEM_OFF;

	__asm__ volatile("hvc #0" : "+r"(x0) : : "x1", "x2", "x3", "memory");
}
#endif

void payload_main(const uint8_t *fdt)
{
	struct uart u;

	if (find_uart(fdt, &u) == 0) {
		if (u.wide)
			*(volatile uint32_t *)(uintptr_t)u.base = '!';
		else
			*(volatile uint8_t *)(uintptr_t)u.base = '!';
	}
#ifndef IDLE
	psci_system_off();
#endif
	for (;;)
		__asm__ volatile("wfi");
}
