/* In-memory virtio-net backend for tests. */
#include "tests/support/net_fake.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/util.h"

static ssize_t fake_send(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct net_fake *f = opaque;
	struct net_fake_packet *p;
	size_t len = 0;

	f->sends++;
	f->detached_calls += f->detached;
	if (f->eagain) {
		f->eagain--;
		return -EAGAIN;
	}
	if (f->send_error)
		return f->send_error;
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (f->nr_tx == NET_FAKE_MAX)
		return (ssize_t)len; /* sent, not recorded */
	p = &f->tx[f->nr_tx++];
	p->data = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(p->data);
	p->len = 0;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(p->data + p->len, iov[i].iov_base, iov[i].iov_len);
		p->len += iov[i].iov_len;
	}
	return (ssize_t)len;
}

static ssize_t fake_recv(void *opaque, const struct iovec *iov, int iovcnt)
{
	struct net_fake *f = opaque;
	const struct net_fake_packet *p;
	size_t done = 0;

	f->recvs++;
	f->detached_calls += f->detached;
	if (f->rx_next == f->nr_rx)
		return -EAGAIN;
	p = &f->rx[f->rx_next++];
	for (int i = 0; i < iovcnt && done < p->len; i++) {
		size_t part = MIN(iov[i].iov_len, p->len - done);

		memcpy(iov[i].iov_base, p->data + done, part);
		done += part;
	}
	return (ssize_t)done;
}

static int fake_set_offload(void *opaque, bool csum, bool tso4, bool tso6)
{
	struct net_fake *f = opaque;

	f->offload_calls++;
	f->csum = csum;
	f->tso4 = tso4;
	f->tso6 = tso6;
	return 0;
}

static int fake_set_queue(void *opaque, bool enabled)
{
	struct net_fake *f = opaque;

	f->queue_calls++;
	if (f->queue_error)
		return f->queue_error;
	ck_assert_msg(f->detached == enabled, "set_queue(%d) on a queue already so", enabled);
	f->detached = !enabled;
	return 0;
}

static const struct virtio_net_backend_ops fake_ops = {
        .send = fake_send,
        .recv = fake_recv,
        .set_offload = fake_set_offload,
};

static const struct virtio_net_backend_ops fake_queue_ops = {
        .send = fake_send,
        .recv = fake_recv,
        .set_offload = fake_set_offload,
        .set_queue = fake_set_queue,
};

void net_fake_init(struct net_fake *f)
{
	memset(f, 0, sizeof(*f));
	f->be = (struct virtio_net_backend){
	        .ops = &fake_ops, .opaque = f, .fd = -1, .offloads = true};
	f->be.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	ck_assert_int_ge(f->be.fd, 0);
}

void net_fake_init_queue(struct net_fake *f)
{
	net_fake_init(f);
	f->be.ops = &fake_queue_ops;
}

void net_fake_free(struct net_fake *f)
{
	for (unsigned i = 0; i < f->nr_rx; i++)
		free(f->rx[i].data);
	for (unsigned i = 0; i < f->nr_tx; i++)
		free(f->tx[i].data);
	if (f->be.fd >= 0)
		close(f->be.fd);
	f->be.fd = -1;
}

void net_fake_offer(struct net_fake *f, const void *pkt, size_t len)
{
	struct net_fake_packet *p;

	ck_assert_uint_lt(f->nr_rx, NET_FAKE_MAX);
	p = &f->rx[f->nr_rx++];
	p->data = malloc(len ? len : 1);
	ck_assert_ptr_nonnull(p->data);
	memcpy(p->data, pkt, len);
	p->len = len;
}

unsigned net_fake_pending(const struct net_fake *f)
{
	return f->nr_rx - f->rx_next;
}
