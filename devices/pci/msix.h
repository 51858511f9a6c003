/*
 * MSI-X for a PCI device (PCI Local Bus 3.0, 6.8.2): the capability, a vector table and a
 * pending-bit array inside one of the device's BARs (the device forwards those accesses here).
 * Each vector has its own GSI with an MSI route and an irqfd, so delivering it from any thread
 * is one eventfd write. Masking is honoured: a vector raised while it, or the whole function,
 * is masked (or MSI-X is off) becomes pending and is delivered when unmasked.
 */
#ifndef VMM_DEVICES_PCI_MSIX_H
#define VMM_DEVICES_PCI_MSIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "vmm/irq.h"
#include "vmm/msi.h"
#include "vmm/util.h"

#define MSIX_MAX_VECTORS   64
#define MSIX_ENTRY_SIZE    16
#define MSIX_CTRL_ENABLE   0x8000
#define MSIX_CTRL_MASKALL  0x4000
#define MSIX_VECTOR_MASKED 0x1

struct msix_vector {
	uint32_t addr_lo, addr_hi, data, ctrl;
	struct irq_line line; /* its GSI and irqfd; irqfd -1 without a VM */
	bool routed;          /* the route matches addr/data */
	bool refused;         /* KVM refused addr/data as a route */
};

struct msix {
	/* Guards what follows. Lock order: host lock, device lock, this, the router's lock. */
	pthread_mutex_t lock;
	struct pci_device *pci;
	unsigned cap; /* config offset of the capability */
	unsigned nr;
	struct msix_vector vectors[MSIX_MAX_VECTORS];
	uint64_t pending; /* the PBA */
	bool enabled, masked;
	struct msi_router *router; /* NULL without a VM */
	/* Without a VM: called for each delivered message instead of the irqfd. */
	void (*test_deliver)(void *opaque, uint64_t address, uint32_t data);
	void *test_opaque;
};

/*
 * Adds the capability to @pci (before pci_host_add_device) with @nr vectors (1 to
 * MSIX_MAX_VECTORS), the table at @table_offset and the PBA at @pba_offset of BAR @bar (both
 * 8-byte aligned; the device forwards accesses to [table_offset, + nr * 16) and
 * [pba_offset, + 8) there). With a @router, gives each vector a GSI and an irqfd on it; without
 * one (tests), messages go to test_deliver. Every vector starts masked, MSI-X disabled.
 * Returns 0, -EINVAL, -ENOSPC (no room in config space), or -ENOSPC/-errno from the router or
 * KVM, after releasing what it made (the capability stays in @pci's config space).
 */
int msix_init(struct msix *m, struct pci_device *pci, unsigned nr, unsigned bar,
              uint32_t table_offset, uint32_t pba_offset, struct msi_router *router) MUST_CHECK;
/* Detaches and closes the irqfds. Call once nothing can notify any more. */
void msix_destroy(struct msix *m);

/*
 * Call from the device's config_written hook (host lock held) with the written range: picks up
 * Enable and Function Mask from Message Control and delivers what they unmasked.
 */
void msix_config_written(struct msix *m, unsigned offset, unsigned size);

/*
 * Table and PBA accesses from the guest, offsets relative to their start (all guest-controlled).
 * Only 4- and 8-byte accesses aligned to their size inside the table (or the PBA's 8 bytes)
 * count; other reads see all-ones in the table and zeros in the PBA, other writes are dropped.
 * The PBA is read-only. A table write that unmasks a pending vector delivers it. Take m->lock:
 * call without it, from a BAR handler (the device's own lock may be held).
 */
void msix_table_read(struct msix *m, uint64_t offset, void *data, unsigned size);
void msix_table_write(struct msix *m, uint64_t offset, const void *data, unsigned size);
void msix_pba_read(struct msix *m, uint64_t offset, void *data, unsigned size);

/* True when the guest enabled MSI-X (the device then must not use INTx). */
bool msix_enabled(struct msix *m);
/*
 * Raises @vector (ignored when >= nr, so callers may pass guest-chosen numbers): delivered now,
 * or pending while the vector or the function is masked or MSI-X is disabled. Any thread; the
 * device's lock may be held.
 */
void msix_notify(struct msix *m, unsigned vector);

/*
 * Snapshot: the table and the PBA. Load after the function's config space (its Enable and
 * Function Mask bits are read from there): routes what may fire and delivers what is pending
 * and deliverable. Returns 0, or -EINVAL with one line in @err.
 */
void msix_save(struct msix *m, struct snap_writer *w);
int msix_load(struct msix *m, struct snap_cursor *c, char *err, size_t errlen) MUST_CHECK;

#endif
