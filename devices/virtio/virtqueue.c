/*
 * Split virtqueues, device side (virtio 1.x, 2.7). The layout in guest memory, little-endian:
 *
 *   descriptor table  size x {le64 addr; le32 len; le16 flags; le16 next}      16-byte aligned
 *   available ring    le16 flags; le16 idx; le16 ring[size]; le16 used_event   2-byte aligned
 *   used ring         le16 flags; le16 idx; {le32 id; le32 len} ring[size];
 *                     le16 avail_event                                         4-byte aligned
 *
 * vq_activate translates each ring once, for its whole length, through gpa_to_hva; guest RAM
 * never moves after set-up, so those host views stay valid until vq_reset. Indirect tables and
 * buffers are translated per chain, for their whole length.
 *
 * The guest may rewrite any of this memory at any time. Every value is loaded once into a
 * local, checked there, and only the local is used afterwards.
 */
#include "devices/virtio/virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "vmm/log.h"
#include "vmm/util.h"

#define DESC_SIZE            16
#define DESC_F_NEXT          1
#define DESC_F_WRITE         2
#define DESC_F_INDIRECT      4
#define AVAIL_F_NO_INTERRUPT 1
#define USED_F_NO_NOTIFY     1
#define RING_HDR             4            /* flags and idx in front of both rings */
#define CHAIN_MAX_BYTES      (1ULL << 32) /* 2.7.5: a chain is at most 2^32 bytes in total */

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Logs why a chain or ring was refused (guest-triggered: rate-limited) and returns @err. */
static int refuse(const char *why, uint16_t where, int err)
{
	log_ratelimited(LOG_WARN, "virtqueue: %s (index %u); driver confused?", why, where);
	return err;
}

/* Aligned little-endian ring fields; the alignment is checked at activation. */
static uint16_t load16(const uint8_t *p, int order)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, order));
}

static void store16(uint8_t *p, uint16_t v, int order)
{
	__atomic_store_n((uint16_t *)p, htole16(v), order);
}

static void store32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

static uint64_t avail_bytes(uint16_t size)
{
	return RING_HDR + 2ULL * size + 2; /* ring and used_event */
}

static uint64_t used_bytes(uint16_t size)
{
	return RING_HDR + 8ULL * size + 2; /* ring and avail_event */
}

static uint8_t *used_event_field(const struct virtqueue *vq)
{
	return vq->avail_hva + RING_HDR + 2U * vq->size;
}

static uint8_t *avail_event_field(const struct virtqueue *vq)
{
	return vq->used_hva + RING_HDR + 8U * vq->size;
}

/* Entry @i of a descriptor table (direct or indirect; indirect ones need not be aligned). */
static void read_desc(const uint8_t *table, uint16_t i, struct desc *d)
{
	uint8_t raw[DESC_SIZE];
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;

	memcpy(raw, table + (size_t)i * DESC_SIZE, DESC_SIZE);
	/* Compiler barrier: the fields below come from this one copy, never a second fetch. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	memcpy(&addr, raw, 8);
	memcpy(&len, raw + 8, 4);
	memcpy(&flags, raw + 12, 2);
	memcpy(&next, raw + 14, 2);
	*d = (struct desc){le64toh(addr), le32toh(len), le16toh(flags), le16toh(next)};
}

int vq_activate(struct virtqueue *vq, uint16_t max_size)
{
	uint16_t size = vq->size;
	uint8_t *desc, *avail, *used;

	vq->active = false;
	if (!vq->mem || max_size > VQ_MAX_SIZE || size == 0 || (size & (size - 1)) ||
	    size > max_size)
		return -EINVAL;
	if (vq->desc_addr % 16 || vq->avail_addr % 2 || vq->used_addr % 4)
		return -EINVAL;
	desc = gpa_to_hva(vq->mem, vq->desc_addr, (uint64_t)DESC_SIZE * size);
	avail = gpa_to_hva(vq->mem, vq->avail_addr, avail_bytes(size));
	used = gpa_to_hva(vq->mem, vq->used_addr, used_bytes(size));
	if (!desc || !avail || !used)
		return -EINVAL;
	vq->desc_hva = desc;
	vq->avail_hva = avail;
	vq->used_hva = used;
	vq->last_avail_idx = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_used_valid = false;
	vq->active = true;
	return 0;
}

void vq_reset(struct virtqueue *vq)
{
	memset(vq, 0, sizeof(*vq));
}

/* Appends one buffer: readable ones must all come before the writable ones. */
static int add_buffer(const struct virtqueue *vq, struct vq_chain *c, const struct desc *d,
                      uint16_t where)
{
	bool writable = d->flags & DESC_F_WRITE;
	unsigned n = c->nr_out + c->nr_in;
	uint64_t *total = writable ? &c->in_len : &c->out_len;
	uint64_t sum;
	void *hva;

	if (!writable && c->nr_in)
		return refuse("device-readable buffer after a writable one", where, -EINVAL);
	if (n == VQ_MAX_IOV)
		return refuse("too many buffers in one chain", where, -EINVAL);
	if (add_overflows(*total, (uint64_t)d->len, total) ||
	    add_overflows(c->out_len, c->in_len, &sum) || sum > CHAIN_MAX_BYTES)
		return refuse("chain longer than 2^32 bytes", where, -EINVAL);
	/* A zero-length buffer is kept, but its address must still be in RAM (non-NULL base). */
	hva = gpa_to_hva(vq->mem, d->addr, d->len);
	if (!hva)
		return refuse("buffer outside guest RAM", where, -EFAULT);
	c->iov[n] = (struct iovec){.iov_base = hva, .iov_len = d->len};
	if (writable)
		c->nr_in++;
	else
		c->nr_out++;
	return 0;
}

/* The table @ind points to: negotiated, last in its chain, whole entries, in RAM, not nested. */
static int walk_indirect(const struct virtqueue *vq, struct vq_chain *c, const struct desc *ind,
                         uint16_t where)
{
	const uint8_t *table;
	uint32_t n = ind->len / DESC_SIZE;
	uint16_t i = 0;

	if (!vq->indirect)
		return refuse("indirect descriptor not negotiated", where, -EINVAL);
	if (ind->flags & DESC_F_NEXT)
		return refuse("indirect descriptor with NEXT", where, -EINVAL);
	if (ind->len == 0 || ind->len % DESC_SIZE || n > VQ_MAX_SIZE)
		return refuse("indirect table of a bad length", where, -EINVAL);
	table = gpa_to_hva(vq->mem, ind->addr, ind->len);
	if (!table)
		return refuse("indirect table outside guest RAM", where, -EFAULT);
	for (uint32_t count = 0;; count++) {
		struct desc d;
		int r;

		if (count == n)
			return refuse("loop in an indirect table", where, -EINVAL);
		read_desc(table, i, &d);
		if (d.flags & DESC_F_INDIRECT)
			return refuse("nested indirect table", where, -EINVAL);
		r = add_buffer(vq, c, &d, where);
		if (r < 0 || !(d.flags & DESC_F_NEXT))
			return r;
		if (d.next >= n)
			return refuse("indirect next out of the table", where, -EINVAL);
		i = d.next;
	}
}

/* Follows the chain from @head: at most size descriptors (more is a loop), each next < size. */
static int walk_chain(const struct virtqueue *vq, uint16_t head, struct vq_chain *c)
{
	uint16_t i = head;

	c->head = head;
	c->nr_out = c->nr_in = 0;
	c->out_len = c->in_len = 0;
	for (unsigned count = 0;; count++) {
		struct desc d;
		int r;

		if (count == vq->size)
			return refuse("descriptor chain loops", head, -EINVAL);
		read_desc(vq->desc_hva, i, &d);
		if (d.flags & DESC_F_INDIRECT)
			return walk_indirect(vq, c, &d, head);
		r = add_buffer(vq, c, &d, head);
		if (r < 0 || !(d.flags & DESC_F_NEXT))
			return r;
		if (d.next >= vq->size)
			return refuse("next index out of range", head, -EINVAL);
		i = d.next;
	}
}

uint16_t vq_avail_idx(struct virtqueue *vq)
{
	return vq->active ? load16(vq->avail_hva + 2, __ATOMIC_ACQUIRE) : vq->last_avail_idx;
}

/* How many chains the driver has made available that we have not taken, or -EINVAL. */
static int avail_pending(struct virtqueue *vq)
{
	/*
	 * Acquire: the ring entries and descriptors the driver wrote before publishing idx are
	 * visible to the loads that follow (pairs with the driver's write barrier before idx).
	 */
	uint16_t delta =
	        (uint16_t)(load16(vq->avail_hva + 2, __ATOMIC_ACQUIRE) - vq->last_avail_idx);

	if (delta == 0 && vq->event_idx && !vq->notify_off) {
		/* Ask to be notified of the next chain, then look again. */
		store16(avail_event_field(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
		/*
		 * Full barrier (store-load): avail_event is visible before idx is re-read, so a
		 * driver publishing meanwhile either sees the new avail_event and notifies, or
		 * published before this load and is seen here.
		 */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		delta = (uint16_t)(load16(vq->avail_hva + 2, __ATOMIC_ACQUIRE) -
		                   vq->last_avail_idx);
	}
	if (delta > vq->size)
		return refuse("available index moved by more than the queue size",
		              vq->last_avail_idx, -EINVAL);
	return delta;
}

int vq_pop_chain(struct virtqueue *vq, struct vq_chain *chain)
{
	uint16_t slot, head;
	int r;

	if (!vq->active)
		return 0;
	r = avail_pending(vq);
	if (r <= 0)
		return r;
	slot = vq->last_avail_idx & (uint16_t)(vq->size - 1);
	/* Ordered after the acquire load of idx in avail_pending. */
	head = load16(vq->avail_hva + RING_HDR + 2U * slot, __ATOMIC_RELAXED);
	if (head >= vq->size)
		return refuse("head index out of range", head, -EINVAL);
	r = walk_chain(vq, head, chain);
	if (r < 0)
		return r;
	vq->last_avail_idx++;
	return 1;
}

void vq_notify_off(struct virtqueue *vq)
{
	if (!vq->active || vq->notify_off)
		return;
	vq->notify_off = true;
	/*
	 * With EVENT_IDX: one behind the chains taken, so the driver's next chains do not cross
	 * it (after 2^16 of them it would, costing one needless notification).
	 */
	if (vq->event_idx)
		store16(avail_event_field(vq), (uint16_t)(vq->last_avail_idx - 1),
		        __ATOMIC_RELAXED);
	else
		store16(vq->used_hva, USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

bool vq_notify_on(struct virtqueue *vq)
{
	if (!vq->active) {
		vq->notify_off = false;
		return false;
	}
	vq->notify_off = false;
	if (vq->event_idx)
		store16(avail_event_field(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
	else
		store16(vq->used_hva, 0, __ATOMIC_RELAXED);
	/*
	 * Full barrier (store-load), as in avail_pending: the request is visible before idx is
	 * read again, so a driver publishing meanwhile either sees it and notifies or is seen
	 * here.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return vq_has_avail(vq);
}

bool vq_has_avail(struct virtqueue *vq)
{
	return vq->active && load16(vq->avail_hva + 2, __ATOMIC_ACQUIRE) != vq->last_avail_idx;
}

int vq_add_used(struct virtqueue *vq, uint16_t head, uint32_t len)
{
	uint8_t *elem;

	if (!vq->active || head >= vq->size)
		return -EINVAL;
	elem = vq->used_hva + RING_HDR + 8U * (vq->used_idx & (uint16_t)(vq->size - 1));
	store32(elem, head);
	store32(elem + 4, len);
	vq->used_idx++;
	return 0;
}

void vq_publish_used(struct virtqueue *vq)
{
	if (!vq->active)
		return;
	/*
	 * Release: the entries added, and the data the device wrote into their buffers, are
	 * visible before the driver can see the new idx.
	 */
	store16(vq->used_hva + 2, vq->used_idx, __ATOMIC_RELEASE);
}

int vq_push_used(struct virtqueue *vq, uint16_t head, uint32_t len)
{
	int r = vq_add_used(vq, head, len);

	if (r == 0)
		vq_publish_used(vq);
	return r;
}

/* 2.7.10: true when @event_idx lies in (old, new], modulo 2^16. */
static bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

bool vq_should_notify(struct virtqueue *vq)
{
	uint16_t old = vq->signalled_used, now = vq->used_idx;
	bool valid = vq->signalled_used_valid;

	if (!vq->active)
		return false;
	/*
	 * Full barrier (store-load): the used idx published by vq_push_used is visible before
	 * we read used_event or the avail flags, pairing with the driver's barrier between
	 * writing those and re-reading used idx; otherwise both sides could miss each other.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->signalled_used = now;
	vq->signalled_used_valid = true;
	if (valid ? old == now : now == 0)
		return false; /* nothing pushed since the last call */
	if (!vq->event_idx)
		return !(load16(vq->avail_hva, __ATOMIC_RELAXED) & AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	return need_event(load16(used_event_field(vq), __ATOMIC_RELAXED), now, old);
}
