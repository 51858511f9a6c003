/*
 * The VM's GSI routing table (KVM_SET_GSI_ROUTING): the in-kernel irqchip's pins, as KVM routes
 * them by default, plus one MSI route per MSI-X vector in use. Writing a route commits the whole
 * table; an irqfd on a route's GSI then delivers that MSI without a vCPU exit.
 */
#ifndef VMM_VMM_MSI_H
#define VMM_VMM_MSI_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/util.h"

#define MSI_FIRST_GSI 24 /* after the IOAPIC's pins */

/*
 * How a device's message (address, data) becomes a route; all zero: a plain MSI route (x86).
 * @devid: the route carries the device's requester ID (KVM_MSI_VALID_DEVID), as arm64's ITS
 * needs to find the device's tables. @doorbell: an SPI doorbell (arm64's GICv2m frame, which
 * KVM does not emulate): only messages written there are accepted, data D in [doorbell_first,
 * doorbell_first + doorbell_count) becoming a route to irqchip pin D - doorbell_pin_base.
 */
struct msi_translation {
	bool devid;
	uint64_t doorbell; /* 0: none */
	uint32_t doorbell_first, doorbell_count, doorbell_pin_base;
};

struct msi_router {
	int vm_fd;
	struct msi_translation translation; /* msi_router_set_translation; fixed after set-up */
	pthread_mutex_t lock;
	unsigned max_gsi; /* KVM's limit (KVM_CAP_IRQ_ROUTING) */
	unsigned next_gsi;
	unsigned nr_entries;
	struct kvm_irq_routing_entry *entries; /* max_gsi + 32 slots */
};

/*
 * Installs the irqchip routes KVM has by default (GSI 0-15 on the master/slave PIC pin and the
 * IOAPIC pin of the same number, 16-23 on the IOAPIC), so that KVM_IRQ_LINE and the irqfds of
 * legacy lines keep working once the table is replaced. Call once per VM, after
 * KVM_CREATE_IRQCHIP and before any device allocates a route or attaches an irqfd. Returns 0,
 * -ENOTSUP (KVM without GSI routing), -ENOMEM or the ioctl's -errno; call msi_router_destroy
 * even on failure.
 */
int msi_router_init(struct msi_router *r, int vm_fd) MUST_CHECK;
void msi_router_destroy(struct msi_router *r);

/* How messages become routes (default: plain MSI routes). Set-up time, before any route. */
void msi_router_set_translation(struct msi_router *r, const struct msi_translation *t);

/*
 * The route of @gsi for the message (@address, @data) (guest-controlled) from the device with
 * requester ID @devid, as @t translates it, into @out. Pure. Returns 0, or -EINVAL for a
 * message @t cannot route (not to its doorbell, or data outside the doorbell's range).
 */
int msi_route_entry(const struct msi_translation *t, unsigned gsi, uint64_t address, uint32_t data,
                    uint32_t devid, struct kvm_irq_routing_entry *out) MUST_CHECK;

/* A new GSI (from MSI_FIRST_GSI up) for an MSI route, none installed yet. Returns 0 or -ENOSPC. */
int msi_route_alloc(struct msi_router *r, unsigned *gsi) MUST_CHECK;
/*
 * Points allocated @gsi at the MSI (@address, @data) (both guest-controlled; KVM may refuse
 * them) of the device with requester ID @devid (bus << 8 | device << 3 | function), as the
 * router's msi_translation says, and commits the whole table with KVM_SET_GSI_ROUTING. Any
 * thread; takes r->lock, which is taken after every device lock. Returns 0, -EINVAL (@gsi not
 * allocated, or a message the translation refuses) or the ioctl's -errno (the route is then
 * left as it was, so a refused message cannot break other routes).
 */
int msi_route_set(struct msi_router *r, unsigned gsi, uint64_t address, uint32_t data,
                  uint32_t devid);
/* Removes @gsi's MSI route, if any, and commits. Returns 0 or the ioctl's -errno. */
int msi_route_clear(struct msi_router *r, unsigned gsi);

#endif
