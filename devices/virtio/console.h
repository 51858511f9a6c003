/*
 * virtio-console (virtio 1.x, section 5.3) with a single port and no optional features: queue 0
 * (receiveq) carries host input into buffers the driver posts, queue 1 (transmitq) carries guest
 * output to a chardev-like backend. The config space (cols, rows, max_nr_ports, emerg_wr) reads
 * as zeros.
 */
#ifndef VMM_DEVICES_VIRTIO_CONSOLE_H
#define VMM_DEVICES_VIRTIO_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"

#define VIRTIO_CONSOLE_RX_QUEUE   0
#define VIRTIO_CONSOLE_TX_QUEUE   1
#define VIRTIO_CONSOLE_QUEUE_SIZE 256

struct virtio_console_backend {
	/* Guest output; called on the event-loop thread with the device lock held. */
	void (*write)(void *opaque, const uint8_t *buf, size_t len);
	/*
	 * virtio_console_receive() refused input (no receive buffers) and the driver has posted
	 * buffers since: the host may offer input again. Called once per refusal, from any thread
	 * and possibly with the device lock held, so it must only schedule a later call of
	 * virtio_console_receive (chardev_input_space() does), never call it directly.
	 */
	void (*rx_space)(void *opaque);
	void *opaque;
};

struct virtio_console_config {
	uint16_t cols;
	uint16_t rows;
	uint32_t max_nr_ports;
	uint32_t emerg_wr;
} __attribute__((packed));

struct virtio_console {
	struct virtio_dev vdev; /* the ops find us with container_of */
	struct virtio_console_config config;
	struct virtio_console_backend backend;
	/* Under vdev.lock: */
	bool rx_wanted; /* input was refused; call backend.rx_space when buffers come */
	struct vq_chain rx_chain, tx_chain; /* scratch */
};

/* Sets up the device; the caller then attaches c->vdev to a transport. */
void virtio_console_init(struct virtio_console *c, const struct guest_memory *mem,
                         const struct virtio_console_backend *backend);
void virtio_console_destroy(struct virtio_console *c);

/*
 * Offers host input to the guest: fills the writable buffers of the receive chains the driver
 * has posted, in order. Returns how many bytes were accepted: fewer than @len (0 when the driver
 * has posted no buffers or is not running), after which backend.rx_space is called once buffers
 * arrive. Any thread; takes the device lock.
 */
size_t virtio_console_receive(struct virtio_console *c, const uint8_t *buf, size_t len);

#endif
