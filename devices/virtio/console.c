/*
 * virtio-console (5.3): port 0 on queues 0/1; with VIRTIO_CONSOLE_F_MULTIPORT also the control
 * queues 2/3 and ports 1..n-1 on queues 2 + 2N and 3 + 2N.
 *
 * Transmit: a port's transmitq chains go to its backend.write in ring order (readable buffers
 * only) and are returned with length 0. When the backend takes fewer bytes than offered the
 * chain stays held (tx_held, tx_done bytes taken) and the port transmits nothing more until
 * virtio_console_port_writable(), which sends the rest first: nothing lost or repeated. With a
 * loop (virtio_console_set_loop), one call does at most TX_BATCH chains and TX_BYTES bytes per
 * port and the rest is resumed from the loop; so a backend that never blocks (one taking into
 * an out_stream, vmm/out_stream.c) keeps both the loop and the device lock free however large
 * the chains are and however slow the host's reader is.
 *
 * Receive: host input fills the writable buffers of receiveq chains in order; each chain is
 * returned when the input runs out or it is full. A chain without writable bytes is malformed.
 * With multiport a port takes input only while the driver has it open (Linux drops data that
 * arrives for a closed port); refused input makes the device call backend.rx_space once the port
 * can take it (buffers posted, port opened, DRIVER_OK).
 *
 * Control (multiport, console_control.c): the driver's DEVICE_READY makes the device send
 * DEVICE_ADD for every port; its PORT_READY 1 for a port makes it send PORT_NAME (name and NUL),
 * CONSOLE_PORT and PORT_OPEN 1 as configured; its PORT_OPEN is passed to backend.guest_open.
 * Messages wait as per-port pending bits (bounded and coalesced: PORT_OPEN carries the host state
 * of when it is sent) until the driver posts control receive buffers. A driver message shorter than
 * 8 bytes, with an event the driver does not send, or for a port the device did not add, and a
 * control receive chain too small for its message set DEVICE_NEEDS_RESET.
 *
 * Threads and locking: vdev.lock guards the queues and the fields marked in console.h. Queue
 * notifications run on the event-loop thread (the transports hand one that missed its
 * ioeventfd to the loop); receive, port_writable, resume and set_host_connected on the owner's
 * thread (normally the event loop); activate and reset under the lock from a vCPU thread; flush on
 * the main thread after the vCPUs stopped; the resume work on the loop's thread. All queue work
 * happens under the lock, backend.write included. backend.guest_open, the resume post,
 * needs-reset and interrupts come after the lock is dropped; backend.rx_space too, except from
 * activate.
 */
#include "devices/virtio/console.h"
#include "devices/virtio/console_internal.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "vmm/log.h"
#include "vmm/snapshot_file.h"
#include "vmm/util.h"

void console_work_done(struct virtio_console *c, const struct work *w)
{
	if (w->bad)
		virtio_set_needs_reset(&c->vdev, w->bad);
	for (unsigned i = 0; i < w->nr_opens; i++) {
		const struct virtio_console_backend *be = &c->ports[w->opens[i].port].backend;

		if (be->guest_open)
			be->guest_open(be->opaque, w->opens[i].open);
	}
	for (unsigned p = 0; p < c->nr_ports; p++) {
		const struct virtio_console_backend *be = &c->ports[p].backend;

		if ((w->rx_space >> p & 1) && be->rx_space)
			be->rx_space(be->opaque);
	}
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		if (w->pushed >> q & 1)
			virtio_queue_done(&c->vdev, q);
	}
	if (w->more && c->loop)
		event_loop_post(c->loop, &c->resume_work);
}

/* ---- Transmit ---- */

/*
 * Offers the held chain's remaining bytes to the backend, at most *budget. Returns true when
 * the backend took the whole chain; else sets *refused when it took less than offered (in a
 * flush: nothing at all).
 */
static bool tx_write_chain(struct virtio_console_port *p, size_t *budget, bool flush, bool *refused)
{
	const struct vq_chain *ch = &p->tx_chain;
	uint64_t skip = p->tx_done;

	for (unsigned i = 0; i < ch->nr_out; i++) {
		const uint8_t *base = ch->iov[i].iov_base;
		size_t len = ch->iov[i].iov_len, off = 0;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		off = (size_t)skip;
		skip = 0;
		while (off < len) {
			size_t want = MIN(len - off, *budget), n;

			if (!want)
				return false;
			n = p->backend.write ? p->backend.write(p->backend.opaque, base + off, want)
			                     : want;
			n = MIN(n, want);
			off += n;
			p->tx_done += n;
			*budget -= n;
			if (n == 0 || (n < want && !flush)) {
				*refused = true;
				return false;
			}
		}
	}
	return true;
}

/* Transmits @port's chains in ring order, held chain first, until empty, refused or limited. */
static void tx_run(struct virtio_console *c, unsigned port, struct work *w, bool flush)
{
	struct virtio_console_port *p = &c->ports[port];
	unsigned q = virtio_console_tx_queue(port);
	struct virtqueue *vq = &c->vdev.queues[q];
	bool limited = bounded(c) && !flush, refused = false;
	unsigned chains = limited ? TX_BATCH : flush ? VQ_MAX_SIZE : UINT_MAX;
	size_t bytes = limited ? TX_BYTES : SIZE_MAX;

	p->tx_more = false;
	while (queue_live(c, q)) {
		if (!p->tx_held) {
			int r;

			if (!chains--) {
				p->tx_more = limited;
				break;
			}
			r = vq_pop_chain(vq, &p->tx_chain);
			if (r < 0)
				w->bad = "virtio-console: malformed transmit chain";
			if (r <= 0)
				break;
			p->tx_held = true;
			p->tx_done = p->tx_resume;
			p->tx_resume = 0;
		}
		if (!tx_write_chain(p, &bytes, flush, &refused)) {
			p->tx_blocked = refused;
			p->tx_more = !refused && limited;
			break;
		}
		p->tx_held = false;
		if (vq_push_used(vq, p->tx_chain.head, 0) == 0)
			w->pushed |= 1u << q;
	}
	w->more |= p->tx_more;
}

/* ---- Receive ---- */

/* Copies up to @len bytes into the writable buffers of @chain; returns the count. */
size_t console_fill_chain(const struct vq_chain *chain, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	for (unsigned i = chain->nr_out; i < chain->nr_out + chain->nr_in && done < len; i++) {
		size_t part = MIN(chain->iov[i].iov_len, len - done);

		memcpy(chain->iov[i].iov_base, buf + done, part);
		done += part;
	}
	return done;
}

/* Fills @port's receive chains with @buf; returns the bytes accepted. */
static size_t fill_receive(struct virtio_console *c, unsigned port, const uint8_t *buf, size_t len,
                           struct work *w)
{
	unsigned q = virtio_console_rx_queue(port);
	struct virtqueue *vq = &c->vdev.queues[q];
	size_t done = 0;

	while (done < len) {
		size_t n;
		int r = vq_pop_chain(vq, &c->chain);

		if (r < 0 || (r > 0 && !c->chain.in_len))
			w->bad = "virtio-console: malformed receive chain";
		if (r <= 0 || w->bad)
			break;
		n = console_fill_chain(&c->chain, buf + done, len - done);
		done += n;
		if (vq_push_used(vq, c->chain.head, (uint32_t)n) == 0)
			w->pushed |= 1u << q;
	}
	return done;
}

size_t virtio_console_port_receive(struct virtio_console *c, unsigned port, const uint8_t *buf,
                                   size_t len)
{
	struct work w = {0};
	size_t done = 0;

	if (port >= c->nr_ports)
		return 0;
	pthread_mutex_lock(&c->vdev.lock);
	if (takes_input(c, port))
		done = fill_receive(c, port, buf, len, &w);
	if (done < len)
		c->ports[port].rx_wanted = true;
	pthread_mutex_unlock(&c->vdev.lock);
	console_work_done(c, &w);
	return done;
}

size_t virtio_console_receive(struct virtio_console *c, const uint8_t *buf, size_t len)
{
	return virtio_console_port_receive(c, 0, buf, len);
}

/* Under the lock: if @port's input was refused and it can take some now, let the host retry. */
void console_rx_check(struct virtio_console *c, unsigned port, struct work *w)
{
	struct virtio_console_port *p = &c->ports[port];

	if (p->rx_wanted && takes_input(c, port)) {
		p->rx_wanted = false;
		w->rx_space |= 1u << port;
	}
}

/* ---- Events ---- */

static void console_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct virtio_console *c = to_console(dev);
	unsigned port = queue_port(q);
	struct work w;

	do {
		memset(&w, 0, sizeof(w));
		pthread_mutex_lock(&dev->lock);
		if (q == CTRL_RXQ)
			console_ctrl_send(c, &w);
		else if (q == CTRL_TXQ)
			console_ctrl_run(c, &w);
		else if (port < c->nr_ports && q % 2 == 0)
			console_rx_check(c, port, &w);
		else if (port < c->nr_ports && !c->ports[port].tx_blocked)
			tx_run(c, port, &w, false);
		pthread_mutex_unlock(&dev->lock);
		console_work_done(c, &w);
		/* Unbounded (no loop), control batches go on here (tx_run has no limit then). */
	} while (w.more && !bounded(c) && !w.bad);
}

void virtio_console_port_writable(struct virtio_console *c, unsigned port)
{
	struct work w = {0};

	if (port >= c->nr_ports)
		return;
	pthread_mutex_lock(&c->vdev.lock);
	c->ports[port].tx_blocked = false;
	tx_run(c, port, &w, false);
	pthread_mutex_unlock(&c->vdev.lock);
	console_work_done(c, &w);
}

void virtio_console_flush(struct virtio_console *c)
{
	struct work w = {0};

	pthread_mutex_lock(&c->vdev.lock);
	for (unsigned p = 0; p < c->nr_ports; p++) {
		c->ports[p].tx_blocked = false;
		tx_run(c, p, &w, true);
	}
	pthread_mutex_unlock(&c->vdev.lock);
	if (w.bad)
		log_ratelimited(LOG_WARN, "%s (while flushing)", w.bad);
}

void virtio_console_port_mark_tx(struct virtio_console *c, unsigned port)
{
	if (port >= c->nr_ports)
		return;
	pthread_mutex_lock(&c->vdev.lock);
	c->ports[port].tx_mark = vq_avail_idx(&c->vdev.queues[virtio_console_tx_queue(port)]);
	pthread_mutex_unlock(&c->vdev.lock);
}

bool virtio_console_port_tx_done_to_mark(struct virtio_console *c, unsigned port)
{
	const struct virtio_console_port *p = &c->ports[port];
	const struct virtqueue *vq;
	bool done;

	if (port >= c->nr_ports)
		return true;
	vq = &c->vdev.queues[virtio_console_tx_queue(port)];
	pthread_mutex_lock(&c->vdev.lock);
	/* Taken up to the mark (modulo 2^16), and the last chain taken is not half done. */
	done = !vq->active || ((int16_t)(vq->last_avail_idx - p->tx_mark) >= 0 &&
	                       !(p->tx_held && vq->last_avail_idx == p->tx_mark));
	pthread_mutex_unlock(&c->vdev.lock);
	return done;
}

/* Under vdev.lock. Buffers posted before DRIVER_OK may have gone unnotified: offer input. */
static int console_activate(struct virtio_dev *dev)
{
	struct virtio_console *c = to_console(dev);
	struct work w = {0};

	c->multiport = virtio_has_feature(dev, VIRTIO_CONSOLE_F_MULTIPORT);
	for (unsigned p = 0; p < c->nr_ports; p++)
		console_rx_check(c, p, &w);
	for (unsigned p = 0; p < c->nr_ports; p++) {
		if ((w.rx_space >> p & 1) && c->ports[p].backend.rx_space)
			c->ports[p].backend.rx_space(c->ports[p].backend.opaque);
	}
	return 0;
}

/* Under vdev.lock: forgets the driver's view of the ports; the core resets the queues. */
static void console_reset(struct virtio_dev *dev)
{
	struct virtio_console *c = to_console(dev);

	c->multiport = false;
	c->ctrl_more = false;
	for (unsigned p = 0; p < c->nr_ports; p++) {
		struct virtio_console_port *port = &c->ports[p];

		port->added = port->ready = port->guest_open = false;
		port->pending = 0;
		port->tx_held = port->tx_blocked = port->tx_more = false;
		port->tx_done = port->tx_resume = 0;
	}
}

/* ---- Snapshots ---- */

/* Under vdev.lock: a chain half written is taken again after a restore, from tx_done on. */
static unsigned console_chains_held(struct virtio_dev *dev, unsigned q)
{
	struct virtio_console *c = to_console(dev);
	unsigned port = queue_port(q);

	/* transmitqs are the odd queues, the control one aside */
	return q % 2 && q != CTRL_TXQ && port < c->nr_ports && c->ports[port].tx_held;
}

enum { SNAP_ADDED = 1, SNAP_READY = 2, SNAP_GUEST_OPEN = 4, SNAP_TX_HELD = 8 };

/* Under vdev.lock: the driver's view of each port and what is left to send. */
static void console_save(struct virtio_dev *dev, struct snap_writer *w)
{
	struct virtio_console *c = to_console(dev);

	snap_put_u32(w, c->nr_ports);
	for (unsigned i = 0; i < c->nr_ports; i++) {
		const struct virtio_console_port *p = &c->ports[i];

		snap_put_u8(w, (uint8_t)((p->added ? SNAP_ADDED : 0) | (p->ready ? SNAP_READY : 0) |
		                         (p->guest_open ? SNAP_GUEST_OPEN : 0) |
		                         (p->tx_held ? SNAP_TX_HELD : 0)));
		snap_put_u8(w, p->pending);
		snap_put_u64(w, p->tx_held ? p->tx_done : 0);
	}
}

static int console_load(struct virtio_dev *dev, struct snap_cursor *cur, char *err, size_t errlen)
{
	struct virtio_console *c = to_console(dev);
	uint32_t nr = snap_get_u32(cur);

	if (cur->overrun)
		return 0; /* the core's snap_cursor_finish says so */
	if (nr != c->nr_ports) {
		snprintf(err, errlen, "a console with %u ports, this one has %u", nr, c->nr_ports);
		return -EINVAL;
	}
	for (unsigned i = 0; i < nr; i++) {
		struct virtio_console_port *p = &c->ports[i];
		uint8_t flags = snap_get_u8(cur), pending = snap_get_u8(cur);
		uint64_t done = snap_get_u64(cur);

		if ((flags & ~(SNAP_ADDED | SNAP_READY | SNAP_GUEST_OPEN | SNAP_TX_HELD)) ||
		    (pending & ~PEND_ALL)) {
			snprintf(err, errlen, "port %u: flags %#x, pending %#x out of range", i,
			         flags, pending);
			return -EINVAL;
		}
		p->added = flags & SNAP_ADDED;
		p->ready = flags & SNAP_READY;
		p->guest_open = flags & SNAP_GUEST_OPEN;
		p->pending = pending;
		p->tx_resume = flags & SNAP_TX_HELD ? done : 0;
	}
	return 0;
}

#define CONSOLE_OPS(ports)                                                                         \
	{                                                                                          \
		.name = "virtio-console", .device_id = VIRTIO_ID_CONSOLE,                          \
		.num_queues = 2 * ((ports) + 1), .max_queue_size = VIRTIO_CONSOLE_QUEUE_SIZE,      \
		.activate = console_activate, .reset = console_reset,                              \
		.queue_notify = console_queue_notify, .chains_held = console_chains_held,          \
		.save = console_save, .load = console_load, .snapshots = true,                     \
	}

/* Indexed by the multiport port count; [0] is single-port mode (2 queues). */
static const struct virtio_device_ops console_ops[VIRTIO_CONSOLE_MAX_PORTS + 1] = {
        CONSOLE_OPS(0), CONSOLE_OPS(1), CONSOLE_OPS(2), CONSOLE_OPS(3),
        CONSOLE_OPS(4), CONSOLE_OPS(5), CONSOLE_OPS(6), CONSOLE_OPS(7),
};

void virtio_console_init(struct virtio_console *c, const struct guest_memory *mem,
                         const struct virtio_console_backend *backend)
{
	memset(c, 0, sizeof(*c));
	c->nr_ports = 1;
	c->ports[0].backend = *backend;
	c->ports[0].host_connected = true;
	virtio_dev_init(&c->vdev, &console_ops[0], mem,
	                1ull << VIRTIO_F_INDIRECT_DESC | 1ull << VIRTIO_F_EVENT_IDX, &c->config,
	                sizeof(c->config));
}

void virtio_console_init_multiport(struct virtio_console *c, const struct guest_memory *mem,
                                   const struct virtio_console_port_config *ports,
                                   unsigned nr_ports)
{
	assert(nr_ports >= 1 && nr_ports <= VIRTIO_CONSOLE_MAX_PORTS);
	memset(c, 0, sizeof(*c));
	c->nr_ports = MIN(nr_ports, VIRTIO_CONSOLE_MAX_PORTS);
	c->config.max_nr_ports = htole32(c->nr_ports);
	for (unsigned p = 0; p < c->nr_ports; p++) {
		const char *name = ports[p].name ? ports[p].name : "";
		size_t len = strnlen(name, VIRTIO_CONSOLE_NAME_MAX + 1);

		assert(!ports[p].name || (len && len <= VIRTIO_CONSOLE_NAME_MAX));
		c->ports[p].backend = ports[p].backend;
		memcpy(c->ports[p].name, name, MIN(len, VIRTIO_CONSOLE_NAME_MAX));
		c->ports[p].is_console = ports[p].is_console;
		c->ports[p].host_connected = true;
	}
	virtio_dev_init(&c->vdev, &console_ops[c->nr_ports], mem,
	                1ull << VIRTIO_F_INDIRECT_DESC | 1ull << VIRTIO_F_EVENT_IDX |
	                        1ull << VIRTIO_CONSOLE_F_MULTIPORT,
	                &c->config, sizeof(c->config));
}

/* The rest of what a run left at its batch limit, on the loop's thread. */
static void console_resume(void *opaque)
{
	struct virtio_console *c = opaque;

	struct work w = {0};

	pthread_mutex_lock(&c->vdev.lock);
	for (unsigned p = 0; p < c->nr_ports; p++) {
		if (c->ports[p].tx_more && !c->ports[p].tx_blocked)
			tx_run(c, p, &w, false);
	}
	if (c->ctrl_more)
		console_ctrl_run(c, &w);
	pthread_mutex_unlock(&c->vdev.lock);
	console_work_done(c, &w);
}

void virtio_console_set_loop(struct virtio_console *c, struct event_loop *loop)
{
	c->loop = loop;
	event_work_init(&c->resume_work, console_resume, c);
}

void virtio_console_destroy(struct virtio_console *c)
{
	if (c->loop)
		event_loop_cancel(c->loop, &c->resume_work);
	virtio_dev_destroy(&c->vdev);
}
