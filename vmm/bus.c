#include "vmm/bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void bus_init(struct bus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	bus->name = name;
}

void bus_free(struct bus *bus)
{
	free(bus->ranges);
	bus->ranges = NULL;
	bus->nr_ranges = bus->capacity = 0;
}

/* Index of the first range whose base is greater than @addr. */
static unsigned upper_bound(const struct bus *bus, uint64_t addr)
{
	unsigned lo = 0, hi = bus->nr_ranges;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		if (bus->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
                 void *opaque, const char *name)
{
	uint64_t last;
	unsigned pos;

	if (len == 0 || !ops || add_overflows(base, len - 1, &last))
		return -EINVAL;
	pos = upper_bound(bus, base);
	if (pos > 0) {
		const struct bus_range *prev = &bus->ranges[pos - 1];
		if (base - prev->base < prev->len)
			return -EEXIST;
	}
	if (pos < bus->nr_ranges && bus->ranges[pos].base <= last)
		return -EEXIST;
	if (bus->nr_ranges == bus->capacity) {
		unsigned cap = bus->capacity ? bus->capacity * 2 : 16;
		struct bus_range *grown = realloc(bus->ranges, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		bus->ranges = grown;
		bus->capacity = cap;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos],
	        (bus->nr_ranges - pos) * sizeof(bus->ranges[0]));
	bus->ranges[pos] = (struct bus_range){base, len, ops, opaque, name};
	bus->nr_ranges++;
	return 0;
}

const struct bus_range *bus_find(const struct bus *bus, uint64_t addr)
{
	unsigned pos = upper_bound(bus, addr);
	const struct bus_range *r;

	if (pos == 0)
		return NULL;
	r = &bus->ranges[pos - 1];
	return addr - r->base < r->len ? r : NULL;
}

int bus_access(const struct bus *bus, uint64_t addr, void *data, unsigned size, bool is_write)
{
	const struct bus_range *r = bus_find(bus, addr);
	uint64_t offset;

	if (!r)
		return -ENOENT;
	offset = addr - r->base;
	if (size > r->len - offset)
		return -ENOENT;
	if (is_write)
		return r->ops->write ? r->ops->write(r->opaque, offset, data, size) : 0;
	if (!r->ops->read) {
		memset(data, 0xff, size);
		return 0;
	}
	return r->ops->read(r->opaque, offset, data, size);
}
