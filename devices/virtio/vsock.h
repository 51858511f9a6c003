/*
 * virtio-vsock (virtio 1.x, section 5.10; device 19) implemented in vmm, stream sockets only,
 * mapped onto host Unix sockets as Firecracker's "hybrid vsock" does:
 * - host to guest: a host program connects to the Unix socket PATH (vmm listens there) and
 *   writes "CONNECT <port>\n"; vmm connects to the guest's listener on that port and answers
 *   "OK <hostport>\n", then relays bytes both ways; if nobody listens in the guest, vmm closes
 *   the host's connection;
 * - guest to host: a guest connect() to CID 2 (the host) port P is relayed to the Unix socket
 *   "PATH_P" when something listens there, and refused (RST) otherwise.
 *
 * Flow control is the spec's credit scheme both ways: vmm never reads more from a host socket
 * than the guest's advertised buffer space allows and there are receive buffers for, and
 * advertises VSOCK_BUF_ALLOC bytes per connection for the guest's data, which waits in a
 * per-connection buffer while the host socket is full. So no byte is dropped when either side
 * is slow, and a guest that sends past its credit or opens connections without end is bounded
 * (reset, or refused past VSOCK_MAX_CONNS).
 *
 * Threads: everything runs on the event-loop thread (queue notifications, the listener and
 * connection sockets, resumed batches) under vdev.lock; the transport takes the lock from vCPU
 * threads for register accesses, and a driver reset closes every connection.
 */
#ifndef VMM_DEVICES_VIRTIO_VSOCK_H
#define VMM_DEVICES_VIRTIO_VSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "devices/virtio/virtio.h"
#include "vmm/event_loop.h"
#include "vmm/util.h"

#define VIRTIO_ID_VSOCK 19

#define VSOCK_RX_QUEUE    0
#define VSOCK_TX_QUEUE    1
#define VSOCK_EVENT_QUEUE 2
#define VSOCK_QUEUE_SIZE  256

#define VSOCK_HOST_CID    2
#define VSOCK_DEFAULT_CID 3

/* struct virtio_vsock_hdr (5.10.6), little-endian. */
struct virtio_vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len;
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc;
	uint32_t fwd_cnt;
} __attribute__((packed));

#define VSOCK_TYPE_STREAM 1

#define VSOCK_OP_REQUEST        1
#define VSOCK_OP_RESPONSE       2
#define VSOCK_OP_RST            3
#define VSOCK_OP_SHUTDOWN       4
#define VSOCK_OP_RW             5
#define VSOCK_OP_CREDIT_UPDATE  6
#define VSOCK_OP_CREDIT_REQUEST 7

/* The event queue's one event (the spec's device events): a le32 id. */
#define VSOCK_EVENT_TRANSPORT_RESET 0

#define VSOCK_SHUTDOWN_RCV  1 /* the sender will receive no more */
#define VSOCK_SHUTDOWN_SEND 2 /* the sender will send no more */

#define VSOCK_MAX_CONNS 64 /* at once, both directions */
/*
 * Host connections still in their handshake (before or after the CONNECT line, until the
 * guest's RESPONSE), at once: past it the oldest is closed, so host clients that connect and
 * stall keep at most this many slots from the streams that work.
 */
#define VSOCK_MAX_HANDSHAKES 16
#define VSOCK_BUF_ALLOC      (256 << 10) /* advertised per connection for the guest's data */
#define VSOCK_MAX_PAYLOAD    (64 << 10)  /* longest RW packet either way */
#define VSOCK_CONNECT_MAX    32          /* the longest "CONNECT <port>\n" line accepted */

struct virtio_vsock;

/* One stream between a guest port and a host Unix socket. */
struct vsock_conn {
	/*
	 * Set once per slot: the loop may still dispatch an event of a stream that just ended
	 * (same epoll_wait), so the handler and its opaque never change; src.fd (the Unix socket,
	 * -1 when none) changes under the device lock, where the handler reads it.
	 */
	struct virtio_vsock *dev;
	struct event_source src;
	/* Everything from here on is cleared when the slot is freed. */
	bool used;
	bool host_initiated;
	bool reading_line; /* host-initiated, before its CONNECT line was read */
	bool connected;    /* handshake done: data may flow */
	bool registered;   /* src is on the loop */
	uint32_t watching; /* its epoll events */
	bool readable;     /* the socket may have data: read it when the guest can take it */
	uint32_t guest_port, host_port;
	uint64_t accepted; /* host-initiated: when it was accepted, in accept order */
	/* Control packets owed to the guest, sent before more data. */
	bool send_rst, send_request, send_response, send_shutdown, send_credit;
	/* Guest to host: bytes received and forwarded (fwd_cnt), and those waiting for room. */
	uint32_t rx_cnt, fwd_cnt, fwd_reported;
	uint8_t *pending; /* a ring, allocated on first need */
	uint32_t pending_head, pending_len;
	uint32_t own_bytes; /* at its head: vmm's "OK <port>\n", not the guest's */
	bool guest_shut_send, guest_shut_rcv; /* the guest's SHUTDOWN flags so far */
	bool host_eof;                        /* the host socket ended: SHUTDOWN owed or sent */
	/* Host to guest: bytes sent, and the guest's last advertised credit. */
	uint32_t tx_cnt, peer_buf_alloc, peer_fwd_cnt;
	char line[VSOCK_CONNECT_MAX + 1]; /* the CONNECT line so far */
	unsigned line_len;
};

struct virtio_vsock_config {
	uint64_t guest_cid;
} __attribute__((packed));

struct virtio_vsock {
	struct virtio_dev vdev; /* the ops find us with container_of */
	struct virtio_vsock_config config;
	struct event_loop *loop;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct event_source listener; /* PATH */
	bool listening;
	struct event_work resume; /* a run stopped at its batch limit */
	bool resume_posted;

	/* Under vdev.lock: */
	uint32_t next_host_port; /* for host-initiated connections */
	uint64_t next_accept;    /* the accept order of host connections */
	unsigned next_conn;      /* round robin over connections with work for the guest */
	bool rx_starved;         /* the receive ring was empty: wait for the driver's notify */
	bool rx_held;            /* rx_chain was taken from the ring and not used yet */
	bool reset_owed;         /* restored: the driver is told its transport was reset */
	struct vsock_conn conns[VSOCK_MAX_CONNS];
	/* Resets owed for packets of no connection (beyond the array, they are dropped). */
	struct {
		uint32_t guest_port, host_port;
	} stray_rst[32];
	unsigned nr_stray_rst;
	struct vq_chain rx_chain;
	struct vq_chain tx_chain; /* also the event chain: each is done within one run */
	uint64_t dropped;         /* malformed or misaddressed guest packets */
};

/*
 * Sets the device up with guest CID @cid (3 to 0xfffffffe) and listens on the Unix socket
 * @path (created, mode 0600 by umask; a stale socket there is replaced, any other file is an
 * error). Guest-initiated connections go to "@path_<port>". Returns 0, or -errno with one
 * line in @err. The caller then attaches vdev to a transport.
 */
int virtio_vsock_init(struct virtio_vsock *v, const char *path, uint64_t cid,
                      const struct guest_memory *mem, struct event_loop *loop, char *err,
                      size_t errlen) MUST_CHECK;

/*
 * Closes every connection and the listener, and frees the device. The socket file stays (vmm
 * may not unlink files once sandboxed); the next virtio_vsock_init on the path replaces it.
 */
void virtio_vsock_destroy(struct virtio_vsock *v);

#endif
