/*
 * A freestanding arm64 program that vmm runs as a raw payload (a file without the arm64 Image
 * header: loaded at RAM base + 0x80000, entered at its first byte with the device tree's
 * address in x0). It checks what it was given and says so on the 16550 at 0x0b000000:
 *
 *   RAW-DTB=ok             x0 held a device tree (its magic, and a size within 2 MiB)
 *   RAW-ARGS=[...]         /chosen/bootargs, as the guest sees it
 *   RAW-GIC=COMPATIBLE     the interrupt controller's compatible string (arm,gic-v3 or
 *                          arm,cortex-a15-gic for a GICv2)
 *   RAW-ERROR=...          what was wrong instead
 *
 * then powers the machine off through PSCI SYSTEM_OFF (hvc), so vmm exits with status 0.
 * Built by tests/linux/test_linux_arm64.py with the cross compiler: no libc, no globals that
 * need zeroing (vmm loads the file and nothing after it), a stack below the payload.
 */
#include <stdint.h>

#define UART_BASE       0x0b000000UL
#define UART_LSR        5
#define UART_LSR_THRE   0x20
#define FDT_MAGIC       0xd00dfeedU
#define FDT_MAX         (2U << 20)
#define FDT_BEGIN_NODE  1
#define FDT_END_NODE    2
#define FDT_PROP        3
#define FDT_NOP         4
#define FDT_END         9
#define PSCI_SYSTEM_OFF 0x84000008UL

/* The entry: a stack 64 KiB below the payload (RAM base + 0x70000), then main(x0). */
__asm__(".section .boot, \"ax\"\n"
        ".global _start\n"
        "_start:\n"
        "\tadr x1, _start\n"
        "\tsub sp, x1, #0x10000\n"
        "\tbl main\n"
        "1:\twfi\n"
        "\tb 1b\n");

static void putc_uart(char c)
{
	volatile uint8_t *uart = (volatile uint8_t *)UART_BASE;

	while (!(uart[UART_LSR] & UART_LSR_THRE))
		;
	uart[0] = (uint8_t)c;
}

static void puts_uart(const char *s)
{
	while (*s)
		putc_uart(*s++);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static uint32_t align4(uint32_t n)
{
	return (n + 3) & ~3U;
}

static int starts_with(const char *s, const char *prefix)
{
	while (*prefix && *s == *prefix)
		s++, prefix++;
	return !*prefix;
}

/*
 * /chosen/bootargs in the device tree at @fdt, or 0 (its length in *len); *gic: the first
 * compatible string that names a GIC, or 0. Walks the whole structure block.
 */
static const char *find_bootargs(const uint8_t *fdt, uint32_t *len, const char **gic)
{
	uint32_t off = be32(fdt + 8), strings = be32(fdt + 12), end = be32(fdt + 4);
	const char *args = 0;
	int depth = 0, in_chosen = 0;

	while (off + 4 <= end) {
		uint32_t token = be32(fdt + off);
		const char *name;
		uint32_t n;

		off += 4;
		switch (token) {
		case FDT_BEGIN_NODE:
			name = (const char *)fdt + off;
			for (n = 0; name[n]; n++)
				;
			depth++;
			in_chosen = depth == 2 && streq(name, "chosen");
			off += align4(n + 1);
			break;
		case FDT_END_NODE:
			depth--;
			in_chosen = 0;
			break;
		case FDT_PROP:
			n = be32(fdt + off);
			name = (const char *)fdt + strings + be32(fdt + off + 4);
			if (streq(name, "compatible") && !*gic &&
			    (starts_with((const char *)fdt + off + 8, "arm,gic") ||
			     starts_with((const char *)fdt + off + 8, "arm,cortex-a15-gic")))
				*gic = (const char *)fdt + off + 8;
			if (in_chosen && streq(name, "bootargs")) {
				*len = n;
				args = (const char *)fdt + off + 8;
			}
			off += 8 + align4(n);
			break;
		case FDT_NOP:
			break;
		default: /* FDT_END, or not a device tree: what was found so far */
			return args;
		}
	}
	return args;
}

static void power_off(void)
{
	register uint64_t x0 __asm__("x0") = PSCI_SYSTEM_OFF;

	__asm__ volatile("hvc #0" : "+r"(x0) : : "memory");
}

void main(const uint8_t *fdt)
{
	const char *args, *gic = 0;
	uint32_t len = 0;

	if (!fdt || be32(fdt) != FDT_MAGIC || be32(fdt + 4) > FDT_MAX) {
		puts_uart("RAW-ERROR=no device tree at x0\n");
	} else {
		puts_uart("RAW-DTB=ok\n");
		args = find_bootargs(fdt, &len, &gic);
		puts_uart("RAW-GIC=");
		puts_uart(gic ? gic : "none");
		puts_uart("\nRAW-ARGS=[");
		for (uint32_t i = 0; args && i < len && args[i]; i++)
			putc_uart(args[i]);
		puts_uart(args ? "]\n" : "] (no /chosen/bootargs)\n");
	}
	power_off();
}
