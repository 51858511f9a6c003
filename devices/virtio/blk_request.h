/*
 * virtio-blk requests (virtio 1.x 5.2.6): the parser that turns a descriptor chain into a
 * validated struct blk_request, with one named error per rule. Pure: no I/O, no device state,
 * so tests and fuzzers drive it over plain iovecs.
 */
#ifndef VMM_DEVICES_VIRTIO_BLK_REQUEST_H
#define VMM_DEVICES_VIRTIO_BLK_REQUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/virtio/virtqueue.h"

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK           0
#define VIRTIO_BLK_S_IOERR        1
#define VIRTIO_BLK_S_UNSUPP       2

#define VIRTIO_BLK_DWZ_F_UNMAP 1u /* segment flag: write zeroes may deallocate */

#define BLK_SECTOR_SIZE   512u
#define BLK_HEADER_SIZE   16u        /* le32 type, le32 reserved, le64 sector */
#define BLK_SEGMENT_SIZE  16u        /* le64 sector, le32 num_sectors, le32 flags */
#define BLK_MAX_DWZ_SEGS  16u        /* discard / write-zeroes segments per request */
#define BLK_MAX_DWZ_SECTS (1u << 22) /* sectors per segment (2 GiB) */

enum blk_req_error {
	BLK_REQ_OK,
	BLK_ERR_HEADER_TOO_SHORT,   /* fewer than 16 readable bytes */
	BLK_ERR_NO_STATUS_BYTE,     /* no writable byte at all */
	BLK_ERR_UNSUPPORTED_TYPE,   /* unknown type, or its feature not negotiated */
	BLK_ERR_WRITE_TO_READ_ONLY, /* OUT, DISCARD or WRITE_ZEROES on a read-only disk */
	BLK_ERR_WRONG_DIRECTION,    /* IN with readable data, OUT/DISCARD/WZ with writable */
	BLK_ERR_NO_DATA,            /* IN or OUT with no data bytes */
	BLK_ERR_DATA_NOT_SECTOR_MULTIPLE,
	BLK_ERR_SECTOR_OUT_OF_RANGE,  /* sector + length past capacity (or overflowing) */
	BLK_ERR_SEGMENT_MALFORMED,    /* DISCARD/WZ data not a non-zero multiple of 16 bytes */
	BLK_ERR_TOO_MANY_SEGMENTS,    /* more than BLK_MAX_DWZ_SEGS */
	BLK_ERR_SEGMENT_EMPTY,        /* num_sectors 0 */
	BLK_ERR_SEGMENT_TOO_LARGE,    /* num_sectors above BLK_MAX_DWZ_SECTS */
	BLK_ERR_SEGMENT_FLAGS,        /* unknown flag, or UNMAP on DISCARD (spec: UNSUPP) */
	BLK_ERR_SEGMENT_OUT_OF_RANGE, /* a segment past capacity */
	BLK_ERR_UNALIGNED,            /* IN/OUT offset or length not a multiple of block_size */
	BLK_ERR_COUNT
};

struct blk_segment {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* What the parser needs to know about the device. */
struct blk_limits {
	uint64_t capacity;   /* sectors */
	uint32_t block_size; /* bytes (0 or 512: any sector); IN/OUT must be aligned to it */
	bool read_only;
	bool discard;      /* VIRTIO_BLK_F_DISCARD negotiated */
	bool write_zeroes; /* VIRTIO_BLK_F_WRITE_ZEROES negotiated */
};

struct blk_request {
	uint32_t type;
	uint64_t sector;
	uint8_t *status;    /* host address of the status byte; NULL if the chain has none */
	struct iovec *data; /* IN/OUT/GET_ID data buffers inside the chain's iov array */
	unsigned nr_data;
	uint64_t data_len;
	unsigned nr_segs; /* DISCARD / WRITE_ZEROES: copied out of guest memory */
	struct blk_segment segs[BLK_MAX_DWZ_SEGS];
};

/*
 * Parses and validates @chain (its buffers and contents are guest-controlled) into @req.
 * Rewrites @chain->iov in place (the header and status byte are trimmed off the data). On
 * error @req->status is still set when the chain has a status byte. Returns BLK_REQ_OK or the
 * first rule broken.
 */
enum blk_req_error blk_parse_request(const struct blk_limits *lim, struct vq_chain *chain,
                                     struct blk_request *req);
/* The status byte a request failing with @err completes with (IOERR or UNSUPP). */
uint8_t blk_req_error_status(enum blk_req_error err);
const char *blk_req_error_name(enum blk_req_error err);

#endif
