/*
 * virtio-console's multiport control protocol (5.3.6.2): the messages the device sends from
 * per-port pending bits, and the driver's messages it acts on. See console.c for the device
 * and its locking; everything here runs under vdev.lock but set_host_connected, which takes it.
 */
#include <endian.h>
#include <string.h>

#include "devices/virtio/console_internal.h"
#include "vmm/log.h"

/* Pending control messages of a port, in the order they go; bit i sends pend_event[i]. */
static const uint16_t pend_event[] = {VIRTIO_CONSOLE_DEVICE_ADD, VIRTIO_CONSOLE_PORT_NAME,
                                      VIRTIO_CONSOLE_CONSOLE_PORT, VIRTIO_CONSOLE_PORT_OPEN};

/* Builds @port's message for pending bit @bit into @msg; returns its length. */
static size_t ctrl_build(const struct virtio_console *c, unsigned port, unsigned bit, uint8_t *msg)
{
	const struct virtio_console_port *p = &c->ports[port];
	struct virtio_console_control m = {
	        .id = htole32(port),
	        .event = htole16(pend_event[bit]),
	        .value = htole16(1u << bit == PEND_OPEN ? p->host_connected : 1),
	};
	size_t len = sizeof(m);

	memcpy(msg, &m, sizeof(m));
	if (1u << bit == PEND_NAME) {
		memcpy(msg + len, p->name, strlen(p->name) + 1);
		len += strlen(p->name) + 1;
	}
	return len;
}

/* Finds the next message to send: DEVICE_ADDs first, then by kind and port. */
static bool ctrl_next(const struct virtio_console *c, unsigned *port, unsigned *bit)
{
	for (unsigned b = 0; b < ARRAY_SIZE(pend_event); b++) {
		for (unsigned p = 0; p < c->nr_ports; p++) {
			if (c->ports[p].pending >> b & 1) {
				*port = p;
				*bit = b;
				return true;
			}
		}
	}
	return false;
}

/* Sends pending control messages while the driver has control receive buffers posted. */
void console_ctrl_send(struct virtio_console *c, struct work *w)
{
	struct virtqueue *vq = &c->vdev.queues[CTRL_RXQ];
	uint8_t msg[sizeof(struct virtio_console_control) + VIRTIO_CONSOLE_NAME_MAX + 1];
	unsigned port, bit;

	/* Each round clears a pending bit: at most 4 per port. */
	while (!w->bad && queue_live(c, CTRL_RXQ) && ctrl_next(c, &port, &bit)) {
		size_t len = ctrl_build(c, port, bit, msg);
		int r = vq_pop_chain(vq, &c->chain);

		if (r < 0 || (r > 0 && c->chain.in_len < len))
			w->bad = "virtio-console: malformed or too small control receive chain";
		if (r <= 0 || w->bad)
			return;
		console_fill_chain(&c->chain, msg, len);
		c->ports[port].pending &= (uint8_t) ~(1u << bit);
		if (1u << bit == PEND_ADD)
			c->ports[port].added = true;
		if (vq_push_used(vq, c->chain.head, (uint32_t)len) == 0)
			w->pushed |= 1u << CTRL_RXQ;
	}
}

/* Gathers the driver's message from the chain's readable buffers; false when too short. */
static bool ctrl_read(const struct vq_chain *ch, struct virtio_console_control *m)
{
	size_t done = 0;

	if (ch->out_len < sizeof(*m))
		return false;
	for (unsigned i = 0; i < ch->nr_out && done < sizeof(*m); i++) {
		size_t part = MIN(ch->iov[i].iov_len, sizeof(*m) - done);

		memcpy((uint8_t *)m + done, ch->iov[i].iov_base, part);
		done += part;
	}
	return true;
}

/* Acts on one driver message; returns why it is malformed, or NULL. */
static const char *ctrl_handle(struct virtio_console *c, const struct virtio_console_control *m,
                               struct work *w)
{
	uint32_t id = le32toh(m->id);
	uint16_t event = le16toh(m->event), value = le16toh(m->value);
	struct virtio_console_port *p;

	if (event == VIRTIO_CONSOLE_DEVICE_READY) { /* the id is meaningless (Linux: BAD_ID) */
		if (!value)
			log_ratelimited(LOG_WARN, "virtio-console: the driver failed to set up");
		for (unsigned i = 0; i < c->nr_ports && value; i++)
			c->ports[i].pending |= PEND_ADD;
		return NULL;
	}
	if (event != VIRTIO_CONSOLE_PORT_READY && event != VIRTIO_CONSOLE_PORT_OPEN)
		return "virtio-console: control event the driver does not send";
	if (id >= c->nr_ports || !c->ports[id].added)
		return "virtio-console: control message for a port the device did not add";
	p = &c->ports[id];
	if (event == VIRTIO_CONSOLE_PORT_READY) {
		p->ready = value;
		if (!value)
			log_ratelimited(LOG_WARN,
			                "virtio-console: the driver failed to add port %u", id);
		else
			p->pending |= (p->name[0] ? PEND_NAME : 0) |
			              (p->is_console ? PEND_CONSOLE : 0) |
			              (p->host_connected ? PEND_OPEN : 0);
		return NULL;
	}
	p->guest_open = value;
	assert(w->nr_opens < CTRL_BATCH); /* one per chain, CTRL_BATCH chains per work */
	w->opens[w->nr_opens].port = (uint8_t)id;
	w->opens[w->nr_opens++].open = value;
	console_rx_check(c, id, w);
	return NULL;
}

/* Takes the driver's control messages, then sends what they asked for. */
void console_ctrl_run(struct virtio_console *c, struct work *w)
{
	struct virtqueue *vq = &c->vdev.queues[CTRL_TXQ];
	unsigned i;

	c->ctrl_more = false;
	for (i = 0; i < CTRL_BATCH && queue_live(c, CTRL_TXQ); i++) {
		struct virtio_console_control m;
		int r = vq_pop_chain(vq, &c->chain);

		if (r < 0 || (r > 0 && !ctrl_read(&c->chain, &m)))
			w->bad = "virtio-console: malformed or short control chain";
		else if (r > 0)
			w->bad = ctrl_handle(c, &m, w);
		if (r <= 0 || w->bad)
			break;
		if (vq_push_used(vq, c->chain.head, 0) == 0)
			w->pushed |= 1u << CTRL_TXQ;
	}
	c->ctrl_more = i == CTRL_BATCH;
	w->more |= c->ctrl_more;
	console_ctrl_send(c, w);
}

void virtio_console_port_set_host_connected(struct virtio_console *c, unsigned port, bool connected)
{
	struct virtio_console_port *p;
	struct work w = {0};

	if (port >= c->nr_ports)
		return;
	p = &c->ports[port];
	pthread_mutex_lock(&c->vdev.lock);
	if (p->host_connected != connected) {
		p->host_connected = connected;
		if (p->ready)
			p->pending |= PEND_OPEN;
		console_ctrl_send(c, &w);
	}
	pthread_mutex_unlock(&c->vdev.lock);
	console_work_done(c, &w);
}
