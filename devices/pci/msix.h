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
#include "vmm/msi.h"
#include "vmm/util.h"

#define MSIX_MAX_VECTORS   64
#define MSIX_ENTRY_SIZE    16
#define MSIX_CTRL_ENABLE   0x8000
#define MSIX_CTRL_MASKALL  0x4000
#define MSIX_VECTOR_MASKED 0x1

struct msix_vector {
	uint32_t addr_lo, addr_hi, data, ctrl;
	unsigned gsi;
	int irqfd;   /* -1 without a VM */
	bool routed; /* the route matches addr/data */
};

struct msix {
	pthread_mutex_t lock; /* guards what follows; taken inside the device's and host's locks */
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
 * Adds the capability to @pci with @nr vectors (<= MSIX_MAX_VECTORS), table at @table_offset and
 * PBA at @pba_offset of BAR @bar; with a @router, allocates a GSI and an irqfd per vector.
 * Returns 0 or -errno.
 */
int msix_init(struct msix *m, struct pci_device *pci, unsigned nr, unsigned bar,
              uint32_t table_offset, uint32_t pba_offset, struct msi_router *router) MUST_CHECK;
void msix_destroy(struct msix *m);

/* Call from the device's config_written hook (host lock held). */
void msix_config_written(struct msix *m, unsigned offset, unsigned size);

/* Table and PBA accesses, offsets relative to their start; bad sizes or offsets are ignored. */
void msix_table_read(struct msix *m, uint64_t offset, void *data, unsigned size);
void msix_table_write(struct msix *m, uint64_t offset, const void *data, unsigned size);
void msix_pba_read(struct msix *m, uint64_t offset, void *data, unsigned size);

/* True when MSI-X is enabled (the device then uses vectors, not INTx). */
bool msix_enabled(struct msix *m);
/* Raises @vector (ignored when out of range). Any thread. */
void msix_notify(struct msix *m, unsigned vector);

#endif
