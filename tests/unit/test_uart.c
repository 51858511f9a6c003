/*
 * 16550A model: the probe Linux's 8250 driver runs, the divisor latch, transmit, the THRE and
 * RX interrupts with the OUT2 gate, the receive FIFO's flow control and loopback. The IRQ line
 * has no VM behind it (vm_fd -1), so the tests check irq_level.
 */
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "devices/uart_8250.h"
#include "tests/unit/unit.h"

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5 };
enum { MSR = 6, SCR = 7 };

struct fixture {
	struct uart_8250 uart;
	uint8_t out[1024];
	size_t out_len;
	int rx_space_calls;
};

static size_t collect(void *opaque, const uint8_t *buf, size_t len)
{
	struct fixture *f = opaque;

	ck_assert_uint_le(f->out_len + len, sizeof(f->out));
	memcpy(f->out + f->out_len, buf, len);
	f->out_len += len;
	return len;
}

static void rx_space(void *opaque)
{
	struct fixture *f = opaque;

	f->rx_space_calls++;
}

static struct uart_8250 *setup(struct fixture *f)
{
	const struct irq_line irq = {.vm_fd = -1, .gsi = 4, .irqfd = -1};
	const struct uart_backend backend = {collect, rx_space, f};

	memset(f, 0, sizeof(*f));
	uart_init(&f->uart, &irq, &backend);
	return &f->uart;
}

static uint8_t rd(struct uart_8250 *u, uint64_t reg)
{
	uint8_t v = 0;

	ck_assert_int_eq(uart_bus_ops.read(u, reg, &v, 1), 0);
	return v;
}

static void wr(struct uart_8250 *u, uint64_t reg, uint8_t v)
{
	ck_assert_int_eq(uart_bus_ops.write(u, reg, &v, 1), 0);
}

START_TEST(linux_autoconfig)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);
	uint8_t save_ier = rd(u, IER);

	/* IER test: only the low four bits exist, all writable. */
	wr(u, IER, 0);
	ck_assert_uint_eq(rd(u, IER) & 0x0f, 0);
	wr(u, IER, 0x0f);
	ck_assert_uint_eq(rd(u, IER) & 0x0f, 0x0f);
	wr(u, IER, save_ier);
	/* Loopback test: MSR reflects RTS -> CTS and OUT2 -> DCD. */
	wr(u, MCR, 0x10 | 0x0a);
	ck_assert_uint_eq(rd(u, MSR) & 0xf0, 0x90);
	wr(u, MCR, 0x1f);
	ck_assert_uint_eq(rd(u, MSR) & 0xf0, 0xf0);
	wr(u, MCR, 0);
	ck_assert_uint_eq(rd(u, MSR) & 0xf0, 0xb0);
	/* No EFR behind LCR 0xBF, then the FIFO bits identify a 16550A. */
	wr(u, LCR, 0xbf);
	wr(u, FCR, 0);
	wr(u, LCR, 0);
	wr(u, FCR, 0x07);
	ck_assert_uint_eq(rd(u, IIR) >> 6, 3);
	ck_assert_uint_eq(rd(u, IIR), 0xc1);
	wr(u, LCR, 0x80);
	ck_assert_uint_ne(rd(u, IIR), 0); /* not an ST16C650V1 */
	wr(u, LCR, 0);
	wr(u, FCR, 0x21); /* no 64-byte FIFO bit: not a 16750 */
	ck_assert_uint_eq(rd(u, IIR) & 0xe0, 0xc0);
	wr(u, IER, 0x40); /* no UUE bit: not an XScale */
	ck_assert_uint_eq(rd(u, IER), 0);
	/* Scratch register. */
	wr(u, SCR, 0xa5);
	ck_assert_uint_eq(rd(u, SCR), 0xa5);
	wr(u, SCR, 0x5a);
	ck_assert_uint_eq(rd(u, SCR), 0x5a);
	uart_destroy(u);
}
END_TEST

START_TEST(size_fifo_loopback)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);
	int count = 0;

	/* Linux's size_fifo(): 256 bytes into loopback, count what comes back. */
	wr(u, FCR, 0x07);
	wr(u, MCR, 0x10);
	for (int i = 0; i < 256; i++)
		wr(u, THR, (uint8_t)i);
	while ((rd(u, LSR) & 0x01) && count < 300)
		ck_assert_uint_eq(rd(u, RBR), (uint8_t)count++);
	ck_assert_int_eq(count, UART_RX_FIFO_SIZE);
	ck_assert_uint_eq(f.out_len, 0);
	uart_destroy(u);
}
END_TEST

START_TEST(divisor_latch)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);

	wr(u, LCR, 0x83);
	wr(u, DLL, 0x01);
	wr(u, DLM, 0x02);
	ck_assert_uint_eq(rd(u, DLL), 0x01);
	ck_assert_uint_eq(rd(u, DLM), 0x02);
	wr(u, LCR, 0x03);
	ck_assert_uint_eq(rd(u, LCR), 0x03);
	ck_assert_uint_eq(rd(u, IER), 0);
	wr(u, THR, 'x'); /* not the latch any more */
	ck_assert_uint_eq(f.out_len, 1);
	wr(u, LCR, 0x83);
	ck_assert_uint_eq(rd(u, DLL), 0x01);
	ck_assert_uint_eq(rd(u, DLM), 0x02);
	uart_destroy(u);
}
END_TEST

START_TEST(transmit_in_order)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);
	const char *msg = "hello, 8250\n";

	for (const char *p = msg; *p; p++) {
		ck_assert_uint_eq(rd(u, LSR) & 0x60, 0x60);
		wr(u, THR, (uint8_t)*p);
	}
	ck_assert_uint_eq(f.out_len, strlen(msg));
	ck_assert_mem_eq(f.out, msg, f.out_len);
	ck_assert_uint_eq(rd(u, LSR), 0x60);
	uart_destroy(u);
}
END_TEST

START_TEST(thre_interrupt)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);

	wr(u, FCR, 0x01);
	wr(u, MCR, 0x0b); /* DTR, RTS, OUT2 */
	ck_assert_int_eq(u->irq_level, 0);
	wr(u, IER, 0x02);
	ck_assert_int_eq(u->irq_level, 1);
	ck_assert_uint_eq(rd(u, IIR), 0xc2);
	ck_assert_int_eq(u->irq_level, 0);
	ck_assert_uint_eq(rd(u, IIR), 0xc1);
	/* Linux's THRE test: disabling and re-enabling raises it again. */
	wr(u, IER, 0);
	wr(u, IER, 0x02);
	ck_assert_int_eq(u->irq_level, 1);
	ck_assert_uint_eq(rd(u, IIR), 0xc2);
	/* A THR write empties at once and raises THRE again. */
	wr(u, THR, 'a');
	ck_assert_int_eq(u->irq_level, 1);
	ck_assert_uint_eq(rd(u, IIR), 0xc2);
	ck_assert_int_eq(u->irq_level, 0);
	/* OUT2 gates the line, not the pending state. */
	wr(u, THR, 'b');
	wr(u, MCR, 0x03);
	ck_assert_int_eq(u->irq_level, 0);
	wr(u, MCR, 0x0b);
	ck_assert_int_eq(u->irq_level, 1);
	wr(u, IER, 0);
	ck_assert_int_eq(u->irq_level, 0);
	ck_assert_uint_eq(rd(u, IIR), 0xc1);
	uart_destroy(u);
}
END_TEST

START_TEST(receive_interrupt)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);

	wr(u, FCR, 0x01);
	wr(u, IER, 0x03);
	ck_assert_uint_eq(rd(u, IIR), 0xc2); /* consume THRE */
	ck_assert_uint_eq(uart_receive(u, (const uint8_t *)"abc", 3), 3);
	ck_assert_uint_eq(rd(u, LSR) & 0x01, 0x01);
	ck_assert_uint_eq(rd(u, IIR), 0xc4);
	ck_assert_int_eq(u->irq_level, 0); /* OUT2 clear */
	wr(u, MCR, 0x08);
	ck_assert_int_eq(u->irq_level, 1);
	wr(u, THR, 'z'); /* THRE pending too, but RX data has priority */
	ck_assert_uint_eq(rd(u, IIR), 0xc4);
	ck_assert_uint_eq(rd(u, RBR), 'a');
	ck_assert_uint_eq(rd(u, RBR), 'b');
	ck_assert_uint_eq(rd(u, RBR), 'c');
	ck_assert_uint_eq(rd(u, LSR) & 0x01, 0);
	ck_assert_uint_eq(rd(u, IIR), 0xc2);
	ck_assert_int_eq(u->irq_level, 0);
	ck_assert_uint_eq(rd(u, IIR), 0xc1);
	ck_assert_int_eq(f.rx_space_calls, 0);
	uart_destroy(u);
}
END_TEST

START_TEST(receive_flow_control)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);
	uint8_t buf[300];

	for (unsigned i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7);
	ck_assert_uint_eq(uart_receive(u, buf, sizeof(buf)), UART_RX_FIFO_SIZE);
	ck_assert_uint_eq(uart_receive(u, buf, 1), 0);
	ck_assert_int_eq(f.rx_space_calls, 0);
	ck_assert_uint_eq(rd(u, RBR), buf[0]);
	ck_assert_int_eq(f.rx_space_calls, 1);
	ck_assert_uint_eq(rd(u, RBR), buf[1]);
	ck_assert_int_eq(f.rx_space_calls, 1); /* once per refusal */
	ck_assert_uint_eq(uart_receive(u, buf + UART_RX_FIFO_SIZE, 2), 2);
	for (unsigned i = 2; i < UART_RX_FIFO_SIZE + 2; i++)
		ck_assert_uint_eq(rd(u, RBR), buf[i]);
	ck_assert_uint_eq(rd(u, LSR) & 0x01, 0);
	/* Clearing a full FIFO also makes room. */
	ck_assert_uint_eq(uart_receive(u, buf, sizeof(buf)), UART_RX_FIFO_SIZE);
	wr(u, FCR, 0x03);
	ck_assert_int_eq(f.rx_space_calls, 2);
	ck_assert_uint_eq(rd(u, LSR) & 0x01, 0);
	uart_destroy(u);
}
END_TEST

START_TEST(loopback)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);

	wr(u, MCR, 0x10);
	ck_assert_uint_eq(rd(u, MSR), 0x0b); /* DCD, DSR, CTS dropped: deltas */
	ck_assert_uint_eq(rd(u, MSR), 0x00);
	wr(u, THR, 'x');
	wr(u, THR, 'y');
	ck_assert_uint_eq(f.out_len, 0);
	ck_assert_uint_eq(rd(u, LSR), 0x61);
	ck_assert_uint_eq(rd(u, RBR), 'x');
	ck_assert_uint_eq(rd(u, RBR), 'y');
	/* The receiver is off the line in loopback: host input waits. */
	ck_assert_uint_eq(uart_receive(u, (const uint8_t *)"h", 1), 0);
	for (int i = 0; i <= UART_RX_FIFO_SIZE; i++)
		wr(u, THR, 'o');
	wr(u, IER, 0x04);
	ck_assert_uint_eq(rd(u, IIR), 0x06); /* overrun: line status */
	ck_assert_uint_eq(rd(u, LSR), 0x63);
	ck_assert_uint_eq(rd(u, LSR), 0x61);
	ck_assert_uint_eq(rd(u, IIR), 0x01);
	wr(u, FCR, 0x02);
	ck_assert_int_eq(f.rx_space_calls, 0);
	wr(u, MCR, 0x00);
	ck_assert_int_eq(f.rx_space_calls, 1);
	ck_assert_uint_eq(rd(u, MSR), 0xbb);
	ck_assert_uint_eq(uart_receive(u, (const uint8_t *)"h", 1), 1);
	ck_assert_uint_eq(rd(u, RBR), 'h');
	uart_destroy(u);
}
END_TEST

START_TEST(modem_status_interrupt)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);

	wr(u, IER, 0x08);
	wr(u, MCR, 0x08);
	ck_assert_int_eq(u->irq_level, 0);
	wr(u, MCR, 0x18); /* loopback: DSR and CTS drop, DCD follows OUT2 */
	ck_assert_int_eq(u->irq_level, 1);
	ck_assert_uint_eq(rd(u, IIR), 0x00);
	ck_assert_uint_eq(rd(u, MSR), 0x83);
	ck_assert_int_eq(u->irq_level, 0);
	ck_assert_uint_eq(rd(u, IIR), 0x01);
	uart_destroy(u);
}
END_TEST

START_TEST(access_sizes)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);
	uint32_t v = 0;
	uint16_t w = 0x4142;

	ck_assert_int_eq(uart_bus_ops.read(u, LSR, &v, 4), 0);
	ck_assert_uint_eq(v, 0x60);
	ck_assert_int_eq(uart_bus_ops.write(u, THR, &w, 2), 0);
	ck_assert_uint_eq(f.out_len, 1);
	ck_assert_uint_eq(f.out[0], 0x42);
	ck_assert_int_eq(uart_bus_ops.read(u, 8, &v, 4), 0);
	ck_assert_uint_eq(v, 0xffffffff);
	ck_assert_int_eq(uart_bus_ops.write(u, 9, &w, 2), 0);
	uart_destroy(u);
}
END_TEST

#define STRESS_BYTES 20000

static void *producer(void *arg)
{
	struct uart_8250 *u = arg;
	size_t sent = 0;

	while (sent < STRESS_BYTES) {
		uint8_t chunk[64];
		size_t n = MIN(sizeof(chunk), (size_t)(STRESS_BYTES - sent));

		for (size_t i = 0; i < n; i++)
			chunk[i] = (uint8_t)(sent + i);
		n = uart_receive(u, chunk, n);
		sent += n;
		if (!n)
			sched_yield();
	}
	return NULL;
}

START_TEST(concurrent_receive)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);
	pthread_t thread;
	size_t got = 0;

	f.rx_space_calls = 0;
	wr(u, IER, 0x01);
	wr(u, MCR, 0x08);
	ck_assert_int_eq(pthread_create(&thread, NULL, producer, u), 0);
	while (got < STRESS_BYTES) {
		if (rd(u, LSR) & 0x01)
			ck_assert_uint_eq(rd(u, RBR), (uint8_t)got++);
		else
			sched_yield();
	}
	pthread_join(thread, NULL);
	ck_assert_uint_eq(rd(u, LSR) & 0x01, 0);
	ck_assert_int_eq(u->irq_level, 0);
	uart_destroy(u);
}
END_TEST

static Suite *uart_suite(void)
{
	Suite *s = suite_create("uart");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, linux_autoconfig);
	tcase_add_test(tc, size_fifo_loopback);
	tcase_add_test(tc, divisor_latch);
	tcase_add_test(tc, transmit_in_order);
	tcase_add_test(tc, thre_interrupt);
	tcase_add_test(tc, receive_interrupt);
	tcase_add_test(tc, receive_flow_control);
	tcase_add_test(tc, loopback);
	tcase_add_test(tc, modem_status_interrupt);
	tcase_add_test(tc, access_sizes);
	tcase_add_test(tc, concurrent_receive);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(uart_suite());
}
