/*
 * panic_loop: prints a ready line, then halts forever with interrupts off, like a guest that
 * hung. vmm must still end promptly, with status 1, on SIGTERM or SIGINT.
 */
#include "fw.h"

void fw_main(uint64_t boot_arg)
{
	(void)boot_arg;
	uart_puts("vmm-firmware: panic_loop: ready, halting forever\n");
	fw_halt();
}
