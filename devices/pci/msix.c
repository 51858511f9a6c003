#include "devices/pci/msix.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/log.h"

#define MSIX_CAP_CONTROL 2
#define MSIX_CAP_TABLE   4
#define MSIX_CAP_PBA     8
#define MSIX_CAP_SIZE    12

int msix_init(struct msix *m, struct pci_device *pci, unsigned nr, unsigned bar,
              uint32_t table_offset, uint32_t pba_offset, struct msi_router *router)
{
	uint8_t cap[MSIX_CAP_SIZE] = {PCI_CAP_ID_MSIX};
	uint8_t wmask[MSIX_CAP_SIZE] = {0};
	int at, ret = 0;

	if (nr == 0 || nr > MSIX_MAX_VECTORS || bar >= PCI_NUM_BARS || (table_offset & 7) ||
	    (pba_offset & 7))
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->lock, NULL);
	m->pci = pci;
	m->nr = nr;
	m->router = router;
	cap[MSIX_CAP_CONTROL] = (uint8_t)(nr - 1);
	cap[MSIX_CAP_CONTROL + 1] = (uint8_t)((nr - 1) >> 8);
	memcpy(cap + MSIX_CAP_TABLE, &(uint32_t){table_offset | bar}, 4);
	memcpy(cap + MSIX_CAP_PBA, &(uint32_t){pba_offset | bar}, 4);
	wmask[MSIX_CAP_CONTROL + 1] = (MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) >> 8;
	at = pci_device_add_capability(pci, cap, sizeof(cap), wmask);
	if (at < 0)
		return at;
	m->cap = (unsigned)at;
	for (unsigned i = 0; i < nr; i++) {
		struct msix_vector *v = &m->vectors[i];

		*v = (struct msix_vector){
		        .ctrl = MSIX_VECTOR_MASKED,
		        .line = {.vm_fd = router ? router->vm_fd : -1, .irqfd = -1}};
		if (router && !ret)
			ret = msi_route_alloc(router, &v->line.gsi);
		if (router && !ret)
			ret = irq_line_use_irqfd(&v->line);
	}
	if (ret)
		msix_destroy(m);
	return ret;
}

void msix_destroy(struct msix *m)
{
	for (unsigned i = 0; i < m->nr; i++)
		irq_line_release(&m->vectors[i].line);
}

/*
 * Makes @v's GSI route match its address and data. Under m->lock. Done on the vCPU whose write
 * made the vector deliverable (drivers program a masked vector, then unmask it) or changed an
 * unmasked one, so that a notify from the I/O thread is normally just an eventfd write. A
 * message KVM refused is not retried (each try is a KVM_SET_GSI_ROUTING) until reprogrammed.
 */
static int route(struct msix *m, struct msix_vector *v)
{
	uint64_t address = (uint64_t)v->addr_hi << 32 | v->addr_lo;
	int r;

	if (!m->router || v->routed)
		return 0;
	if (v->refused)
		return -EINVAL;
	r = msi_route_set(m->router, v->line.gsi, address, v->data,
	                  pci_device_requester_id(m->pci));
	if (r < 0) {
		log_ratelimited(LOG_WARN, "msix: cannot route a vector to %#llx/%#x: %s",
		                (unsigned long long)address, v->data, strerror(-r));
		v->refused = true;
		return r;
	}
	v->routed = true;
	return 0;
}

/* Delivers @v now. Under m->lock. */
static void deliver(struct msix *m, struct msix_vector *v)
{
	int r;

	if (!m->router) {
		if (m->test_deliver)
			m->test_deliver(m->test_opaque, (uint64_t)v->addr_hi << 32 | v->addr_lo,
			                v->data);
		return;
	}
	if (route(m, v) < 0)
		return;
	r = irq_trigger(&v->line);
	if (r < 0)
		log_ratelimited(LOG_WARN, "msix: irqfd: %s", strerror(-r));
}

static bool vector_masked(const struct msix *m, const struct msix_vector *v)
{
	return !m->enabled || m->masked || (v->ctrl & MSIX_VECTOR_MASKED);
}

/* After a mask, enable or table change: routes what may fire and delivers what was pending. */
static void refresh(struct msix *m)
{
	for (unsigned i = 0; i < m->nr; i++) {
		struct msix_vector *v = &m->vectors[i];

		if (vector_masked(m, v))
			continue;
		if (m->pending >> i & 1) {
			m->pending &= ~(1ull << i);
			deliver(m, v);
		} else {
			route(m, v);
		}
	}
}

void msix_config_written(struct msix *m, unsigned offset, unsigned size)
{
	uint16_t control;

	if (offset + size <= m->cap + MSIX_CAP_CONTROL || offset >= m->cap + MSIX_CAP_TABLE)
		return;
	control = pci_config_read16(m->pci, m->cap + MSIX_CAP_CONTROL);
	pthread_mutex_lock(&m->lock);
	m->enabled = control & MSIX_CTRL_ENABLE;
	m->masked = control & MSIX_CTRL_MASKALL;
	refresh(m);
	pthread_mutex_unlock(&m->lock);
}

void msix_table_read(struct msix *m, uint64_t offset, void *data, unsigned size)
{
	uint64_t entry = offset / MSIX_ENTRY_SIZE;
	uint32_t words[4];

	if ((size != 4 && size != 8) || offset % size || entry >= m->nr) {
		memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&m->lock);
	words[0] = m->vectors[entry].addr_lo;
	words[1] = m->vectors[entry].addr_hi;
	words[2] = m->vectors[entry].data;
	words[3] = m->vectors[entry].ctrl;
	pthread_mutex_unlock(&m->lock);
	memcpy(data, (uint8_t *)words + offset % MSIX_ENTRY_SIZE, size);
}

void msix_table_write(struct msix *m, uint64_t offset, const void *data, unsigned size)
{
	uint64_t entry = offset / MSIX_ENTRY_SIZE;
	struct msix_vector *v;
	uint32_t words[4];

	if ((size != 4 && size != 8) || offset % size || entry >= m->nr)
		return;
	pthread_mutex_lock(&m->lock);
	v = &m->vectors[entry];
	words[0] = v->addr_lo;
	words[1] = v->addr_hi;
	words[2] = v->data;
	words[3] = v->ctrl;
	memcpy((uint8_t *)words + offset % MSIX_ENTRY_SIZE, data, size);
	words[0] &= ~3u; /* the address is dword aligned */
	if (words[0] != v->addr_lo || words[1] != v->addr_hi || words[2] != v->data)
		v->routed = v->refused = false;
	v->addr_lo = words[0];
	v->addr_hi = words[1];
	v->data = words[2];
	v->ctrl = words[3] & MSIX_VECTOR_MASKED;
	refresh(m);
	pthread_mutex_unlock(&m->lock);
}

void msix_pba_read(struct msix *m, uint64_t offset, void *data, unsigned size)
{
	uint64_t pba;

	if ((size != 4 && size != 8) || offset % size || offset >= 8) {
		memset(data, 0, size);
		return;
	}
	pthread_mutex_lock(&m->lock);
	pba = m->pending;
	pthread_mutex_unlock(&m->lock);
	memcpy(data, (uint8_t *)&pba + offset, size);
}

bool msix_enabled(struct msix *m)
{
	bool on;

	pthread_mutex_lock(&m->lock);
	on = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return on;
}

void msix_notify(struct msix *m, unsigned vector)
{
	if (vector >= m->nr)
		return;
	pthread_mutex_lock(&m->lock);
	if (vector_masked(m, &m->vectors[vector]))
		m->pending |= 1ull << vector;
	else
		deliver(m, &m->vectors[vector]);
	pthread_mutex_unlock(&m->lock);
}

void msix_save(struct msix *m, struct snap_writer *w)
{
	pthread_mutex_lock(&m->lock);
	snap_put_u32(w, m->nr);
	for (unsigned i = 0; i < m->nr; i++) {
		const struct msix_vector *v = &m->vectors[i];

		snap_put_u32(w, v->addr_lo);
		snap_put_u32(w, v->addr_hi);
		snap_put_u32(w, v->data);
		snap_put_u32(w, v->ctrl);
	}
	snap_put_u64(w, m->pending);
	pthread_mutex_unlock(&m->lock);
}

int msix_load(struct msix *m, struct snap_cursor *c, char *err, size_t errlen)
{
	uint32_t nr = snap_get_u32(c);
	uint16_t control = pci_config_read16(m->pci, m->cap + MSIX_CAP_CONTROL);

	if (c->overrun)
		return snap_cursor_finish(c, err, errlen);
	if (nr != m->nr) {
		snprintf(err, errlen, "MSI-X with %u vectors, this function has %u", nr, m->nr);
		return -EINVAL;
	}
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < nr; i++) {
		struct msix_vector *v = &m->vectors[i];

		v->addr_lo = snap_get_u32(c) & ~3u;
		v->addr_hi = snap_get_u32(c);
		v->data = snap_get_u32(c);
		v->ctrl = snap_get_u32(c) & MSIX_VECTOR_MASKED;
		v->routed = v->refused = false;
	}
	m->pending = snap_get_u64(c) & (nr < 64 ? (1ull << nr) - 1 : ~0ull);
	/* Enable and Function Mask come from the config space, loaded before. */
	m->enabled = control & MSIX_CTRL_ENABLE;
	m->masked = control & MSIX_CTRL_MASKALL;
	refresh(m);
	pthread_mutex_unlock(&m->lock);
	return 0;
}
