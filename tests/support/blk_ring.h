/*
 * A driver-side split virtqueue for device tests: lays out the descriptor table, avail and used
 * rings and a bump-allocated data area in fake guest memory, publishes chains (direct or through
 * an indirect table), and reads back used entries. It writes whatever it is told, so tests can
 * build malformed chains too.
 */
#ifndef VMM_TESTS_SUPPORT_BLK_RING_H
#define VMM_TESTS_SUPPORT_BLK_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtqueue.h"
#include "vmm/memory.h"

#define TEST_DESC_F_NEXT     1
#define TEST_DESC_F_WRITE    2
#define TEST_DESC_F_INDIRECT 4

struct test_ring {
	const struct guest_memory *mem;
	uint16_t size;
	uint64_t desc, avail, used; /* guest addresses */
	uint64_t data_next, data_end;
	uint16_t avail_idx; /* next avail index the driver publishes */
	uint16_t next_desc; /* next free descriptor (wraps) */
	uint16_t used_seen; /* used entries already read */
};

/* One buffer of a chain: a guest address and length, device-writable or not. */
struct test_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

/*
 * Places a ring of @size entries at guest address @base and a data area after it, up to
 * @base + @span. Points @vq at it (size, addresses, ready) for the device side.
 */
void test_ring_init(struct test_ring *r, const struct guest_memory *mem, uint64_t base,
                    uint64_t span, uint16_t size, struct virtqueue *vq);
/* Allocates @len bytes (16-byte aligned) in the data area; returns the guest address. */
uint64_t test_ring_alloc(struct test_ring *r, uint64_t len);
/* The le16 at guest address @gpa (a ring field: flags, idx, an event index). */
uint16_t test_ring_get16(const struct test_ring *r, uint64_t gpa);
/* Host pointer for a guest range (asserts it is valid). */
void *test_ring_host(const struct test_ring *r, uint64_t gpa, uint64_t len);

/* Writes one descriptor. */
void test_ring_set_desc(struct test_ring *r, uint16_t i, uint64_t addr, uint32_t len,
                        uint16_t flags, uint16_t next);
/* Makes @head the next available chain (the driver's idx is advanced). */
void test_ring_publish(struct test_ring *r, uint16_t head);

/* Adds @n buffers as a chain of direct descriptors and publishes it; returns the head. */
uint16_t test_ring_add(struct test_ring *r, const struct test_buf *bufs, unsigned n);
/* The same through one indirect table in the data area. */
uint16_t test_ring_add_indirect(struct test_ring *r, const struct test_buf *bufs, unsigned n);

/* Takes the next used entry; false when the device has returned nothing new. */
bool test_ring_used(struct test_ring *r, uint32_t *id, uint32_t *len);
/*
 * Whether a Linux driver that has just published the chains from avail index @old_idx on would
 * notify: with @event_idx when the device's avail_event lies in [old, new), else unless the
 * used ring's NO_NOTIFY flag is set (vring_need_event, virtqueue_kick_prepare).
 */
bool test_ring_would_notify(const struct test_ring *r, uint16_t old_idx, bool event_idx);
/* Sets the driver's used_event (EVENT_IDX) and the avail flags. */
void test_ring_set_used_event(struct test_ring *r, uint16_t idx);

#endif
