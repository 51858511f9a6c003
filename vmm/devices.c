#include "vmm/devices.h"

#include <errno.h>
#include <string.h>

#include "arch/arch.h"
#include "vmm/log.h"
#include "vmm/vm.h"

static const unsigned device_gsis[] = ARCH_DEVICE_GSIS;

static int next_gsi(struct vm_devices *d, unsigned *gsi)
{
	if (d->nr_gsis_used >= ARRAY_SIZE(device_gsis))
		return -ENOSPC;
	*gsi = device_gsis[d->nr_gsis_used++];
	return 0;
}

/* Attaches @vdev to the transport the config chose; @what names it in errors. */
static int attach(struct vm *vm, struct virtio_dev *vdev, const char *what)
{
	struct vm_devices *d = &vm->devices;
	struct mmio_device *m;
	int ret;

	if (d->nr_mmio >= ARCH_VIRTIO_MMIO_MAX || d->nr_mmio >= DEVICES_MAX) {
		log_error("%s: no virtio-mmio window left (at most %d devices)", what,
		          ARCH_VIRTIO_MMIO_MAX);
		return -ENOSPC;
	}
	m = &d->mmio[d->nr_mmio];
	m->base = ARCH_VIRTIO_MMIO_BASE + d->nr_mmio * ARCH_VIRTIO_MMIO_STRIDE;
	ret = next_gsi(d, &m->gsi);
	if (ret) {
		log_error("%s: no interrupt line left", what);
		return ret;
	}
	ret = virtio_mmio_attach(&m->transport, vdev, &vm->mmio, m->base, vm->vm_fd, m->gsi,
	                         &vm->loop);
	if (ret) {
		log_error("%s: cannot attach to virtio-mmio at %#llx: %s", what,
		          (unsigned long long)m->base, strerror(-ret));
		return ret;
	}
	m->attached = true;
	d->nr_mmio++;
	return 0;
}

static int create_disks(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;
	char err[256], what[32];
	int ret;

	for (unsigned i = 0; i < vm->config->nr_disks; i++) {
		const struct disk_config *dc = &vm->config->disks[i];
		const struct blk_options opts = {
		        .path = dc->path,
		        .read_only = dc->read_only,
		        .cache =
		                dc->cache == DISK_CACHE_NONE ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK,
		        .serial = dc->serial,
		};

		ret = blk_open(&d->disks[i], &opts, &vm->mem, &vm->loop, err, sizeof(err));
		if (ret) {
			log_error("%s", err);
			return ret;
		}
		d->nr_disks++;
		snprintf(what, sizeof(what), "disk %u", i);
		ret = attach(vm, &d->disks[i].vdev, what);
		if (ret)
			return ret;
	}
	return 0;
}

static void console_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct vm *vm = opaque;

	chardev_write(&vm->console, buf, len);
}

static void console_rx_space(void *opaque)
{
	struct vm *vm = opaque;

	chardev_input_space(&vm->console);
}

int devices_create(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;
	int ret = create_disks(vm);

	if (ret)
		return ret;
	if (vm->config->rng) {
		virtio_rng_init(&d->rng, &vm->mem);
		d->has_rng = true;
		ret = attach(vm, &d->rng.vdev, "virtio-rng");
		if (ret)
			return ret;
	}
	if (vm->config->console == CONSOLE_VIRTIO) {
		const struct virtio_console_backend backend = {console_write, console_rx_space, vm};

		virtio_console_init(&d->console, &vm->mem, &backend);
		d->has_console = true;
		ret = attach(vm, &d->console.vdev, "virtio-console");
	}
	return ret;
}

void devices_destroy(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;

	for (unsigned i = 0; i < d->nr_mmio; i++)
		virtio_mmio_detach(&d->mmio[i].transport);
	for (unsigned i = 0; i < d->nr_disks; i++)
		blk_close(&d->disks[i]);
	if (d->has_rng)
		virtio_rng_destroy(&d->rng);
	if (d->has_console)
		virtio_console_destroy(&d->console);
	memset(d, 0, sizeof(*d));
}

size_t devices_console_input(struct vm *vm, const uint8_t *buf, size_t len)
{
	return vm->devices.has_console ? virtio_console_receive(&vm->devices.console, buf, len) : 0;
}
