/*
 * triple_fault: loads an IDT with limit 0 and executes ud2. The #UD cannot be delivered, nor the
 * #GP or #DF that follow, so the CPU shuts down: vmm must end with a non-zero status and say so
 * on stderr.
 */
#include "fw.h"

void fw_main(uint64_t boot_arg)
{
	static const struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) empty_idt = {0, 0};

	(void)boot_arg;
	uart_puts("vmm-firmware: triple_fault: loading an empty IDT and executing ud2\n");
	__asm__ volatile("lidt %0\n\tud2" : : "m"(empty_idt));
	uart_puts("vmm-firmware: FAIL still running after ud2\n");
	fw_exit(0x30);
}
