/* A driver's feature negotiation for device tests (see virtio_driver.h). */
#include "tests/support/virtio_driver.h"

uint8_t test_virtio_negotiate(struct virtio_dev *dev, uint64_t features)
{
	uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	virtio_write_status(dev, st);
	virtio_write_driver_features(dev, 0, (uint32_t)features);
	virtio_write_driver_features(dev, 1, (uint32_t)(features >> 32));
	st |= VIRTIO_STATUS_FEATURES_OK;
	virtio_write_status(dev, st);
	return st;
}
