/*
 * libFuzzer target: virtio-net's receive and transmit paths (devices/virtio/net*.c: the header,
 * MRG_RXBUF and offload checks, chains spread over stashed buffers and the bounce buffer, the
 * control queue with its MQ command, queue pairs enabled and disabled) over in-memory backends,
 * one per queue pair, and 256 KiB of guest RAM (the tests' net_fake uses Check's assertions,
 * which need Check's runner). The input: le64 driver features, a byte of queue pairs (1 + byte
 * modulo MAX_PAIRS; more than one offers MQ), then one byte of queue size (log2, modulo 9) per
 * queue (2 * pairs + 1: receive and transmit of each pair, then control), the rings of queue q
 * at 0x1000 + q * 0x3000 (data from 0x10000 on, rings of more than one pair reach into it), then
 * fz_run_bus operations: RAM writes and hooks (a byte, modulo 6): 0 notify a queue (a byte,
 * modulo the queues plus one), 1 a packet from the host for any pair that reads next (le16
 * length, then its bytes, zero-padded; 128 KiB in all), 2 a backend event (a byte: bit 0
 * EPOLLIN, bit 1 EPOLLOUT, bits 2-3 the pair), 3 refuse the next N sends with -EAGAIN (a
 * byte), 4 toggle failing sends with -EIO, 5 reset the device and bring it up again. A send or
 * receive on a pair the device detached aborts (a finding). ASan checks every buffer the device
 * touches.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/net.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define RAM       (256 * KIB)
#define MAX_PKT   (VIRTIO_NET_MAX_PACKET + 16)
#define MAX_PAIRS 4
/* Queue q's ring at RING_BASE + q * RING_STRIDE: 0x1000, 0x4000, 0x7000... */
#define RING_BASE   0x1000
#define RING_STRIDE 0x3000

static const uint8_t mac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

static struct guest_memory mem;
static struct event_loop loop;
#define MAX_RX 64

/* The backends: packets offered to the guest (in @packets), and what sends do. */
struct fake_backend {
	struct virtio_net_backend be[MAX_PAIRS];
	bool detached[MAX_PAIRS];
	struct {
		size_t off, len;
	} rx[MAX_RX];
	unsigned nr_rx, rx_next;
	size_t used; /* bytes of packets[] taken */
	unsigned eagain;
	int send_error;
	uint64_t sent;
};

static struct fake_backend fake;
static uint8_t packets[MAX_RX * 2048];
static struct virtio_net net;
static uint16_t qsize[2 * MAX_PAIRS + 1];
static unsigned pairs;
static uint64_t features;
static unsigned interrupts;

static void count_interrupt(void *opaque, int q)
{
	(void)opaque;
	(void)q;
	interrupts++;
}

static ssize_t fake_send(void *opaque, const struct iovec *iov, int iovcnt)
{
	size_t len = 0;

	fz_must(fake.detached[(uintptr_t)opaque], "a send on a detached queue");
	if (fake.eagain) {
		fake.eagain--;
		return -EAGAIN;
	}
	if (fake.send_error)
		return fake.send_error;
	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;

		for (size_t j = 0; j < iov[i].iov_len; j++) /* ASan checks the whole range */
			fake.sent += p[j];
		len += iov[i].iov_len;
	}
	return (ssize_t)len;
}

/* Hands out the next packet, cut to the buffers as a TAP does. */
static ssize_t fake_recv(void *opaque, const struct iovec *iov, int iovcnt)
{
	size_t done = 0, len, off;

	fz_must(fake.detached[(uintptr_t)opaque], "a receive on a detached queue");
	if (fake.rx_next == fake.nr_rx)
		return -EAGAIN;
	off = fake.rx[fake.rx_next].off;
	len = fake.rx[fake.rx_next++].len;
	for (int i = 0; i < iovcnt && done < len; i++) {
		size_t part = MIN(iov[i].iov_len, len - done);

		memcpy(iov[i].iov_base, packets + off + done, part);
		done += part;
	}
	return (ssize_t)done;
}

static int fake_set_offload(void *opaque, bool csum, bool tso4, bool tso6)
{
	(void)opaque;
	(void)csum;
	(void)tso4;
	(void)tso6;
	return 0;
}

/* As a multi-queue TAP: changing a queue to the state it has is an error. */
static int fake_set_queue(void *opaque, bool enabled)
{
	uintptr_t i = (uintptr_t)opaque;

	if (fake.detached[i] != enabled)
		return -EINVAL;
	fake.detached[i] = !enabled;
	return 0;
}

static const struct virtio_net_backend_ops fake_ops = {
        .send = fake_send,
        .recv = fake_recv,
        .set_offload = fake_set_offload,
        .set_queue = fake_set_queue,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_virtio_setup(&mem, RAM, &loop);
	for (uintptr_t i = 0; i < MAX_PAIRS; i++) {
		fake.be[i] = (struct virtio_net_backend){.ops = &fake_ops,
		                                         .opaque = (void *)i,
		                                         .fd = eventfd(0, EFD_NONBLOCK),
		                                         .offloads = true};
		fz_must(fake.be[i].fd < 0, "eventfd");
	}
	return 0;
}

/* What a driver does: negotiate, place the rings, DRIVER_OK (which may be refused). */
static void driver_up(void)
{
	fz_virtio_driver_up(&net.vdev, features, qsize, 2 * pairs + 1, RING_BASE, RING_STRIDE);
}

/* Queues a packet of the given length (cut to what is left of packets[]), zero-padded. */
static void offer(struct fz *f)
{
	size_t len = fz_u16(f);

	if (fake.nr_rx == MAX_RX)
		return;
	len = MIN(len, sizeof(packets) - fake.used);
	memset(packets + fake.used, 0, len);
	fz_bytes(f, packets + fake.used, len);
	fake.rx[fake.nr_rx].off = fake.used;
	fake.rx[fake.nr_rx++].len = len;
	fake.used += len;
}

static void hook(void *opaque, struct fz *f)
{
	uint8_t ev;

	(void)opaque;
	switch (fz_u8(f) % 6) {
	case 0:
		net.vdev.ops->queue_notify(&net.vdev, fz_u8(f) % (2 * pairs + 2));
		break;
	case 1:
		offer(f);
		break;
	case 2: {
		struct virtio_net_pair *p;

		ev = fz_u8(f);
		p = &net.pairs[(ev >> 2) % pairs];
		/* The loop may hand over an event collected before the pair was disabled. */
		p->src.handler(p->src.opaque, (ev & 1 ? EPOLLIN : 0) | (ev & 2 ? EPOLLOUT : 0));
		break;
	}
	case 3:
		fake.eagain = fz_u8(f) % 4;
		break;
	case 4:
		fake.send_error = fake.send_error ? 0 : -EIO;
		break;
	default:
		driver_up();
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	const struct fz_bus b = {.mem = &mem, .mem_span = RAM, .hook = hook};

	fz_memory_clear(&mem);
	features = fz_u64(&f);
	pairs = 1 + fz_u8(&f) % MAX_PAIRS;
	for (unsigned q = 0; q < 2 * pairs + 1; q++)
		qsize[q] = (uint16_t)(1u << fz_u8(&f) % 9);
	fake.nr_rx = fake.rx_next = 0;
	fake.used = 0;
	fake.eagain = 0;
	fake.send_error = 0;
	memset(fake.detached, 0, sizeof(fake.detached));
	fz_must(virtio_net_init(&net, "fuzz0", mac, &mem, &loop, fake.be, pairs),
	        "virtio_net_init");
	net.vdev.transport = (struct virtio_transport){count_interrupt, NULL};
	driver_up();
	fz_run_bus(&b, &f);
	virtio_net_close(&net);
	return 0;
}
