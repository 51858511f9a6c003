/*
 * An in-memory block backend for virtio-blk tests: each submit does its I/O at once on a
 * malloc'ed disk and queues the completion, which blk_fake_complete() delivers later (the
 * backend contract: never inside the submit call). Can fail every operation on request.
 */
#ifndef VMM_TESTS_SUPPORT_BLK_FAKE_H
#define VMM_TESTS_SUPPORT_BLK_FAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/blk.h"

struct blk_fake_op {
	void *cookie;
	int result;
};

struct blk_fake {
	struct blk_backend be;
	uint8_t *disk;
	uint64_t size;
	struct blk_fake_op ops[1024]; /* every operation submitted, in order */
	unsigned nr_ops, next_done;
	int fail;         /* when non-zero: the result of every operation, with no I/O done */
	unsigned flushes; /* submitted */
	int modes[16];    /* fallocate modes in order (wrapping) */
	unsigned nr_falloc;
	bool plugged;        /* between plug and unplug */
	unsigned plug_start; /* nr_ops at plug */
	unsigned batches;    /* plug-unplug pairs that submitted something */
};

/* A zeroed disk of @size bytes. */
void blk_fake_init(struct blk_fake *fb, uint64_t size);
void blk_fake_free(struct blk_fake *fb);
/* Delivers every queued completion, including ones queued meanwhile, then ends the batch. */
unsigned blk_fake_complete(struct blk_fake *fb);

#endif
