/*
 * A driver's feature negotiation for device tests that call the virtio core directly (no
 * transport): the status and feature writes a driver makes before it places its rings.
 * Threads: the caller holds the device's lock.
 */
#ifndef VMM_TESTS_SUPPORT_VIRTIO_DRIVER_H
#define VMM_TESTS_SUPPORT_VIRTIO_DRIVER_H

#include <stdint.h>

#include "devices/virtio/virtio.h"

/*
 * Writes ACKNOWLEDGE | DRIVER, @features (both halves), then FEATURES_OK added, and returns that
 * last status: the caller places the rings and writes it with DRIVER_OK. Checks nothing, so
 * tests can negotiate what the device must refuse.
 */
uint8_t test_virtio_negotiate(struct virtio_dev *dev, uint64_t features);

#endif
