/*
 * echo: prints a ready line, then reads bytes from the UART (polling LSR bit 0) and echoes each
 * one upper-cased until a newline (or carriage return), then prints a done line and resets the
 * machine. Host-side tests feed it through a pipe on vmm's stdin.
 */
#include "fw.h"

void fw_main(uint64_t boot_arg)
{
	(void)boot_arg;
	uart_puts("vmm-firmware: echo: ready\n");
	for (;;) {
		int c = uart_getc();

		if (c == '\n' || c == '\r')
			break;
		if (c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		uart_putc((char)c);
	}
	uart_puts("\nvmm-firmware: echo: done\n");
	fw_reset();
}
