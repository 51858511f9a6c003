#include "vmm/coalesced_io.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "vmm/log.h"

void coalesced_io_init(struct coalesced_io *c, const struct bus *pio)
{
	memset(c, 0, sizeof(*c));
	c->pio = pio;
	c->vm_fd = -1;
	c->linger_timer.fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->zone_lock, NULL);
}

void coalesced_io_destroy(struct coalesced_io *c)
{
	if (c->linger_timer.fd >= 0)
		close(c->linger_timer.fd);
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

int coalesced_io_add_lingering_pio(struct coalesced_io *c, uint16_t port, uint32_t len)
{
	int ret = coalesced_io_add_pio(c, port, len);

	if (!ret)
		c->zone_lingers[c->nr_zones - 1] = true;
	return ret;
}

/* Runs the flush timer while the ring exists and a lingering zone is on. Under zone_lock. */
static void update_linger_timer(struct coalesced_io *c)
{
	const struct itimerspec off = {0};
	const struct itimerspec every = {
	        .it_interval.tv_nsec = COALESCED_IO_LINGER_MS * 1000000L,
	        .it_value.tv_nsec = COALESCED_IO_LINGER_MS * 1000000L,
	};
	bool want = false;

	for (unsigned i = 0; i < c->nr_zones; i++)
		want |= c->zone_on[i] && c->zone_lingers[i];
	want &= c->ring != NULL;
	if (want == c->linger_armed || c->linger_timer.fd < 0)
		return;
	if (timerfd_settime(c->linger_timer.fd, 0, want ? &every : &off, NULL) < 0)
		log_ratelimited(LOG_WARN, "coalesced I/O: flush timer: %s", strerror(errno));
	else
		c->linger_armed = want;
}

static void linger_tick(void *opaque, uint32_t events)
{
	struct coalesced_io *c = opaque;
	uint64_t expirations;

	(void)events;
	if (read(c->linger_timer.fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_WARN, "coalesced I/O: flush timer: %s", strerror(errno));
	coalesced_io_flush(c);
}

int coalesced_io_watch(struct coalesced_io *c, struct event_loop *loop)
{
	bool lingers = false;
	int ret;

	for (unsigned i = 0; i < c->nr_zones; i++)
		lingers |= c->zone_lingers[i];
	if (!lingers)
		return 0;
	c->linger_timer = (struct event_source){
	        .fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK),
	        .handler = linger_tick,
	        .opaque = c,
	};
	if (c->linger_timer.fd < 0)
		return -errno;
	ret = event_loop_add(loop, &c->linger_timer, EPOLLIN);
	if (ret)
		return ret;
	pthread_mutex_lock(&c->zone_lock);
	update_linger_timer(c);
	pthread_mutex_unlock(&c->zone_lock);
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
	update_linger_timer(c);
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
