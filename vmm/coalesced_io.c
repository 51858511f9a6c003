#include "vmm/coalesced_io.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/log.h"

void coalesced_io_init(struct coalesced_io *c, const struct bus *pio)
{
	memset(c, 0, sizeof(*c));
	c->pio = pio;
	c->vm_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->zone_lock, NULL);
}

void coalesced_io_destroy(struct coalesced_io *c)
{
	pthread_mutex_destroy(&c->zone_lock);
	pthread_mutex_destroy(&c->lock);
}

int coalesced_io_add_pio(struct coalesced_io *c, uint16_t port, uint32_t len)
{
	if (c->nr_zones == COALESCED_IO_MAX_ZONES)
		return -ENOSPC;
	c->zone_on[c->nr_zones] = true;
	c->zones[c->nr_zones++] =
	        (struct kvm_coalesced_mmio_zone){.addr = port, .size = len, .pio = 1};
	return 0;
}

int coalesced_io_set_pio(struct coalesced_io *c, uint16_t port, bool on)
{
	int ret = -ENOENT;

	pthread_mutex_lock(&c->zone_lock);
	for (unsigned i = 0; i < c->nr_zones; i++) {
		if (c->zones[i].addr != port)
			continue;
		ret = 0;
		if (c->zone_on[i] != on && c->vm_fd >= 0 &&
		    ioctl(c->vm_fd,
		          on ? KVM_REGISTER_COALESCED_MMIO : KVM_UNREGISTER_COALESCED_MMIO,
		          &c->zones[i]) < 0)
			ret = -errno;
		else
			c->zone_on[i] = on;
		break;
	}
	pthread_mutex_unlock(&c->zone_lock);
	return ret;
}

int coalesced_io_start(struct coalesced_io *c, int kvm_fd, int vm_fd, void *run, size_t mmap_size)
{
	size_t page_size = (size_t)sysconf(_SC_PAGESIZE);
	int ring_page;

	if (!c->nr_zones)
		return 0;
	/* The capability's value is the ring's page in the vCPU mapping. */
	ring_page = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
	if (ring_page <= 0 || ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) <= 0 ||
	    (size_t)ring_page * page_size + page_size > mmap_size) {
		log_debug("no coalesced port I/O in this KVM: index port writes exit");
		return 0;
	}
	pthread_mutex_lock(&c->zone_lock);
	for (unsigned i = 0; i < c->nr_zones; i++) {
		if (c->zone_on[i] && ioctl(vm_fd, KVM_REGISTER_COALESCED_MMIO, &c->zones[i]) < 0) {
			int ret = -errno;

			pthread_mutex_unlock(&c->zone_lock);
			return ret;
		}
	}
	c->vm_fd = vm_fd;
	pthread_mutex_unlock(&c->zone_lock);
	c->ring = (struct kvm_coalesced_mmio_ring *)((uint8_t *)run + ring_page * page_size);
	c->ring_entries =
	        (uint32_t)((page_size - sizeof(*c->ring)) / sizeof(struct kvm_coalesced_mmio));
	return 0;
}

void coalesced_io_flush(struct coalesced_io *c)
{
	struct kvm_coalesced_mmio_ring *ring = c->ring;

	/* Cheap when empty: every exit of every vCPU comes through here. */
	if (!ring || __atomic_load_n(&ring->first, __ATOMIC_RELAXED) ==
	                     __atomic_load_n(&ring->last, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		uint32_t first = __atomic_load_n(&ring->first, __ATOMIC_RELAXED);
		/* Acquire: the entry KVM wrote before publishing last. */
		uint32_t last = __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE);
		const struct kvm_coalesced_mmio *e;

		if (first == last || first >= c->ring_entries || last >= c->ring_entries)
			break;
		e = &ring->coalesced_mmio[first];
		if (e->pio == 1 && e->len >= 1 && e->len <= sizeof(e->data) &&
		    bus_replay_write(c->pio, e->phys_addr, e->data, e->len) == -ENOENT)
			log_ratelimited(LOG_DEBUG, "coalesced write to unclaimed port 0x%llx",
			                (unsigned long long)e->phys_addr);
		c->replayed++;
		/* Release: KVM may reuse the slot only after it was read. */
		__atomic_store_n(&ring->first, (first + 1) % c->ring_entries, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&c->lock);
}
