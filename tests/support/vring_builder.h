/*
 * The driver's side of a split virtqueue, for tests: lays out a descriptor table, available and
 * used rings and a data area in fake guest memory, and writes whatever descriptors it is told
 * (loops, out-of-range indices, bad indirect tables), so tests can build malformed chains.
 * All fields are written little-endian at their spec offsets (virtio 1.x, 2.7).
 */
#ifndef VMM_TESTS_SUPPORT_VRING_BUILDER_H
#define VMM_TESTS_SUPPORT_VRING_BUILDER_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtqueue.h"
#include "vmm/memory.h"

#define VRB_F_NEXT     1
#define VRB_F_WRITE    2
#define VRB_F_INDIRECT 4

struct vring_builder {
	const struct guest_memory *mem;
	uint16_t size;
	uint64_t desc, avail, used;   /* guest addresses of the rings */
	uint64_t data_next, data_end; /* bump allocator for buffers and indirect tables */
	uint16_t avail_idx;           /* the driver's next avail idx */
};

/*
 * Lays out a ring of @size entries at @base (descriptor table, then avail, then used, each
 * page aligned) and a data area after it up to @base + @span; zeroes the rings.
 */
void vrb_init(struct vring_builder *b, const struct guest_memory *mem, uint64_t base, uint64_t span,
              uint16_t size);
/* Copies the layout into @vq (mem, size, addresses, ready) for vq_activate. */
void vrb_attach(const struct vring_builder *b, struct virtqueue *vq);
/* Allocates @len bytes (16-byte aligned, zeroed) in the data area; returns the guest address. */
uint64_t vrb_alloc(struct vring_builder *b, uint64_t len);
/* Host pointer for a guest range that must be valid. */
void *vrb_host(const struct vring_builder *b, uint64_t gpa, uint64_t len);

/* Writes descriptor @i of the table at @table (b->desc, or an indirect table). */
void vrb_desc_at(struct vring_builder *b, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
                 uint16_t flags, uint16_t next);
/* Writes descriptor @i of the ring's own table. */
void vrb_desc(struct vring_builder *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
              uint16_t next);
/* Puts @head in the next avail slot and publishes it (avail idx + 1). */
void vrb_publish(struct vring_builder *b, uint16_t head);
/* Writes the avail idx as is (for jumps past the queue size). */
void vrb_set_avail_idx(struct vring_builder *b, uint16_t idx);
void vrb_set_avail_flags(struct vring_builder *b, uint16_t flags);
void vrb_set_used_event(struct vring_builder *b, uint16_t idx);

uint16_t vrb_used_idx(const struct vring_builder *b);
/* Used ring entry @i (taken modulo the size). */
void vrb_used_elem(const struct vring_builder *b, uint16_t i, uint32_t *id, uint32_t *len);
uint16_t vrb_avail_event(const struct vring_builder *b);
/* The used ring's flags (VRING_USED_F_NO_NOTIFY is bit 0). */
uint16_t vrb_used_flags(const struct vring_builder *b);
/*
 * Whether a driver that moved avail idx from @old_idx to the builder's idx notifies now, as
 * Linux decides it: with EVENT_IDX when avail_event lies in [old, new), else unless the used
 * ring says NO_NOTIFY.
 */
bool vrb_driver_would_notify(const struct vring_builder *b, uint16_t old_idx, bool event_idx);

#endif
