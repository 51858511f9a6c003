/*
 * The table is kept in the form KVM_SET_GSI_ROUTING takes: the wired irqchip entries first (GSIs
 * below MSI_FIRST_GSI), then at most one message route per allocated GSI (an MSI entry, or an
 * irqchip entry for a doorbell's message), in no particular order.
 */
#include "vmm/msi.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* Under r->lock. */
static int commit(struct msi_router *r)
{
	size_t size = sizeof(struct kvm_irq_routing) + r->nr_entries * sizeof(r->entries[0]);
	struct kvm_irq_routing *table = calloc(1, size);
	int ret = 0;

	if (!table)
		return -ENOMEM;
	table->nr = r->nr_entries;
	memcpy(table->entries, r->entries, r->nr_entries * sizeof(r->entries[0]));
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, table) < 0)
		ret = -errno;
	free(table);
	return ret;
}

static void add_irqchip(struct msi_router *r, unsigned gsi, unsigned chip, unsigned pin)
{
	r->entries[r->nr_entries++] = (struct kvm_irq_routing_entry){
	        .gsi = gsi,
	        .type = KVM_IRQ_ROUTING_IRQCHIP,
	        .u.irqchip = {.irqchip = chip, .pin = pin},
	};
}

/* A routing table replaces KVM's default one: keep the wired lines' routes in it. */
static void add_wired_routes(struct msi_router *r)
{
#if defined(__x86_64__)
	for (unsigned gsi = 0; gsi < MSI_FIRST_GSI; gsi++) {
		if (gsi < 16)
			add_irqchip(r, gsi,
			            gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
			            gsi % 8);
		add_irqchip(r, gsi, KVM_IRQCHIP_IOAPIC, gsi);
	}
#else
	/* The GIC is irqchip 0; GSI N is its shared peripheral interrupt N. */
	for (unsigned gsi = 0; gsi < MSI_FIRST_GSI; gsi++)
		add_irqchip(r, gsi, 0, gsi);
#endif
}

int msi_router_init(struct msi_router *r, int vm_fd)
{
	int max = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	int ret;

	memset(r, 0, sizeof(*r));
	r->vm_fd = vm_fd;
	pthread_mutex_init(&r->lock, NULL);
	if (max <= MSI_FIRST_GSI)
		return -ENOTSUP;
	r->max_gsi = (unsigned)max;
	r->next_gsi = MSI_FIRST_GSI;
	/* Room for every irqchip route (2 per ISA pin) and one per GSI above. */
	r->entries = calloc(r->max_gsi + 16, sizeof(r->entries[0]));
	if (!r->entries)
		return -ENOMEM;
	add_wired_routes(r);
	pthread_mutex_lock(&r->lock);
	ret = commit(r);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void msi_router_destroy(struct msi_router *r)
{
	free(r->entries);
	r->entries = NULL;
	pthread_mutex_destroy(&r->lock);
}

int msi_route_alloc(struct msi_router *r, unsigned *gsi)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&r->lock);
	if (r->next_gsi < r->max_gsi) {
		*gsi = r->next_gsi++;
		ret = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* The message route of @gsi (from MSI_FIRST_GSI up), or NULL. Under r->lock. */
static struct kvm_irq_routing_entry *find(struct msi_router *r, unsigned gsi)
{
	for (unsigned i = 0; i < r->nr_entries; i++)
		if (r->entries[i].gsi == gsi)
			return &r->entries[i];
	return NULL;
}

void msi_router_set_translation(struct msi_router *r, const struct msi_translation *t)
{
	r->translation = *t;
}

int msi_route_entry(const struct msi_translation *t, unsigned gsi, uint64_t address, uint32_t data,
                    uint32_t devid, struct kvm_irq_routing_entry *out)
{
	if (t->doorbell) {
		if (address != t->doorbell || data < t->doorbell_first ||
		    data - t->doorbell_first >= t->doorbell_count || data < t->doorbell_pin_base)
			return -EINVAL;
		*out = (struct kvm_irq_routing_entry){
		        .gsi = gsi,
		        .type = KVM_IRQ_ROUTING_IRQCHIP,
		        .u.irqchip = {.irqchip = 0, .pin = data - t->doorbell_pin_base},
		};
		return 0;
	}
	*out = (struct kvm_irq_routing_entry){
	        .gsi = gsi,
	        .type = KVM_IRQ_ROUTING_MSI,
	        .flags = t->devid ? KVM_MSI_VALID_DEVID : 0,
	        .u.msi = {.address_lo = (uint32_t)address,
	                  .address_hi = (uint32_t)(address >> 32),
	                  .data = data,
	                  .devid = t->devid ? devid : 0},
	};
	return 0;
}

int msi_route_set(struct msi_router *r, unsigned gsi, uint64_t address, uint32_t data,
                  uint32_t devid)
{
	struct kvm_irq_routing_entry *e, old, route;
	bool existed;
	int ret;

	pthread_mutex_lock(&r->lock);
	if (gsi < MSI_FIRST_GSI || gsi >= r->next_gsi ||
	    msi_route_entry(&r->translation, gsi, address, data, devid, &route)) {
		pthread_mutex_unlock(&r->lock);
		return -EINVAL;
	}
	e = find(r, gsi);
	existed = e != NULL;
	if (!e)
		e = &r->entries[r->nr_entries++];
	old = *e;
	*e = route;
	ret = commit(r);
	if (ret < 0) {
		/* A message KVM refuses must not poison later commits for other vectors. */
		if (existed)
			*e = old;
		else
			r->nr_entries--;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int msi_route_clear(struct msi_router *r, unsigned gsi)
{
	struct kvm_irq_routing_entry *e;
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	e = gsi >= MSI_FIRST_GSI ? find(r, gsi) : NULL;
	if (e) {
		*e = r->entries[--r->nr_entries];
		ret = commit(r);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}
