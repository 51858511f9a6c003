/*
 * virtio-mmio transport, version 2 (virtio 1.x, 4.2): a 0x200-byte register window on the
 * MMIO bus (registers below 0x100, the device's config space from 0x100), one interrupt line,
 * and one ioeventfd per queue on QueueNotify (matching the queue index) so that notifications
 * complete in KVM and the device's queue work runs on the event-loop thread.
 *
 * Threads and locking: register accesses (vCPU threads) take dev->lock. ops->queue_notify
 * runs without it on the event-loop thread only: a QueueNotify write that reached the bus (no
 * ioeventfd matched it, or none is registered) is handed to the loop (virtio_doorbell_ring).
 * The interrupt path takes no lock.
 */
#ifndef VMM_DEVICES_VIRTIO_VIRTIO_MMIO_H
#define VMM_DEVICES_VIRTIO_VIRTIO_MMIO_H

#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/event_loop.h"
#include "vmm/irq.h"
#include "vmm/snapshot.h"
#include "vmm/util.h"

#define VIRTIO_MMIO_SIZE      0x200
#define VIRTIO_MMIO_MAGIC     0x74726976 /* "virt" */
#define VIRTIO_MMIO_VERSION   2
#define VIRTIO_MMIO_VENDOR_ID 0x4d4d5676 /* "vVMM" */

/* Register offsets (4.2.2); the config space starts at VIRTIO_MMIO_REG_CONFIG. */
#define VIRTIO_MMIO_REG_MAGIC               0x000
#define VIRTIO_MMIO_REG_VERSION             0x004
#define VIRTIO_MMIO_REG_DEVICE_ID           0x008
#define VIRTIO_MMIO_REG_VENDOR_ID           0x00c
#define VIRTIO_MMIO_REG_DEVICE_FEATURES     0x010
#define VIRTIO_MMIO_REG_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_REG_DRIVER_FEATURES     0x020
#define VIRTIO_MMIO_REG_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_REG_QUEUE_SEL           0x030
#define VIRTIO_MMIO_REG_QUEUE_NUM_MAX       0x034
#define VIRTIO_MMIO_REG_QUEUE_NUM           0x038
#define VIRTIO_MMIO_REG_QUEUE_READY         0x044
#define VIRTIO_MMIO_REG_QUEUE_NOTIFY        0x050
#define VIRTIO_MMIO_REG_INTERRUPT_STATUS    0x060
#define VIRTIO_MMIO_REG_INTERRUPT_ACK       0x064
#define VIRTIO_MMIO_REG_STATUS              0x070
#define VIRTIO_MMIO_REG_QUEUE_DESC_LOW      0x080
#define VIRTIO_MMIO_REG_QUEUE_DESC_HIGH     0x084
#define VIRTIO_MMIO_REG_QUEUE_DRIVER_LOW    0x090
#define VIRTIO_MMIO_REG_QUEUE_DRIVER_HIGH   0x094
#define VIRTIO_MMIO_REG_QUEUE_DEVICE_LOW    0x0a0
#define VIRTIO_MMIO_REG_QUEUE_DEVICE_HIGH   0x0a4
#define VIRTIO_MMIO_REG_SHM_LEN_LOW         0x0b0
#define VIRTIO_MMIO_REG_SHM_LEN_HIGH        0x0b4
#define VIRTIO_MMIO_REG_SHM_BASE_LOW        0x0b8
#define VIRTIO_MMIO_REG_SHM_BASE_HIGH       0x0bc
#define VIRTIO_MMIO_REG_CONFIG_GENERATION   0x0fc
#define VIRTIO_MMIO_REG_CONFIG              0x100

struct virtio_mmio;

/* One queue's doorbell: an ioeventfd matching the queue index, watched by the event loop. */
struct virtio_mmio_notify {
	struct virtio_mmio *t;
	unsigned q;
	struct ioeventfd ev;
	struct event_source src;
	bool watched;
};

struct virtio_mmio {
	struct virtio_dev *dev;
	uint64_t base;
	int vm_fd; /* -1 without a VM (unit tests) */
	struct event_loop *loop;
	struct irq_line irq;
	/* Without a VM: called for each interrupt instead of the irqfd. */
	void (*test_interrupt)(void *opaque, int q);
	void *test_opaque;
	/* Transport registers, under dev->lock. */
	uint32_t device_features_sel;
	uint32_t driver_features_sel;
	uint32_t queue_sel; /* as written; a value >= num_queues selects no queue */
	struct virtio_mmio_notify notify[VIRTIO_MAX_QUEUES];
	struct virtio_doorbell doorbell; /* QueueNotify writes that reached the bus */
};

/*
 * Connects @dev to a new transport @t and claims [base, base + VIRTIO_MMIO_SIZE) on
 * @mmio_bus. Queue notifications are served on @loop's thread (required). With @vm_fd >= 0,
 * interrupts go to @gsi through an irqfd and each queue's notifications arrive on an
 * ioeventfd watched by @loop. With @vm_fd < 0 (tests), QueueNotify writes reach the bus (and
 * so @loop) and interrupts go to the hook set with virtio_mmio_set_test_interrupt.
 * @dev->config_size must fit below 0x100 bytes. Returns 0, -EINVAL, -EEXIST or another -errno;
 * on failure nothing is left registered. Set-up time only (single-threaded).
 */
int virtio_mmio_attach(struct virtio_mmio *t, struct virtio_dev *dev, struct bus *mmio_bus,
                       uint64_t base, int vm_fd, unsigned gsi, struct event_loop *loop) MUST_CHECK;

/*
 * Claims [base, base + VIRTIO_MMIO_SIZE) on @mmio_bus for a window with no device yet: it reads
 * as a virtio-mmio device with ID 0, which a driver leaves alone (Linux: a placeholder). A
 * window kept for a device that comes later (a --save-ready snapshot's virtio-fs). Returns 0 or
 * bus_register's -errno. Set-up time only.
 */
int virtio_mmio_add_placeholder(struct bus *mmio_bus, uint64_t base) MUST_CHECK;

/*
 * Releases the ioeventfds, the doorbell, their event-loop watches and the irqfd. The bus range
 * stays claimed (the bus has no removal; it is freed with the VM). Call after the vCPUs and the
 * event loop have stopped.
 */
void virtio_mmio_detach(struct virtio_mmio *t);

/*
 * Registers @t and its device as snapshot part "VMMI" @instance, when the device can be
 * in a snapshot (ops->snapshots); otherwise notes the device as unsupported.
 */
int virtio_mmio_snapshot_add(struct virtio_mmio *t, struct snapshot_parts *parts,
                             uint32_t instance) MUST_CHECK;

/* Tests without a VM: @fn(opaque, q) is called for each interrupt (@q = -1 for config). */
void virtio_mmio_set_test_interrupt(struct virtio_mmio *t, void (*fn)(void *opaque, int q),
                                    void *opaque);

#endif
