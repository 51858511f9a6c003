/*
 * The input reader, the bus driver and the virtio set-up shared by the fuzz targets (see
 * fuzz.h). Single-threaded.
 */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/virtio_driver.h"
#include "vmm/log.h"
#include "vmm/util.h"

static uint64_t take(struct fz *f, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && f->n; i++, f->p++, f->n--)
		v |= (uint64_t)*f->p << (8 * i);
	return v;
}

uint8_t fz_u8(struct fz *f)
{
	return (uint8_t)take(f, 1);
}

uint16_t fz_u16(struct fz *f)
{
	return (uint16_t)take(f, 2);
}

uint32_t fz_u32(struct fz *f)
{
	return (uint32_t)take(f, 4);
}

uint64_t fz_u64(struct fz *f)
{
	return take(f, 8);
}

size_t fz_bytes(struct fz *f, void *dst, size_t max)
{
	size_t n = f->n < max ? f->n : max;

	if (n)
		memcpy(dst, f->p, n);
	f->p += n;
	f->n -= n;
	return n;
}

const uint8_t *fz_rest(struct fz *f, size_t *len)
{
	const uint8_t *p = f->p;

	*len = f->n;
	f->p += f->n;
	f->n = 0;
	return p;
}

static void ram_write(const struct fz_bus *b, struct fz *f)
{
	uint64_t gpa = fz_u32(f);
	uint8_t buf[255];
	size_t len = fz_bytes(f, buf, fz_u8(f));

	if (!b->mem || !b->mem_span)
		return;
	gpa = b->mem->regions[0].gpa + gpa % b->mem_span;
	/* A write past RAM is the fuzzer's own mistake, not a finding: drop it. */
	(void)!guest_write(b->mem, gpa, buf, len);
}

static void bus_op(const struct fz_bus *b, struct fz *f, uint8_t op)
{
	const struct fz_window *w = &b->win[(op >> 2 & 7) % b->nr_win];
	unsigned size = 1u << (op & 3);
	uint64_t addr = w->base + fz_u32(f) % w->span;
	uint8_t data[8] = {0};

	if (size > w->max_size)
		size = w->max_size;
	if (op & FZ_OP_WRITE) {
		uint64_t v = fz_u64(f);

		for (unsigned i = 0; i < 8; i++)
			data[i] = (uint8_t)(v >> (8 * i));
	}
	/* Unclaimed accesses (-ENOENT) are the bus's policy, not the device's: ignore them. */
	(void)bus_access(w->bus, addr, data, size, op & FZ_OP_WRITE);
}

void fz_run_bus(const struct fz_bus *b, struct fz *f)
{
	for (unsigned i = 0; i < FZ_MAX_OPS && !fz_empty(f); i++) {
		uint8_t op = fz_u8(f);

		switch (op >> 6) {
		case 2:
			ram_write(b, f);
			break;
		case 3:
			if (b->hook)
				b->hook(b->opaque, f);
			break;
		default:
			if (b->nr_win)
				bus_op(b, f, op);
			break;
		}
	}
}

void fz_must(int ret, const char *what)
{
	if (ret) {
		fprintf(stderr, "fuzz: %s failed (%d)\n", what, ret);
		abort();
	}
}

void fz_memory_init(struct guest_memory *mem, uint64_t gpa, uint64_t size, uint64_t gap_size)
{
	memset(mem, 0, sizeof(*mem));
	fz_must(guest_memory_add(mem, gpa, size), "guest RAM");
	if (gap_size)
		fz_must(guest_memory_add(mem, gpa + size + gap_size, size), "guest RAM");
}

void fz_memory_clear(const struct guest_memory *mem)
{
	for (unsigned i = 0; i < mem->nr_regions; i++)
		memset(mem->regions[i].host, 0, mem->regions[i].size);
}

void fz_virtio_setup(struct guest_memory *mem, uint64_t size, struct event_loop *loop)
{
	log_set_level(LOG_ERROR);
	fz_memory_init(mem, 0, size, 0);
	fz_must(event_loop_init(loop), "event_loop_init");
}

void fz_virtio_driver_up(struct virtio_dev *dev, uint64_t features, const uint16_t *qsize,
                         unsigned nr, uint64_t ring_base, uint64_t ring_stride)
{
	uint8_t st;

	pthread_mutex_lock(&dev->lock);
	virtio_write_status(dev, 0);
	st = test_virtio_negotiate(dev, features);
	for (unsigned q = 0; q < nr; q++) {
		struct virtqueue *vq = &dev->queues[q];

		vq->size = qsize[q];
		vq->desc_addr = ring_base + q * ring_stride;
		vq->avail_addr = vq->desc_addr + 16ULL * qsize[q];
		vq->used_addr = ALIGN_UP(vq->avail_addr + 6 + 2ULL * qsize[q], 4);
		vq->ready = true;
	}
	virtio_write_status(dev, st | VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&dev->lock);
}

void fz_serve_doorbell(struct virtio_doorbell *db)
{
	if (__atomic_load_n(&db->pending, __ATOMIC_RELAXED))
		db->src.handler(db->src.opaque, 0);
}
