/*
 * What console.c (ports, transmit, receive) and console_control.c (the multiport control
 * protocol) share; not for other files.
 */
#ifndef VMM_DEVICES_VIRTIO_CONSOLE_INTERNAL_H
#define VMM_DEVICES_VIRTIO_CONSOLE_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/console.h"
#include "vmm/util.h"

#define CTRL_RXQ VIRTIO_CONSOLE_CTRL_RX_QUEUE
#define CTRL_TXQ VIRTIO_CONSOLE_CTRL_TX_QUEUE

/* A port's control messages to send (virtio_console_port.pending), in this order. */
#define PEND_ADD     (1u << 0)
#define PEND_NAME    (1u << 1)
#define PEND_CONSOLE (1u << 2)
#define PEND_OPEN    (1u << 3)
#define PEND_ALL     (PEND_ADD | PEND_NAME | PEND_CONSOLE | PEND_OPEN)

#define TX_BATCH   256
#define TX_BYTES   (1 * MIB)
#define CTRL_BATCH 256

static_assert(sizeof(struct virtio_console_control) == 8, "control message layout");
static_assert(sizeof(struct virtio_console_config) == 12, "config layout");
static_assert(2 * (VIRTIO_CONSOLE_MAX_PORTS + 1) <= VIRTIO_MAX_QUEUES, "queues");

/* What is left to do once the lock is dropped. */
struct work {
	uint32_t pushed;   /* queues with new used entries */
	uint32_t rx_space; /* ports whose backend may offer input again */
	bool more;         /* stopped at a batch limit with work left */
	const char *bad;   /* malformed chain or message: the device needs a reset */
	unsigned nr_opens;
	struct {
		uint8_t port;
		bool open;
	} opens[CTRL_BATCH]; /* the driver's PORT_OPEN messages, in order */
};

static inline struct virtio_console *to_console(struct virtio_dev *dev)
{
	return container_of(dev, struct virtio_console, vdev);
}

/*
 * Work per event is bounded: the device will come back to what it left, through a loop still
 * running (once it stopped, at exit, a call does all its work).
 */
static inline bool bounded(const struct virtio_console *c)
{
	return c->loop && !event_loop_stopped(c->loop);
}

/* The port whose receiveq or transmitq @q is (the control queues give 0: check them first). */
static inline unsigned queue_port(unsigned q)
{
	return q <= VIRTIO_CONSOLE_TX_QUEUE ? 0 : q / 2 - 1;
}

/* Queue @q may be served: running, not broken, enabled, and in the negotiated layout. */
static inline bool queue_live(const struct virtio_console *c, unsigned q)
{
	const struct virtio_dev *dev = &c->vdev;

	return (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(dev->status & VIRTIO_STATUS_NEEDS_RESET) && dev->queues[q].ready &&
	       (q <= VIRTIO_CONSOLE_TX_QUEUE || c->multiport);
}

static inline bool takes_input(const struct virtio_console *c, unsigned port)
{
	return queue_live(c, virtio_console_rx_queue(port)) &&
	       (!c->multiport || c->ports[port].guest_open);
}

/* After the lock is dropped: needs-reset, guest_open and rx_space calls, interrupts, resume. */
void console_work_done(struct virtio_console *c, const struct work *w);
/* Under vdev.lock. */
size_t console_fill_chain(const struct vq_chain *chain, const uint8_t *buf, size_t len);
void console_rx_check(struct virtio_console *c, unsigned port, struct work *w);
/* Control (console_control.c), under vdev.lock. */
void console_ctrl_send(struct virtio_console *c, struct work *w);
void console_ctrl_run(struct virtio_console *c, struct work *w);

#endif
