/* In-memory block backend for virtio-blk tests. */
#include "tests/support/blk_fake.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static int queue_completion(struct blk_fake *fb, void *cookie)
{
	ck_assert_uint_lt(fb->nr_ops, sizeof(fb->ops) / sizeof(fb->ops[0]));
	fb->ops[fb->nr_ops++] = (struct blk_fake_op){cookie, fb->fail};
	return 0;
}

static int fake_rw(struct blk_backend *be, bool is_write, struct iovec *iov, unsigned n,
                   uint64_t offset, void *cookie)
{
	struct blk_fake *fb = container_of(be, struct blk_fake, be);

	for (unsigned i = 0; i < n && !fb->fail; i++) {
		ck_assert_uint_le(offset + iov[i].iov_len, fb->size);
		if (is_write)
			memcpy(fb->disk + offset, iov[i].iov_base, iov[i].iov_len);
		else
			memcpy(iov[i].iov_base, fb->disk + offset, iov[i].iov_len);
		offset += iov[i].iov_len;
	}
	return queue_completion(fb, cookie);
}

static int fake_flush(struct blk_backend *be, void *cookie)
{
	struct blk_fake *fb = container_of(be, struct blk_fake, be);

	fb->flushes++;
	return queue_completion(fb, cookie);
}

static int fake_fallocate(struct blk_backend *be, int mode, uint64_t offset, uint64_t len,
                          void *cookie)
{
	struct blk_fake *fb = container_of(be, struct blk_fake, be);

	ck_assert_uint_le(offset + len, fb->size);
	if (!fb->fail)
		memset(fb->disk + offset, 0, len);
	fb->modes[fb->nr_falloc++ % (sizeof(fb->modes) / sizeof(fb->modes[0]))] = mode;
	return queue_completion(fb, cookie);
}

static void fake_plug(struct blk_backend *be)
{
	struct blk_fake *fb = container_of(be, struct blk_fake, be);

	ck_assert(!fb->plugged);
	fb->plugged = true;
	fb->plug_start = fb->nr_ops;
}

static void fake_unplug(struct blk_backend *be)
{
	struct blk_fake *fb = container_of(be, struct blk_fake, be);

	ck_assert(fb->plugged);
	fb->plugged = false;
	if (fb->nr_ops > fb->plug_start)
		fb->batches++;
}

static const struct blk_backend_ops fake_ops = {fake_rw, fake_flush, fake_fallocate, fake_plug,
                                                fake_unplug};

void blk_fake_init(struct blk_fake *fb, uint64_t size)
{
	memset(fb, 0, sizeof(*fb));
	fb->be.ops = &fake_ops;
	fb->disk = calloc(1, size);
	fb->size = size;
	ck_assert_ptr_nonnull(fb->disk);
}

void blk_fake_free(struct blk_fake *fb)
{
	free(fb->disk);
	fb->disk = NULL;
}

unsigned blk_fake_complete(struct blk_fake *fb)
{
	unsigned n = 0;

	while (fb->next_done < fb->nr_ops) {
		struct blk_fake_op op = fb->ops[fb->next_done++];

		fb->be.complete(fb->be.opaque, op.cookie, op.result);
		n++;
	}
	if (n && fb->be.complete_batch_end)
		fb->be.complete_batch_end(fb->be.opaque);
	return n;
}
