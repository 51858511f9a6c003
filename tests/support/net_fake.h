/*
 * An in-memory packet backend for virtio-net tests: packets the host offers the guest wait in
 * a queue that recv hands out in order (cut to the buffers, like a TAP), packets the guest
 * sends are recorded. Sends can be refused with -EAGAIN (a full TAP) or fail on request. The
 * fd is an eventfd, so the device can register it with a real event loop. net_fake_init_queue
 * makes one queue of a multi-queue backend: set_queue attaches and detaches it, and a send or
 * recv while detached is counted (a device must make none).
 */
#ifndef VMM_TESTS_SUPPORT_NET_FAKE_H
#define VMM_TESTS_SUPPORT_NET_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/net.h"

#define NET_FAKE_MAX 64

struct net_fake_packet {
	uint8_t *data;
	size_t len;
};

struct net_fake {
	struct virtio_net_backend be;
	struct net_fake_packet rx[NET_FAKE_MAX]; /* offered to the guest, rx_next first */
	unsigned nr_rx, rx_next;
	struct net_fake_packet tx[NET_FAKE_MAX]; /* sent by the guest, in order (the first ones) */
	unsigned nr_tx;
	unsigned eagain; /* refuse this many sends with -EAGAIN */
	int send_error;  /* when non-zero: the result of every send, nothing recorded */
	unsigned sends, recvs;
	unsigned offload_calls;
	bool csum, tso4, tso6; /* the last set_offload */
	/* With set_queue (net_fake_init_queue): */
	bool detached;
	unsigned queue_calls;
	unsigned detached_calls; /* sends and recvs while detached */
	int queue_error;         /* when non-zero: the result of set_queue, state kept */
};

void net_fake_init(struct net_fake *f);
/* As net_fake_init, with set_queue: attached, as a TAP opens each queue. */
void net_fake_init_queue(struct net_fake *f);
void net_fake_free(struct net_fake *f);
/* Queues a packet (header and frame) for recv. */
void net_fake_offer(struct net_fake *f, const void *pkt, size_t len);
/* Packets offered and not yet received. */
unsigned net_fake_pending(const struct net_fake *f);

#endif
