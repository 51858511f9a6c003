/*
 * virtio-blk (virtio 1.x, section 5.2): 1 to BLK_MAX_QUEUES request queues of 256 entries
 * (more than one: VIRTIO_BLK_F_MQ), sharing BLK_QUEUE_SIZE requests in flight; IN, OUT, FLUSH,
 * GET_ID, DISCARD and WRITE_ZEROES; read-only images refuse writes. Every chain is parsed into
 * a validated struct blk_request before any I/O, with one named error per rule; a bad request
 * completes with IOERR or UNSUPP, a chain the virtqueue rejects marks the device as needing a
 * reset. I/O goes to a struct blk_backend (io_uring in blk_uring.c, an in-memory fake in the
 * tests); many requests are in flight at once. Queue work and completions both run on the
 * event-loop thread (the transports serve every queue notification there).
 */
#ifndef VMM_DEVICES_VIRTIO_BLK_H
#define VMM_DEVICES_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/virtio/blk_request.h"
#include "devices/virtio/poll_window.h"
#include "devices/virtio/virtio.h"
#include "vmm/event_loop.h"
#include "vmm/util.h"

/* Feature bits (virtio 1.x 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_MQ           12
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define BLK_ID_BYTES       20u /* GET_ID: NUL-padded, no terminator at 20 bytes */
#define BLK_QUEUE_SIZE     256
#define BLK_MAX_QUEUES     8                    /* request queues with VIRTIO_BLK_F_MQ */
#define BLK_SEG_MAX        (BLK_QUEUE_SIZE - 2) /* data buffers besides header and status */
#define BLK_SIZE_MAX       (1u << 20)           /* largest data buffer we advertise */
#define BLK_DISCARD_ALIGN  8u                   /* sectors: 4 KiB, a hint to the driver */
#define BLK_MAX_BLOCK_SIZE (64u * 1024)         /* largest logical block size we advertise */

/* The config space (5.2.4), little-endian; the fields after write_zeroes_may_unmap are left out. */
struct blk_config {
	uint64_t capacity; /* in 512-byte sectors */
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t geometry_cylinders;
	uint8_t geometry_heads;
	uint8_t geometry_sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));

/* ---- The backend interface ---- */

struct blk_backend;

/*
 * Each submit returns 0 once the operation is queued (its completion callback then runs later,
 * never inside the submit call) or a negative errno when it could not be queued (no callback).
 * @iov must stay valid until completion and the backend may rewrite it (short transfers).
 */
struct blk_backend_ops {
	int (*submit_rw)(struct blk_backend *be, bool is_write, struct iovec *iov, unsigned iovcnt,
	                 uint64_t offset, void *cookie);
	/* fdatasync. */
	int (*submit_flush)(struct blk_backend *be, void *cookie);
	/* fallocate(2) with @mode (FALLOC_FL_*). */
	int (*submit_fallocate)(struct blk_backend *be, int mode, uint64_t offset, uint64_t len,
	                        void *cookie);
	/*
	 * Optional: the submits between plug and unplug are one batch, which the backend may
	 * hold back and start together at unplug (one io_uring_enter for a notification's worth
	 * of requests). Not nested.
	 */
	void (*plug)(struct blk_backend *be);
	void (*unplug)(struct blk_backend *be);
};

struct blk_backend {
	const struct blk_backend_ops *ops;
	/* Set by the user of the backend: @result is 0 or a negative errno. */
	void (*complete)(void *opaque, void *cookie, int result);
	void (*complete_batch_end)(void *opaque); /* optional: after a batch of completions */
	void *opaque;
};

/* ---- The device ---- */

enum blk_cache {
	BLK_CACHE_WRITEBACK, /* the host page cache (default) */
	BLK_CACHE_NONE,      /* O_DIRECT, where the filesystem supports it */
};

struct blk_options {
	const char *path;
	bool read_only;
	enum blk_cache cache;
	const char *serial;  /* GET_ID string, at most 20 bytes; NULL or "" for none (zeros) */
	unsigned num_queues; /* request queues, 1 to BLK_MAX_QUEUES; 0 means 1 */
	uint32_t poll_ns;    /* polling cap per queue (blk_set_poll); 0: notifications only */
};

struct blk_slot;
struct blk_uring;
struct blk_dev;

/* A queue's polling (blk_set_poll): the event-loop thread's only. */
struct blk_poll {
	struct blk_dev *b;
	unsigned q;
	struct vq_poll vp;
};

struct blk_dev {
	struct virtio_dev vdev; /* first; the ops find us with container_of */
	struct blk_config config;
	char *path; /* for messages */
	int fd;
	bool read_only;
	uint8_t serial[BLK_ID_BYTES];
	struct blk_backend *be;
	struct blk_uring *uring; /* NULL when the backend was given to blk_init */

	/* Under vdev.lock: */
	struct blk_limits limits; /* features cached at activation */
	struct blk_slot *slots;   /* BLK_QUEUE_SIZE requests in flight at most, all queues */
	struct blk_slot *free_slots;
	uint32_t generation; /* bumped by reset: older completions only free their slot */
	uint32_t starved;    /* bit q: queue q has chains waiting for a free slot */
	uint32_t completed;  /* bit q: used entries pushed to queue q since its last interrupt */
	unsigned nr_queues;

	/* The event-loop thread's: */
	struct event_loop *loop; /* where the poll work runs; NULL: no polling */
	bool poll_hold;          /* quiescing: notifications stay on */
	struct blk_poll poll[BLK_MAX_QUEUES];
};

/*
 * Opens @opts->path (O_RDWR, or O_RDONLY when read-only; O_DIRECT for cache=none, falling back
 * to the page cache with a warning where the filesystem refuses it), locks it against other
 * writers (flock: exclusive, or shared when read-only), sizes it (a size that is not a multiple
 * of 512 is rounded down with a warning; under 512 bytes is refused) and sets up the io_uring
 * backend on @loop. With O_DIRECT, the host's logical block size (BLKSSZGET for a block
 * device, statx STATX_DIOALIGN for a file, else 512) becomes the advertised blk_size, as with
 * blk_set_block_size. On failure returns -errno and writes one line to @err, e.g. "disk
 * 'x.img': in use by another process (locked)". The caller attaches b->vdev to a transport.
 */
int blk_open(struct blk_dev *b, const struct blk_options *opts, const struct guest_memory *mem,
             struct event_loop *loop, char *err, size_t errlen) MUST_CHECK;

/*
 * The device part alone, over a backend the caller made (the tests' fake): @size_bytes is the
 * image size, @opts->path only names the disk in messages. Sets be->complete and be->opaque.
 * Returns 0, -EINVAL (bad serial, empty image) or -ENOMEM.
 */
int blk_init(struct blk_dev *b, const struct blk_options *opts, uint64_t size_bytes,
             const struct guest_memory *mem, struct blk_backend *be, char *err,
             size_t errlen) MUST_CHECK;

/*
 * Sets the logical block size the device advertises (blk_size, @size a power of two from 512
 * to BLK_MAX_BLOCK_SIZE) and enforces: an IN or OUT request whose offset or length is not a
 * multiple of it completes with IOERR. After blk_init or blk_open, before the transport is
 * attached. Returns 0 or -EINVAL.
 */
int blk_set_block_size(struct blk_dev *b, uint32_t size) MUST_CHECK;

/*
 * Polling under load (issue 21): after serving a queue, the event-loop thread keeps looking at
 * its avail ring for up to an adaptive window (struct poll_window, capped at @max_ns; 0 turns
 * polling off) with the driver's notifications off, in work it posts to @loop, so that a steady
 * stream of requests costs no notification exits; when the window passes with nothing, it
 * turns notifications on, looks once more and sleeps. After blk_init or blk_open (which does it
 * for opts->poll_ns), before the device runs. Returns 0 or -EINVAL (@max_ns too large).
 */
int blk_set_poll(struct blk_dev *b, struct event_loop *loop, uint32_t max_ns) MUST_CHECK;

/* Waits for I/O in flight, closes the image and frees everything. Safe after a failed open. */
void blk_close(struct blk_dev *b);

#endif
