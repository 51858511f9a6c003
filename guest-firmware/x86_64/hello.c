/* hello: prints one line on the UART and resets the machine through the i8042 (vmm exits 0). */
#include "fw.h"

void fw_main(uint64_t boot_arg)
{
	(void)boot_arg;
	uart_puts("vmm-firmware: hello from the guest\n");
	fw_reset();
}
