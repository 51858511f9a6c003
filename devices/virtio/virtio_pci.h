/*
 * virtio over PCI, modern interface only (virtio 1.x, 4.1): one 64-bit prefetchable BAR holding
 * the common configuration, the ISR byte, the device configuration, the notification area (one
 * doorbell per queue, 4 bytes apart, each a 2-byte ioeventfd so that notifications complete in
 * KVM) and the MSI-X table and PBA; vendor capabilities point at each, plus the PCI
 * configuration access capability. Interrupts leave through MSI-X vectors (irqfds) once the
 * driver enables MSI-X, else through the INTx line, asserted until the driver reads the ISR.
 *
 * Threads: ops->queue_notify runs on the event-loop thread only, without dev->lock. A doorbell
 * write no ioeventfd caught (another width, no ioeventfd registered, the configuration access
 * window) reaches the BAR handler on a vCPU thread, which only hands it to the loop
 * (virtio_doorbell_ring). The doorbell ioeventfds and their event-loop watches belong to the
 * event-loop thread: when the guest moves the BAR (a config write, on a vCPU thread) the new
 * address is recorded under dev->lock and the loop re-places them (t->place_work); doorbell
 * writes at the new address before it did exit to the vCPU and are handed over as above.
 *
 * Locking: BAR accesses take dev->lock (and the MSI-X lock inside it). Config space hooks run
 * under the PCI host's lock and may take dev->lock (the configuration access window) inside
 * it. Order: host lock, dev->lock, MSI-X lock, router lock; intx_lock is a leaf. A BAR move
 * posts to the event loop (its lock) under the host's lock, dev->lock released.
 */
#ifndef VMM_DEVICES_VIRTIO_VIRTIO_PCI_H
#define VMM_DEVICES_VIRTIO_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci.h"
#include "devices/virtio/virtio.h"
#include "vmm/event_loop.h"
#include "vmm/irq.h"
#include "vmm/msi.h"
#include "vmm/util.h"

#define VIRTIO_PCI_VENDOR_ID      0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040
#define VIRTIO_PCI_SUBSYS_ID      0x0040
#define VIRTIO_PCI_NO_VECTOR      0xffff

/* The BAR's regions. */
#define VIRTIO_PCI_BAR         0
#define VIRTIO_PCI_BAR_SIZE    0x8000
#define VIRTIO_PCI_COMMON      0x0000
#define VIRTIO_PCI_COMMON_SIZE 0x38
#define VIRTIO_PCI_ISR         0x1000
#define VIRTIO_PCI_DEVICE      0x2000
#define VIRTIO_PCI_DEVICE_SIZE 0x1000
#define VIRTIO_PCI_NOTIFY      0x3000
#define VIRTIO_PCI_NOTIFY_MULT 4
#define VIRTIO_PCI_MSIX_TABLE  0x4000
#define VIRTIO_PCI_MSIX_PBA    0x5000

/* Common configuration fields (4.1.4.3). */
#define VIRTIO_PCI_DFSELECT     0x00
#define VIRTIO_PCI_DF           0x04
#define VIRTIO_PCI_GFSELECT     0x08
#define VIRTIO_PCI_GF           0x0c
#define VIRTIO_PCI_MSIX_CONFIG  0x10
#define VIRTIO_PCI_NUM_QUEUES   0x12
#define VIRTIO_PCI_STATUS       0x14
#define VIRTIO_PCI_CFG_GEN      0x15
#define VIRTIO_PCI_Q_SELECT     0x16
#define VIRTIO_PCI_Q_SIZE       0x18
#define VIRTIO_PCI_Q_MSIX       0x1a
#define VIRTIO_PCI_Q_ENABLE     0x1c
#define VIRTIO_PCI_Q_NOTIFY_OFF 0x1e
#define VIRTIO_PCI_Q_DESC       0x20
#define VIRTIO_PCI_Q_AVAIL      0x28
#define VIRTIO_PCI_Q_USED       0x30

/* Capability types. */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG    5

struct virtio_pci;

struct virtio_pci_notify {
	struct virtio_pci *t;
	unsigned q;
	struct ioeventfd ev;
	struct event_source src;
	bool registered;
};

struct virtio_pci {
	struct virtio_dev *dev;
	struct pci_host *host;
	struct pci_device pci;
	struct msix msix;
	int vm_fd; /* -1 without a VM (unit tests) */
	struct event_loop *loop;
	unsigned cfg_cap; /* config offset of the PCI configuration access capability */
	/*
	 * INTx, a leaf lock (taken inside the host's and the device's): the line is driven to
	 * pending && !masked, and each change is made under the lock so that a raise from the
	 * event loop and an acknowledgement from a vCPU cannot reach KVM out of order.
	 */
	pthread_mutex_t intx_lock;
	struct irq_line intx;
	bool intx_pending; /* raised, not yet acknowledged by an ISR read or a reset */
	bool intx_masked;  /* Interrupt Disable set, or MSI-X enabled */
	bool intx_level;   /* what the line is driven to */
	/* Without a VM: called for each INTx level change instead of KVM_IRQ_LINE. */
	void (*test_intx)(void *opaque, int level);
	void *test_opaque;
	/* Transport registers, under dev->lock. */
	uint32_t device_features_sel, driver_features_sel;
	uint16_t queue_sel;
	uint16_t config_vector;
	uint16_t queue_vector[VIRTIO_MAX_QUEUES];
	/* Where the BAR decodes (0: nowhere), under dev->lock: set on a move, for place_work. */
	uint64_t bar_addr;
	/*
	 * The ioeventfd doorbells (with a VM), the event-loop thread's: place_work, posted on each
	 * BAR move, puts them at bar_addr; placed_addr is where they are (0: none).
	 */
	struct event_work place_work;
	uint64_t placed_addr;
	struct virtio_pci_notify notify[VIRTIO_MAX_QUEUES];
	/* Doorbells that reached the BAR handler, handed to the event loop. */
	struct virtio_doorbell doorbell;
};

/*
 * Makes @dev a PCI function on @host (the first free slot, t->pci.slot) with INTA on GSI
 * @intx_gsi (< 256, level-triggered through KVM_IRQ_LINE). Queue notifications are served on
 * @loop's thread (required). With @vm_fd >= 0, MSI-X vectors (num_queues + 1) get GSIs and
 * irqfds from @router (msi_router_init done) and doorbells become ioeventfds watched by @loop
 * once the guest enables the BAR; with @vm_fd < 0 (tests), doorbells reach the BAR handler
 * (and so @loop) and interrupts go to the test hooks. @dev must be initialised and not
 * attached elsewhere. Set-up time only. Returns 0, -EINVAL (bad arguments, no loop, too many
 * queues, config space over 4 KiB), -ENOSPC (no slot or window space) or -errno from KVM;
 * detaches itself on failure.
 */
int virtio_pci_attach(struct virtio_pci *t, struct virtio_dev *dev, struct pci_host *host,
                      int vm_fd, struct msi_router *router, unsigned intx_gsi,
                      struct event_loop *loop) MUST_CHECK;
/*
 * Releases the doorbells, vectors and line, and drops a doorbell re-placement still posted to
 * the loop; call once the vCPUs and event loop stopped (before event_loop_free).
 */
void virtio_pci_detach(struct virtio_pci *t);

/*
 * For tests without a VM: @intx gets every INTx level change, @msi every MSI-X message
 * delivered (address, data); both get @opaque. Call after attach, before the guest runs.
 */
void virtio_pci_set_test_interrupts(struct virtio_pci *t, void (*intx)(void *opaque, int level),
                                    void (*msi)(void *opaque, uint64_t address, uint32_t data),
                                    void *opaque);

/*
 * Registers @t and its device as snapshot part "VPCI" @instance (virtio_pci_snapshot.c):
 * config space, MSI-X, INTx, transport registers and the virtio core, when the device can be
 * in a snapshot (ops->snapshots); otherwise notes the device as unsupported.
 */
int virtio_pci_snapshot_add(struct virtio_pci *t, struct snapshot_parts *parts,
                            uint32_t instance) MUST_CHECK;
/* For its load: INTx @pending, masked as the loaded config space and MSI-X say, driven anew. */
void virtio_pci_intx_restore(struct virtio_pci *t, bool pending);

/* The BAR's bus ops (exposed for unit tests that reach the BAR without a host). */
extern const struct bus_ops virtio_pci_bar_ops;

#endif
