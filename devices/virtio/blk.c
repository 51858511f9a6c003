/*
 * virtio-blk: request parsing, the request life cycle, config space and image set-up.
 *
 * Life of a request (all on the event-loop thread): queue_notify pops chains while a free slot
 * remains, parses each into the slot's struct blk_request, and either completes it at once
 * (a parse error, GET_ID) or submits it to the backend and moves on. The backend's completion
 * callback writes the status byte and returns the chain on the used ring; the guest is
 * interrupted once per batch of completions. DISCARD and WRITE_ZEROES run their segments one
 * after another, one fallocate each.
 *
 * Threads: the backend is only ever called from the event-loop thread. process_queue is reached
 * from queue_notify, which the transports serve on the loop only (a doorbell that reaches them
 * on a vCPU thread is handed over, see struct virtio_doorbell), and from the completion batch
 * callback, which the backend calls on the loop; the io_uring backend has no lock of its own
 * and checks its thread.
 *
 * Polling (blk_set_poll): after serving a queue that it then finds empty, the loop keeps looking
 * at it for the queue's adaptive window, in posted work (poll_queue), with the driver's
 * notifications off (vq_notify_off); the window's end turns them on and looks once more
 * (vq_notify_on), so no chain is left waiting for a notification the driver never sends. The
 * poll state (struct blk_poll) is the loop thread's, like process_queue; the virtqueue's switch
 * is under vdev.lock with the rest of the queue.
 *
 * Locking: vdev.lock guards the queue and the slots (activate and reset run under it, from a
 * vCPU thread). A reset bumps the generation; completions of older requests only free their
 * slot, because the chains they came from no longer exist for the driver. Their data may still
 * land in guest memory, which stays mapped for the VM's lifetime.
 *
 * Block size (blk_image.c opens, locks and sizes the image): cache=none (O_DIRECT) needs offsets
 * and lengths aligned to the host's logical block size, so blk_open asks the host (BLKSSZGET, statx
 * STATX_DIOALIGN) and advertises it as blk_size; an IN or OUT request not aligned to it completes
 * with IOERR (the parser's rule).
 */
#include "devices/virtio/blk.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio/blk_image.h"
#include "devices/virtio/blk_uring.h"
#include "devices/virtio/iov.h"
#include "vmm/log.h"

static_assert(offsetof(struct blk_config, capacity) == 0, "capacity");
static_assert(offsetof(struct blk_config, size_max) == 8, "size_max");
static_assert(offsetof(struct blk_config, seg_max) == 12, "seg_max");
static_assert(offsetof(struct blk_config, blk_size) == 20, "blk_size");
static_assert(offsetof(struct blk_config, writeback) == 32, "writeback");
static_assert(offsetof(struct blk_config, num_queues) == 34, "num_queues");
static_assert(offsetof(struct blk_config, max_discard_sectors) == 36, "max_discard_sectors");
static_assert(offsetof(struct blk_config, max_discard_seg) == 40, "max_discard_seg");
static_assert(offsetof(struct blk_config, discard_sector_alignment) == 44, "discard_align");
static_assert(offsetof(struct blk_config, max_write_zeroes_sectors) == 48, "max_wz_sectors");
static_assert(offsetof(struct blk_config, max_write_zeroes_seg) == 52, "max_write_zeroes_seg");
static_assert(offsetof(struct blk_config, write_zeroes_may_unmap) == 56, "may_unmap");
static_assert(sizeof(struct blk_config) == 60, "config size");

/* ---- The device ---- */

struct blk_slot {
	struct blk_slot *next; /* free list */
	unsigned q;            /* the queue the chain came from */
	uint32_t generation;
	unsigned next_seg; /* DISCARD / WRITE_ZEROES: the segment in flight */
	uint32_t written;  /* bytes of data written to the driver's buffers */
	struct blk_request req;
	struct vq_chain chain;
};

static struct blk_dev *to_blk(struct virtio_dev *dev)
{
	return container_of(dev, struct blk_dev, vdev);
}

static void put_slot(struct blk_dev *b, struct blk_slot *slot)
{
	slot->next = b->free_slots;
	b->free_slots = slot;
}

/* Writes the status byte and hands the chain back. Called with vdev.lock held. */
static void finish(struct blk_dev *b, struct blk_slot *slot, uint8_t status)
{
	uint32_t len = status == VIRTIO_BLK_S_OK ? slot->written : 0;

	if (slot->req.status) {
		*slot->req.status = status;
		len++;
	}
	if (vq_push_used(&b->vdev.queues[slot->q], slot->chain.head, len) < 0)
		log_ratelimited(LOG_WARN, "disk '%s': used ring not writable", b->path);
	put_slot(b, slot);
}

static int submit_segment(struct blk_dev *b, struct blk_slot *slot)
{
	const struct blk_segment *seg = &slot->req.segs[slot->next_seg];
	int mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;

	if (slot->req.type == VIRTIO_BLK_T_WRITE_ZEROES && !(seg->flags & VIRTIO_BLK_DWZ_F_UNMAP))
		mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	return b->be->ops->submit_fallocate(b->be, mode, seg->sector * BLK_SECTOR_SIZE,
	                                    (uint64_t)seg->num_sectors * BLK_SECTOR_SIZE, slot);
}

/* Starts a parsed request: 0 when submitted, 1 when already done (OK), or -errno. */
static int submit(struct blk_dev *b, struct blk_slot *slot)
{
	struct blk_request *req = &slot->req;

	switch (req->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return b->be->ops->submit_rw(b->be, req->type == VIRTIO_BLK_T_OUT, req->data,
		                             req->nr_data, req->sector * BLK_SECTOR_SIZE, slot);
	case VIRTIO_BLK_T_FLUSH:
		return b->be->ops->submit_flush(b->be, slot);
	case VIRTIO_BLK_T_GET_ID:
		slot->written = (uint32_t)iov_from_buf(req->data, req->nr_data, 0, b->serial,
		                                       sizeof(b->serial));
		return 1;
	default: /* DISCARD, WRITE_ZEROES */
		return submit_segment(b, slot);
	}
}

/* Parses and starts one chain; returns true when it completed at once. Under vdev.lock. */
static bool start_request(struct blk_dev *b, struct blk_slot *slot)
{
	enum blk_req_error err = blk_parse_request(&b->limits, &slot->chain, &slot->req);
	int r;

	slot->generation = b->generation;
	slot->next_seg = 0;
	slot->written = 0;
	if (err != BLK_REQ_OK) {
		log_ratelimited(LOG_WARN, "disk '%s': bad request: %s", b->path,
		                blk_req_error_name(err));
		finish(b, slot, blk_req_error_status(err));
		return true;
	}
	r = submit(b, slot);
	if (r == 0)
		return false;
	if (r < 0)
		log_ratelimited(LOG_WARN, "disk '%s': submit: %s", b->path, strerror(-r));
	finish(b, slot, r > 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR);
	return true;
}

static bool queue_live(struct blk_dev *b, unsigned q)
{
	const struct virtio_dev *dev = &b->vdev;

	return (dev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(dev->status & VIRTIO_STATUS_NEEDS_RESET) && dev->queues[q].ready;
}

/*
 * Pops and starts queue @q's chains while slots last, as one batch for the backend. At most
 * BLK_QUEUE_SIZE chains per call: each takes a slot. Polling: a chain found counts as work for
 * the queue's window; a ring found empty continues the poll or ends it. Event-loop thread.
 */
static void process_queue(struct blk_dev *b, unsigned q)
{
	struct virtio_dev *dev = &b->vdev;
	uint64_t now = b->loop ? poll_window_now() : 0;
	bool done_any = false, popped = false, post = false;
	int r = 0;

	if (b->be->ops->plug)
		b->be->ops->plug(b->be);
	pthread_mutex_lock(&dev->lock);
	b->starved &= ~(1u << q);
	while (queue_live(b, q)) {
		struct blk_slot *slot = b->free_slots;

		if (!slot) {
			b->starved |= 1u << q;
			break;
		}
		r = vq_pop_chain(&dev->queues[q], &slot->chain);
		if (r <= 0)
			break;
		if (!popped && b->loop)
			poll_window_work(&b->poll[q].vp.win, now);
		popped = true;
		b->free_slots = slot->next;
		slot->q = q;
		done_any |= start_request(b, slot);
	}
	if (r == 0 && b->loop && !(b->starved & 1u << q) && queue_live(b, q))
		post = vq_poll_idle(&b->poll[q].vp, &dev->queues[q], now, b->poll_hold);
	pthread_mutex_unlock(&dev->lock);
	if (post)
		event_loop_post(b->loop, &b->poll[q].vp.work);
	if (b->be->ops->unplug)
		b->be->ops->unplug(b->be);
	if (r < 0)
		virtio_set_needs_reset(dev, "virtio-blk: malformed descriptor chain");
	if (done_any)
		virtio_queue_done(dev, (int)q);
}

/*
 * One look at a polled queue (posted work, on the loop): serves the chains that arrived, or
 * posts itself again until the window ends, then turns notifications on (serving what came in
 * the meantime). Stops for a queue that was reset, or is short of slots (requests_done comes
 * back to it, notifications still off).
 */
static void poll_queue(void *opaque)
{
	struct blk_poll *p = opaque;
	struct blk_dev *b = p->b;
	bool serve = false, again = false;

	pthread_mutex_lock(&b->vdev.lock);
	if (queue_live(b, p->q) && !(b->starved & 1u << p->q))
		serve = vq_poll_look(&p->vp, &b->vdev.queues[p->q], &again);
	pthread_mutex_unlock(&b->vdev.lock);
	if (again)
		event_loop_post(b->loop, &p->vp.work);
	if (serve)
		process_queue(b, p->q);
}

int blk_set_poll(struct blk_dev *b, struct event_loop *loop, uint32_t max_ns)
{
	if (max_ns > POLL_WINDOW_MAX_NS)
		return -EINVAL;
	b->loop = max_ns ? loop : NULL;
	for (unsigned q = 0; q < BLK_MAX_QUEUES; q++) {
		b->poll[q].b = b;
		b->poll[q].q = q;
		poll_window_init(&b->poll[q].vp.win, max_ns);
		event_work_init(&b->poll[q].vp.work, poll_queue, &b->poll[q]);
	}
	return 0;
}

static void blk_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct blk_dev *b = to_blk(dev);

	if (q < b->nr_queues)
		process_queue(b, q);
}

static uint8_t result_status(int result)
{
	if (result == 0)
		return VIRTIO_BLK_S_OK;
	return result == -EOPNOTSUPP ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR;
}

/* Backend completion of the request in @cookie. Event-loop thread. */
static void request_done(void *opaque, void *cookie, int result)
{
	struct blk_dev *b = opaque;
	struct blk_slot *slot = cookie;
	struct blk_request *req = &slot->req;

	pthread_mutex_lock(&b->vdev.lock);
	if (slot->generation != b->generation) {
		put_slot(b, slot); /* the device was reset meanwhile */
		goto out;
	}
	if (result == 0 && req->nr_segs && ++slot->next_seg < req->nr_segs) {
		result = submit_segment(b, slot);
		if (result == 0)
			goto out;
	}
	if (result < 0)
		log_ratelimited(LOG_WARN, "disk '%s': request type %u failed: %s", b->path,
		                req->type, strerror(-result));
	else if (req->type == VIRTIO_BLK_T_IN)
		slot->written = (uint32_t)MIN(req->data_len, UINT32_MAX);
	b->completed |= 1u << slot->q;
	finish(b, slot, result_status(result));
out:
	pthread_mutex_unlock(&b->vdev.lock);
}

/*
 * After a batch of completions: one interrupt per queue that got used entries, and more work
 * for the queues that were short of slots.
 */
static void requests_done(void *opaque)
{
	struct blk_dev *b = opaque;
	uint32_t completed, starved;

	pthread_mutex_lock(&b->vdev.lock);
	completed = b->completed;
	starved = b->starved;
	b->completed = 0;
	pthread_mutex_unlock(&b->vdev.lock);
	for (unsigned q = 0; q < b->nr_queues; q++)
		if (completed & 1u << q)
			virtio_queue_done(&b->vdev, (int)q);
	for (unsigned q = 0; q < b->nr_queues; q++)
		if (starved & 1u << q)
			process_queue(b, q);
}

static int blk_activate(struct virtio_dev *dev)
{
	struct blk_dev *b = to_blk(dev);

	b->limits.discard = virtio_has_feature(dev, VIRTIO_BLK_F_DISCARD);
	b->limits.write_zeroes = virtio_has_feature(dev, VIRTIO_BLK_F_WRITE_ZEROES);
	return 0;
}

static void blk_reset(struct virtio_dev *dev)
{
	struct blk_dev *b = to_blk(dev);

	b->generation++;
	b->starved = 0;
	b->completed = 0;
}

/* Before a snapshot: every request in flight completes (and is in the used ring). */
static void blk_quiesce(struct virtio_dev *dev)
{
	struct blk_dev *b = container_of(dev, struct blk_dev, vdev);

	/*
	 * Notifications back on (the snapshot holds the rings as they are, and a restored device
	 * starts with them on), and chains that came during a poll served, while this holds
	 * polling off; then everything in flight completes.
	 */
	b->poll_hold = true;
	for (unsigned q = 0; b->loop && q < b->nr_queues; q++) {
		bool serve;

		pthread_mutex_lock(&dev->lock);
		serve = dev->queues[q].notify_off && vq_notify_on(&dev->queues[q]);
		pthread_mutex_unlock(&dev->lock);
		if (serve)
			process_queue(b, q);
	}
	if (b->uring)
		blk_uring_settle(b->uring);
	b->poll_hold = false;
}

#define BLK_OPS(queues)                                                                            \
	{                                                                                          \
		.name = "virtio-blk", .device_id = VIRTIO_ID_BLOCK, .num_queues = (queues),        \
		.max_queue_size = BLK_QUEUE_SIZE, .activate = blk_activate, .reset = blk_reset,    \
		.queue_notify = blk_queue_notify, .quiesce = blk_quiesce,                          \
		.snapshots = true, /* once quiesced */                                             \
	}

/* Indexed by the number of request queues less one. */
static const struct virtio_device_ops blk_ops[BLK_MAX_QUEUES] = {
        BLK_OPS(1), BLK_OPS(2), BLK_OPS(3), BLK_OPS(4),
        BLK_OPS(5), BLK_OPS(6), BLK_OPS(7), BLK_OPS(8),
};
static_assert(BLK_MAX_QUEUES == 8, "one blk_ops entry per queue count");

int blk_set_block_size(struct blk_dev *b, uint32_t size)
{
	if (size < BLK_SECTOR_SIZE || size > BLK_MAX_BLOCK_SIZE || (size & (size - 1)))
		return -EINVAL;
	b->limits.block_size = size;
	b->config.blk_size = htole32(size);
	return 0;
}

static void fill_config(struct blk_config *cfg, uint64_t capacity, unsigned queues)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->capacity = htole64(capacity);
	cfg->size_max = htole32(BLK_SIZE_MAX);
	cfg->seg_max = htole32(BLK_SEG_MAX);
	cfg->blk_size = htole32(BLK_SECTOR_SIZE);
	cfg->num_queues = htole16((uint16_t)queues);
	cfg->max_discard_sectors = htole32(BLK_MAX_DWZ_SECTS);
	cfg->max_discard_seg = htole32(BLK_MAX_DWZ_SEGS);
	cfg->discard_sector_alignment = htole32(BLK_DISCARD_ALIGN);
	cfg->max_write_zeroes_sectors = htole32(BLK_MAX_DWZ_SECTS);
	cfg->max_write_zeroes_seg = htole32(BLK_MAX_DWZ_SEGS);
	cfg->write_zeroes_may_unmap = 1;
}

static uint64_t device_features(bool read_only, unsigned queues)
{
	uint64_t f = 1ull << VIRTIO_BLK_F_SIZE_MAX | 1ull << VIRTIO_BLK_F_SEG_MAX |
	             1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH |
	             1ull << VIRTIO_F_INDIRECT_DESC | 1ull << VIRTIO_F_EVENT_IDX;

	if (queues > 1)
		f |= 1ull << VIRTIO_BLK_F_MQ;

	if (read_only)
		return f | 1ull << VIRTIO_BLK_F_RO;
	return f | 1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
}

/* The device part shared by blk_open and blk_init; @b->path is set. */
static int init_device(struct blk_dev *b, const struct blk_options *opts, uint64_t size,
                       const struct guest_memory *mem, struct blk_backend *be, char *err,
                       size_t errlen)
{
	size_t serial_len = opts->serial ? strlen(opts->serial) : 0;

	if (serial_len > BLK_ID_BYTES) {
		snprintf(err, errlen, "disk '%s': serial '%s' is longer than %u bytes", b->path,
		         opts->serial, BLK_ID_BYTES);
		return -EINVAL;
	}
	if (size < BLK_SECTOR_SIZE) {
		snprintf(err, errlen, "disk '%s': image smaller than one 512-byte sector", b->path);
		return -EINVAL;
	}
	b->nr_queues = opts->num_queues ? opts->num_queues : 1;
	if (b->nr_queues > BLK_MAX_QUEUES) {
		snprintf(err, errlen, "disk '%s': %u queues, at most %u", b->path, b->nr_queues,
		         BLK_MAX_QUEUES);
		return -EINVAL;
	}
	b->slots = calloc(BLK_QUEUE_SIZE, sizeof(*b->slots));
	if (!b->slots) {
		snprintf(err, errlen, "disk '%s': %s", b->path, strerror(ENOMEM));
		return -ENOMEM;
	}
	for (unsigned i = BLK_QUEUE_SIZE; i-- > 0;)
		put_slot(b, &b->slots[i]);
	memcpy(b->serial, opts->serial ? opts->serial : "", serial_len);
	b->read_only = opts->read_only;
	b->limits = (struct blk_limits){.capacity = size / BLK_SECTOR_SIZE,
	                                .block_size = BLK_SECTOR_SIZE,
	                                .read_only = opts->read_only};
	b->be = be;
	be->complete = request_done;
	be->complete_batch_end = requests_done;
	be->opaque = b;
	fill_config(&b->config, b->limits.capacity, b->nr_queues);
	virtio_dev_init(&b->vdev, &blk_ops[b->nr_queues - 1], mem,
	                device_features(opts->read_only, b->nr_queues), &b->config,
	                sizeof(b->config));
	return 0;
}

static int set_path(struct blk_dev *b, const struct blk_options *opts, char *err, size_t errlen)
{
	memset(b, 0, sizeof(*b));
	b->fd = -1;
	b->path = strdup(opts->path ? opts->path : "");
	if (!b->path) {
		snprintf(err, errlen, "disk: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	return 0;
}

int blk_init(struct blk_dev *b, const struct blk_options *opts, uint64_t size_bytes,
             const struct guest_memory *mem, struct blk_backend *be, char *err, size_t errlen)
{
	int r = set_path(b, opts, err, errlen);

	if (r == 0)
		r = init_device(b, opts, size_bytes, mem, be, err, errlen);
	if (r < 0)
		blk_close(b);
	return r;
}

int blk_open(struct blk_dev *b, const struct blk_options *opts, const struct guest_memory *mem,
             struct event_loop *loop, char *err, size_t errlen)
{
	uint64_t size = 0;
	bool direct = false;
	int r = set_path(b, opts, err, errlen);

	if (r == 0)
		r = blk_image_open(b, opts, &direct, err, errlen);
	if (r == 0)
		r = blk_image_lock_and_size(b, opts->read_only, &size, err, errlen);
	if (r == 0) {
		r = blk_uring_create(&b->uring, b->fd, BLK_QUEUE_SIZE, loop);
		if (r < 0)
			snprintf(err, errlen, "disk '%s': io_uring: %s", b->path, strerror(-r));
	}
	if (r == 0)
		r = init_device(b, opts, size, mem, blk_uring_backend(b->uring), err, errlen);
	if (r == 0 && direct)
		r = blk_image_set_direct_block_size(b, err, errlen);
	if (r == 0 && blk_set_poll(b, loop, opts->poll_ns) < 0) {
		snprintf(err, errlen, "disk '%s': poll: at most %u us", b->path,
		         POLL_WINDOW_MAX_NS / 1000);
		r = -EINVAL;
	}
	if (r < 0)
		blk_close(b);
	return r;
}

void blk_close(struct blk_dev *b)
{
	for (unsigned q = 0; b->loop && q < BLK_MAX_QUEUES; q++)
		event_loop_cancel(b->loop, &b->poll[q].vp.work);
	blk_uring_destroy(b->uring);
	b->uring = NULL;
	if (b->slots)
		virtio_dev_destroy(&b->vdev);
	free(b->slots);
	b->slots = NULL;
	b->free_slots = NULL;
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	free(b->path);
	b->path = NULL;
}
