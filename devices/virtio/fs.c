/*
 * virtio-fs over a vhost-user back-end. vmm never reads these rings: at DRIVER_OK, activate
 * gives the back-end the negotiated features, the guest RAM table and, per queue, the ring
 * size and host addresses (already checked by vq_activate), base 0 and the two eventfds; a
 * driver reset takes the rings back with GET_VRING_BASE.
 *
 * Threads and locking:
 *   - init and destroy run on the set-up thread while nothing else runs.
 *   - activate and reset run under vdev.lock on a vCPU thread; they are the only users of the
 *     vhost-user connection after init, so vdev.lock serialises it. Each request blocks for at
 *     most the vhost-user timeout.
 *   - queue_notify (event-loop thread, no lock) only writes the queue's kick eventfd; the fd
 *     does not change between init and destroy.
 *   - the call handlers (event-loop thread) read their eventfd and raise the interrupt through
 *     virtio_queue_interrupt, which takes vdev.lock itself.
 *   - the hang-up handler (event-loop thread) unwatches the socket and marks the device as
 *     needing a reset; it does not touch the connection.
 */
#include "devices/virtio/fs.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"

#define FS_FEATURES                                                                                \
	(1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_INDIRECT_DESC | 1ULL << VIRTIO_F_EVENT_IDX)

static struct virtio_fs *to_fs(struct virtio_dev *dev)
{
	return container_of(dev, struct virtio_fs, vdev);
}

/* Hands ring @q to the back-end and starts it. Under vdev.lock. */
static int start_queue(struct virtio_fs *fs, unsigned q)
{
	const struct virtqueue *vq = &fs->vdev.queues[q];
	struct virtio_fs_queue *fq = &fs->queues[q];
	struct vhost_user *vu = &fs->vu;
	int r = vhost_user_set_vring_num(vu, q, vq->size);

	if (r == 0)
		r = vhost_user_set_vring_addr(vu, q, vq->desc_hva, vq->avail_hva, vq->used_hva);
	if (r == 0)
		r = vhost_user_set_vring_base(vu, q, 0);
	if (r == 0)
		r = vhost_user_set_vring_call(vu, q, fq->call.fd);
	if (r < 0)
		return r;
	fq->started = true; /* from the kick on the back-end may process it: stop it at reset */
	r = vhost_user_set_vring_kick(vu, q, fq->kick_fd);
	if (r == 0 && vu->protocol)
		r = vhost_user_set_vring_enable(vu, q, true);
	return r;
}

static int fs_activate(struct virtio_dev *dev)
{
	struct virtio_fs *fs = to_fs(dev);
	uint64_t features = dev->driver_features;
	int r;

	if (fs->vu.protocol)
		features |= 1ULL << VHOST_USER_F_PROTOCOL_FEATURES;
	r = vhost_user_set_features(&fs->vu, features);
	if (r == 0)
		r = vhost_user_set_mem_table(&fs->vu, dev->mem);
	for (unsigned q = 0; r == 0 && q < VIRTIO_FS_NUM_QUEUES; q++) {
		if (dev->queues[q].active)
			r = start_queue(fs, q);
	}
	if (r < 0)
		log_ratelimited(LOG_ERROR, "virtio-fs '%s': cannot start the device: %s", fs->tag,
		                vhost_user_error(&fs->vu));
	return r;
}

/* Drops kicks the back-end never saw, so a restarted ring does not begin with a stale one. */
static void drain(int fd)
{
	uint64_t count;

	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_ERROR, "virtio-fs: eventfd read: %s", strerror(errno));
}

static void fs_reset(struct virtio_dev *dev)
{
	struct virtio_fs *fs = to_fs(dev);

	for (unsigned q = 0; q < VIRTIO_FS_NUM_QUEUES; q++) {
		struct virtio_fs_queue *fq = &fs->queues[q];

		if (!fq->started)
			continue;
		fq->started = false;
		if (vhost_user_get_vring_base(&fs->vu, q, NULL) < 0)
			log_ratelimited(LOG_ERROR, "virtio-fs '%s': cannot stop queue %u: %s",
			                fs->tag, q, vhost_user_error(&fs->vu));
		drain(fq->kick_fd);
	}
}

static void fs_queue_notify(struct virtio_dev *dev, unsigned q)
{
	struct virtio_fs *fs = to_fs(dev);
	uint64_t one = 1;

	if (q >= VIRTIO_FS_NUM_QUEUES)
		return;
	/* EAGAIN: the counter is saturated, so the back-end has a kick pending anyway. */
	if (write(fs->queues[q].kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_ERROR, "virtio-fs '%s': kick queue %u: %s", fs->tag, q,
		                strerror(errno));
}

static const struct virtio_device_ops fs_ops = {
        .name = "virtio-fs",
        .device_id = VIRTIO_ID_FS,
        .num_queues = VIRTIO_FS_NUM_QUEUES,
        .max_queue_size = VIRTIO_FS_QUEUE_SIZE,
        .activate = fs_activate,
        .reset = fs_reset,
        .queue_notify = fs_queue_notify,
};

/* The back-end used entries of a ring and wants the guest interrupted. Event-loop thread. */
static void call_event(void *opaque, uint32_t events)
{
	struct virtio_fs_queue *fq = opaque;
	uint64_t count;

	(void)events;
	if (read(fq->call.fd, &count, sizeof(count)) < 0) {
		if (errno != EAGAIN)
			log_ratelimited(LOG_ERROR, "virtio-fs '%s': call eventfd read: %s",
			                fq->fs->tag, strerror(errno));
		return;
	}
	virtio_queue_interrupt(&fq->fs->vdev, fq->index);
}

/* The back-end closed its end (virtiofsd exited or crashed). Event-loop thread. */
static void hangup_event(void *opaque, uint32_t events)
{
	struct virtio_fs *fs = opaque;

	(void)events;
	event_loop_del(fs->loop, &fs->hangup); /* level-triggered: it would fire forever */
	log_error("virtio-fs '%s': the vhost-user connection is closed (the back-end exited, or "
	          "vmm dropped it after an error); the shared directory is gone",
	          fs->tag);
	virtio_set_needs_reset(&fs->vdev, "virtio-fs: back-end gone");
}

static int check_tag(const char *tag, char *err, size_t errlen)
{
	size_t len = tag ? strlen(tag) : 0;

	if (len >= 1 && len <= VIRTIO_FS_TAG_MAX)
		return 0;
	snprintf(err, errlen, "virtio-fs tag '%s' must be 1 to %d bytes (it is %zu)",
	         tag ? tag : "", VIRTIO_FS_TAG_MAX, len);
	return -EINVAL;
}

static int check_shared(const struct virtio_fs *fs, const struct guest_memory *mem, char *err,
                        size_t errlen)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		if (mem->regions[i].fd < 0) {
			snprintf(err, errlen,
			         "virtio-fs '%s': guest RAM is not shareable (vhost-user needs "
			         "the VM created with shared memory)",
			         fs->tag);
			return -EINVAL;
		}
	}
	return 0;
}

/* Session start and the device features. */
static int connect_backend(struct virtio_fs *fs, int sock, uint64_t *features, char *err,
                           size_t errlen)
{
	uint64_t queues;
	int r = vhost_user_init(&fs->vu, sock, 0);

	if (r == 0)
		r = vhost_user_negotiate(&fs->vu, VHOST_USER_PROTOCOL_SUPPORTED);
	if (r == 0 && (fs->vu.protocol_features >> VHOST_USER_PROTOCOL_F_MQ & 1)) {
		r = vhost_user_get_queue_num(&fs->vu, &queues);
		if (r == 0 && queues < VIRTIO_FS_NUM_QUEUES) {
			snprintf(err, errlen,
			         "virtio-fs '%s': the back-end serves %llu queues, %d needed",
			         fs->tag, (unsigned long long)queues, VIRTIO_FS_NUM_QUEUES);
			return -ENOTSUP;
		}
	}
	if (r < 0) {
		snprintf(err, errlen, "virtio-fs '%s': %s", fs->tag, vhost_user_error(&fs->vu));
		return r;
	}
	if (!(fs->vu.features >> VIRTIO_F_VERSION_1 & 1)) {
		snprintf(err, errlen,
		         "virtio-fs '%s': the back-end does not offer VIRTIO_F_VERSION_1", fs->tag);
		return -ENOTSUP;
	}
	*features = fs->vu.features & FS_FEATURES;
	return 0;
}

/* The per-queue eventfds, and the call eventfds and socket watched on the loop. */
static int setup_events(struct virtio_fs *fs, char *err, size_t errlen)
{
	const char *what = "eventfd";
	int r = 0;

	for (unsigned q = 0; q < VIRTIO_FS_NUM_QUEUES && r == 0; q++) {
		struct virtio_fs_queue *fq = &fs->queues[q];

		fq->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		fq->call.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (fq->kick_fd < 0 || fq->call.fd < 0) {
			r = -errno;
			what = "eventfd";
		} else {
			r = event_loop_add(fs->loop, &fq->call, EPOLLIN);
			what = "event loop";
		}
	}
	if (r == 0) {
		fs->hangup.fd = fs->vu.sock;
		r = event_loop_add(fs->loop, &fs->hangup, 0); /* EPOLLHUP is always reported */
		if (r < 0)
			fs->hangup.fd = -1;
	}
	if (r < 0)
		snprintf(err, errlen, "virtio-fs '%s': %s: %s", fs->tag, what, strerror(-r));
	return r;
}

/* Closes what init opened; a call eventfd never added to the loop is just not found there. */
static void release(struct virtio_fs *fs)
{
	if (fs->hangup.fd >= 0)
		event_loop_del(fs->loop, &fs->hangup);
	fs->hangup.fd = -1;
	for (unsigned q = 0; q < VIRTIO_FS_NUM_QUEUES; q++) {
		struct virtio_fs_queue *fq = &fs->queues[q];

		if (fq->call.fd >= 0) {
			event_loop_del(fs->loop, &fq->call);
			close(fq->call.fd);
		}
		if (fq->kick_fd >= 0)
			close(fq->kick_fd);
		fq->call.fd = fq->kick_fd = -1;
	}
	vhost_user_close(&fs->vu);
}

static void init_fields(struct virtio_fs *fs, const char *tag, struct event_loop *loop)
{
	memset(fs, 0, sizeof(*fs));
	fs->vu.sock = -1;
	fs->loop = loop;
	if (tag)
		snprintf(fs->tag, sizeof(fs->tag), "%s", tag);
	fs->hangup = (struct event_source){-1, hangup_event, fs};
	for (unsigned q = 0; q < VIRTIO_FS_NUM_QUEUES; q++) {
		struct virtio_fs_queue *fq = &fs->queues[q];

		fq->fs = fs;
		fq->index = q;
		fq->kick_fd = -1;
		fq->call = (struct event_source){-1, call_event, fq};
	}
	memcpy(fs->config.tag, fs->tag, strlen(fs->tag));
	fs->config.num_request_queues = htole32(VIRTIO_FS_NUM_QUEUES - 1);
}

int virtio_fs_init(struct virtio_fs *fs, const char *tag, int sock, const struct guest_memory *mem,
                   struct event_loop *loop, char *err, size_t errlen)
{
	uint64_t features = 0;
	int r = check_tag(tag, err, errlen);

	init_fields(fs, r == 0 ? tag : NULL, loop);
	if (r == 0)
		r = check_shared(fs, mem, err, errlen);
	if (r < 0) {
		close(sock);
		return r;
	}
	r = connect_backend(fs, sock, &features, err, errlen); /* the socket is now fs->vu's */
	if (r == 0)
		r = setup_events(fs, err, errlen);
	if (r < 0) {
		release(fs);
		return r;
	}
	virtio_dev_init(&fs->vdev, &fs_ops, mem, features, &fs->config, sizeof(fs->config));
	return 0;
}

void virtio_fs_destroy(struct virtio_fs *fs)
{
	release(fs);
	if (fs->vdev.ops)
		virtio_dev_destroy(&fs->vdev);
	fs->vdev.ops = NULL;
}
