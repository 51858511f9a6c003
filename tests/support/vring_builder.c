/* Driver-side split virtqueue builder for the virtqueue and virtio-mmio tests. */
#include "tests/support/vring_builder.h"

#include <check.h>
#include <endian.h>
#include <string.h>

#include "vmm/util.h"

#define DESC_SIZE 16
#define PAGE      4096

void *vrb_host(const struct vring_builder *b, uint64_t gpa, uint64_t len)
{
	void *p = gpa_to_hva(b->mem, gpa, len);

	if (!p) /* not ck_assert: that costs a system call per call, and this one is hot */
		ck_abort_msg("vring builder: %#llx+%llu is not in guest RAM",
		             (unsigned long long)gpa, (unsigned long long)len);
	return p;
}

static void put16(const struct vring_builder *b, uint64_t gpa, uint16_t v)
{
	uint16_t le = htole16(v);

	memcpy(vrb_host(b, gpa, 2), &le, 2);
}

static uint16_t get16(const struct vring_builder *b, uint64_t gpa)
{
	uint16_t le;

	memcpy(&le, vrb_host(b, gpa, 2), 2);
	return le16toh(le);
}

static uint32_t get32(const struct vring_builder *b, uint64_t gpa)
{
	uint32_t le;

	memcpy(&le, vrb_host(b, gpa, 4), 4);
	return le32toh(le);
}

void vrb_init(struct vring_builder *b, const struct guest_memory *mem, uint64_t base, uint64_t span,
              uint16_t size)
{
	memset(b, 0, sizeof(*b));
	b->mem = mem;
	b->size = size;
	b->desc = base;
	b->avail = ALIGN_UP(b->desc + (uint64_t)DESC_SIZE * size, PAGE);
	b->used = ALIGN_UP(b->avail + 6 + 2ULL * size, PAGE);
	b->data_next = ALIGN_UP(b->used + 6 + 8ULL * size, PAGE);
	b->data_end = base + span;
	ck_assert_uint_le(b->data_next, b->data_end);
	memset(vrb_host(b, base, b->data_next - base), 0, b->data_next - base);
}

void vrb_attach(const struct vring_builder *b, struct virtqueue *vq)
{
	vq->mem = b->mem;
	vq->size = b->size;
	vq->desc_addr = b->desc;
	vq->avail_addr = b->avail;
	vq->used_addr = b->used;
	vq->ready = true;
}

uint64_t vrb_alloc(struct vring_builder *b, uint64_t len)
{
	uint64_t gpa = b->data_next;

	b->data_next = ALIGN_UP(gpa + len, 16);
	ck_assert_uint_le(b->data_next, b->data_end);
	if (len)
		memset(vrb_host(b, gpa, len), 0, len);
	return gpa;
}

void vrb_desc_at(struct vring_builder *b, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
                 uint16_t flags, uint16_t next)
{
	uint8_t d[DESC_SIZE];
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	memcpy(d + 12, &f, 2);
	memcpy(d + 14, &n, 2);
	memcpy(vrb_host(b, table + (uint64_t)i * DESC_SIZE, DESC_SIZE), d, DESC_SIZE);
}

void vrb_desc(struct vring_builder *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
              uint16_t next)
{
	vrb_desc_at(b, b->desc, i, addr, len, flags, next);
}

void vrb_publish(struct vring_builder *b, uint16_t head)
{
	put16(b, b->avail + 4 + 2ULL * (b->avail_idx % b->size), head);
	b->avail_idx++;
	put16(b, b->avail + 2, b->avail_idx);
}

void vrb_set_avail_idx(struct vring_builder *b, uint16_t idx)
{
	b->avail_idx = idx;
	put16(b, b->avail + 2, idx);
}

void vrb_set_avail_flags(struct vring_builder *b, uint16_t flags)
{
	put16(b, b->avail, flags);
}

void vrb_set_used_event(struct vring_builder *b, uint16_t idx)
{
	put16(b, b->avail + 4 + 2ULL * b->size, idx);
}

uint16_t vrb_used_idx(const struct vring_builder *b)
{
	return get16(b, b->used + 2);
}

void vrb_used_elem(const struct vring_builder *b, uint16_t i, uint32_t *id, uint32_t *len)
{
	uint64_t e = b->used + 4 + 8ULL * (i % b->size);

	*id = get32(b, e);
	*len = get32(b, e + 4);
}

uint16_t vrb_avail_event(const struct vring_builder *b)
{
	return get16(b, b->used + 4 + 8ULL * b->size);
}

uint16_t vrb_used_flags(const struct vring_builder *b)
{
	return get16(b, b->used);
}

bool vrb_driver_would_notify(const struct vring_builder *b, uint16_t old_idx, bool event_idx)
{
	uint16_t event = vrb_avail_event(b);

	if (!event_idx)
		return !(vrb_used_flags(b) & 1);
	return (uint16_t)(b->avail_idx - event - 1) < (uint16_t)(b->avail_idx - old_idx);
}
