/*
 * libFuzzer target: the virtio-blk request parser (devices/virtio/blk_request.c) over a chain
 * of separately allocated buffers, so ASan sees any access past one. The input: a flags byte
 * (bit 0 read-only, bit 1 DISCARD, bit 2 WRITE_ZEROES negotiated), le64 capacity, a byte of
 * readable and one of writable buffer counts, a le16 length per buffer, then the buffers'
 * contents. On success the request must lie inside the chain: data buffers within it and of
 * the right direction, the status byte in a writable buffer, the lengths consistent.
 */
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/blk_request.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"

#define MAX_BUFS 64

static struct vq_chain chain;

static bool in_buffer(const void *p, size_t len, void *const *bufs, const size_t *lens,
                      unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++) {
		const uint8_t *b = bufs[i];

		if ((const uint8_t *)p >= b && len <= lens[i] &&
		    (size_t)((const uint8_t *)p - b) <= lens[i] - len)
			return true;
	}
	return false;
}

static void check(const struct blk_request *req, void *const *bufs, const size_t *lens,
                  unsigned nr_out, unsigned nr)
{
	uint64_t total = 0;
	bool is_in = req->type == VIRTIO_BLK_T_IN || req->type == VIRTIO_BLK_T_GET_ID;

	if (req->type == VIRTIO_BLK_T_FLUSH)
		return; /* its data is whatever the chain has; the device does not touch it */

	if (!req->status || !in_buffer(req->status, 1, bufs, lens, nr_out, nr))
		abort();
	*req->status = VIRTIO_BLK_S_OK;
	for (unsigned i = 0; i < req->nr_data; i++) {
		const struct iovec *v = &req->data[i];

		if (v->iov_len && !in_buffer(v->iov_base, v->iov_len, bufs, lens,
		                             is_in ? nr_out : 0, is_in ? nr : nr_out))
			abort();
		if (is_in && v->iov_len)
			memset(v->iov_base, 0x5a, v->iov_len);
		total += v->iov_len;
	}
	if (total != req->data_len || req->nr_segs > BLK_MAX_DWZ_SEGS)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = fz_make(data, size);
	uint8_t flags = fz_u8(&f);
	struct blk_limits lim = {
	        .capacity = fz_u64(&f),
	        .read_only = flags & 1,
	        .discard = flags & 2,
	        .write_zeroes = flags & 4,
	};
	unsigned nr_out = fz_u8(&f) % (MAX_BUFS / 2), nr_in = fz_u8(&f) % (MAX_BUFS / 2);
	unsigned nr = nr_out + nr_in;
	void *bufs[MAX_BUFS];
	size_t lens[MAX_BUFS];
	struct blk_request req;
	enum blk_req_error e;

	memset(&chain, 0, sizeof(chain));
	for (unsigned i = 0; i < nr; i++)
		lens[i] = fz_u16(&f) % 8192;
	for (unsigned i = 0; i < nr; i++) {
		bufs[i] = malloc(lens[i] ? lens[i] : 1);
		if (!bufs[i])
			abort();
		memset(bufs[i], 0, lens[i]);
		fz_bytes(&f, bufs[i], lens[i]);
		chain.iov[i] = (struct iovec){bufs[i], lens[i]};
		*(i < nr_out ? &chain.out_len : &chain.in_len) += lens[i];
	}
	chain.nr_out = nr_out;
	chain.nr_in = nr_in;
	e = blk_parse_request(&lim, &chain, &req);
	if (e >= BLK_ERR_COUNT || !blk_req_error_name(e))
		abort();
	if (e == BLK_REQ_OK)
		check(&req, bufs, lens, nr_out, nr);
	else if (req.status)
		*req.status = blk_req_error_status(e);
	for (unsigned i = 0; i < nr; i++)
		free(bufs[i]);
	return 0;
}
