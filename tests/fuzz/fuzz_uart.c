/*
 * libFuzzer target: the 16550A UART's registers (devices/uart_8250.c) at port 0x3f8 through the
 * bus, as a guest's port I/O reaches them, with host input and a host output that takes only
 * as many bytes as the input says. Hooks (a byte, then arguments): 0 host input (a length
 * byte, then the bytes), 1 the host takes up to N bytes per write from now (a byte N), 2 the
 * host has room again (uart_tx_space). The IRQ line has no VM (vm_fd -1).
 */
#include <string.h>

#include "devices/uart_8250.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"

#define PORT 0x3f8

static struct bus pio;
static struct uart_8250 uart;
static size_t accept; /* bytes the host output takes per write */
static size_t out_total;

static size_t out_write(void *opaque, const uint8_t *buf, size_t len)
{
	size_t n = len < accept ? len : accept;

	(void)opaque;
	for (size_t i = 0; i < n; i++) /* read every byte handed over: ASan checks the range */
		out_total += buf[i];
	return n;
}

static void rx_space(void *opaque)
{
	(void)opaque;
}

static void hook(void *opaque, struct fz *f)
{
	uint8_t buf[64];
	size_t n;

	(void)opaque;
	switch (fz_u8(f) % 3) {
	case 0:
		n = fz_bytes(f, buf, fz_u8(f) % sizeof(buf));
		(void)uart_receive(&uart, buf, n);
		break;
	case 1:
		accept = fz_u8(f);
		break;
	default:
		uart_tx_space(&uart);
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	bus_init(&pio, "pio");
	fz_must(bus_register(&pio, PORT, 8, &uart_bus_ops, &uart, "uart"), "bus");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct irq_line irq = {.vm_fd = -1, .gsi = 4, .irqfd = -1};
	const struct uart_backend backend = {out_write, rx_space, NULL};
	const struct fz_window win = {&pio, PORT, 8, 4};
	const struct fz_bus b = {.win = &win, .nr_win = 1, .hook = hook};
	struct fz f = fz_make(data, size);

	accept = 64;
	uart_init(&uart, &irq, &backend);
	fz_run_bus(&b, &f);
	uart_destroy(&uart);
	return 0;
}
