#include "tests/support/virtio_snapshot.h"

#include <check.h>
#include <pthread.h>

void test_snapshot_take(struct virtio_dev *dev, struct test_snapshot *s)
{
	const uint8_t *data;
	size_t len;
	char err[256] = "";

	snap_writer_init(&s->writer, SNAP_ARCH_HOST);
	snap_begin(&s->writer, "TEST", 0);
	pthread_mutex_lock(&dev->lock);
	virtio_dev_save(dev, &s->writer);
	pthread_mutex_unlock(&dev->lock);
	snap_end(&s->writer);
	ck_assert_msg(snap_writer_finish(&s->writer, &data, &len, err, sizeof(err)) == 0, "%s",
	              err);
	ck_assert_msg(snap_reader_parse(&s->reader, data, len, SNAP_ARCH_HOST, err, sizeof(err)) ==
	                      0,
	              "%s", err);
	ck_assert_int_eq(snap_section(&s->reader, "TEST", 0, &s->section), 0);
}

void test_snapshot_free(struct test_snapshot *s)
{
	snap_reader_free(&s->reader);
	snap_writer_free(&s->writer);
}
