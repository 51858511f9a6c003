/*
 * 16550A UART model, shaped by what Linux's 8250 driver (8250_port.c) probes and relies on:
 * IER keeps only its low four bits, IIR shows 0xC0 once FIFOs are enabled, loopback (MCR bit 4)
 * routes transmitted bytes to the receive FIFO and reflects MCR outputs in MSR, and enabling
 * the THRE interrupt while the transmitter is empty raises it at once.
 *
 * Transmission: a THR write goes into the transmit FIFO and at once on to backend.write, which
 * never blocks. While the host takes everything, THRE and TEMT stay set and a THRE interrupt is
 * pending again right after each THR write. When the host cannot take more (a stalled reader
 * of vmm's stdout), what it did not take stays in the FIFO, THRE and TEMT read clear and the
 * THRE interrupt waits, so the guest's driver waits for the transmitter as on a slow line and
 * the vCPU never sleeps in a host write; uart_tx_space() (room again) hands the bytes over and
 * raises THRE once the FIFO is empty. A THR write into a full FIFO, which only a guest that
 * ignores THRE makes, is lost as on the real part (counted in tx_dropped). Bytes once written
 * belong to the host: the FCR transmit reset does not take them back. THR writes may reach
 * the model late, in order, replayed before the guest's next access that exits (x86: KVM's
 * coalesced I/O, see uart_set_tx_defer_hook); only the line then follows them late.
 *
 * Locking: uart->lock guards every field. backend.write and irq_set_level() are called with
 * it held (the line level must follow state changes in order); backend.rx_space is called
 * after it is dropped. The guest controls every register value; host input only fills the
 * receive FIFO up to its free space, so no input is ever dropped except loopback overruns.
 *
 * Access sizes: the registers are bytes. A wider access is one access to the register at that
 * offset using the low byte; the other bytes of a read are zero. Offsets past the eight
 * registers read as all-ones and ignore writes.
 */
#include "devices/uart_8250.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmm/log.h"

enum uart_reg { REG_DATA, REG_IER, REG_IIR_FCR, REG_LCR, REG_MCR, REG_LSR, REG_MSR, REG_SCR };
#define UART_NR_REGS 8

#define IER_RDI  0x01
#define IER_THRI 0x02
#define IER_RLSI 0x04
#define IER_MSI  0x08
#define IER_MASK 0x0f

#define IIR_NO_INT       0x01
#define IIR_MSI          0x00
#define IIR_THRI         0x02
#define IIR_RDI          0x04
#define IIR_RLSI         0x06
#define IIR_ID_MASK      0x0e
#define IIR_FIFO_ENABLED 0xc0

#define FCR_ENABLE_FIFO 0x01
#define FCR_CLEAR_RX    0x02
#define FCR_CLEAR_TX    0x04

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR     0x01
#define LSR_OE     0x02
#define LSR_ERRORS 0x1e /* OE, PE, FE, BI: the line-status interrupt sources */
#define LSR_THRE   0x20
#define LSR_TEMT   0x40

#define MSR_DCTS   0x01
#define MSR_DDSR   0x02
#define MSR_TERI   0x04
#define MSR_DDCD   0x08
#define MSR_DELTAS 0x0f
#define MSR_CTS    0x10
#define MSR_DSR    0x20
#define MSR_RI     0x40
#define MSR_DCD    0x80
#define MSR_LINES  0xf0

/* The modem inputs: MCR outputs looped back, or a connected line (DCD, DSR, CTS). */
static uint8_t modem_lines(const struct uart_8250 *u)
{
	uint8_t lines = 0;

	if (!(u->mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	if (u->mcr & MCR_DTR)
		lines |= MSR_DSR;
	if (u->mcr & MCR_RTS)
		lines |= MSR_CTS;
	if (u->mcr & MCR_OUT1)
		lines |= MSR_RI;
	if (u->mcr & MCR_OUT2)
		lines |= MSR_DCD;
	return lines;
}

/* Recomputes the MSR line bits and accumulates delta bits for the lines that changed. */
static void update_msr(struct uart_8250 *u)
{
	uint8_t lines = modem_lines(u);
	uint8_t changed = (uint8_t)((u->msr ^ lines) & MSR_LINES);
	uint8_t deltas = u->msr & MSR_DELTAS;

	if (changed & MSR_CTS)
		deltas |= MSR_DCTS;
	if (changed & MSR_DSR)
		deltas |= MSR_DDSR;
	if ((changed & MSR_RI) && !(lines & MSR_RI))
		deltas |= MSR_TERI; /* trailing edge only */
	if (changed & MSR_DCD)
		deltas |= MSR_DDCD;
	u->msr = lines | deltas;
}

/* The highest-priority pending interrupt, as IIR reports it. */
static uint8_t compute_iir(const struct uart_8250 *u)
{
	uint8_t id = IIR_NO_INT;

	if ((u->ier & IER_RLSI) && (u->lsr & LSR_ERRORS))
		id = IIR_RLSI;
	else if ((u->ier & IER_RDI) && u->rx_count)
		id = IIR_RDI;
	else if ((u->ier & IER_THRI) && u->thr_interrupt)
		id = IIR_THRI;
	else if ((u->ier & IER_MSI) && (u->msr & MSR_DELTAS))
		id = IIR_MSI;
	return (u->fcr & FCR_ENABLE_FIFO) ? (uint8_t)(id | IIR_FIFO_ENABLED) : id;
}

/* Drives the line: an interrupt is pending and OUT2 gates it through, as on a PC. */
static void update_irq(struct uart_8250 *u)
{
	int level;

	u->iir = compute_iir(u);
	level = !(u->iir & IIR_NO_INT) && (u->mcr & MCR_OUT2);
	if (level == u->irq_level)
		return;
	u->irq_level = level;
	(void)irq_set_level(&u->irq, level); /* fails only without a VM (unit tests) */
}

static void rx_clear(struct uart_8250 *u)
{
	u->rx_head = 0;
	u->rx_count = 0;
}

static void rx_push(struct uart_8250 *u, uint8_t byte)
{
	u->rx_fifo[(u->rx_head + u->rx_count) % UART_RX_FIFO_SIZE] = byte;
	u->rx_count++;
}

static uint8_t rx_pop(struct uart_8250 *u)
{
	uint8_t byte;

	if (!u->rx_count)
		return 0;
	byte = u->rx_fifo[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_RX_FIFO_SIZE;
	u->rx_count--;
	return byte;
}

/* True once, when the host was refused input and could now deliver some. */
static bool take_rx_space(struct uart_8250 *u)
{
	if (!u->rx_wanted || u->rx_count == UART_RX_FIFO_SIZE || (u->mcr & MCR_LOOP))
		return false;
	u->rx_wanted = 0;
	return true;
}

/* Hands the transmit FIFO to the host, oldest first, as far as it takes it. */
static void tx_flush(struct uart_8250 *u)
{
	while (u->tx_count) {
		size_t chunk = MIN(u->tx_count, UART_TX_FIFO_SIZE - u->tx_head);
		size_t n = chunk;

		if (u->backend.write)
			n = u->backend.write(u->backend.opaque, u->tx_fifo + u->tx_head, chunk);
		n = MIN(n, chunk); /* never trust a count past what was offered */
		u->tx_head = (u->tx_head + (unsigned)n) % UART_TX_FIFO_SIZE;
		u->tx_count -= (unsigned)n;
		if (n < chunk)
			return; /* the host calls uart_tx_space when it has room */
	}
	u->thr_interrupt = 1; /* the transmitter is empty again */
}

static void transmit(struct uart_8250 *u, uint8_t byte)
{
	if (u->mcr & MCR_LOOP) {
		if (u->rx_count < UART_RX_FIFO_SIZE) {
			rx_push(u, byte);
		} else {
			u->lsr |= LSR_OE;
			log_ratelimited(LOG_DEBUG, "uart: loopback overrun, byte dropped");
		}
		u->thr_interrupt = !u->tx_count;
		return;
	}
	if (u->tx_count == UART_TX_FIFO_SIZE) {
		u->tx_dropped++;
		log_ratelimited(LOG_DEBUG, "uart: THR written with the transmit FIFO full (THRE "
		                           "clear), byte dropped");
		return;
	}
	u->tx_fifo[(u->tx_head + u->tx_count) % UART_TX_FIFO_SIZE] = byte;
	u->tx_count++;
	u->thr_interrupt = 0; /* a THR write acknowledges THRE */
	tx_flush(u);
}

static void write_ier(struct uart_8250 *u, uint8_t val)
{
	uint8_t old = u->ier;

	u->ier = val & IER_MASK;
	/* Enabling THRE while the transmitter is empty raises it: Linux's start_tx relies on it. */
	if ((old ^ u->ier) & IER_THRI)
		u->thr_interrupt = (u->ier & IER_THRI) && !u->tx_count;
}

static void write_fcr(struct uart_8250 *u, uint8_t val)
{
	/* Toggling the FIFO enable resets both FIFOs, as on the real part. */
	if (((u->fcr ^ val) & FCR_ENABLE_FIFO) || (val & FCR_CLEAR_RX))
		rx_clear(u);
	/* FCR_CLEAR_TX: bytes in the transmit FIFO were written already and go to the host. */
	u->fcr = val & (uint8_t) ~(FCR_CLEAR_RX | FCR_CLEAR_TX);
}

static void write_reg(struct uart_8250 *u, enum uart_reg reg, uint8_t val)
{
	bool dlab = u->lcr & LCR_DLAB;

	switch (reg) {
	case REG_DATA:
		if (dlab)
			u->dll = val;
		else
			transmit(u, val);
		break;
	case REG_IER:
		if (dlab)
			u->dlm = val;
		else
			write_ier(u, val);
		break;
	case REG_IIR_FCR:
		write_fcr(u, val);
		break;
	case REG_LCR:
		u->lcr = val;
		break;
	case REG_MCR:
		u->mcr = val & MCR_MASK;
		update_msr(u);
		break;
	case REG_LSR: /* factory test register on real parts: ignored */
	case REG_MSR:
		break;
	case REG_SCR:
		u->scr = val;
		break;
	}
}

static uint8_t read_iir(struct uart_8250 *u)
{
	uint8_t iir = compute_iir(u);

	/* Reading IIR acknowledges THRE when THRE is what it reports. */
	if ((iir & IIR_ID_MASK) == IIR_THRI && !(iir & IIR_NO_INT))
		u->thr_interrupt = 0;
	return iir;
}

static uint8_t read_lsr(struct uart_8250 *u)
{
	uint8_t lsr = u->tx_count ? u->lsr : (uint8_t)(u->lsr | LSR_THRE | LSR_TEMT);

	if (u->rx_count)
		lsr |= LSR_DR;
	u->lsr &= (uint8_t)~LSR_ERRORS; /* error bits clear on read */
	return lsr;
}

static uint8_t read_reg(struct uart_8250 *u, enum uart_reg reg)
{
	bool dlab = u->lcr & LCR_DLAB;
	uint8_t val = 0;

	switch (reg) {
	case REG_DATA:
		return dlab ? u->dll : rx_pop(u);
	case REG_IER:
		return dlab ? u->dlm : u->ier;
	case REG_IIR_FCR:
		return read_iir(u);
	case REG_LCR:
		return u->lcr;
	case REG_MCR:
		return u->mcr;
	case REG_LSR:
		return read_lsr(u);
	case REG_MSR:
		val = u->msr;
		u->msr &= MSR_LINES; /* delta bits clear on read */
		return val;
	case REG_SCR:
		return u->scr;
	}
	return val;
}

/* Ends a register access: updates the line, drops the lock, then tells the host about room. */
static void finish_access(struct uart_8250 *u)
{
	bool space;

	update_irq(u);
	space = take_rx_space(u);
	pthread_mutex_unlock(&u->lock);
	if (space && u->backend.rx_space)
		u->backend.rx_space(u->backend.opaque);
}

static int uart_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct uart_8250 *u = opaque;
	uint8_t *bytes = data;

	if (offset >= UART_NR_REGS) {
		memset(data, 0xff, size);
		return 0;
	}
	memset(data, 0, size);
	pthread_mutex_lock(&u->lock);
	bytes[0] = read_reg(u, (enum uart_reg)offset);
	finish_access(u);
	return 0;
}

/*
 * A THR write may reach the UART late unless loopback feeds it to the receiver. Otherwise all
 * it does is output its byte and, with THRI enabled, re-raise THRE (the transmitter empties at
 * once); the guest sees that only through a register read, which exits and replays it first,
 * or through the line, which Linux's 8250 interrupt handler does not wait for: it reads IIR
 * again after each FIFO load and loops while THRE is pending. Under lock.
 */
static bool tx_deferrable(const struct uart_8250 *u)
{
	return !(u->mcr & MCR_LOOP);
}

/* Tells the hook where IER and MCR now leave THR writes, if that changed. Without lock. */
static void sync_tx_defer(struct uart_8250 *u)
{
	bool deferrable;

	if (!u->tx_defer)
		return;
	pthread_mutex_lock(&u->tx_defer_lock);
	pthread_mutex_lock(&u->lock);
	deferrable = tx_deferrable(u);
	pthread_mutex_unlock(&u->lock);
	if (deferrable != u->tx_deferred) {
		u->tx_deferred = deferrable;
		u->tx_defer(u->tx_defer_opaque, deferrable);
	}
	pthread_mutex_unlock(&u->tx_defer_lock);
}

static int uart_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct uart_8250 *u = opaque;

	(void)size;
	if (offset >= UART_NR_REGS) {
		log_ratelimited(LOG_DEBUG, "uart: write past the registers at +%#llx",
		                (unsigned long long)offset);
		return 0;
	}
	pthread_mutex_lock(&u->lock);
	write_reg(u, (enum uart_reg)offset, *(const uint8_t *)data);
	finish_access(u);
	if (offset == REG_MCR)
		sync_tx_defer(u);
	return 0;
}

void uart_set_tx_defer_hook(struct uart_8250 *uart, void (*hook)(void *opaque, bool deferrable),
                            void *opaque)
{
	uart->tx_defer = hook;
	uart->tx_defer_opaque = opaque;
	uart->tx_deferred = !tx_deferrable(uart); /* so that the sync below tells it */
	sync_tx_defer(uart);
}

const struct bus_ops uart_bus_ops = {.read = uart_read, .write = uart_write};

void uart_init(struct uart_8250 *uart, const struct irq_line *irq,
               const struct uart_backend *backend)
{
	*uart = (struct uart_8250){
	        .irq = *irq,
	        .backend = *backend,
	        .iir = IIR_NO_INT,
	        .msr = MSR_DCD | MSR_DSR | MSR_CTS,
	        .dll = 0x0c, /* 9600 baud from the 1.8432 MHz clock */
	};
	pthread_mutex_init(&uart->lock, NULL);
	pthread_mutex_init(&uart->tx_defer_lock, NULL);
}

void uart_destroy(struct uart_8250 *uart)
{
	pthread_mutex_destroy(&uart->tx_defer_lock);
	pthread_mutex_destroy(&uart->lock);
}

void uart_tx_space(struct uart_8250 *uart)
{
	pthread_mutex_lock(&uart->lock);
	if (uart->tx_count)
		tx_flush(uart);
	finish_access(uart);
}

void uart_tx_space_cb(void *uart)
{
	uart_tx_space(uart);
}

size_t uart_receive(struct uart_8250 *uart, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&uart->lock);
	/* In loopback the receiver is disconnected from the line: keep the host waiting. */
	if (!(uart->mcr & MCR_LOOP))
		n = MIN(len, (size_t)(UART_RX_FIFO_SIZE - uart->rx_count));
	for (size_t i = 0; i < n; i++)
		rx_push(uart, buf[i]);
	if (n < len)
		uart->rx_wanted = 1;
	update_irq(uart);
	pthread_mutex_unlock(&uart->lock);
	return n;
}

/* Registers and both FIFOs; IIR and the line follow from them. */
static int uart_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct uart_8250 *u = opaque;

	(void)err;
	(void)errlen;
	pthread_mutex_lock(&u->lock);
	snap_put_bytes(w,
	               (uint8_t[]){u->ier, u->lcr, u->mcr, u->lsr, u->msr, u->scr, u->fcr, u->dll,
	                           u->dlm, (uint8_t)u->thr_interrupt},
	               10);
	snap_put_u32(w, u->rx_count);
	for (unsigned i = 0; i < u->rx_count; i++)
		snap_put_u8(w, u->rx_fifo[(u->rx_head + i) % UART_RX_FIFO_SIZE]);
	snap_put_u32(w, u->tx_count);
	for (unsigned i = 0; i < u->tx_count; i++)
		snap_put_u8(w, u->tx_fifo[(u->tx_head + i) % UART_TX_FIFO_SIZE]);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static int uart_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct uart_8250 *u = opaque;
	uint8_t regs[10];
	uint32_t rx, tx;
	int ret;

	snap_get_bytes(c, regs, sizeof(regs));
	rx = snap_get_u32(c);
	if (rx > UART_RX_FIFO_SIZE || rx > snap_cursor_left(c)) {
		snprintf(err, errlen, "%u bytes in a %d-byte receive FIFO", rx, UART_RX_FIFO_SIZE);
		return -EINVAL;
	}
	pthread_mutex_lock(&u->lock);
	u->rx_head = 0;
	u->rx_count = rx;
	snap_get_bytes(c, u->rx_fifo, rx);
	tx = snap_get_u32(c);
	if (tx > UART_TX_FIFO_SIZE) {
		pthread_mutex_unlock(&u->lock);
		snprintf(err, errlen, "%u bytes in a %d-byte transmit FIFO", tx, UART_TX_FIFO_SIZE);
		return -EINVAL;
	}
	u->tx_head = 0;
	u->tx_count = tx;
	snap_get_bytes(c, u->tx_fifo, tx);
	ret = snap_cursor_finish(c, err, errlen);
	if (!ret) {
		u->ier = regs[0];
		u->lcr = regs[1];
		u->mcr = regs[2];
		u->lsr = regs[3];
		u->msr = regs[4];
		u->scr = regs[5];
		u->fcr = regs[6];
		u->dll = regs[7];
		u->dlm = regs[8];
		u->thr_interrupt = regs[9] != 0;
		/* The restored irqchip does not know this line's level: drive it afresh. */
		u->irq_level = 0;
		update_irq(u);
	}
	pthread_mutex_unlock(&u->lock);
	if (!ret)
		sync_tx_defer(u);
	return ret;
}

int uart_snapshot_add(struct uart_8250 *uart, struct snapshot_parts *parts, uint32_t instance)
{
	return snapshot_add(parts, "UART", instance, uart_save, uart_load, uart);
}
