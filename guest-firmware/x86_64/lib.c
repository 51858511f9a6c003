/* The guest-firmware helper library; see fw.h. */
#include "fw.h"

void uart_putc(char c)
{
	while (!(inb(FW_COM1_LSR) & FW_LSR_THR_EMPTY))
		;
	outb(FW_COM1, (uint8_t)c);
}

void uart_puts(const char *s)
{
	for (; *s; s++) {
		if (*s == '\n')
			uart_putc('\r');
		uart_putc(*s);
	}
}

void uart_put_hex(uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	int shift = 60;

	uart_puts("0x");
	while (shift > 0 && !((v >> shift) & 0xF))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		uart_putc(digits[(v >> shift) & 0xF]);
}

void uart_put_dec(uint64_t v)
{
	char buf[21];
	int i = (int)sizeof(buf) - 1;

	buf[i] = '\0';
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	uart_puts(&buf[i]);
}

int uart_getc(void)
{
	while (!(inb(FW_COM1_LSR) & FW_LSR_DATA_READY))
		__asm__ volatile("pause");
	return inb(FW_COM1);
}

void fw_halt(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

void fw_exit(uint8_t status)
{
	outb(FW_DEBUG_EXIT, status);
	/* Only reached when the debug-exit port is missing: make that visible. */
	uart_puts("vmm-firmware: debug-exit port did not end the VM\n");
	fw_halt();
}

void fw_reset(void)
{
	outb(FW_I8042_CMD, FW_I8042_RESET);
	uart_puts("vmm-firmware: i8042 reset did not end the VM\n");
	fw_halt();
}

size_t fw_strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

size_t fw_strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

int fw_strncmp(const char *a, const char *b, size_t n)
{
	for (; n; n--, a++, b++) {
		if (*a != *b)
			return (unsigned char)*a - (unsigned char)*b;
		if (!*a)
			break;
	}
	return 0;
}

int fw_starts_with(const char *s, const char *prefix)
{
	return fw_strncmp(s, prefix, fw_strlen(prefix)) == 0;
}

void *memset(void *dst, int c, size_t n)
{
	unsigned char *d = dst;

	while (n--)
		*d++ = (unsigned char)c;
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	while (n--)
		*d++ = *s++;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (; n; n--, x++, y++) {
		if (*x != *y)
			return *x - *y;
	}
	return 0;
}

/* Skips spaces at @p; returns the next token and sets *@len to its length (0 at the end). */
static const char *next_token(const char *p, size_t *len)
{
	while (*p == ' ')
		p++;
	*len = 0;
	while (p[*len] && p[*len] != ' ')
		(*len)++;
	return p;
}

int fw_param(const char *cmdline, const char *key, const char **value, size_t *len)
{
	size_t key_len = fw_strlen(key);
	size_t tok_len;
	const char *p = cmdline;

	for (p = next_token(p, &tok_len); tok_len; p = next_token(p + tok_len, &tok_len)) {
		if (tok_len > key_len && fw_strncmp(p, key, key_len) == 0 && p[key_len] == '=') {
			*value = p + key_len + 1;
			*len = tok_len - key_len - 1;
			return 1;
		}
	}
	return 0;
}

int fw_has_token(const char *cmdline, const char *token)
{
	size_t len = fw_strlen(token);
	size_t tok_len;
	const char *p = cmdline;

	for (p = next_token(p, &tok_len); tok_len; p = next_token(p + tok_len, &tok_len)) {
		if (tok_len == len && fw_strncmp(p, token, len) == 0)
			return 1;
	}
	return 0;
}

int fw_parse_u64(const char *s, size_t len, int allow_suffix, uint64_t *out)
{
	uint64_t v = 0, base = 10, shift = 0;
	size_t i = 0, digits = 0;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	for (; i < len; i++, digits++) {
		char c = s[i];
		uint64_t d;

		if (c >= '0' && c <= '9')
			d = (uint64_t)(c - '0');
		else if (base == 16 && (c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (uint64_t)((c | 0x20) - 'a' + 10);
		else
			break;
		if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v))
			return -1;
	}
	if (!digits)
		return -1;
	if (i < len && allow_suffix) {
		switch (s[i] | 0x20) {
		case 'k':
			shift = 10;
			break;
		case 'm':
			shift = 20;
			break;
		case 'g':
			shift = 30;
			break;
		case 't':
			shift = 40;
			break;
		default:
			return -1;
		}
		i++;
	}
	if (i != len || (shift && (v >> (64 - shift))))
		return -1;
	*out = v << shift;
	return 0;
}

uint32_t fw_fnv1a(const void *data, uint64_t len)
{
	const unsigned char *p = data;
	uint32_t h = 2166136261u;

	while (len--) {
		h ^= *p++;
		h *= 16777619u;
	}
	return h;
}

int fw_check(struct fw_checks *c, int ok, uint8_t code, const char *name)
{
	uart_puts(ok ? "vmm-firmware: PASS " : "vmm-firmware: FAIL ");
	uart_puts(name);
	if (ok) {
		c->passed++;
	} else {
		uart_puts(" (code ");
		uart_put_dec(code);
		uart_puts(")");
		c->failed++;
		if (!c->first_failure)
			c->first_failure = code;
	}
	uart_puts("\n");
	return ok;
}

void fw_checks_finish(struct fw_checks *c)
{
	uart_puts("vmm-firmware: ");
	uart_put_dec(c->passed);
	uart_puts(" passed, ");
	uart_put_dec(c->failed);
	uart_puts(" failed; exit code ");
	uart_put_dec(c->first_failure);
	uart_puts("\n");
	fw_exit(c->first_failure);
}
