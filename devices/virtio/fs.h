/*
 * virtio-fs (virtio 1.x, section 5.11) with its queues served by a vhost-user back-end
 * (virtiofsd): vmm owns the device model (features, status, config space with the tag) and
 * hands the rings, guest RAM and notification eventfds to the back-end at DRIVER_OK. Queue 0
 * is the high-priority queue, queue 1 the one request queue.
 */
#ifndef VMM_DEVICES_VIRTIO_FS_H
#define VMM_DEVICES_VIRTIO_FS_H

#include <stddef.h>
#include <stdint.h>

#include "devices/vhost_user/vhost_user.h"
#include "devices/virtio/virtio.h"
#include "vmm/event_loop.h"
#include "vmm/util.h"

#define VIRTIO_FS_TAG_MAX    36   /* bytes, no terminator needed at 36 */
#define VIRTIO_FS_NUM_QUEUES 2    /* hiprio + one request queue */
#define VIRTIO_FS_QUEUE_SIZE 1024 /* the largest ring offered (libvhost-user's limit too) */

/* The config space (5.11.4), little-endian. */
struct virtio_fs_config {
	uint8_t tag[VIRTIO_FS_TAG_MAX]; /* UTF-8, NUL-padded */
	uint32_t num_request_queues;
} __attribute__((packed));

struct virtio_fs;

struct virtio_fs_queue {
	struct virtio_fs *fs;
	unsigned index;
	int kick_fd; /* eventfd: we write on a driver notification, the back-end reads */
	struct event_source call; /* eventfd: the back-end writes, the event loop reads */
	bool started;             /* under vdev.lock: the back-end has this ring */
};

struct virtio_fs {
	struct virtio_dev vdev; /* the ops find us with container_of */
	struct virtio_fs_config config;
	char tag[VIRTIO_FS_TAG_MAX + 1]; /* for messages */
	struct vhost_user vu;            /* under vdev.lock once attached */
	struct event_loop *loop;
	struct event_source hangup; /* the socket, watched for the back-end going away */
	struct virtio_fs_queue queues[VIRTIO_FS_NUM_QUEUES];
};

/*
 * Connects to a vhost-user-fs back-end on the connected socket @sock (ownership taken, also on
 * failure): negotiates features (protocol features MQ and REPLY_ACK when offered; the device
 * offers the back-end's VERSION_1, INDIRECT_DESC and EVENT_IDX), creates the kick and call
 * eventfds and watches the call eventfds and the socket on @loop. @tag is 1 to 36 bytes. @mem
 * must be shared guest RAM (every region memfd-backed). The caller then attaches fs->vdev to a
 * transport. Returns 0 or -errno with one line in @err: -EINVAL (bad tag, RAM not shareable),
 * -ENOTSUP (back-end lacks VERSION_1 or two queues), or a vhost-user error (-EIO, -EPROTO,
 * -ETIMEDOUT). Set-up thread, before the event loop runs.
 */
int virtio_fs_init(struct virtio_fs *fs, const char *tag, int sock, const struct guest_memory *mem,
                   struct event_loop *loop, char *err, size_t errlen) MUST_CHECK;

/*
 * Unwatches and closes everything; the back-end sees its socket close and exits. Call after
 * the vCPUs and the event loop stopped. Safe after a failed init.
 */
void virtio_fs_destroy(struct virtio_fs *fs);

#endif
