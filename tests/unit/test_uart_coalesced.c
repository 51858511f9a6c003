/*
 * The 16550A behind KVM's coalesced I/O, as on x86: the UART on a port bus, its THR in a
 * coalesced zone that the UART's defer hook switches, and a fake KVM that queues THR writes in
 * the ring while the zone is on and the ring has room, and otherwise exits (the vCPU thread
 * replays the ring, then handles the access). Linux's 8250 driver is played register by
 * register: its interrupt passes (IIR, LSR, MSR, a FIFO load of THR writes), its polled console
 * writes, loopback. The bytes must reach the host in order whichever way each went, the line
 * must follow the 16550A's THRE rules once the writes are replayed, and the THR writes of an
 * interrupt pass must not exit.
 *
 * Threads (vcpu_and_event_loop): the test's thread is the vCPU (KVM's queueing, exits); a
 * second thread is the event loop, flushing the ring as the linger timer does and feeding
 * input; under -Db_sanitize=thread this is a ThreadSanitizer test of that path.
 */
#include <check.h>
#include <pthread.h>
#include <string.h>

#include "devices/uart_8250.h"
#include "tests/unit/unit.h"
#include "vmm/bus.h"
#include "vmm/coalesced_io.h"

#define COM1         0x3f8
#define PAGE_ENTRIES 32 /* room in the fake ring page */
#define RING_ENTRIES 8  /* 7 usable: a FIFO load of 16 overflows it, so some writes exit */

enum { THR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6 };
enum { IER_LINUX = 0x05 /* RDI | RLSI, as serial8250_startup leaves it */, IER_THRI = 0x02 };

struct machine {
	struct uart_8250 uart;
	struct bus pio;
	struct coalesced_io c;
	union {
		struct kvm_coalesced_mmio_ring ring;
		uint8_t bytes[sizeof(struct kvm_coalesced_mmio_ring) +
		              PAGE_ENTRIES * sizeof(struct kvm_coalesced_mmio)];
	} page;
	uint8_t out[8192];
	size_t out_len;
	unsigned exits;  /* accesses that reached vmm as exits */
	unsigned queued; /* THR writes KVM put in the ring */
};

static size_t collect(void *opaque, const uint8_t *buf, size_t len)
{
	struct machine *m = opaque;

	ck_assert_uint_le(m->out_len + len, sizeof(m->out));
	memcpy(m->out + m->out_len, buf, len);
	m->out_len += len;
	return len;
}

static void zone_hook(void *opaque, bool deferrable)
{
	struct machine *m = opaque;

	ck_assert_int_eq(coalesced_io_set_pio(&m->c, COM1, deferrable), 0);
}

static void machine_init(struct machine *m)
{
	const struct irq_line irq = {.vm_fd = -1, .gsi = 4, .irqfd = -1};
	const struct uart_backend backend = {.write = collect, .opaque = m};

	memset(m, 0, sizeof(*m));
	uart_init(&m->uart, &irq, &backend);
	bus_init(&m->pio, "pio");
	ck_assert_int_eq(bus_register(&m->pio, COM1, 8, &uart_bus_ops, &m->uart, "com1"), 0);
	coalesced_io_init(&m->c, &m->pio);
	ck_assert_int_eq(coalesced_io_add_pio(&m->c, COM1, 1), 0);
	/* What coalesced_io_start sets up from KVM's mapping. */
	m->c.ring = &m->page.ring;
	m->c.ring_entries = RING_ENTRIES;
	uart_set_tx_defer_hook(&m->uart, zone_hook, m);
}

static void machine_free(struct machine *m)
{
	coalesced_io_destroy(&m->c);
	bus_free(&m->pio);
	uart_destroy(&m->uart);
}

/* KVM's side of a coalesced write: into the ring if there is room (one slot stays free). */
static bool kvm_queue(struct machine *m, uint16_t port, uint8_t v)
{
	struct kvm_coalesced_mmio_ring *ring = &m->page.ring;
	uint32_t last = ring->last;

	if ((last + 1) % m->c.ring_entries == __atomic_load_n(&ring->first, __ATOMIC_ACQUIRE))
		return false;
	ring->coalesced_mmio[last] =
	        (struct kvm_coalesced_mmio){.phys_addr = port, .len = 1, .pio = 1, .data = {v}};
	__atomic_store_n(&ring->last, (last + 1) % m->c.ring_entries, __ATOMIC_RELEASE);
	m->queued++;
	return true;
}

/* An exit to vmm: the vCPU thread replays the ring, then handles the access (vcpu.c). */
static void guest_exit(struct machine *m, uint16_t reg, uint8_t *v, bool is_write)
{
	coalesced_io_flush(&m->c);
	m->exits++;
	ck_assert_int_eq(bus_access(&m->pio, COM1 + reg, v, 1, is_write), 0);
}

static void out(struct machine *m, uint16_t reg, uint8_t v)
{
	if (reg == THR && m->c.zone_on[0] && kvm_queue(m, COM1, v))
		return;
	guest_exit(m, reg, &v, true);
}

static uint8_t in(struct machine *m, uint16_t reg)
{
	uint8_t v = 0;

	guest_exit(m, reg, &v, false);
	return v;
}

/* The byte the test sends as number @i. */
static uint8_t pattern(unsigned i)
{
	return (uint8_t)('!' + i % 90);
}

/*
 * serial8250_interrupt with one port: passes of serial8250_handle_irq until IIR shows no
 * interrupt. Each pass reads LSR and MSR and, with THRE, loads up to 16 bytes (tx_loadsz),
 * clearing THRI once nothing is left. Returns the passes that found an interrupt.
 */
static unsigned linux_isr(struct machine *m, unsigned *next, unsigned total)
{
	unsigned passes = 0;

	while (!(in(m, IIR) & 0x01)) {
		uint8_t lsr = in(m, LSR);

		passes++;
		(void)in(m, MSR);
		if (!(lsr & 0x20))
			continue;
		for (unsigned n = 0; n < 16 && *next < total; n++)
			out(m, THR, pattern((*next)++));
		if (*next == total)
			out(m, IER, IER_LINUX);
		ck_assert_uint_lt(passes, 512); /* PASS_LIMIT: never reached here */
	}
	return passes;
}

/* serial8250_console_write: IER saved and cleared, each byte after an LSR poll, IER restored. */
static void linux_console_write(struct machine *m, unsigned *next, unsigned count)
{
	uint8_t ier = in(m, IER);

	out(m, IER, 0);
	for (unsigned i = 0; i < count; i++) {
		ck_assert(in(m, LSR) & 0x20);
		out(m, THR, pattern((*next)++));
	}
	ck_assert_uint_eq(in(m, LSR) & 0x60, 0x60);
	out(m, IER, ier);
}

static void linux_startup(struct machine *m)
{
	out(m, FCR, 0x07);
	out(m, LCR, 0x03);
	out(m, MCR, 0x0b); /* DTR, RTS, OUT2 */
	out(m, IER, IER_LINUX);
}

static void assert_sent_in_order(const struct machine *m, unsigned total)
{
	ck_assert_uint_eq(m->out_len, total);
	for (unsigned i = 0; i < total; i++)
		ck_assert_msg(m->out[i] == pattern(i), "byte %u is %#x, expected %#x", i, m->out[i],
		              pattern(i));
}

/*
 * Interrupt-driven output of 1000 bytes, in bursts as a tty's writes come: each FIFO load's
 * THR writes stay in the ring until the pass's next register read, the ring overflowing into
 * ordinary exits; between bursts, polled console writes (IER 0) and a loopback round trip. The
 * host gets every byte once, in order; an interrupt pass costs its three reads plus what did
 * not fit in the ring; nothing is left pending once the driver stopped transmitting.
 */
START_TEST(bytes_in_order_coalesced_or_not)
{
	static struct machine m;
	unsigned next = 0, passes = 0, total = 0;

	machine_init(&m);
	linux_startup(&m);
	ck_assert(m.c.zone_on[0]); /* IER enables interrupts: THR stays coalesced */
	for (unsigned burst = 0; burst < 5; burst++) {
		unsigned exits = m.exits, queued = m.queued, burst_passes;

		total += 180 + burst;               /* FIFO loads of 16 and a short one */
		out(&m, IER, IER_LINUX | IER_THRI); /* start_tx */
		ck_assert_int_eq(m.uart.irq_level, 1);
		burst_passes = linux_isr(&m, &next, total);
		passes += burst_passes;
		ck_assert_uint_eq(next, total);
		assert_sent_in_order(&m, total);
		/* The ring took 7 of each 16: the other 9 exited. */
		ck_assert_uint_ge(m.queued - queued, (180 + burst) * 7 / 16);
		ck_assert_uint_le(m.exits - exits,
		                  burst_passes * 3 + 1 + 2 + (180 + burst) * 9 / 16 + 1);
		ck_assert_int_eq(m.uart.irq_level, 0);
		ck_assert_uint_eq(in(&m, IIR), 0xc1);
		linux_console_write(&m, &next, 10);
		total += 10;
		assert_sent_in_order(&m, total);
	}
	ck_assert_uint_ge(passes, 5 * 12);
	/* Loopback: THR writes are received, so they exit; the zone comes back after. */
	out(&m, MCR, 0x1b);
	ck_assert(!m.c.zone_on[0]);
	out(&m, THR, 0x55);
	ck_assert_uint_eq(in(&m, LSR) & 0x01, 0x01);
	ck_assert_uint_eq(in(&m, THR), 0x55);
	out(&m, MCR, 0x0b);
	ck_assert(m.c.zone_on[0]);
	assert_sent_in_order(&m, total);
	machine_free(&m);
}
END_TEST

/*
 * With a ring that holds a FIFO load (KVM's holds about 170), no THR write exits: an interrupt
 * pass costs its IIR, LSR and MSR reads, the burst one IER write to start and one to stop, and
 * the final IIR read that ends the handler.
 */
START_TEST(fifo_load_costs_no_exit)
{
	static struct machine m;
	unsigned next = 0, passes;

	machine_init(&m);
	m.c.ring_entries = PAGE_ENTRIES;
	linux_startup(&m);
	m.exits = 0;
	out(&m, IER, IER_LINUX | IER_THRI);
	passes = linux_isr(&m, &next, 1600);
	ck_assert_uint_eq(passes, 100);
	ck_assert_uint_eq(m.queued, 1600);
	ck_assert_uint_eq(m.exits, 1 + passes * 3 + 1 + 1);
	assert_sent_in_order(&m, 1600);
	ck_assert_int_eq(m.uart.irq_level, 0);
	machine_free(&m);
}
END_TEST

/* THRI off (the driver idle, IER 0x05): THR writes raise nothing, replayed or not. */
START_TEST(no_thre_interrupt_while_thri_off)
{
	static struct machine m;
	unsigned next = 0;

	machine_init(&m);
	linux_startup(&m);
	for (unsigned i = 0; i < 5; i++)
		out(&m, THR, pattern(next++));
	ck_assert_uint_eq(m.out_len, 0); /* still in the ring */
	coalesced_io_flush(&m.c);        /* as the event loop's linger timer does */
	assert_sent_in_order(&m, 5);
	ck_assert_int_eq(m.uart.irq_level, 0);
	ck_assert_uint_eq(in(&m, IIR), 0xc1);
	ck_assert_uint_eq(in(&m, LSR) & 0x60, 0x60);
	for (unsigned i = 0; i < 20; i++)
		out(&m, THR, pattern(next++));
	ck_assert_uint_eq(in(&m, IIR), 0xc1);
	ck_assert_int_eq(m.uart.irq_level, 0);
	assert_sent_in_order(&m, 25);
	machine_free(&m);
}
END_TEST

/*
 * Disabling THRI drops the line, also when the FIFO load before it (in the ring) is replayed
 * first and re-raises THRE on its way; nothing stays pending afterwards.
 */
START_TEST(line_dropped_when_thri_disabled)
{
	static struct machine m;
	unsigned next = 0;

	machine_init(&m);
	linux_startup(&m);
	out(&m, IER, IER_LINUX | IER_THRI);
	ck_assert_int_eq(m.uart.irq_level, 1);
	ck_assert_uint_eq(in(&m, IIR), 0xc2);
	ck_assert_int_eq(m.uart.irq_level, 0);
	for (unsigned i = 0; i < 5; i++)
		out(&m, THR, pattern(next++));
	out(&m, IER, IER_LINUX); /* replays the five (THRE again), then masks it */
	assert_sent_in_order(&m, 5);
	ck_assert_int_eq(m.uart.irq_level, 0);
	ck_assert_uint_eq(in(&m, IIR), 0xc1);
	/* Re-enabling THRI with the transmitter empty raises it, as Linux's THRE test expects. */
	out(&m, IER, IER_LINUX | IER_THRI);
	ck_assert_int_eq(m.uart.irq_level, 1);
	out(&m, IER, 0);
	ck_assert_int_eq(m.uart.irq_level, 0);
	ck_assert_uint_eq(in(&m, IIR), 0xc1);
	machine_free(&m);
}
END_TEST

/*
 * The 16550A's rules, through the ring: an IIR read that reports THRE clears it (a second read
 * shows no interrupt, the line drops and stays down: no storm while the driver has nothing to
 * write); a THR write clears it and, the transmitter emptying at once, sets it again -- seen
 * once the write is replayed, by the next exit or the event loop's flush.
 */
START_TEST(iir_read_and_thr_write)
{
	static struct machine m;

	machine_init(&m);
	linux_startup(&m);
	out(&m, IER, IER_LINUX | IER_THRI);
	ck_assert_uint_eq(in(&m, IIR), 0xc2);
	ck_assert_uint_eq(in(&m, IIR), 0xc1);
	ck_assert_int_eq(m.uart.irq_level, 0);
	for (unsigned i = 0; i < 3; i++)
		ck_assert_uint_eq(in(&m, IIR), 0xc1);
	out(&m, THR, 'a');
	ck_assert_int_eq(m.uart.irq_level, 0); /* in the ring: the UART has not seen it */
	coalesced_io_flush(&m.c);
	ck_assert_int_eq(m.uart.irq_level, 1);
	ck_assert_uint_eq(in(&m, LSR) & 0x60, 0x60);
	ck_assert_uint_eq(in(&m, IIR), 0xc2);
	ck_assert_int_eq(m.uart.irq_level, 0);
	/* A write replayed by the IIR read that follows it: that read reports it. */
	out(&m, THR, 'b');
	ck_assert_uint_eq(in(&m, IIR), 0xc2);
	ck_assert_uint_eq(in(&m, IIR), 0xc1);
	ck_assert_uint_eq(m.out_len, 2);
	ck_assert_mem_eq(m.out, "ab", 2);
	machine_free(&m);
}
END_TEST

struct event_loop_thread {
	struct machine *m;
	bool stop; /* atomic */
	unsigned received;
};

static void *event_loop_thread(void *arg)
{
	struct event_loop_thread *t = arg;

	while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
		coalesced_io_flush(&t->m->c);
		t->received += (unsigned)uart_receive(&t->m->uart, (const uint8_t *)"k", 1);
	}
	return NULL;
}

/*
 * The event loop flushes the ring (the linger timer) and feeds input while the vCPU runs the
 * driver's interrupt passes: every byte once and in order, whichever thread replayed it.
 */
START_TEST(vcpu_and_event_loop)
{
	static struct machine m;
	struct event_loop_thread t = {.m = &m};
	unsigned next = 0, total = 0, drained = 0;
	pthread_t loop;

	machine_init(&m);
	m.c.ring_entries = PAGE_ENTRIES;
	linux_startup(&m);
	out(&m, IER, 0x02 | 0x04); /* THRI and RLSI: input does not interrupt the passes */
	out(&m, IER, 0x04);
	ck_assert_int_eq(pthread_create(&loop, NULL, event_loop_thread, &t), 0);
	for (unsigned burst = 0; burst < 200; burst++) {
		total += 37;
		out(&m, IER, 0x04 | IER_THRI);
		while (!(in(&m, IIR) & 0x01)) {
			uint8_t lsr = in(&m, LSR);

			while (lsr & 0x01) { /* drain input as serial8250_rx_chars does */
				(void)in(&m, THR);
				drained++;
				lsr = in(&m, LSR);
			}
			if (!(lsr & 0x20))
				continue;
			for (unsigned n = 0; n < 16 && next < total; n++)
				out(&m, THR, pattern(next++));
			if (next == total)
				out(&m, IER, 0x04);
		}
	}
	__atomic_store_n(&t.stop, true, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_join(loop, NULL), 0);
	coalesced_io_flush(&m.c);
	assert_sent_in_order(&m, total);
	ck_assert_uint_le(drained, t.received);
	machine_free(&m);
}
END_TEST

static Suite *uart_coalesced_suite(void)
{
	Suite *s = suite_create("uart_coalesced");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, bytes_in_order_coalesced_or_not);
	tcase_add_test(tc, fifo_load_costs_no_exit);
	tcase_add_test(tc, no_thre_interrupt_while_thri_off);
	tcase_add_test(tc, line_dropped_when_thri_disabled);
	tcase_add_test(tc, iir_read_and_thr_write);
	tcase_add_test(tc, vcpu_and_event_loop);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(uart_coalesced_suite());
}
