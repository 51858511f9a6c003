#include "devices/gicv2m.h"

#include <errno.h>
#include <string.h>

#include "vmm/irq.h"
#include "vmm/log.h"

#define GICV2M_MAX_INTID 1019
#define TYPER_FIELD_MASK 0x3ffu

int gicv2m_init(struct gicv2m *f, int vm_fd, uint32_t first_intid, uint32_t count)
{
	if (first_intid < GICV2M_SPI_INTID_0 || !count || count > TYPER_FIELD_MASK ||
	    first_intid > GICV2M_MAX_INTID + 1 - count)
		return -EINVAL;
	*f = (struct gicv2m){.first_intid = first_intid, .count = count, .vm_fd = vm_fd};
	return 0;
}

static uint32_t typer(const struct gicv2m *f)
{
	return (f->first_intid & TYPER_FIELD_MASK) << 16 | (f->count & TYPER_FIELD_MASK);
}

static int gicv2m_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	const struct gicv2m *f = opaque;
	uint32_t v = offset == GICV2M_MSI_TYPER && size == 4 ? typer(f) : 0;

	memset(data, 0, size);
	memcpy(data, &v, size < sizeof(v) ? size : sizeof(v));
	return 0;
}

/* An edge on SPI @intid: KVM_IRQ_LINE takes the SPI's number from 0 (irq.c adds the type). */
static void raise_spi(const struct gicv2m *f, uint32_t intid)
{
	const struct irq_line line = {
	        .vm_fd = f->vm_fd, .gsi = intid - GICV2M_SPI_INTID_0, .irqfd = -1};
	int r;

	if (f->vm_fd < 0) {
		if (f->test_raise)
			f->test_raise(f->test_opaque, intid);
		return;
	}
	r = irq_set_level(&line, 1);
	if (!r)
		r = irq_set_level(&line, 0);
	if (r)
		log_ratelimited(LOG_WARN, "gicv2m: cannot raise INTID %u: %s", intid, strerror(-r));
}

static int gicv2m_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	const struct gicv2m *f = opaque;
	uint32_t intid;

	if (offset != GICV2M_MSI_SETSPI || size != 4)
		return 0;
	memcpy(&intid, data, sizeof(intid));
	if (intid < f->first_intid || intid - f->first_intid >= f->count) {
		log_ratelimited(LOG_DEBUG, "gicv2m: write of INTID %u, outside %u..%u, dropped",
		                intid, f->first_intid, f->first_intid + f->count - 1);
		return 0;
	}
	raise_spi(f, intid);
	return 0;
}

const struct bus_ops gicv2m_bus_ops = {.read = gicv2m_read, .write = gicv2m_write};
