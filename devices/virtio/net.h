/*
 * virtio-net (virtio 1.x, section 5.1) with 1 to VIRTIO_NET_MAX_PAIRS queue pairs and a control
 * queue, over a packet backend per pair: a TAP device, multi-queue for several pairs
 * (virtio_net_open), or backends the caller provides (virtio_net_init: user networking
 * (libslirp), the tests' fakes). Offered: MAC, STATUS (link up), MRG_RXBUF, CTRL_VQ, CTRL_RX,
 * INDIRECT_DESC and EVENT_IDX, MQ with more than one pair, and with a backend that takes
 * offloads CSUM, GUEST_CSUM, HOST_TSO4/6, HOST_ECN and GUEST_TSO4/6. Every packet carries the
 * 12-byte struct virtio_net_hdr_mrg_rxbuf, which the TAP reads and writes as is
 * (IFF_VNET_HDR), so checksum and segmentation offloads pass straight through.
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

#include "devices/virtio/poll_window.h"
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
#define VIRTIO_NET_F_HOST_ECN   13
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16
#define VIRTIO_NET_F_CTRL_VQ    17
#define VIRTIO_NET_F_CTRL_RX    18
#define VIRTIO_NET_F_MQ         22

#define VIRTIO_NET_S_LINK_UP 1

/* struct virtio_net_hdr_mrg_rxbuf (5.1.6): u8 flags, u8 gso_type, five le16, num_buffers last. */
#define VIRTIO_NET_HDR_LEN          12
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE     0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_ECN      0x80

/* Control queue (5.1.6.5): {u8 class; u8 command; data...} readable, then the u8 ack. */
#define VIRTIO_NET_OK                   0
#define VIRTIO_NET_ERR                  1
#define VIRTIO_NET_CTRL_RX              0
#define VIRTIO_NET_CTRL_RX_PROMISC      0
#define VIRTIO_NET_CTRL_RX_ALLMULTI     1
#define VIRTIO_NET_CTRL_MAC             1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET   0
#define VIRTIO_NET_CTRL_MQ              4 /* le16 virtqueue_pairs */
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET 0

/*
 * Queues (5.1.2): pair k receives on queue 2k and transmits on 2k + 1; the control queue comes
 * after the last pair, at 2 * pairs with MQ negotiated and at 2 without (the driver then uses
 * pair 0 alone). The constants are pair 0's queues and the control queue of a single pair.
 */
#define VIRTIO_NET_RX_QUEUE   0
#define VIRTIO_NET_TX_QUEUE   1
#define VIRTIO_NET_CTRL_QUEUE 2
#define VIRTIO_NET_MAX_PAIRS  8 /* 2 * 8 + 1 = VIRTIO_MAX_QUEUES */
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
 * Where one queue pair's packets go: each one is the 12-byte header followed by the Ethernet
 * frame. All calls come with the device lock held: send and recv on the event-loop thread,
 * set_offload from the vCPU thread that activates the device, set_queue from that thread or a
 * reset's, or the event-loop thread (the control command). They must not block. Return -errno
 * on failure.
 */
struct virtio_net_backend_ops {
	/* Sends one packet; returns the bytes taken, or -EAGAIN when full (retry when writable). */
	ssize_t (*send)(void *opaque, const struct iovec *iov, int iovcnt);
	/*
	 * Receives one packet into @iov; returns its length (a longer packet is cut to fit),
	 * -EAGAIN when none waits, 0 or another -errno when the backend is gone.
	 */
	ssize_t (*recv)(void *opaque, const struct iovec *iov, int iovcnt);
	/*
	 * Which offloads the driver accepts in received packets (tap_set_offload); a setting of
	 * the whole device, called on pair 0's backend only.
	 */
	int (*set_offload)(void *opaque, bool csum, bool tso4, bool tso6);
	/*
	 * Optional (a multi-queue TAP: tap_set_queue): attaches (@enabled) or detaches this
	 * pair's queue, so the host steers no packet to a queue the driver does not use. The
	 * device calls it on pairs other than 0, only to change the state; after a detach it
	 * neither watches nor reads nor writes the pair's fd until it attached it again.
	 */
	int (*set_queue)(void *opaque, bool enabled);
};

struct virtio_net_backend {
	const struct virtio_net_backend_ops *ops;
	void *opaque;
	int fd; /* pollable: readable when recv has a packet, writable when send would take one */
	/*
	 * Packets may carry partial checksums and TSO frames both ways (a TAP with IFF_VNET_HDR):
	 * the device offers CSUM, GUEST_CSUM and the TSO features, and calls set_offload (the
	 * first pair's backend decides for all). Without, it offers none of them, so every packet
	 * is a whole checked frame (flags and gso_type 0).
	 */
	bool offloads;
};

/* Counters of one pair, under vdev.lock; bytes count frames without the header. */
struct virtio_net_stats {
	uint64_t rx_packets, rx_bytes;
	/* Read from the backend but not delivered: no fit, offload not negotiated, reset. */
	uint64_t rx_dropped;
	uint64_t tx_packets, tx_bytes;
	/* malformed chain, backend error other than full, a pair the driver disabled */
	uint64_t tx_dropped;
	uint64_t tx_gso_packets; /* sent with a gso_type: TSO frames of up to 64 KiB */
	uint64_t tx_max_bytes;   /* the largest frame sent */
};

/* A receive chain taken from the ring and not yet used: its buffers are in rx_iov. */
struct virtio_net_rx_buf {
	uint64_t len; /* writable bytes */
	uint16_t head;
	uint16_t nr_iov;
};

struct virtio_net;

/*
 * One queue pair: its backend and its receive and transmit state. Pairs from curr_pairs on
 * are disabled: their backend detached (set_queue), their fd off the loop, their stash empty.
 */
struct virtio_net_pair {
	struct virtio_net *net;
	unsigned index; /* receives on queue 2 * index, transmits on 2 * index + 1 */
	struct virtio_net_backend be;
	struct event_source src; /* be.fd on the loop, while registered */
	bool registered;
	uint8_t *bounce; /* what does not fit the stashed receive chains */

	/* Under net->vdev.lock: */
	bool enabled;      /* among the first curr_pairs: attached and served */
	uint32_t watching; /* the epoll events asked for on be.fd */
	bool rx_stalled;   /* waiting for receive buffers: not reading until a notify */
	bool tx_held;      /* tx_chain was taken from the ring and not yet sent */
	bool tx_blocked;   /* the backend was full: EPOLLOUT resumes transmit */
	bool tx_more;      /* stopped at the batch limit: EPOLLOUT resumes transmit */
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
	struct vq_chain chain;    /* scratch for receive */
	struct vq_chain tx_chain; /* the transmit chain in hand */
	struct vq_poll tx_poll;   /* transmit polling (net_tx.c) */
};

struct virtio_net {
	struct virtio_dev vdev; /* the ops find us with container_of */
	struct virtio_net_config config;
	char name[32]; /* for messages: the TAP's name */
	struct event_loop *loop;
	unsigned nr_pairs;                 /* offered: max_virtqueue_pairs, fixed at set-up */
	struct virtio_net_pair *pairs;     /* nr_pairs of them */
	int tap_fds[VIRTIO_NET_MAX_PAIRS]; /* opened by virtio_net_open ... */
	unsigned nr_tap_fds;               /* ... and then closed by virtio_net_close */

	/* Under vdev.lock: */
	bool mq;             /* MQ negotiated: the control queue is 2 * nr_pairs */
	unsigned curr_pairs; /* pairs in use: 1 until the driver sets more (5.1.6.5.5) */
	bool mrg_rxbuf, guest_csum, guest_tso4, guest_tso6; /* negotiated, cached at activation */
	bool promisc, allmulti; /* CTRL_RX state; recorded, not applied (filtering is optional) */
	bool backend_failed;    /* a backend fd reported an error: link down, fds unwatched */
	struct vq_chain ctrl_chain; /* scratch for the control queue */
};

/*
 * Opens the TAP device @tap_name with @pairs queues (tap_open: created when missing, needs
 * CAP_NET_ADMIN then; multi-queue for more than one) and sets the device up on it with the MAC
 * address @mac and the backend fds on @loop. A TAP that exists single-queue gives one pair
 * with a notice, or an error when @exact. On failure returns -errno and writes one line to
 * @err. The caller then attaches n->vdev to a transport; the TAP is closed by
 * virtio_net_close.
 */
int virtio_net_open(struct virtio_net *n, const char *tap_name, unsigned pairs, bool exact,
                    const uint8_t mac[6], const struct guest_memory *mem, struct event_loop *loop,
                    char *err, size_t errlen) MUST_CHECK;

/*
 * The device alone over @pairs (1 to VIRTIO_NET_MAX_PAIRS) backends @be[] (copied; their fds
 * stay the caller's): @name is for messages. Registers pair 0's fd on @loop (no events until
 * the driver is ready) and detaches the others (set_queue) until the driver uses them.
 * Returns 0, -EINVAL, -ENOMEM or the error of event_loop_add or set_queue.
 */
int virtio_net_init(struct virtio_net *n, const char *name, const uint8_t mac[6],
                    const struct guest_memory *mem, struct event_loop *loop,
                    const struct virtio_net_backend *be, unsigned pairs) MUST_CHECK;

/*
 * Transmit polling: after sending what a transmit queue had, the loop keeps looking at it for
 * an adaptive window of at most @max_ns (poll_window.h; 0: never), the driver's notifications
 * off. Before the driver is ready. Returns 0 or -EINVAL (over POLL_WINDOW_MAX_NS).
 */
int virtio_net_set_poll(struct virtio_net *n, uint32_t max_ns) MUST_CHECK;

/* Pair @pair's counters (zeros for a pair beyond nr_pairs); takes vdev.lock. Any thread. */
void virtio_net_get_stats(struct virtio_net *n, unsigned pair, struct virtio_net_stats *out);

/*
 * Unregisters the backend fds, closes the TAP virtio_net_open opened and frees everything.
 * Call after the vCPUs and the event loop have stopped; safe after a failed open or init.
 */
void virtio_net_close(struct virtio_net *n);

#endif
