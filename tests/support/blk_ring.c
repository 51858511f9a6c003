/* Driver-side split virtqueue builder for device tests (virtio 1.x 2.7 layouts). */
#include "tests/support/blk_ring.h"

#include <check.h>
#include <endian.h>
#include <string.h>

#include "vmm/util.h"

#define DESC_SIZE 16

void *test_ring_host(const struct test_ring *r, uint64_t gpa, uint64_t len)
{
	void *p = gpa_to_hva(r->mem, gpa, len);

	ck_assert_ptr_nonnull(p);
	return p;
}

static void put16(struct test_ring *r, uint64_t gpa, uint16_t v)
{
	uint16_t le = htole16(v);

	memcpy(test_ring_host(r, gpa, 2), &le, 2);
}

uint16_t test_ring_get16(const struct test_ring *r, uint64_t gpa)
{
	uint16_t le;

	memcpy(&le, test_ring_host(r, gpa, 2), 2);
	return le16toh(le);
}

void test_ring_init(struct test_ring *r, const struct guest_memory *mem, uint64_t base,
                    uint64_t span, uint16_t size, struct virtqueue *vq)
{
	memset(r, 0, sizeof(*r));
	r->mem = mem;
	r->size = size;
	r->desc = base;
	r->avail = ALIGN_UP(r->desc + (uint64_t)DESC_SIZE * size, 4096);
	r->used = ALIGN_UP(r->avail + 6 + 2ull * size, 4096);
	r->data_next = ALIGN_UP(r->used + 6 + 8ull * size, 4096);
	r->data_end = base + span;
	memset(test_ring_host(r, base, r->data_next - base), 0, r->data_next - base);
	if (vq) {
		vq->size = size;
		vq->desc_addr = r->desc;
		vq->avail_addr = r->avail;
		vq->used_addr = r->used;
		vq->ready = true;
	}
}

uint64_t test_ring_alloc(struct test_ring *r, uint64_t len)
{
	uint64_t gpa = r->data_next;

	r->data_next = ALIGN_UP(gpa + len, 16);
	ck_assert_uint_le(r->data_next, r->data_end);
	memset(test_ring_host(r, gpa, len ? len : 1), 0, len ? len : 1);
	return gpa;
}

static void write_desc(struct test_ring *r, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
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
	memcpy(test_ring_host(r, table + (uint64_t)i * DESC_SIZE, DESC_SIZE), d, DESC_SIZE);
}

void test_ring_set_desc(struct test_ring *r, uint16_t i, uint64_t addr, uint32_t len,
                        uint16_t flags, uint16_t next)
{
	write_desc(r, r->desc, i, addr, len, flags, next);
}

void test_ring_publish(struct test_ring *r, uint16_t head)
{
	put16(r, r->avail + 4 + 2ull * (r->avail_idx % r->size), head);
	r->avail_idx++;
	__atomic_thread_fence(__ATOMIC_RELEASE); /* ring entry before idx */
	put16(r, r->avail + 2, r->avail_idx);
}

/* Writes @bufs as linked descriptors @first, @first+1, ... (mod @count) of @table. */
static void link_bufs(struct test_ring *r, uint64_t table, uint16_t count, uint16_t first,
                      const struct test_buf *bufs, unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		uint16_t i = (uint16_t)((first + k) % count);
		uint16_t next = (uint16_t)((first + k + 1) % count);
		uint16_t flags = (uint16_t)((bufs[k].writable ? TEST_DESC_F_WRITE : 0) |
		                            (k + 1 < n ? TEST_DESC_F_NEXT : 0));

		write_desc(r, table, i, bufs[k].gpa, bufs[k].len, flags, k + 1 < n ? next : 0);
	}
}

uint16_t test_ring_add(struct test_ring *r, const struct test_buf *bufs, unsigned n)
{
	uint16_t head = r->next_desc;

	link_bufs(r, r->desc, r->size, head, bufs, n);
	r->next_desc = (uint16_t)((head + n) % r->size);
	test_ring_publish(r, head);
	return head;
}

uint16_t test_ring_add_indirect(struct test_ring *r, const struct test_buf *bufs, unsigned n)
{
	uint64_t table = test_ring_alloc(r, (uint64_t)DESC_SIZE * n);
	uint16_t head = r->next_desc;

	link_bufs(r, table, (uint16_t)n, 0, bufs, n);
	test_ring_set_desc(r, head, table, DESC_SIZE * n, TEST_DESC_F_INDIRECT, 0);
	r->next_desc = (uint16_t)((head + 1) % r->size);
	test_ring_publish(r, head);
	return head;
}

bool test_ring_used(struct test_ring *r, uint32_t *id, uint32_t *len)
{
	uint64_t elem = r->used + 4 + 8ull * (r->used_seen % r->size);
	uint32_t v;

	if (test_ring_get16(r, r->used + 2) == r->used_seen)
		return false;
	__atomic_thread_fence(__ATOMIC_ACQUIRE); /* idx before the entry */
	memcpy(&v, test_ring_host(r, elem, 4), 4);
	*id = le32toh(v);
	memcpy(&v, test_ring_host(r, elem + 4, 4), 4);
	*len = le32toh(v);
	r->used_seen++;
	return true;
}

bool test_ring_would_notify(const struct test_ring *r, uint16_t old_idx, bool event_idx)
{
	uint16_t event = test_ring_get16(r, r->used + 4 + 8ull * r->size);

	if (!event_idx)
		return !(test_ring_get16(r, r->used) & 1);
	return (uint16_t)(r->avail_idx - event - 1) < (uint16_t)(r->avail_idx - old_idx);
}

void test_ring_set_used_event(struct test_ring *r, uint16_t idx)
{
	put16(r, r->avail + 4 + 2ull * r->size, idx);
}
