/*
 * virtio-blk request parsing. Everything here reads guest-controlled data: the header and
 * segments are copied out of guest memory once (no double fetch) before they are checked, and
 * every length and sector sum is checked for overflow.
 */
#include "devices/virtio/blk_request.h"

#include <endian.h>
#include <string.h>

#include "devices/virtio/iov.h"
#include "vmm/util.h"

static const char *const error_names[BLK_ERR_COUNT] = {
        [BLK_REQ_OK] = "ok",
        [BLK_ERR_HEADER_TOO_SHORT] = "header too short",
        [BLK_ERR_NO_STATUS_BYTE] = "no status byte",
        [BLK_ERR_UNSUPPORTED_TYPE] = "unsupported request type",
        [BLK_ERR_WRITE_TO_READ_ONLY] = "write to a read-only disk",
        [BLK_ERR_WRONG_DIRECTION] = "data buffers in the wrong direction",
        [BLK_ERR_NO_DATA] = "no data",
        [BLK_ERR_DATA_NOT_SECTOR_MULTIPLE] = "data length not a multiple of 512",
        [BLK_ERR_SECTOR_OUT_OF_RANGE] = "sector out of range",
        [BLK_ERR_SEGMENT_MALFORMED] = "segment data not a multiple of 16 bytes",
        [BLK_ERR_TOO_MANY_SEGMENTS] = "too many segments",
        [BLK_ERR_SEGMENT_EMPTY] = "segment of 0 sectors",
        [BLK_ERR_SEGMENT_TOO_LARGE] = "segment too large",
        [BLK_ERR_SEGMENT_FLAGS] = "unsupported segment flags",
        [BLK_ERR_SEGMENT_OUT_OF_RANGE] = "segment out of range",
        [BLK_ERR_UNALIGNED] = "not aligned to the block size",
};

const char *blk_req_error_name(enum blk_req_error err)
{
	return (unsigned)err < BLK_ERR_COUNT ? error_names[err] : "?";
}

uint8_t blk_req_error_status(enum blk_req_error err)
{
	switch (err) {
	case BLK_REQ_OK:
		return VIRTIO_BLK_S_OK;
	case BLK_ERR_UNSUPPORTED_TYPE:
	case BLK_ERR_SEGMENT_FLAGS:
		return VIRTIO_BLK_S_UNSUPP;
	default:
		return VIRTIO_BLK_S_IOERR;
	}
}

/* The last writable byte is the status: trims it off the writable buffers. */
static void take_status(struct vq_chain *c, struct blk_request *req)
{
	struct iovec *in = c->iov + c->nr_out;
	unsigned n = c->nr_in;

	while (n && in[n - 1].iov_len == 0)
		n--;
	req->status = NULL;
	req->data = in;
	req->nr_data = n;
	req->data_len = 0;
	if (!n)
		return;
	req->status = (uint8_t *)in[n - 1].iov_base + in[n - 1].iov_len - 1;
	in[n - 1].iov_len--;
	if (in[n - 1].iov_len == 0)
		req->nr_data--;
	req->data_len = c->in_len - 1;
}

/* Points the request's data at the readable bytes after the header. */
static void take_out_data(struct vq_chain *c, struct blk_request *req)
{
	uint64_t skip = BLK_HEADER_SIZE;
	unsigned i = 0;

	while (i < c->nr_out && skip >= c->iov[i].iov_len)
		skip -= c->iov[i++].iov_len;
	if (i < c->nr_out) {
		c->iov[i].iov_base = (uint8_t *)c->iov[i].iov_base + skip;
		c->iov[i].iov_len -= skip;
	}
	req->data = c->iov + i;
	req->nr_data = c->nr_out - i;
	req->data_len = c->out_len - BLK_HEADER_SIZE;
}

/* True when [sector, sector + count) lies within the disk. */
static bool sectors_in_range(const struct blk_limits *lim, uint64_t sector, uint64_t count)
{
	return sector <= lim->capacity && count <= lim->capacity - sector;
}

static enum blk_req_error check_rw(const struct blk_limits *lim, const struct blk_request *req)
{
	if (req->data_len == 0)
		return BLK_ERR_NO_DATA;
	if (req->data_len % BLK_SECTOR_SIZE)
		return BLK_ERR_DATA_NOT_SECTOR_MULTIPLE;
	if (lim->block_size > BLK_SECTOR_SIZE &&
	    (req->sector % (lim->block_size / BLK_SECTOR_SIZE) || req->data_len % lim->block_size))
		return BLK_ERR_UNALIGNED;
	if (!sectors_in_range(lim, req->sector, req->data_len / BLK_SECTOR_SIZE))
		return BLK_ERR_SECTOR_OUT_OF_RANGE;
	return BLK_REQ_OK;
}

static enum blk_req_error check_segment(const struct blk_limits *lim, uint32_t type,
                                        const struct blk_segment *seg)
{
	if (seg->num_sectors == 0)
		return BLK_ERR_SEGMENT_EMPTY;
	if (seg->num_sectors > BLK_MAX_DWZ_SECTS)
		return BLK_ERR_SEGMENT_TOO_LARGE;
	if (seg->flags & ~VIRTIO_BLK_DWZ_F_UNMAP)
		return BLK_ERR_SEGMENT_FLAGS;
	if (type == VIRTIO_BLK_T_DISCARD && (seg->flags & VIRTIO_BLK_DWZ_F_UNMAP))
		return BLK_ERR_SEGMENT_FLAGS;
	if (!sectors_in_range(lim, seg->sector, seg->num_sectors))
		return BLK_ERR_SEGMENT_OUT_OF_RANGE;
	return BLK_REQ_OK;
}

/* Copies the DISCARD / WRITE_ZEROES segments out of guest memory and checks each. */
static enum blk_req_error parse_segments(const struct blk_limits *lim, const struct vq_chain *c,
                                         struct blk_request *req)
{
	uint8_t raw[BLK_MAX_DWZ_SEGS * BLK_SEGMENT_SIZE];
	uint64_t len = c->out_len - BLK_HEADER_SIZE;

	if (len == 0 || len % BLK_SEGMENT_SIZE)
		return BLK_ERR_SEGMENT_MALFORMED;
	if (len / BLK_SEGMENT_SIZE > BLK_MAX_DWZ_SEGS)
		return BLK_ERR_TOO_MANY_SEGMENTS;
	if (iov_to_buf(c->iov, c->nr_out, BLK_HEADER_SIZE, raw, (size_t)len) < len)
		return BLK_ERR_SEGMENT_MALFORMED; /* the chain's total disagrees with its buffers */
	req->nr_segs = (unsigned)(len / BLK_SEGMENT_SIZE);
	for (unsigned i = 0; i < req->nr_segs; i++) {
		struct blk_segment *seg = &req->segs[i];
		const uint8_t *p = raw + i * BLK_SEGMENT_SIZE;
		enum blk_req_error err;
		uint64_t sector;
		uint32_t num, flags;

		memcpy(&sector, p, 8);
		memcpy(&num, p + 8, 4);
		memcpy(&flags, p + 12, 4);
		*seg = (struct blk_segment){le64toh(sector), le32toh(num), le32toh(flags)};
		err = check_segment(lim, req->type, seg);
		if (err)
			return err;
	}
	return BLK_REQ_OK;
}

static enum blk_req_error check_type(const struct blk_limits *lim, struct vq_chain *c,
                                     struct blk_request *req)
{
	bool has_out_data = c->out_len > BLK_HEADER_SIZE;
	bool write_like = req->type == VIRTIO_BLK_T_OUT || req->type == VIRTIO_BLK_T_DISCARD ||
	                  req->type == VIRTIO_BLK_T_WRITE_ZEROES;

	if (write_like && lim->read_only)
		return BLK_ERR_WRITE_TO_READ_ONLY;
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		return has_out_data ? BLK_ERR_WRONG_DIRECTION : check_rw(lim, req);
	case VIRTIO_BLK_T_OUT:
		if (req->data_len)
			return BLK_ERR_WRONG_DIRECTION;
		take_out_data(c, req);
		return check_rw(lim, req);
	case VIRTIO_BLK_T_FLUSH:
	case VIRTIO_BLK_T_GET_ID:
		return BLK_REQ_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		if (!(req->type == VIRTIO_BLK_T_DISCARD ? lim->discard : lim->write_zeroes))
			return BLK_ERR_UNSUPPORTED_TYPE;
		if (req->data_len)
			return BLK_ERR_WRONG_DIRECTION;
		return parse_segments(lim, c, req);
	default:
		return BLK_ERR_UNSUPPORTED_TYPE;
	}
}

enum blk_req_error blk_parse_request(const struct blk_limits *lim, struct vq_chain *chain,
                                     struct blk_request *req)
{
	uint8_t hdr[BLK_HEADER_SIZE];
	uint32_t type;
	uint64_t sector;

	req->type = 0;
	req->sector = 0;
	req->nr_segs = 0;
	take_status(chain, req);
	if (chain->out_len < BLK_HEADER_SIZE ||
	    iov_to_buf(chain->iov, chain->nr_out, 0, hdr, sizeof(hdr)) < sizeof(hdr))
		return BLK_ERR_HEADER_TOO_SHORT;
	if (!req->status)
		return BLK_ERR_NO_STATUS_BYTE;
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	req->type = le32toh(type);
	req->sector = le64toh(sector);
	return check_type(lim, chain, req);
}
