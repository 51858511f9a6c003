/*
 * virtio-console (virtio 1.x, section 5.3).
 *
 * Single-port mode (virtio_console_init): no optional features; queue 0 (receiveq) carries host
 * input into buffers the driver posts, queue 1 (transmitq) carries guest output to a blocking
 * chardev-like backend. The config space reads as zeros.
 *
 * Multiport mode (virtio_console_init_multiport): VIRTIO_CONSOLE_F_MULTIPORT with 1 to
 * VIRTIO_CONSOLE_MAX_PORTS ports, optionally named (the guest's /dev/virtio-ports/<name>) or
 * console ports (hvc), each with a backend that may refuse output (back-pressure). Queues: port 0
 * on 0/1, the control receiveq (device to driver) on 2, the control transmitq (driver to device)
 * on 3, port N >= 1 on 2 + 2N (receive) and 3 + 2N (transmit); max_nr_ports in the config space.
 * See console.c for the protocol and the threads.
 */
#ifndef VMM_DEVICES_VIRTIO_CONSOLE_H
#define VMM_DEVICES_VIRTIO_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "vmm/event_loop.h"

#define VIRTIO_CONSOLE_F_MULTIPORT 1

#define VIRTIO_CONSOLE_RX_QUEUE      0
#define VIRTIO_CONSOLE_TX_QUEUE      1
#define VIRTIO_CONSOLE_CTRL_RX_QUEUE 2 /* device to driver */
#define VIRTIO_CONSOLE_CTRL_TX_QUEUE 3 /* driver to device */
#define VIRTIO_CONSOLE_QUEUE_SIZE    256
#define VIRTIO_CONSOLE_MAX_PORTS     7   /* 2 * (7 + 1) queues = VIRTIO_MAX_QUEUES */
#define VIRTIO_CONSOLE_NAME_MAX      127 /* bytes of a port name, without the NUL */

/* Control events (5.3.6.2); the driver sends only DEVICE_READY, PORT_READY and PORT_OPEN. */
#define VIRTIO_CONSOLE_DEVICE_READY  0
#define VIRTIO_CONSOLE_DEVICE_ADD    1
#define VIRTIO_CONSOLE_DEVICE_REMOVE 2
#define VIRTIO_CONSOLE_PORT_READY    3
#define VIRTIO_CONSOLE_CONSOLE_PORT  4
#define VIRTIO_CONSOLE_RESIZE        5
#define VIRTIO_CONSOLE_PORT_OPEN     6
#define VIRTIO_CONSOLE_PORT_NAME     7
#define VIRTIO_CONSOLE_BAD_ID        0xffffffffu /* the id Linux puts in DEVICE_READY */

/* A control message, little-endian; PORT_NAME is followed by the name and a NUL. */
struct virtio_console_control {
	uint32_t id;
	uint16_t event;
	uint16_t value;
} __attribute__((packed));

/* A port's host side (single-port mode's only port, or one multiport port). */
struct virtio_console_backend {
	/*
	 * Guest output on this port (binary, any length), called with the device lock held; must
	 * not call into the device. Returns how many bytes the host took (0..@len). Fewer than
	 * @len: the host cannot take more now; the device keeps the rest (the chain is not returned
	 * to the driver) and transmits nothing more on this port until
	 * virtio_console_port_writable(). A blocking backend takes everything. NULL: discarded.
	 */
	size_t (*write)(void *opaque, const uint8_t *buf, size_t len);
	/*
	 * virtio_console_(port_)receive() refused input and the port can take input again (the
	 * driver posted buffers, opened the port, or set DRIVER_OK). Called once per refusal, from
	 * any thread and possibly with the device lock held, so it must only schedule a later
	 * receive (chardev_input_space() does), never call it directly.
	 */
	void (*rx_space)(void *opaque);
	/*
	 * Optional, multiport only: the driver sent PORT_OPEN for this port (a guest program opened
	 * or closed it; a console port opens when its hvc comes up). Called without the device
	 * lock on the thread that processed the control queue; may call into the device.
	 */
	void (*guest_open)(void *opaque, bool open);
	void *opaque;
};

struct virtio_console_port_config {
	const char *name; /* NULL: no name; else 1..VIRTIO_CONSOLE_NAME_MAX bytes, copied */
	bool is_console;  /* the driver hooks the port up as an hvc console */
	struct virtio_console_backend backend;
};

struct virtio_console_config {
	uint16_t cols;
	uint16_t rows;
	uint32_t max_nr_ports; /* little-endian */
	uint32_t emerg_wr;
} __attribute__((packed));

struct virtio_console_port {
	/* Set at init. */
	struct virtio_console_backend backend;
	char name[VIRTIO_CONSOLE_NAME_MAX + 1]; /* "" for none */
	bool is_console;
	/* Under vdev.lock, kept across device resets: */
	bool host_connected; /* what PORT_OPEN tells the driver */
	bool rx_wanted;      /* input was refused; call backend.rx_space when it can be taken */
	/* Under vdev.lock, forgotten at device reset: */
	bool added;         /* DEVICE_ADD sent */
	bool ready;         /* the driver answered PORT_READY 1 */
	bool guest_open;    /* the driver's last PORT_OPEN said open */
	uint8_t pending;    /* control messages to send (PEND_* bits) */
	bool tx_held;       /* tx_chain was taken from the ring and is not done */
	bool tx_blocked;    /* the backend took less than offered: wait for port_writable */
	bool tx_more;       /* stopped at the batch limit with work left */
	uint64_t tx_done;   /* bytes of tx_chain the backend took */
	uint64_t tx_resume; /* after a restore: tx_done of the chain taken first */
	uint16_t tx_mark;   /* the driver's available index at virtio_console_port_mark_tx */
	struct vq_chain tx_chain;
};

struct virtio_console {
	struct virtio_dev vdev; /* the ops find us with container_of */
	struct virtio_console_config config;
	unsigned nr_ports;             /* 1 in single-port mode */
	struct event_loop *loop;       /* see virtio_console_set_loop */
	struct event_work resume_work; /* posted to @loop: go on after a batch limit */
	/* Under vdev.lock: */
	bool multiport; /* the driver took VIRTIO_CONSOLE_F_MULTIPORT (set at DRIVER_OK) */
	bool ctrl_more; /* the control transmitq stopped at the batch limit */
	struct virtio_console_port ports[VIRTIO_CONSOLE_MAX_PORTS];
	struct vq_chain chain; /* scratch for receive and control chains */
};

/* Queue numbers of port @port's receiveq and transmitq. */
static inline unsigned virtio_console_rx_queue(unsigned port)
{
	return port ? 2 + 2 * port : VIRTIO_CONSOLE_RX_QUEUE;
}

static inline unsigned virtio_console_tx_queue(unsigned port)
{
	return virtio_console_rx_queue(port) + 1;
}

/*
 * Sets up a single-port device with @backend on port 0 (guest_open unused); the caller then
 * attaches c->vdev to a transport.
 */
void virtio_console_init(struct virtio_console *c, const struct guest_memory *mem,
                         const struct virtio_console_backend *backend);
/*
 * Sets up a multiport device with @nr_ports ports described by @ports (names are copied);
 * every port starts host-connected. The caller guarantees 1 <= @nr_ports <=
 * VIRTIO_CONSOLE_MAX_PORTS and names of 1..VIRTIO_CONSOLE_NAME_MAX bytes (asserted). A driver
 * that does not take F_MULTIPORT sees port 0 only.
 */
void virtio_console_init_multiport(struct virtio_console *c, const struct guest_memory *mem,
                                   const struct virtio_console_port_config *ports,
                                   unsigned nr_ports);
/* After the event loop stopped (drops a posted resume). */
void virtio_console_destroy(struct virtio_console *c);

/*
 * Bounds the work per event, set before the transport is attached: a queue notification,
 * port_writable or resume then does at most 256 chains and 1 MiB per transmitq and 256 control
 * messages, and when it stops with work left (which the driver will not notify again, see
 * vq_pop_chain) the device posts the rest to @loop, which runs it after the fds ready
 * meanwhile were served. Without a loop, and once @loop was stopped (the final port_writable
 * at exit), the work runs until the rings are empty or the backends refuse.
 */
void virtio_console_set_loop(struct virtio_console *c, struct event_loop *loop);
/*
 * Offers host input to the guest on @port: fills the writable buffers of the receive chains the
 * driver has posted, in order. Returns how many bytes were accepted: fewer than @len (0 when the
 * driver has posted no buffers, is not running or, with multiport, does not have the port
 * open; 0 for a @port that does not exist), after which the port's rx_space is called once it
 * can take input. Any thread; takes the device lock.
 */
size_t virtio_console_port_receive(struct virtio_console *c, unsigned port, const uint8_t *buf,
                                   size_t len);
/* The same for port 0 (single-port mode's only port). */
size_t virtio_console_receive(struct virtio_console *c, const uint8_t *buf, size_t len);

/*
 * The host can take output on @port again after its write took less than offered: transmits
 * the rest of the held chain, then further chains. Any thread (the event loop's, normally);
 * takes the device lock and calls the backend's write under it.
 */
void virtio_console_port_writable(struct virtio_console *c, unsigned port);

/*
 * Connects or disconnects the host side of @port: the driver gets PORT_OPEN with the new state
 * (Linux blocks a guest writer while disconnected and gives a reader EOF once the data sent
 * before has been read, so feed all input first). Remembered and sent after the driver's
 * PORT_READY when the port is not ready yet. Any thread; takes the device lock.
 */
void virtio_console_port_set_host_connected(struct virtio_console *c, unsigned port,
                                            bool connected);

/*
 * After the vCPUs stopped: hands every pending transmit chain of every port to its backend,
 * calling write until it returns 0 for a port, so output the guest queued before powering off
 * is not lost. Used entries are written but no interrupt is raised. Takes the device lock.
 */
void virtio_console_flush(struct virtio_console *c);

/*
 * Remembers how far the driver has published @port's transmit chains; ..._tx_done_to_mark
 * then says whether every chain published before the mark was handed to the backend in full.
 * So a host that learns on one port that the guest is done can wait for the output the guest
 * queued before on others, without waiting for output queued after. Any thread.
 */
void virtio_console_port_mark_tx(struct virtio_console *c, unsigned port);
bool virtio_console_port_tx_done_to_mark(struct virtio_console *c, unsigned port);

#endif
