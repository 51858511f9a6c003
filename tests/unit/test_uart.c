/*
 * 16550A model: the probe Linux's 8250 driver runs, the divisor latch, transmit, the THRE and
 * RX interrupts with the OUT2 gate, the receive FIFO's flow control and loopback; a slow host
 * (THRE and TEMT clear while the backend takes nothing, the held bytes handed over in order
 * when room comes back); and the whole path to stdout: UART, chardev and its output stream
 * into a pipe nobody reads, where no register write blocks and every byte arrives in order
 * once the pipe is drained. The IRQ line has no VM behind it (vm_fd -1), so the tests check
 * irq_level.
 *
 * Threads (slow_stdout_pipe): the test's thread and a guest thread write registers (vCPUs), a
 * loop thread runs the event loop, a reader thread drains the pipe, and the chardev's stream
 * has its writer; under -Db_sanitize=thread this is a ThreadSanitizer test of the path too.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/uart_8250.h"
#include "tests/unit/unit.h"
#include "vmm/chardev.h"
#include "vmm/event_loop.h"
#include "vmm/out_stream.h"

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5 };
enum { MSR = 6, SCR = 7 };

struct fixture {
	struct uart_8250 uart;
	uint8_t out[1024];
	size_t out_len;
	size_t room; /* bytes the host still takes (SIZE_MAX: all) */
	int rx_space_calls;
};

static size_t collect(void *opaque, const uint8_t *buf, size_t len)
{
	struct fixture *f = opaque;

	len = MIN(len, f->room);
	if (f->room != SIZE_MAX)
		f->room -= len;
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
	f->room = SIZE_MAX;
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

struct defer_log {
	bool told[64];
	unsigned n;
};

static void record_defer(void *opaque, bool deferrable)
{
	struct defer_log *l = opaque;

	ck_assert_uint_lt(l->n, ARRAY_SIZE(l->told));
	l->told[l->n++] = deferrable;
}

/*
 * THR writes may be deferred (coalesced) except in loopback, whatever IER enables; the hook
 * hears of each change once, and of nothing else.
 */
START_TEST(tx_defer_hook)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);
	struct defer_log l = {0};

	uart_set_tx_defer_hook(u, record_defer, &l);
	ck_assert_uint_eq(l.n, 1);
	ck_assert(l.told[0]); /* reset: no loopback */
	wr(u, THR, 'a');
	wr(u, LCR, 0x03);
	wr(u, IER, 0x02); /* THRE interrupt: the interrupt passes' THR writes stay coalesced */
	wr(u, IER, 0x0f);
	wr(u, IER, 0);
	ck_assert_uint_eq(l.n, 1);
	wr(u, MCR, 0x10); /* loopback: a THR write is received */
	ck_assert_uint_eq(l.n, 2);
	ck_assert(!l.told[1]);
	wr(u, MCR, 0x1b);
	ck_assert_uint_eq(l.n, 2);
	wr(u, MCR, 0x0b);
	ck_assert_uint_eq(l.n, 3);
	ck_assert(l.told[2]);
	/* DLAB: offset 1 is the divisor's high byte, not IER. */
	wr(u, LCR, 0x83);
	wr(u, DLM, 0xff);
	wr(u, LCR, 0x03);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_uint_eq(f.out_len, 1);
	uart_destroy(u);
}
END_TEST

struct mcr_writer {
	struct uart_8250 *u;
	uint8_t value;
};

static void *write_mcr_often(void *arg)
{
	struct mcr_writer *w = arg;

	for (unsigned i = 0; i < 2000; i++)
		wr(w->u, MCR, i % 2 ? w->value : 0x0b);
	wr(w->u, MCR, w->value);
	return NULL;
}

static void count_defer(void *opaque, bool deferrable)
{
	bool *last = opaque;

	*last = deferrable; /* the hook's calls never overlap (TSan checks) */
}

/* Two vCPUs writing MCR at once: the hook ends up told what MCR says last. */
START_TEST(tx_defer_hook_races)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);
	struct mcr_writer a = {u, 0x10}, b = {u, 0x1b};
	pthread_t ta, tb;
	bool last = false;

	uart_set_tx_defer_hook(u, count_defer, &last);
	ck_assert(last);
	ck_assert_int_eq(pthread_create(&ta, NULL, write_mcr_often, &a), 0);
	ck_assert_int_eq(pthread_create(&tb, NULL, write_mcr_often, &b), 0);
	ck_assert_int_eq(pthread_join(ta, NULL), 0);
	ck_assert_int_eq(pthread_join(tb, NULL), 0);
	ck_assert(!last); /* loopback either way */
	wr(u, MCR, 0x0b);
	ck_assert(last);
	uart_destroy(u);
}
END_TEST

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

/*
 * The host takes output slowly: what it refuses stays in the 16-byte transmit FIFO with THRE and
 * TEMT clear and no THRE interrupt, and goes out in order, with THRE raised, once
 * uart_tx_space() says there is room. A write into the full FIFO is the only loss.
 */
START_TEST(slow_host)
{
	struct fixture f;
	struct uart_8250 *u = setup(&f);
	uint8_t want[3 + UART_TX_FIFO_SIZE];

	for (unsigned i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)('A' + i);
	wr(u, FCR, 0x07);
	wr(u, MCR, 0x08); /* OUT2 */
	wr(u, IER, 0x02);
	ck_assert_uint_eq(rd(u, IIR), 0xc2); /* THRE on enable, acknowledged */
	f.room = 3;
	for (unsigned i = 0; i < sizeof(want); i++)
		wr(u, THR, want[i]); /* Linux writes up to 16 per THRE without looking at LSR */
	ck_assert_uint_eq(f.out_len, 3);
	ck_assert_uint_eq(rd(u, LSR) & 0x60, 0); /* THRE and TEMT clear: the guest waits */
	ck_assert_uint_eq(rd(u, IIR), 0xc1);
	ck_assert_int_eq(u->irq_level, 0);
	wr(u, IER, 0); /* re-enabling THRE while the transmitter is busy raises nothing */
	wr(u, IER, 0x02);
	ck_assert_uint_eq(rd(u, IIR), 0xc1);
	wr(u, THR, '!'); /* into the full FIFO, ignoring THRE: lost as on the real part */
	ck_assert_uint_eq(u->tx_dropped, 1);
	wr(u, FCR, 0x07); /* the transmit reset does not take written bytes back */
	ck_assert_uint_eq(uart_receive(u, (const uint8_t *)"r", 1), 1); /* input unaffected */

	f.room = 5; /* some room: some go, still busy */
	uart_tx_space(u);
	ck_assert_uint_eq(f.out_len, 8);
	ck_assert_uint_eq(rd(u, LSR) & 0x61, 0x01);
	ck_assert_int_eq(u->irq_level, 0);
	f.room = SIZE_MAX; /* all room: the rest, in order, and THRE with its interrupt */
	uart_tx_space(u);
	ck_assert_uint_eq(f.out_len, sizeof(want));
	ck_assert_mem_eq(f.out, want, sizeof(want));
	ck_assert_uint_eq(rd(u, LSR) & 0x60, 0x60);
	ck_assert_uint_eq(rd(u, RBR), 'r');
	ck_assert_int_eq(u->irq_level, 1);
	ck_assert_uint_eq(rd(u, IIR), 0xc2);
	ck_assert_int_eq(u->irq_level, 0);
	uart_tx_space(u); /* nothing held: nothing raised */
	ck_assert_uint_eq(rd(u, IIR), 0xc1);
	wr(u, THR, 'z'); /* and a fast host again takes each byte at once */
	ck_assert_uint_eq(f.out_len, sizeof(want) + 1);
	ck_assert_uint_eq(rd(u, IIR), 0xc2);
	ck_assert_uint_eq(u->tx_dropped, 1);
	uart_destroy(u);
}
END_TEST

/* ---- the whole path to stdout, into a pipe ------------------------------------------------ */

#define SLOW_PIPE_SIZE 4096
#define SLOW_TOTAL     (OUT_STREAM_BUFFER + 200 * 1000)

struct slow {
	struct event_loop loop;
	struct event_source stop;
	struct chardev chr;
	struct uart_8250 uart;
	int in[2], out[2];
	pthread_t loop_thread, reader, guest;
	size_t next;      /* guest: the next byte's index */
	bool guest_stuck; /* guest: THRE did not come back within the deadline */
	uint8_t *got;     /* reader: what arrived */
	size_t got_len;
};

static uint8_t slow_byte(size_t i)
{
	return (uint8_t)(i * 131 + (i >> 11));
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t slow_deliver(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	(void)len;
	return 0;
}

static void slow_quit(void *opaque)
{
	(void)opaque;
}

static const struct chardev_ops slow_ops = {.deliver = slow_deliver, .quit = slow_quit};

static void slow_on_stop(void *opaque, uint32_t events)
{
	struct slow *s = opaque;
	uint64_t v;

	(void)events;
	if (read(s->stop.fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		abort();
	event_loop_stop(&s->loop);
}

static void *slow_loop_main(void *opaque)
{
	struct slow *s = opaque;

	if (event_loop_run(&s->loop))
		abort();
	return NULL;
}

static void *slow_reader_main(void *opaque)
{
	struct slow *s = opaque;

	while (s->got_len < SLOW_TOTAL) {
		ssize_t n = read(s->out[0], s->got + s->got_len, SLOW_TOTAL - s->got_len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		s->got_len += (size_t)n;
		if (s->got_len % 7 == 0)
			usleep(50); /* a reader slower than the guest, now and then */
	}
	return NULL;
}

static uint8_t slow_rd(struct uart_8250 *u, uint64_t reg)
{
	uint8_t v = 0;

	uart_bus_ops.read(u, reg, &v, 1);
	return v;
}

/*
 * The guest's driver as Linux's interrupt path behaves: once THRE is set, up to 16 bytes
 * without looking at LSR; gives up when THRE does not come back within 20 s.
 */
static void *slow_guest_main(void *opaque)
{
	struct slow *s = opaque;

	while (s->next < SLOW_TOTAL) {
		double deadline = now() + 20;

		while (!(slow_rd(&s->uart, LSR) & 0x20)) {
			if (now() > deadline) {
				s->guest_stuck = true;
				return NULL;
			}
			usleep(20);
		}
		for (unsigned i = 0; i < UART_TX_FIFO_SIZE && s->next < SLOW_TOTAL; i++) {
			uint8_t b = slow_byte(s->next++);

			uart_bus_ops.write(&s->uart, THR, &b, 1);
		}
	}
	return NULL;
}

START_TEST(slow_stdout_pipe)
{
	const struct irq_line irq = {.vm_fd = -1, .gsi = 4, .irqfd = -1};
	struct slow *s = calloc(1, sizeof(*s));
	struct uart_8250 *u;
	uint64_t one = 1;
	double start, took;
	size_t i = 0;

	ck_assert_ptr_nonnull(s);
	u = &s->uart;
	s->got = malloc(SLOW_TOTAL);
	ck_assert_ptr_nonnull(s->got);
	ck_assert_int_eq(pipe2(s->in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(s->out, O_CLOEXEC), 0);
	fcntl(s->out[1], F_SETPIPE_SZ, SLOW_PIPE_SIZE); /* a smaller pipe fills sooner */
	ck_assert_int_eq(event_loop_init(&s->loop), 0);
	s->stop = (struct event_source){eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), slow_on_stop, s};
	ck_assert_int_ge(s->stop.fd, 0);
	ck_assert_int_eq(event_loop_add(&s->loop, &s->stop, EPOLLIN), 0);
	/* As vmm does: the UART waits for room on the chardev, added before chardev_init. */
	ck_assert_int_eq(chardev_add_output_waiter(&s->chr, uart_tx_space_cb, u), 0);
	ck_assert_int_eq(chardev_init(&s->chr, s->in[0], s->out[1], &s->loop, &slow_ops, NULL, 0),
	                 0);
	uart_init(u, &irq,
	          &(struct uart_backend){chardev_try_write_cb, chardev_input_space_cb, &s->chr});
	ck_assert_int_eq(pthread_create(&s->loop_thread, NULL, slow_loop_main, s), 0);

	/* Nobody reads: every THR write returns, until THRE goes clear. */
	start = now();
	while (slow_rd(u, LSR) & 0x20) {
		uint8_t b = slow_byte(i++);

		ck_assert_uint_le(i, OUT_STREAM_BUFFER + 1024 * 1024);
		ck_assert_int_eq(uart_bus_ops.write(u, THR, &b, 1), 0);
	}
	ck_assert_uint_gt(i, OUT_STREAM_BUFFER);      /* the stream's buffer took its share */
	ck_assert_uint_eq(slow_rd(u, LSR) & 0x40, 0); /* TEMT clear too */
	/* A 16-byte burst that ignores THRE fills the FIFO: still no write blocks, none is lost. */
	for (unsigned k = 1; k < UART_TX_FIFO_SIZE; k++) {
		uint8_t b = slow_byte(i++);

		ck_assert_int_eq(uart_bus_ops.write(u, THR, &b, 1), 0);
	}
	took = now() - start;
	ck_assert_msg(took < 20, "the writes took %.1f s", took);
	ck_assert_uint_eq(u->tx_dropped, 0);
	ck_assert_uint_eq(slow_rd(u, LSR) & 0x60, 0);

	/* A reader drains the pipe; the guest goes on as THRE comes back, up to SLOW_TOTAL. */
	s->next = i;
	ck_assert_int_eq(pthread_create(&s->reader, NULL, slow_reader_main, s), 0);
	ck_assert_int_eq(pthread_create(&s->guest, NULL, slow_guest_main, s), 0);
	pthread_join(s->guest, NULL);
	ck_assert_msg(!s->guest_stuck, "THRE did not come back after %zu bytes", s->next);
	ck_assert_int_eq(write(s->stop.fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	pthread_join(s->loop_thread, NULL);
	/* vmm's exit: what the UART still holds, and the stream's buffer, are written out. */
	chardev_destroy(&s->chr);
	pthread_join(s->reader, NULL);
	ck_assert_uint_eq(s->got_len, SLOW_TOTAL);
	for (size_t k = 0; k < SLOW_TOTAL; k++)
		ck_assert_msg(s->got[k] == slow_byte(k), "byte %zu out of order", k);
	ck_assert_uint_eq(u->tx_dropped, 0);

	uart_destroy(u);
	event_loop_del(&s->loop, &s->stop);
	close(s->stop.fd);
	event_loop_free(&s->loop);
	for (int k = 0; k < 2; k++) {
		close(s->in[k]);
		close(s->out[k]);
	}
	free(s->got);
	free(s);
}
END_TEST

static Suite *uart_suite(void)
{
	Suite *s = suite_create("uart");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, linux_autoconfig);
	tcase_add_test(tc, tx_defer_hook);
	tcase_add_test(tc, tx_defer_hook_races);
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
	tcase_add_test(tc, slow_host);
	tcase_add_test(tc, slow_stdout_pipe);
	tcase_set_timeout(tc, 50);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(uart_suite());
}
