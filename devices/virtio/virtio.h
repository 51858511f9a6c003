/*
 * The virtio device model shared by all transports: the device status state machine, feature
 * negotiation, queues and config space. A device embeds struct virtio_dev and provides a const
 * struct virtio_device_ops; a transport (virtio_mmio.c, virtio_pci.c) maps registers onto the
 * functions below, raises interrupts through struct virtio_transport and hands every queue
 * notification to the event loop (struct virtio_doorbell), so that ops->queue_notify only ever
 * runs on the event-loop thread.
 */
#ifndef VMM_DEVICES_VIRTIO_VIRTIO_H
#define VMM_DEVICES_VIRTIO_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtqueue.h"
#include "vmm/event_loop.h"
#include "vmm/memory.h"
#include "vmm/util.h"

/* virtio-net: 8 queue pairs and its control queue (a console with 7 ports needs 16) */
#define VIRTIO_MAX_QUEUES 17

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED      128

/* Feature bits the core knows. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

/* Device IDs. */
#define VIRTIO_ID_NET     1
#define VIRTIO_ID_BLOCK   2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG     4
#define VIRTIO_ID_FS      26

/* ISR bits. */
#define VIRTIO_ISR_QUEUE  1
#define VIRTIO_ISR_CONFIG 2

struct virtio_dev;

struct snap_writer;
struct snap_cursor;

struct virtio_device_ops {
	const char *name;
	uint32_t device_id;
	unsigned num_queues;     /* <= VIRTIO_MAX_QUEUES */
	uint16_t max_queue_size; /* power of two <= VQ_MAX_SIZE */
	/*
	 * The device's config space is dev->config, dev->config_size bytes; reads are served
	 * from it generically. Optional: called (dev->lock held) after the driver wrote @size
	 * bytes at @offset into dev->config; the device checks or reverts them. Without it the
	 * config space is read-only and driver writes are dropped.
	 */
	void (*config_written)(struct virtio_dev *dev, uint64_t offset, unsigned size);
	/*
	 * DRIVER_OK was set with all queues checked; start serving. Returns 0 or -errno.
	 * Called with dev->lock held, from a vCPU thread.
	 */
	int (*activate)(struct virtio_dev *dev);
	/* The driver reset the device: stop all work and forget queue state. Under dev->lock. */
	void (*reset)(struct virtio_dev *dev);
	/*
	 * The driver notified queue @q (< num_queues); runs on the event-loop thread only (never
	 * a vCPU thread: see struct virtio_doorbell) without dev->lock (the device takes it),
	 * possibly before DRIVER_OK: check the status.
	 */
	void (*queue_notify)(struct virtio_dev *dev, unsigned q);
	/*
	 * Optional, before a snapshot saves the core: finish whatever is in flight (requests at
	 * a back-end), completing it as usual. Event-loop thread, without dev->lock.
	 */
	void (*quiesce)(struct virtio_dev *dev);
	/*
	 * Optional, for a snapshot: how many chains the device took from queue @q and has not
	 * used yet (receive buffers waiting for a packet, a packet the back-end could not take).
	 * They must be the ones taken last. The snapshot saves the queue as if they had never
	 * been taken, so a restored device takes them again. Under dev->lock.
	 */
	unsigned (*chains_held)(struct virtio_dev *dev, unsigned q);
	/*
	 * Optional: the device's own state beyond the core's, in the same snapshot section after
	 * it (save under dev->lock). load reads it back before the device is made live again
	 * (under dev->lock; it may leave its checks to the core's snap_cursor_finish, but must
	 * apply nothing out of range) and returns 0 or -errno with one line in @err.
	 */
	void (*save)(struct virtio_dev *dev, struct snap_writer *w);
	int (*load)(struct virtio_dev *dev, struct snap_cursor *c, char *err, size_t errlen);
	/*
	 * The device can be in a snapshot: the core's state and save's are all of its state, once
	 * quiesced (or with nothing in flight after a queue_notify returns, chains_held aside).
	 * The others are refused, by name.
	 */
	bool snapshots;
};

/* How a device reaches its transport (set by the transport at attach time). */
struct virtio_transport {
	/*
	 * Interrupt the guest for @q's used ring (@q < num_queues) or a config change (@q = -1).
	 * The ISR bit is already set. Called with or without dev->lock held: must not take it.
	 */
	void (*interrupt)(void *opaque, int q);
	void *opaque;
};

struct virtio_dev {
	const struct virtio_device_ops *ops;
	const struct guest_memory *mem;
	struct virtio_transport transport;
	uint64_t device_features; /* set by the device before attach; VERSION_1 is added */
	uint8_t *config;
	uint32_t config_size;

	pthread_mutex_t lock; /* guards what follows; taken by transports and devices */
	uint64_t driver_features;
	uint8_t status;
	uint32_t config_generation;
	uint32_t isr;
	struct virtqueue queues[VIRTIO_MAX_QUEUES];
};

/*
 * A snapshot of the core (virtio_snapshot.c): features, status, ISR, config space, each
 * queue's layout and indices. Save under dev->lock. Load before the VM runs: a live device
 * gets its rings checked and translated again and ops->activate, as at DRIVER_OK. Returns 0, or
 * -errno with one line in @err.
 */
void virtio_dev_save(struct virtio_dev *dev, struct snap_writer *w);
int virtio_dev_load(struct virtio_dev *dev, struct snap_cursor *c, char *err,
                    size_t errlen) MUST_CHECK;
struct virtio_doorbell;
/*
 * After a transport loaded its part: an interrupt and a notification for every live queue,
 * for what the snapshot may have missed (a completion's interrupt still on its way, as irqfds
 * inject asynchronously; work the device had posted to itself). Both are harmless when there
 * was none: the driver finds no new used entry, the device no new chain.
 */
void virtio_dev_resume(struct virtio_dev *dev, struct virtio_doorbell *db);

/* Initialises the common part; call from the device's init. */
void virtio_dev_init(struct virtio_dev *dev, const struct virtio_device_ops *ops,
                     const struct guest_memory *mem, uint64_t device_features, void *config,
                     uint32_t config_size);
void virtio_dev_destroy(struct virtio_dev *dev);

/*
 * Transport side (callers hold dev->lock). Lock order: the transport takes dev->lock around
 * register accesses and no other lock inside it; the core calls ops->activate, ops->reset and
 * transport.interrupt from inside it. See virtio.c for the status machine.
 */
bool virtio_has_feature(const struct virtio_dev *dev, unsigned bit);
/*
 * Makes ready queue @q live as DRIVER_OK does: the negotiated ring features, then vq_activate
 * (which zeroes the device-side indices). Returns 0 or -EINVAL.
 */
int virtio_activate_queue(struct virtio_dev *dev, unsigned q);
/* Driver writes 32 feature bits at @sel (0 or 1); ignored after FEATURES_OK. */
void virtio_write_driver_features(struct virtio_dev *dev, unsigned sel, uint32_t value);
/*
 * Driver writes the status register: 0 resets the device; FEATURES_OK is kept only when the
 * negotiated features are a subset of the offer and include VERSION_1; DRIVER_OK activates
 * the queues (vq_activate each ready one) and the device, or sets NEEDS_RESET on failure.
 */
void virtio_write_status(struct virtio_dev *dev, uint8_t status);
/*
 * Bounds-checked config access (@offset and @size guest-controlled); reads past the end give
 * zeros, writes past the end, or to a device without config_written, are dropped.
 */
void virtio_read_config(struct virtio_dev *dev, uint64_t offset, void *data, unsigned size);
void virtio_write_config(struct virtio_dev *dev, uint64_t offset, const void *data, unsigned size);

/* Device side: callers do not hold dev->lock (these take it). */
/*
 * After pushing used entries on @q: interrupts the guest (ISR queue bit) if it asked for it
 * (vq_should_notify) and DRIVER_OK is set.
 */
void virtio_queue_done(struct virtio_dev *dev, unsigned q);
/*
 * For devices whose rings a back-end outside vmm processes (vhost-user): the back-end already
 * decided that the driver wants an interrupt for @q, so this sets the ISR queue bit and
 * interrupts whenever DRIVER_OK is set, without looking at the ring.
 */
void virtio_queue_interrupt(struct virtio_dev *dev, unsigned q);
/*
 * A malformed request: sets DEVICE_NEEDS_RESET and, when DRIVER_OK is set and the bit was not
 * yet set, raises a config interrupt (2.1.2). @why ("virtio-x: what") is logged, rate-limited.
 */
void virtio_set_needs_reset(struct virtio_dev *dev, const char *why);
/* The device changed its config space: bumps the generation, config interrupt if DRIVER_OK. */
void virtio_config_changed(struct virtio_dev *dev);

/*
 * Queue notifications, for the transports. Every one is served on the event-loop thread: an
 * ioeventfd's handler calls virtio_notify_queue there, and a doorbell write that reached the
 * transport on the bus (a vCPU thread: a width or value no ioeventfd matched, no ioeventfd
 * registered, the PCI configuration access window) is handed over with virtio_doorbell_ring,
 * which marks the queue and signals an eventfd the loop watches. No device code runs on the
 * vCPU thread for a notification.
 */
struct virtio_doorbell {
	struct virtio_dev *dev; /* NULL until virtio_doorbell_init succeeded */
	struct event_loop *loop;
	struct event_source src; /* the eventfd, watched by @loop */
	uint32_t pending;        /* atomic: bit q set = queue q rung, not yet served */
};

/*
 * Creates @db's eventfd and watches it with @loop (required). Set-up time. Returns 0, -EINVAL
 * (no loop, more than VIRTIO_MAX_QUEUES queues) or -errno; on failure @db is left zeroed (destroy
 * is a no-op).
 */
int virtio_doorbell_init(struct virtio_doorbell *db, struct virtio_dev *dev,
                         struct event_loop *loop) MUST_CHECK;
/*
 * The guest rang queue @q's doorbell (@q guest-controlled; out of range: ignored). Any thread,
 * no lock needed or taken, never blocks; ops->queue_notify(@q) runs later on the loop's thread
 * (several rings before it runs are served once).
 */
void virtio_doorbell_ring(struct virtio_doorbell *db, uint64_t q);
/* Unwatches and closes the eventfd; after the loop stopped. Safe on a zeroed @db. */
void virtio_doorbell_destroy(struct virtio_doorbell *db);
/*
 * Serves a notification of queue @q (guest-controlled; out of range: ignored) with
 * ops->queue_notify. Event-loop thread only: the transports' ioeventfd handlers.
 */
void virtio_notify_queue(struct virtio_dev *dev, uint64_t q);

#endif
