/*
 * Debug exit and scratch test device (see test_device.h). Both are guest-controlled: the
 * debug-exit byte becomes the exit status, and scratch accesses are bounds-checked against
 * TEST_DEVICE_SIZE (an access that does not fit reads all-ones and writes nothing).
 *
 * Locking: dev->lock guards the scratch bytes, so an access of any size is atomic with
 * respect to other vCPUs. The debug exit keeps no state.
 */
#include "devices/test_device.h"

#include <string.h>

#include "vmm/log.h"

static int debug_exit_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	(void)opaque;
	(void)offset;
	memset(data, 0xff, size);
	return 0;
}

static int debug_exit_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct debug_exit *de = opaque;

	(void)offset;
	(void)size;
	if (de->exit)
		de->exit(de->opaque, *(const uint8_t *)data);
	return 0;
}

const struct bus_ops debug_exit_ops = {.read = debug_exit_read, .write = debug_exit_write};

static int fits(uint64_t offset, unsigned size)
{
	return range_within(offset, size, 0, TEST_DEVICE_SIZE);
}

static int scratch_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct test_device *dev = opaque;

	if (!fits(offset, size)) {
		memset(data, 0xff, size);
		return 0;
	}
	pthread_mutex_lock(&dev->lock);
	memcpy(data, dev->scratch + offset, size);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

static int scratch_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct test_device *dev = opaque;

	if (!fits(offset, size)) {
		log_ratelimited(LOG_DEBUG, "test-device: %u-byte write at +%#llx out of range",
		                size, (unsigned long long)offset);
		return 0;
	}
	pthread_mutex_lock(&dev->lock);
	memcpy(dev->scratch + offset, data, size);
	pthread_mutex_unlock(&dev->lock);
	return 0;
}

const struct bus_ops test_device_ops = {.read = scratch_read, .write = scratch_write};

void test_device_init(struct test_device *dev)
{
	memset(dev->scratch, 0, sizeof(dev->scratch));
	pthread_mutex_init(&dev->lock, NULL);
}

void test_device_destroy(struct test_device *dev)
{
	pthread_mutex_destroy(&dev->lock);
}
