/*
 * virtio-blk request parsing: one test per validation rule (a table run through
 * blk_parse_request, with the status byte each error completes with), and the parser's handling
 * of headers split across buffers, data after the header, status bytes and segments.
 */
#include <check.h>
#include <string.h>

#include "devices/virtio/blk_request.h"
#include "tests/unit/unit.h"

#define CAPACITY 2048u       /* sectors */
#define ZERO_LEN 0xffffffffu /* a zero-length buffer in a parse case */

struct parse_case {
	const char *name;
	uint32_t type;
	uint64_t sector;
	uint32_t rd[4], wr[4]; /* buffer lengths, 0-terminated */
	unsigned nsegs;        /* DISCARD / WRITE_ZEROES: copies of seg, sectors apart */
	struct blk_segment seg;
	bool read_only, no_features;
	enum blk_req_error expect;
};

static const struct parse_case parse_cases[] = {
        {"header too short", 0, 0, {15}, {1}, 0, {0}, 0, 0, BLK_ERR_HEADER_TOO_SHORT},
        {"no readable buffer", 0, 0, {0}, {513}, 0, {0}, 0, 0, BLK_ERR_HEADER_TOO_SHORT},
        {"no status byte", 0, 0, {16, 512}, {0}, 0, {0}, 0, 0, BLK_ERR_NO_STATUS_BYTE},
        {"zero-length writable", 0, 0, {16}, {ZERO_LEN}, 0, {0}, 0, 0, BLK_ERR_NO_STATUS_BYTE},
        {"unknown type", 99, 0, {16}, {1}, 0, {0}, 0, 0, BLK_ERR_UNSUPPORTED_TYPE},
        {"discard not negotiated", 11, 0, {32}, {1}, 1, {0, 8, 0}, 0, 1, BLK_ERR_UNSUPPORTED_TYPE},
        {"write zeroes not negotiated",
         13,
         0,
         {32},
         {1},
         1,
         {0, 8, 0},
         0,
         1,
         BLK_ERR_UNSUPPORTED_TYPE},
        {"write to read-only", 1, 0, {16, 512}, {1}, 0, {0}, 1, 0, BLK_ERR_WRITE_TO_READ_ONLY},
        {"discard on read-only", 11, 0, {32}, {1}, 1, {0, 8, 0}, 1, 0, BLK_ERR_WRITE_TO_READ_ONLY},
        {"read with readable data", 0, 0, {16, 512}, {1}, 0, {0}, 0, 0, BLK_ERR_WRONG_DIRECTION},
        {"write with writable data", 1, 0, {16, 512}, {513}, 0, {0}, 0, 0, BLK_ERR_WRONG_DIRECTION},
        {"discard with writable data",
         11,
         0,
         {32},
         {17},
         1,
         {0, 8, 0},
         0,
         0,
         BLK_ERR_WRONG_DIRECTION},
        {"read of nothing", 0, 0, {16}, {1}, 0, {0}, 0, 0, BLK_ERR_NO_DATA},
        {"write of nothing", 1, 0, {16}, {1}, 0, {0}, 0, 0, BLK_ERR_NO_DATA},
        {"read 511 bytes", 0, 0, {16}, {512}, 0, {0}, 0, 0, BLK_ERR_DATA_NOT_SECTOR_MULTIPLE},
        {"write 1000 bytes", 1, 0, {16, 1000}, {1}, 0, {0}, 0, 0, BLK_ERR_DATA_NOT_SECTOR_MULTIPLE},
        {"read at capacity", 0, CAPACITY, {16}, {513}, 0, {0}, 0, 0, BLK_ERR_SECTOR_OUT_OF_RANGE},
        {"read across the end",
         0,
         CAPACITY - 1,
         {16},
         {1025},
         0,
         {0},
         0,
         0,
         BLK_ERR_SECTOR_OUT_OF_RANGE},
        {"read at 2^64-1", 0, UINT64_MAX, {16}, {513}, 0, {0}, 0, 0, BLK_ERR_SECTOR_OUT_OF_RANGE},
        {"discard without segment", 11, 0, {16}, {1}, 0, {0}, 0, 0, BLK_ERR_SEGMENT_MALFORMED},
        {"discard of 15 bytes", 11, 0, {31}, {1}, 1, {0, 8, 0}, 0, 0, BLK_ERR_SEGMENT_MALFORMED},
        {"17 segments", 11, 0, {16 + 17 * 16}, {1}, 17, {0, 8, 0}, 0, 0, BLK_ERR_TOO_MANY_SEGMENTS},
        {"segment of 0 sectors", 11, 0, {32}, {1}, 1, {0, 0, 0}, 0, 0, BLK_ERR_SEGMENT_EMPTY},
        {"segment too large",
         13,
         0,
         {32},
         {1},
         1,
         {0, BLK_MAX_DWZ_SECTS + 1, 0},
         0,
         0,
         BLK_ERR_SEGMENT_TOO_LARGE},
        {"discard with unmap", 11, 0, {32}, {1}, 1, {0, 8, 1}, 0, 0, BLK_ERR_SEGMENT_FLAGS},
        {"unknown segment flag", 13, 0, {32}, {1}, 1, {0, 8, 2}, 0, 0, BLK_ERR_SEGMENT_FLAGS},
        {"segment past the end",
         13,
         0,
         {32},
         {1},
         1,
         {CAPACITY - 4, 8, 0},
         0,
         0,
         BLK_ERR_SEGMENT_OUT_OF_RANGE},
        {"segment at 2^64-8",
         11,
         0,
         {32},
         {1},
         1,
         {UINT64_MAX - 7, 8, 0},
         0,
         0,
         BLK_ERR_SEGMENT_OUT_OF_RANGE},
};

struct parsed {
	uint8_t mem[4096];
	struct vq_chain chain;
	struct blk_request req;
	struct blk_limits lim;
};

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * Builds the readable stream (header + segments) and the chain of @pc's buffers, and parses it
 * for a disk of @block_size bytes per block (0: any sector).
 */
static enum blk_req_error parse_case_bs(struct parsed *p, const struct parse_case *pc,
                                        uint32_t block_size)
{
	uint8_t *next = p->mem, stream[2048] = {0};
	size_t off = 0;

	memset(p, 0, sizeof(*p));
	put_le(stream, pc->type, 4);
	put_le(stream + 8, pc->sector, 8);
	for (unsigned i = 0; i < pc->nsegs; i++) {
		put_le(stream + 16 + 16 * i, pc->seg.sector + 8ull * i, 8);
		put_le(stream + 24 + 16 * i, pc->seg.num_sectors, 4);
		put_le(stream + 28 + 16 * i, pc->seg.flags, 4);
	}
	for (unsigned i = 0; i < 4 && pc->rd[i]; i++) {
		/* Past the header and segments the readable bytes are data: zeros. */
		size_t have = off < sizeof(stream) ? sizeof(stream) - off : 0;

		if (have > pc->rd[i])
			have = pc->rd[i];
		memcpy(next, stream + off, have);
		memset(next + have, 0, pc->rd[i] - have);
		p->chain.iov[p->chain.nr_out++] = (struct iovec){next, pc->rd[i]};
		p->chain.out_len += pc->rd[i];
		off += pc->rd[i];
		next += pc->rd[i];
	}
	for (unsigned i = 0; i < 4 && pc->wr[i]; i++) {
		uint32_t len = pc->wr[i] == ZERO_LEN ? 0 : pc->wr[i];

		p->chain.iov[p->chain.nr_out + p->chain.nr_in++] = (struct iovec){next, len};
		p->chain.in_len += len;
		next += len;
	}
	ck_assert_uint_le((size_t)(next - p->mem), sizeof(p->mem));
	p->lim = (struct blk_limits){.capacity = CAPACITY,
	                             .block_size = block_size,
	                             .read_only = pc->read_only,
	                             .discard = !pc->no_features,
	                             .write_zeroes = !pc->no_features};
	return blk_parse_request(&p->lim, &p->chain, &p->req);
}

static enum blk_req_error parse_case(struct parsed *p, const struct parse_case *pc)
{
	return parse_case_bs(p, pc, 0);
}

START_TEST(parse_rule)
{
	const struct parse_case *pc = &parse_cases[_i];
	static struct parsed p;
	enum blk_req_error err = parse_case(&p, pc);

	ck_assert_msg(err == pc->expect, "%s: got '%s', want '%s'", pc->name,
	              blk_req_error_name(err), blk_req_error_name(pc->expect));
	if (pc->wr[0] && pc->wr[0] != ZERO_LEN) /* the status byte is the last writable byte */
		ck_assert_ptr_eq(p.req.status, p.mem + p.chain.out_len + p.chain.in_len - 1);
	ck_assert_uint_eq(blk_req_error_status(err),
	                  pc->expect == BLK_ERR_UNSUPPORTED_TYPE ||
	                                  pc->expect == BLK_ERR_SEGMENT_FLAGS
	                          ? VIRTIO_BLK_S_UNSUPP
	                          : VIRTIO_BLK_S_IOERR);
}
END_TEST

START_TEST(parse_split_header_and_status)
{
	/* Header in 5 + 7 + 4 bytes, data then status in the same writable buffer. */
	static const struct parse_case pc = {"split", 0, 7, {5, 7, 4}, {1024 + 1}, 0, {0}, 0, 0, 0};
	static struct parsed p;

	ck_assert_int_eq(parse_case(&p, &pc), BLK_REQ_OK);
	ck_assert_uint_eq(p.req.type, VIRTIO_BLK_T_IN);
	ck_assert_uint_eq(p.req.sector, 7);
	ck_assert_uint_eq(p.req.data_len, 1024);
	ck_assert_uint_eq(p.req.nr_data, 1);
	ck_assert_uint_eq(p.req.data[0].iov_len, 1024);
	ck_assert_ptr_eq(p.req.status, p.mem + 16 + 1024);
}
END_TEST

START_TEST(parse_write_data_after_header)
{
	/* OUT with header and data sharing a buffer, more data after, status alone. */
	static const struct parse_case pc = {"out", 1, 3, {16 + 512, 512}, {1}, 0, {0}, 0, 0, 0};
	static struct parsed p;

	ck_assert_int_eq(parse_case(&p, &pc), BLK_REQ_OK);
	ck_assert_uint_eq(p.req.data_len, 1024);
	ck_assert_uint_eq(p.req.nr_data, 2);
	ck_assert_ptr_eq(p.req.data[0].iov_base, p.mem + 16);
	ck_assert_uint_eq(p.req.data[0].iov_len, 512);
	ck_assert_uint_eq(p.req.data[1].iov_len, 512);
	ck_assert_ptr_eq(p.req.status, p.mem + 16 + 1024);
}
END_TEST

START_TEST(parse_segments_and_other_types)
{
	static const struct parse_case wz = {"wz", 13, 0, {16 + 32}, {1}, 2, {100, 8, 1}, 0, 0, 0};
	static const struct parse_case flush = {"flush", 4, 0, {16}, {1}, 0, {0}, 1, 0, 0};
	static const struct parse_case id = {"id", 8, 0, {16}, {20, ZERO_LEN, 1}, 0, {0}, 1, 0, 0};
	static struct parsed p;

	ck_assert_int_eq(parse_case(&p, &wz), BLK_REQ_OK);
	ck_assert_uint_eq(p.req.nr_segs, 2);
	ck_assert_uint_eq(p.req.segs[1].sector, 108);
	ck_assert_uint_eq(p.req.segs[1].num_sectors, 8);
	ck_assert_uint_eq(p.req.segs[1].flags, VIRTIO_BLK_DWZ_F_UNMAP);
	ck_assert_int_eq(parse_case(&p, &flush), BLK_REQ_OK); /* allowed on read-only disks */
	ck_assert_int_eq(parse_case(&p, &id), BLK_REQ_OK);
	ck_assert_uint_eq(p.req.data_len, 20);
}
END_TEST

START_TEST(parse_block_size_alignment)
{
	/*
	 * A disk of 1 KiB blocks (cache=none on storage with larger blocks; 4 KiB works the same
	 * but does not fit this test's buffer): IN/OUT only in whole aligned blocks.
	 */
	static const struct parse_case bad[] = {
	        {"read 512 at 0", 0, 0, {16}, {513}, 0, {0}, 0, 0, BLK_ERR_UNALIGNED},
	        {"read 1 KiB at sector 1", 0, 1, {16}, {1025}, 0, {0}, 0, 0, BLK_ERR_UNALIGNED},
	        {"write 1 KiB at sector 3", 1, 3, {16, 1024}, {1}, 0, {0}, 0, 0, BLK_ERR_UNALIGNED},
	        {"write 1.5 KiB at 0", 1, 0, {16, 1024, 512}, {1}, 0, {0}, 0, 0, BLK_ERR_UNALIGNED},
	};
	static const struct parse_case good[] = {
	        {"read 2 KiB at 2", 0, 2, {16}, {1024, 1025}, 0, {0}, 0, 0, 0},
	        {"write 2 KiB at 4", 1, 4, {16 + 1024, 1024}, {1}, 0, {0}, 0, 0, 0},
	        {"flush", 4, 3, {16}, {1}, 0, {0}, 0, 0, 0},
	        {"discard 1 sector", 11, 0, {32}, {1}, 1, {1, 1, 0}, 0, 0, 0},
	};
	static const struct parse_case three_k = {
	        "write 3 KiB", 1, 16, {16, 2048, 1024}, {1}, 0, {0}, 0, 0, 0};
	static struct parsed p;

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		enum blk_req_error err = parse_case_bs(&p, &bad[i], 1024);

		ck_assert_msg(err == BLK_ERR_UNALIGNED, "%s: got '%s'", bad[i].name,
		              blk_req_error_name(err));
		ck_assert_uint_eq(blk_req_error_status(err), VIRTIO_BLK_S_IOERR);
		ck_assert_int_eq(parse_case_bs(&p, &bad[i], 512), BLK_REQ_OK);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(good); i++)
		ck_assert_msg(parse_case_bs(&p, &good[i], 1024) == BLK_REQ_OK, "%s", good[i].name);
	/* The length is the whole request's, across buffers. */
	ck_assert_int_eq(parse_case_bs(&p, &three_k, 4096), BLK_ERR_UNALIGNED);
	ck_assert_int_eq(parse_case_bs(&p, &three_k, 1024), BLK_REQ_OK);
	ck_assert_str_eq(blk_req_error_name(BLK_ERR_UNALIGNED), "not aligned to the block size");
}
END_TEST

static Suite *blk_request_suite(void)
{
	Suite *s = suite_create("blk_request");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, parse_rule, 0, ARRAY_SIZE(parse_cases));
	tcase_add_test(tc, parse_split_header_and_status);
	tcase_add_test(tc, parse_write_data_after_header);
	tcase_add_test(tc, parse_segments_and_other_types);
	tcase_add_test(tc, parse_block_size_alignment);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(blk_request_suite());
}
