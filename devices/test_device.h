/*
 * Devices for guest-firmware tests and scripted runs.
 * - debug exit: a byte written ends vmm with that byte as exit status (like QEMU's
 *   isa-debug-exit, but the status is the byte itself).
 * - test device (only with --test-device): a bank of scratch bytes that reads back what was
 *   written at each offset, any access size, so payloads can check port and MMIO dispatch.
 */
#ifndef VMM_DEVICES_TEST_DEVICE_H
#define VMM_DEVICES_TEST_DEVICE_H

#include <pthread.h>
#include <stdint.h>

#include "vmm/bus.h"

struct debug_exit {
	void (*exit)(void *opaque, int status);
	void *opaque;
};

/* Register with length 1, opaque = struct debug_exit. */
extern const struct bus_ops debug_exit_ops;

#define TEST_DEVICE_SIZE 0x1000

struct test_device {
	pthread_mutex_t lock;
	uint8_t scratch[TEST_DEVICE_SIZE];
};

void test_device_init(struct test_device *dev);
void test_device_destroy(struct test_device *dev);

/* Register with length <= TEST_DEVICE_SIZE, opaque = struct test_device. */
extern const struct bus_ops test_device_ops;

#endif
