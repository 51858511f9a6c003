/*
 * For device tests: a virtio device's snapshot state (virtio_dev_save, core and device parts)
 * written as a state file of one section and parsed back, ready for virtio_dev_load into a
 * new device. Threads: the caller's; the device's lock is taken for the save.
 */
#ifndef VMM_TESTS_SUPPORT_VIRTIO_SNAPSHOT_H
#define VMM_TESTS_SUPPORT_VIRTIO_SNAPSHOT_H

#include "devices/virtio/virtio.h"
#include "vmm/snapshot_file.h"

struct test_snapshot {
	struct snap_writer writer;
	struct snap_reader reader;
	struct snap_cursor section; /* what virtio_dev_load reads */
};

/* Saves @dev into @s (failing the test if the file does not parse back). */
void test_snapshot_take(struct virtio_dev *dev, struct test_snapshot *s);
void test_snapshot_free(struct test_snapshot *s);

#endif
