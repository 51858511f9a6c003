/*
 * An address-range bus: devices register [base, base + len) with a const ops table and get
 * accesses as offsets from their base. One instance for port I/O, one for MMIO. Registration
 * happens during set-up only; lookups afterwards are lock-free (the table no longer changes).
 */
#ifndef VMM_VMM_BUS_H
#define VMM_VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/util.h"

struct bus_ops {
	/* @size is 1, 2, 4 or 8; @data points to @size bytes (little-endian). Return 0 or -errno.
	 */
	int (*read)(void *opaque, uint64_t offset, void *data, unsigned size);
	int (*write)(void *opaque, uint64_t offset, const void *data, unsigned size);
};

struct bus_range {
	uint64_t base;
	uint64_t len;
	const struct bus_ops *ops;
	void *opaque;
	const char *name;
};

/* Ranges up to this long are also counted per register (offset) and direction. */
#define BUS_HITS_REGS 8

struct bus_hits {
	uint64_t total;
	uint64_t writes;                 /* of total */
	uint64_t regs[2][BUS_HITS_REGS]; /* [is_write][offset], for short ranges */
};

struct bus {
	const char *name;
	struct bus_range *ranges; /* sorted by base, never overlapping */
	struct bus_hits *hits;    /* per range (same index); hits[nr_ranges]: unclaimed */
	unsigned nr_ranges;
	unsigned capacity;
};

void bus_init(struct bus *bus, const char *name);
void bus_free(struct bus *bus);

/*
 * Claims [base, base + len) for a device. Returns 0, -EINVAL (zero length or wrap-around),
 * -EEXIST (overlaps a registered range) or -ENOMEM.
 */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, const struct bus_ops *ops,
                 void *opaque, const char *name) MUST_CHECK;

/* The range containing @addr, or NULL. */
const struct bus_range *bus_find(const struct bus *bus, uint64_t addr);

/*
 * Dispatches an access of @size bytes at @addr (guest-controlled). An access must fall wholly
 * inside one device's range. Returns the device's result, or -ENOENT when no device claims it;
 * the caller applies the unclaimed-access policy (reads see all-ones, writes are dropped).
 */
int bus_access(const struct bus *bus, uint64_t addr, void *data, unsigned size, bool is_write);

/*
 * A write that reached vmm without an exit (coalesced I/O): dispatched as bus_access would,
 * not counted among the exits of --stats.
 */
int bus_replay_write(const struct bus *bus, uint64_t addr, const void *data, unsigned size);

/*
 * Prints to stderr, most first, the ranges that were accessed and how often (vmm --stats:
 * where the guest's exits to vmm went), under the heading @what; at most @max ranges. A range
 * of up to BUS_HITS_REGS bytes is followed by its registers' reads and writes, most first.
 */
void bus_print_hits(const struct bus *bus, const char *what, unsigned max);

#endif
