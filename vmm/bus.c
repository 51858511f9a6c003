#include "vmm/bus.h"

#include <errno.h>
#include <stdio.h>
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
	free(bus->hits);
	bus->ranges = NULL;
	bus->hits = NULL;
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
		struct bus_hits *hits;

		if (!grown)
			return -ENOMEM;
		bus->ranges = grown;
		hits = realloc(bus->hits, (cap + 1) * sizeof(*hits));
		if (!hits)
			return -ENOMEM;
		bus->hits = hits;
		bus->capacity = cap;
	}
	memmove(&bus->ranges[pos + 1], &bus->ranges[pos],
	        (bus->nr_ranges - pos) * sizeof(bus->ranges[0]));
	bus->ranges[pos] = (struct bus_range){base, len, ops, opaque, name};
	bus->nr_ranges++;
	/* Set-up only: counting starts when the guest does. */
	memset(bus->hits, 0, (bus->nr_ranges + 1) * sizeof(*bus->hits));
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

/* vCPU threads count concurrently; the totals are read once they stopped. */
static void count_hit(const struct bus *bus, const struct bus_range *r, uint64_t addr,
                      bool is_write)
{
	struct bus_hits *h;

	if (!bus->hits)
		return;
	h = &bus->hits[r ? (unsigned)(r - bus->ranges) : bus->nr_ranges];
	__atomic_fetch_add(&h->total, 1, __ATOMIC_RELAXED);
	if (is_write)
		__atomic_fetch_add(&h->writes, 1, __ATOMIC_RELAXED);
	if (r && r->len <= BUS_HITS_REGS)
		__atomic_fetch_add(&h->regs[is_write][addr - r->base], 1, __ATOMIC_RELAXED);
}

static int dispatch(const struct bus *bus, uint64_t addr, void *data, unsigned size, bool is_write,
                    bool count)
{
	const struct bus_range *r = bus_find(bus, addr);
	uint64_t offset;

	if (r && size > r->len - (addr - r->base))
		r = NULL;
	if (count)
		count_hit(bus, r, addr, is_write);
	if (!r)
		return -ENOENT;
	offset = addr - r->base;
	if (is_write)
		return r->ops->write ? r->ops->write(r->opaque, offset, data, size) : 0;
	if (!r->ops->read) {
		memset(data, 0xff, size);
		return 0;
	}
	return r->ops->read(r->opaque, offset, data, size);
}

int bus_access(const struct bus *bus, uint64_t addr, void *data, unsigned size, bool is_write)
{
	return dispatch(bus, addr, data, size, is_write, true);
}

int bus_replay_write(const struct bus *bus, uint64_t addr, const void *data, unsigned size)
{
	/* A write handler never changes its data; dispatch takes one pointer for both ways. */
	return dispatch(bus, addr, (void *)data, size, true, false);
}

/* One line per register of a short range, most accessed first. */
static void print_register_hits(const struct bus_range *r, const struct bus_hits *h,
                                const char *what)
{
	bool shown[2][BUS_HITS_REGS] = {{false}};

	for (;;) {
		unsigned best_dir = 0, best_reg = 0;
		uint64_t best = 0;

		for (unsigned dir = 0; dir < 2; dir++)
			for (unsigned reg = 0; reg < r->len; reg++)
				if (!shown[dir][reg] && h->regs[dir][reg] > best) {
					best = h->regs[dir][reg];
					best_dir = dir;
					best_reg = reg;
				}
		if (!best)
			return;
		shown[best_dir][best_reg] = true;
		fprintf(stderr, "vmm: stats:     %-5s %-14s %#llx+%u %-5s %llu\n", what,
		        r->name ? r->name : "?", (unsigned long long)r->base, best_reg,
		        best_dir ? "write" : "read", (unsigned long long)best);
	}
}

void bus_print_hits(const struct bus *bus, const char *what, unsigned max)
{
	bool shown[bus->nr_ranges + 1];

	memset(shown, 0, sizeof(shown));
	for (unsigned line = 0; line < max && bus->hits; line++) {
		unsigned best = 0;
		bool found = false;

		for (unsigned i = 0; i <= bus->nr_ranges; i++) {
			if (!shown[i] && bus->hits[i].total &&
			    (!found || bus->hits[i].total > bus->hits[best].total)) {
				best = i;
				found = true;
			}
		}
		if (!found)
			return;
		shown[best] = true;
		if (best == bus->nr_ranges) {
			fprintf(stderr, "vmm: stats:     %-5s %-24s %llu\n", what, "(no device)",
			        (unsigned long long)bus->hits[best].total);
			continue;
		}
		fprintf(stderr, "vmm: stats:     %-5s %-14s %#-9llx %llu\n", what,
		        bus->ranges[best].name ? bus->ranges[best].name : "?",
		        (unsigned long long)bus->ranges[best].base,
		        (unsigned long long)bus->hits[best].total);
		if (bus->ranges[best].len <= BUS_HITS_REGS)
			print_register_hits(&bus->ranges[best], &bus->hits[best], what);
		else
			fprintf(stderr, "vmm: stats:     %-5s %-14s %#-9llx writes %llu\n", what,
			        bus->ranges[best].name ? bus->ranges[best].name : "?",
			        (unsigned long long)bus->ranges[best].base,
			        (unsigned long long)bus->hits[best].writes);
	}
}
