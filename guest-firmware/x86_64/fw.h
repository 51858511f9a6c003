/*
 * The guest-firmware helper library: port and MMIO accessors, UART output and input, the
 * debug-exit port, an i8042 reset, a few string helpers and command-line parameter parsing.
 * Freestanding: no libc, runs in 64-bit long mode with an identity map.
 */
#ifndef VMM_GUEST_FIRMWARE_X86_64_FW_H
#define VMM_GUEST_FIRMWARE_X86_64_FW_H

#include <stddef.h>
#include <stdint.h>

/* The machine, as vmm's contract describes it (kept apart from vmm's headers on purpose). */
#define FW_COM1           0x3F8
#define FW_COM1_LSR       (FW_COM1 + 5)
#define FW_LSR_DATA_READY 0x01
#define FW_LSR_THR_EMPTY  0x20
#define FW_DEBUG_EXIT     0xF4
#define FW_I8042_CMD      0x64
#define FW_I8042_RESET    0xFE
#define FW_TEST_PORT      0x520
#define FW_TEST_PORT_LEN  0x10
#define FW_TEST_MMIO      0xD0000000ULL
#define FW_TEST_MMIO_LEN  0x1000ULL

#define FW_KIB 1024ULL
#define FW_MIB (1024ULL * FW_KIB)
#define FW_GIB (1024ULL * FW_MIB)

/* What the entry code saw before it touched anything (filled by entry64.S / entry_pvh.S). */
struct fw_entry_state {
	uint64_t boot_arg; /* RSI (zero page) or EBX (hvm_start_info) */
	uint64_t cs, ds, es, ss;
	uint64_t rflags;
	uint64_t cr0, cr4;
	uint64_t efer;
};
extern struct fw_entry_state fw_entry_state;

/* Provided by each payload; called by the entry code with the boot argument. */
void fw_main(uint64_t boot_arg);

/* Image bounds from the linker script. */
extern char __image_start[], __image_end[];

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* MMIO through single explicit mov instructions, so each is exactly one access of that size. */
static inline void mmio_write8(uint64_t addr, uint8_t v)
{
	__asm__ volatile("movb %0, (%1)" : : "q"(v), "r"(addr) : "memory");
}

static inline void mmio_write16(uint64_t addr, uint16_t v)
{
	__asm__ volatile("movw %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	__asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline void mmio_write64(uint64_t addr, uint64_t v)
{
	__asm__ volatile("movq %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline uint8_t mmio_read8(uint64_t addr)
{
	uint8_t v;

	__asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(addr) : "memory");
	return v;
}

static inline uint16_t mmio_read16(uint64_t addr)
{
	uint16_t v;

	__asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	uint32_t v;

	__asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static inline uint64_t mmio_read64(uint64_t addr)
{
	uint64_t v;

	__asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

/* UART (COM1, polled). */
void uart_putc(char c);
void uart_puts(const char *s); /* "\n" goes out as "\r\n" */
void uart_put_hex(uint64_t v); /* 0x-prefixed, no leading zeros */
void uart_put_dec(uint64_t v);
int uart_getc(void); /* waits for a byte */

/* Ends the VM: debug-exit status, or a machine reset through the i8042. Never return. */
__attribute__((noreturn)) void fw_exit(uint8_t status);
__attribute__((noreturn)) void fw_reset(void);
/* cli; hlt forever. */
__attribute__((noreturn)) void fw_halt(void);

/* String helpers (the compiler may also emit calls to memset/memcpy/memcmp). */
size_t fw_strlen(const char *s);
size_t fw_strnlen(const char *s, size_t max);
int fw_strncmp(const char *a, const char *b, size_t n);
int fw_starts_with(const char *s, const char *prefix);
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/*
 * Finds the space-separated token "@key=VALUE" in @cmdline. Returns 1 and sets *@value to the
 * start of VALUE and *@len to its length, or returns 0.
 */
int fw_param(const char *cmdline, const char *key, const char **value, size_t *len);
/* True when @cmdline has the whole token @token (no "=value" part). */
int fw_has_token(const char *cmdline, const char *token);
/*
 * Parses a number (decimal, or hex with 0x) with an optional K/M/G/T suffix when @allow_suffix.
 * Returns 0 on success, -1 on malformed input or overflow.
 */
int fw_parse_u64(const char *s, size_t len, int allow_suffix, uint64_t *out);

/* Results of a payload's checks. */
struct fw_checks {
	uint8_t first_failure; /* 0 while all passed */
	unsigned passed, failed;
};

/*
 * Records one check and prints "vmm-firmware: PASS <name>" or
 * "vmm-firmware: FAIL <name> (code N)". Returns @ok.
 */
int fw_check(struct fw_checks *c, int ok, uint8_t code, const char *name);
/* Prints a summary and exits through the debug-exit port with the first failed code, or 0. */
__attribute__((noreturn)) void fw_checks_finish(struct fw_checks *c);

/* 32-bit FNV-1a over @len bytes. */
uint32_t fw_fnv1a(const void *data, uint64_t len);

#endif
