/*
 * libFuzzer target: the split-virtqueue walker (devices/virtio/virtqueue.c) over two RAM
 * regions with a gap. The input is a queue layout (le16 size, flags byte: bit 0 EVENT_IDX,
 * bit 1 INDIRECT_DESC, le32 desc, avail and used addresses) and then fz_run_bus operations:
 * guest RAM writes (the driver's descriptors and rings) and hooks (one byte: 0 activate, 1 pop
 * and push used, 2 pop then push in reverse, 3 interrupt decision, 4 reset). Every chain taken
 * must stay within VQ_MAX_IOV buffers, each wholly inside one region's mapping, with lengths
 * that add up; anything else aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/virtqueue.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"

#define RAM (64 * KIB)
#define GAP (4 * KIB)

static struct guest_memory mem;
static struct virtqueue vq;
static struct vq_chain chain;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	fz_memory_init(&mem, 0, RAM, GAP);
	return 0;
}

static void check_chain(const struct vq_chain *c)
{
	uint64_t out = 0, in = 0;

	if (c->nr_out + c->nr_in > VQ_MAX_IOV || c->head >= vq.size)
		abort();
	for (unsigned i = 0; i < c->nr_out + c->nr_in; i++) {
		const uint8_t *base = c->iov[i].iov_base;
		size_t len = c->iov[i].iov_len;
		bool inside = false;

		for (unsigned r = 0; r < mem.nr_regions; r++) {
			const struct mem_region *m = &mem.regions[r];

			if (base >= m->host && len <= m->size &&
			    base - m->host <= (ptrdiff_t)(m->size - len))
				inside = true;
		}
		if (!inside)
			abort();
		if (len) /* touch both ends: ASan sees a pointer outside the mapping */
			(void)(volatile uint8_t)(base[0] ^ base[len - 1]);
		*(i < c->nr_out ? &out : &in) += len;
	}
	if (out != c->out_len || in != c->in_len)
		abort();
}

static void pop_push(unsigned n, bool reverse)
{
	uint16_t heads[8];
	unsigned taken = 0;

	while (taken < n && vq_pop_chain(&vq, &chain) == 1) {
		check_chain(&chain);
		heads[taken++] = chain.head;
	}
	for (unsigned i = 0; i < taken; i++) {
		uint16_t head = heads[reverse ? taken - 1 - i : i];

		if (vq_push_used(&vq, head, (uint32_t)(head * 3)))
			abort(); /* a head vq_pop_chain handed out is below the size */
	}
}

static void hook(void *opaque, struct fz *f)
{
	(void)opaque;
	switch (fz_u8(f) % 5) {
	case 0:
		(void)vq_activate(&vq, VQ_MAX_SIZE);
		break;
	case 1:
		pop_push(1, false);
		break;
	case 2:
		pop_push(8, true);
		break;
	case 3:
		(void)vq_should_notify(&vq);
		(void)vq_avail_idx(&vq);
		break;
	default:
		vq_reset(&vq);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	const struct fz_bus b = {.mem = &mem, .mem_span = 2 * RAM + GAP, .hook = hook};
	uint8_t flags;

	fz_memory_clear(&mem);
	memset(&vq, 0, sizeof(vq));
	vq.mem = &mem;
	vq.size = fz_u16(&f);
	flags = fz_u8(&f);
	vq.event_idx = flags & 1;
	vq.indirect = flags & 2;
	vq.ready = true;
	vq.desc_addr = fz_u32(&f);
	vq.avail_addr = fz_u32(&f);
	vq.used_addr = fz_u32(&f);
	if (vq_activate(&vq, VQ_MAX_SIZE))
		return 0;
	fz_run_bus(&b, &f);
	return 0;
}
