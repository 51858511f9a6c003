/*
 * A 16550A-compatible UART: register state machine, a transmitter that hands THR writes to the
 * backend at once while the host takes them and holds up to a FIFO's worth (showing THRE and
 * TEMT clear) while it does not, a receive FIFO fed by the host, THRE and RX-data interrupts on
 * a level-driven line. Register accesses come from vCPU threads; host input and the host's
 * "output room again" come from the event loop; one mutex guards the state.
 */
#ifndef VMM_DEVICES_UART_8250_H
#define VMM_DEVICES_UART_8250_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/irq.h"
#include "vmm/snapshot.h"

#define UART_RX_FIFO_SIZE 256
#define UART_TX_FIFO_SIZE 16 /* the 16550A's: what Linux writes per THRE interrupt */

struct uart_backend {
	/*
	 * Guest output, called with the UART lock held, from a vCPU thread (or from whoever calls
	 * uart_tx_space). Must not block: returns how many bytes it took, and when that is fewer
	 * than @len the host calls uart_tx_space() once it can take more.
	 */
	size_t (*write)(void *opaque, const uint8_t *buf, size_t len);
	/*
	 * uart_receive() refused input and there is room again: the host may call it again.
	 * Called from a vCPU thread after the UART lock is dropped (so it may even call
	 * uart_receive() itself); once per refusal.
	 */
	void (*rx_space)(void *opaque);
	void *opaque;
};

struct uart_8250 {
	pthread_mutex_t lock; /* guards everything below */
	struct irq_line irq;
	struct uart_backend backend;
	int irq_level;
	uint8_t ier, iir, lcr, mcr, lsr, msr, scr, fcr;
	uint8_t dll, dlm;
	int thr_interrupt; /* THRE interrupt pending (cleared by an IIR read or THR write) */
	uint8_t rx_fifo[UART_RX_FIFO_SIZE];
	unsigned rx_head, rx_count;
	int rx_wanted; /* uart_receive() refused input; call backend.rx_space once there is room */
	uint8_t tx_fifo[UART_TX_FIFO_SIZE]; /* bytes the backend has not taken yet, in order */
	unsigned tx_head, tx_count;         /* THRE and TEMT read clear while tx_count > 0 */
	uint64_t tx_dropped; /* THR writes into a full transmit FIFO (the guest ignored THRE) */
	/*
	 * uart_set_tx_defer_hook: told whether THR writes may be deferred. tx_defer_lock orders
	 * the calls (taken before lock, never inside it); tx_deferred is what it was last told.
	 */
	void (*tx_defer)(void *opaque, bool deferrable);
	void *tx_defer_opaque;
	pthread_mutex_t tx_defer_lock;
	bool tx_deferred;
};

void uart_init(struct uart_8250 *uart, const struct irq_line *irq,
               const struct uart_backend *backend);
void uart_destroy(struct uart_8250 *uart);
/* Registers @uart as snapshot part "UART" @instance. */
int uart_snapshot_add(struct uart_8250 *uart, struct snapshot_parts *parts,
                      uint32_t instance) MUST_CHECK;

/*
 * Queues host input for the guest. Returns how many bytes were accepted (fewer than @len when
 * the receive FIFO is full; backend.rx_space is called once there is room again).
 */
size_t uart_receive(struct uart_8250 *uart, const uint8_t *buf, size_t len);

/*
 * The host can take output again after backend.write took less than offered: hands the held
 * bytes over and, once none is left, shows the transmitter empty (THRE, TEMT, the THRE
 * interrupt). Any thread; takes the UART lock.
 */
void uart_tx_space(struct uart_8250 *uart);
/* uart_tx_space as a callback whose opaque is the UART (for chardev_add_output_waiter). */
void uart_tx_space_cb(void *uart);

/*
 * @hook(@opaque, deferrable) is told, now and whenever it changes, whether THR writes may
 * reach the UART late: always but in loopback (where a THR write is received). The host may
 * then queue THR writes, as long as they arrive in order before the guest's next access to
 * the UART that exits (KVM's coalesced I/O). With polled output (the kernel console) a
 * character then costs one exit, the LSR poll, instead of two; with interrupt-driven output
 * (Linux's 8250 driver once a process writes to the tty) a FIFO load of 16 costs the IIR, LSR
 * and MSR reads of its interrupt pass instead of 19 exits. Called from the thread whose MCR
 * write changed it, without the UART lock, one call at a time. Set-up time.
 */
void uart_set_tx_defer_hook(struct uart_8250 *uart, void (*hook)(void *opaque, bool deferrable),
                            void *opaque);

/* Register with opaque = the struct uart_8250, over 8 consecutive addresses. */
extern const struct bus_ops uart_bus_ops;

#endif
