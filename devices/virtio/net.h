/*
 * virtio-net (virtio 1.x, section 5.1) with one queue pair and a control queue, over a packet
 * backend: a TAP device (virtio_net_open) or one the caller provides (virtio_net_init: user
 * networking (libslirp), the tests' fake). Offered: MAC, STATUS (link up), MRG_RXBUF, CTRL_VQ,
 * CTRL_RX, INDIRECT_DESC and EVENT_IDX, and with a backend that takes offloads CSUM, GUEST_CSUM,
 * HOST_TSO4/6 and GUEST_TSO4/6. Every packet carries the 12-byte
 * struct virtio_net_hdr_mrg_rxbuf, which the TAP reads and writes as is (IFF_VNET_HDR), so
 * checksum and segmentation offloads pass straight through.
 *
 * Nothing is dropped to make room: when the backend is full, transmit keeps the packet and
 * waits for the backend fd to become writable; when the driver has posted no receive buffers,
 * receive stops reading the backend (packets wait in the TAP's queue) until the driver
 * notifies the receive queue. Packets that cannot be delivered (see virtio_net_stats) are
 * counted and logged, rate-limited.
 */
#ifndef VMM_DEVICES_VIRTIO_NET_H
#define VMM_DEVICES_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "devices/virtio/virtio.h"
#include "vmm/event_loop.h"
#include "vmm/util.h"

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM       0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_HOST_TSO4  11
#define VIRTIO_NET_F_HOST_TSO6  12
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16
#define VIRTIO_NET_F_CTRL_VQ    17
#define VIRTIO_NET_F_CTRL_RX    18

#define VIRTIO_NET_S_LINK_UP 1

/* struct virtio_net_hdr_mrg_rxbuf (5.1.6): u8 flags, u8 gso_type, five le16, num_buffers last. */
#define VIRTIO_NET_HDR_LEN          12
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE     0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_TCPV6    4

/* Control queue (5.1.6.5): {u8 class; u8 command; data...} readable, then the u8 ack. */
#define VIRTIO_NET_OK                 0
#define VIRTIO_NET_ERR                1
#define VIRTIO_NET_CTRL_RX            0
#define VIRTIO_NET_CTRL_RX_PROMISC    0
#define VIRTIO_NET_CTRL_RX_ALLMULTI   1
#define VIRTIO_NET_CTRL_MAC           1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET 0

#define VIRTIO_NET_RX_QUEUE   0
#define VIRTIO_NET_TX_QUEUE   1
#define VIRTIO_NET_CTRL_QUEUE 2
#define VIRTIO_NET_QUEUE_SIZE 256
/* The largest packet a TAP hands over: header and a 64 KiB TSO frame with its VLAN tag. */
#define VIRTIO_NET_MAX_PACKET (VIRTIO_NET_HDR_LEN + 65550)
/* Buffers of stashed receive chains; one more for the bounce buffer makes IOV_MAX (1024). */
#define VIRTIO_NET_RX_MAX_IOV 1023

/* The config space (5.1.4), little-endian; mtu and later fields are not offered. */
struct virtio_net_config {
	uint8_t mac[6];
	uint16_t status;
	uint16_t max_virtqueue_pairs;
} __attribute__((packed));

/*
 * Where packets go: each one is the 12-byte header followed by the Ethernet frame. All calls
 * come with the device lock held: send and recv on the event-loop thread, set_offload from
 * the vCPU thread that activates the device. They must not block. Return -errno on failure.
 */
struct virtio_net_backend_ops {
	/* Sends one packet; returns the bytes taken, or -EAGAIN when full (retry when writable). */
	ssize_t (*send)(void *opaque, const struct iovec *iov, int iovcnt);
	/*
	 * Receives one packet into @iov; returns its length (a longer packet is cut to fit),
	 * -EAGAIN when none waits, 0 or another -errno when the backend is gone.
	 */
	ssize_t (*recv)(void *opaque, const struct iovec *iov, int iovcnt);
	/* Which offloads the driver accepts in received packets (tap_set_offload). */
	int (*set_offload)(void *opaque, bool csum, bool tso4, bool tso6);
};

struct virtio_net_backend {
	const struct virtio_net_backend_ops *ops;
	void *opaque;
	int fd; /* pollable: readable when recv has a packet, writable when send would take one */
	/*
	 * Packets may carry partial checksums and TSO frames both ways (a TAP with IFF_VNET_HDR):
	 * the device offers CSUM, GUEST_CSUM and the TSO features, and calls set_offload. Without,
	 * it offers none of them, so every packet is a whole checked frame (flags and gso_type 0).
	 */
	bool offloads;
};

/* Counters, under vdev.lock; bytes count frames without the header. */
struct virtio_net_stats {
	uint64_t rx_packets, rx_bytes;
	/* Read from the backend but not delivered: no fit, offload not negotiated, reset. */
	uint64_t rx_dropped;
	uint64_t tx_packets, tx_bytes;
	uint64_t tx_dropped; /* malformed chain or backend error other than full */
};

/* A receive chain taken from the ring and not yet used: its buffers are in rx_iov. */
struct virtio_net_rx_buf {
	uint64_t len; /* writable bytes */
	uint16_t head;
	uint16_t nr_iov;
};

struct virtio_net {
	struct virtio_dev vdev; /* the ops find us with container_of */
	struct virtio_net_config config;
	char name[32]; /* for messages: the TAP's name */
	struct virtio_net_backend be;
	int tap_fd;     /* opened by virtio_net_open ... */
	bool tap_owned; /* ... and then closed by virtio_net_close */
	struct event_loop *loop;
	struct event_source src; /* be.fd on the loop */
	bool registered;
	uint8_t *bounce; /* what does not fit the stashed receive chains */

	/* Under vdev.lock: */
	bool mrg_rxbuf, guest_csum, guest_tso4, guest_tso6; /* negotiated, cached at activation */
	bool promisc, allmulti; /* CTRL_RX state; recorded, not applied (filtering is optional) */
	bool backend_failed;    /* the backend fd reported an error: link down, fd unwatched */
	uint32_t watching;      /* the epoll events asked for on be.fd */
	bool rx_stalled;        /* waiting for receive buffers: not reading until a notify */
	bool tx_held;           /* tx_chain was taken from the ring and not yet sent */
	bool tx_blocked;        /* the backend was full: EPOLLOUT resumes transmit */
	bool tx_more;           /* stopped at the batch limit: EPOLLOUT resumes transmit */
	struct virtio_net_stats stats;
	/* Receive chains taken from the ring, in ring order, and their buffers. */
	unsigned rx_nr, rx_nr_iov;
	uint64_t rx_cap; /* their writable bytes */
	struct virtio_net_rx_buf rx[VIRTIO_NET_QUEUE_SIZE];
	struct iovec rx_iov[VIRTIO_NET_RX_MAX_IOV + 1];
	/*
	 * A packet read but not yet handed over (rx_len 0: none): its first rx_placed bytes are
	 * in the stashed chains, its bytes from rx_bounce_off on in the bounce buffer.
	 */
	uint64_t rx_len, rx_placed, rx_bounce_off;
	struct vq_chain chain;    /* scratch for receive and control */
	struct vq_chain tx_chain; /* the transmit chain in hand */
};

/*
 * Opens the TAP device @tap_name (tap_open: created when missing, needs CAP_NET_ADMIN then)
 * and sets the device up on it with the MAC address @mac and the backend fd on @loop. On
 * failure returns -errno and writes one line to @err. The caller then attaches n->vdev to a
 * transport; the TAP is closed by virtio_net_close.
 */
int virtio_net_open(struct virtio_net *n, const char *tap_name, const uint8_t mac[6],
                    const struct guest_memory *mem, struct event_loop *loop, char *err,
                    size_t errlen) MUST_CHECK;

/*
 * The device alone over @be (copied; be->fd stays the caller's): @name is for messages.
 * Registers be->fd on @loop (no events until the driver is ready). Returns 0, -ENOMEM or the
 * event_loop_add error.
 */
int virtio_net_init(struct virtio_net *n, const char *name, const uint8_t mac[6],
                    const struct guest_memory *mem, struct event_loop *loop,
                    const struct virtio_net_backend *be) MUST_CHECK;

/*
 * Unregisters the backend fd, closes the TAP virtio_net_open opened and frees everything.
 * Call after the vCPUs and the event loop have stopped; safe after a failed open or init.
 */
void virtio_net_close(struct virtio_net *n);

#endif
