/*
 * virtio-pci's doorbells with a VM, the event loop on a thread of its own (issue 17): the loop's
 * thread owns the ioeventfds, and the guest moving the BAR (a config write on a vCPU thread)
 * only hands their re-placement to it. The test's thread is the vCPU: it moves the BAR and
 * rings doorbells while the loop serves them; every ring must reach the device, before the loop
 * re-placed the doorbells (through the bus) as after (through an ioeventfd). Built with
 * -Db_sanitize=thread this shows that the two threads never share an ioeventfd.
 *
 * The VM is a fake KVM: vm_fd is /dev/null and this file's ioctl() answers the requests made on
 * it, keeping the ioeventfds in a table that the "vCPU" consults as KVM would (guest_write16).
 * Threads: the test's (vCPU) and the loop's; the device's counters are atomics.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "devices/pci/pci.h"
#include "devices/virtio/virtio_pci.h"
#include "tests/unit/unit.h"
#include "vmm/bus.h"
#include "vmm/event_loop.h"
#include "vmm/msi.h"
#include "vmm/util.h"

#define RAM       (1 * MIB)
#define ECAM      0xe0000000ULL
#define MMIO64    (4 * GIB)
#define NR_QUEUES 2
#define ROUNDS    3000
#define WAIT_MS   10000 /* a ring not served by then is lost */

/* ---- a fake KVM ---- */

/*
 * ioctl() on fake_vm_fd is answered here; on any other fd it goes to the kernel. KVM_IOEVENTFD
 * keeps a table that guest_write16 consults as KVM would: a 2-byte write at a registered
 * address signals the eventfd, any other write reaches the bus (a vCPU exit). The table is under
 * kvm_lock, so an eventfd is never signalled once its deassign returned, as in KVM.
 */
#define FAKE_IOEVENTFDS 8

struct fake_ioeventfd {
	uint64_t addr;
	uint32_t len;
	int fd;
};

static int fake_vm_fd = -1;
static pthread_mutex_t kvm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_ioeventfd kvm_ioeventfds[FAKE_IOEVENTFDS];
static unsigned nr_kvm_ioeventfds;

static int fake_kvm_ioeventfd(const struct kvm_ioeventfd *req)
{
	unsigned i;
	int ret = 0;

	pthread_mutex_lock(&kvm_lock);
	for (i = 0; i < nr_kvm_ioeventfds; i++)
		if (kvm_ioeventfds[i].addr == req->addr && kvm_ioeventfds[i].len == req->len)
			break;
	if (req->flags == KVM_IOEVENTFD_FLAG_DEASSIGN) {
		if (i == nr_kvm_ioeventfds || kvm_ioeventfds[i].fd != req->fd)
			ret = -ENOENT;
		else
			kvm_ioeventfds[i] = kvm_ioeventfds[--nr_kvm_ioeventfds];
	} else if (req->flags) {
		ret = -EINVAL; /* port I/O and datamatch are not modelled */
	} else if (i < nr_kvm_ioeventfds) {
		ret = -EEXIST;
	} else if (nr_kvm_ioeventfds == FAKE_IOEVENTFDS) {
		ret = -ENOSPC;
	} else {
		kvm_ioeventfds[nr_kvm_ioeventfds++] =
		        (struct fake_ioeventfd){req->addr, req->len, (int)req->fd};
	}
	pthread_mutex_unlock(&kvm_lock);
	return ret;
}

int ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	int ret = 0;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (fd < 0 || fd != fake_vm_fd)
		return (int)syscall(SYS_ioctl, fd, request, arg);
	if (request == KVM_CHECK_EXTENSION)
		return (uintptr_t)arg == KVM_CAP_IRQ_ROUTING ? 1024 : 0;
	if (request == KVM_IOEVENTFD)
		ret = fake_kvm_ioeventfd(arg);
	/* Anything else (KVM_SET_GSI_ROUTING, KVM_IRQFD, KVM_IRQ_LINE) is taken. */
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

/* ---- the device: counts notifications and records what it saw ---- */

static _Thread_local bool on_loop_thread;
/* Per queue (atomics): the last ring the driver published, the last one the device saw. */
static unsigned published[NR_QUEUES], seen[NR_QUEUES], notifies[NR_QUEUES];

static void fake_notify(struct virtio_dev *dev, unsigned q)
{
	(void)dev;
	ck_assert_msg(on_loop_thread, "queue %u notified outside the event loop", q);
	ck_assert_uint_lt(q, NR_QUEUES);
	__atomic_add_fetch(&notifies[q], 1, __ATOMIC_RELAXED);
	/* The device looks at what the driver published (acquire: pairs with publish_and_ring). */
	__atomic_store_n(&seen[q], __atomic_load_n(&published[q], __ATOMIC_ACQUIRE),
	                 __ATOMIC_RELEASE);
}

static const struct virtio_device_ops fake_ops = {
        .name = "fake",
        .device_id = 42,
        .num_queues = NR_QUEUES,
        .max_queue_size = 64,
        .queue_notify = fake_notify,
};

static const struct pci_layout layout = {
        .ecam_base = ECAM,
        .ecam_size = 1 * MIB,
        .config_port = 0xcf8,
        .mmio32_base = 0xc0000000ULL,
        .mmio32_size = 256 * MIB,
        .mmio64_base = MMIO64,
        .mmio64_size = 16 * GIB,
};

static struct guest_memory mem;
static struct bus pio, mmio;
static struct pci_host host;
static struct virtio_dev vdev;
static struct msi_router router;
static struct virtio_pci t;
static struct event_loop loop;
static pthread_t loop_thread;
static uint64_t bar; /* where the firmware-less host placed the BAR */

/* ---- the guest (the test's thread, as a vCPU) ---- */

static void mem_wr(uint64_t addr, unsigned size, uint64_t v)
{
	v = htole64(v);
	ck_assert_int_eq(bus_access(&mmio, addr, &v, size, true), 0);
}

static uint32_t cfg_rd(unsigned reg)
{
	uint32_t v = 0;

	ck_assert_int_eq(bus_access(&mmio, ECAM + ((uint64_t)t.pci.slot << 15) + reg, &v, 4, false),
	                 0);
	return le32toh(v);
}

static void cfg_wr(unsigned reg, unsigned size, uint32_t v)
{
	mem_wr(ECAM + ((uint64_t)t.pci.slot << 15) + reg, size, v);
}

/* The guest writes 2 bytes at @addr; true when an ioeventfd caught it, false: the bus took it. */
static bool guest_write16(uint64_t addr, uint16_t v)
{
	uint64_t one = 1;

	pthread_mutex_lock(&kvm_lock);
	for (unsigned i = 0; i < nr_kvm_ioeventfds; i++) {
		if (kvm_ioeventfds[i].addr != addr || kvm_ioeventfds[i].len != 2)
			continue;
		ck_assert_int_eq(write(kvm_ioeventfds[i].fd, &one, sizeof(one)), sizeof(one));
		pthread_mutex_unlock(&kvm_lock);
		return true;
	}
	pthread_mutex_unlock(&kvm_lock);
	mem_wr(addr, 2, v);
	return false;
}

/*
 * The driver publishes work number @seq on queue @q (release: the device's acquire sees it) and
 * rings the doorbell of the BAR at @at; true when an ioeventfd caught the ring.
 */
static bool publish_and_ring(uint64_t at, unsigned q, unsigned seq)
{
	__atomic_store_n(&published[q], seq, __ATOMIC_RELEASE);
	return guest_write16(at + VIRTIO_PCI_NOTIFY + q * VIRTIO_PCI_NOTIFY_MULT, (uint16_t)q);
}

static void sleep_ms(unsigned ms)
{
	nanosleep(&(struct timespec){.tv_nsec = ms * 1000000L}, NULL);
}

/* Waits until the device saw work @seq of every queue: a lost ring fails here. */
static void wait_seen(unsigned seq)
{
	for (unsigned ms = 0;; ms++) {
		bool all = true;

		for (unsigned q = 0; q < NR_QUEUES; q++)
			all &= __atomic_load_n(&seen[q], __ATOMIC_ACQUIRE) >= seq;
		if (all)
			return;
		ck_assert_msg(ms < WAIT_MS, "work %u: a ring was never served", seq);
		sleep_ms(1);
	}
}

/* Whether KVM has exactly the doorbells of a BAR at @at (each queue's), and no others. */
static bool doorbells_at(uint64_t at)
{
	bool ok;

	pthread_mutex_lock(&kvm_lock);
	ok = nr_kvm_ioeventfds == NR_QUEUES;
	for (unsigned i = 0; i < nr_kvm_ioeventfds; i++) {
		uint64_t off = kvm_ioeventfds[i].addr - at - VIRTIO_PCI_NOTIFY;

		ok &= kvm_ioeventfds[i].len == 2 && kvm_ioeventfds[i].addr >= at &&
		      off < NR_QUEUES * VIRTIO_PCI_NOTIFY_MULT && off % VIRTIO_PCI_NOTIFY_MULT == 0;
	}
	pthread_mutex_unlock(&kvm_lock);
	return ok;
}

static unsigned kvm_ioeventfd_count(void)
{
	unsigned n;

	pthread_mutex_lock(&kvm_lock);
	n = nr_kvm_ioeventfds;
	pthread_mutex_unlock(&kvm_lock);
	return n;
}

static void wait_doorbells_at(uint64_t at)
{
	for (unsigned ms = 0; !doorbells_at(at); ms++) {
		ck_assert_msg(ms < WAIT_MS, "the doorbells never moved to %#llx",
		              (unsigned long long)at);
		sleep_ms(1);
	}
}

/* Moves the BAR to @at (the low half: every address used here has the same high half). */
static void move_bar(uint64_t at)
{
	ck_assert_uint_eq(at >> 32, bar >> 32);
	cfg_wr(PCI_BAR0, 4, (uint32_t)at);
}

/* ---- the event loop's thread ---- */

static void *loop_main(void *opaque)
{
	(void)opaque;
	on_loop_thread = true;
	ck_assert_int_eq(event_loop_run(&loop), 0);
	return NULL;
}

static void stop_loop(void *opaque)
{
	event_loop_stop(opaque);
}

/* A job that holds the loop's thread until the test lets it go. */
struct gate {
	struct event_work work;
	bool entered, open; /* atomics */
};

static void gate_wait(void *opaque)
{
	struct gate *g = opaque;

	__atomic_store_n(&g->entered, true, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&g->open, __ATOMIC_ACQUIRE))
		sleep_ms(1);
}

/* Stops the loop with a job posted after everything posted so far, and joins its thread. */
static void loop_join(void)
{
	struct event_work stop;

	event_work_init(&stop, stop_loop, &loop);
	event_loop_post(&loop, &stop);
	ck_assert_int_eq(pthread_join(loop_thread, NULL), 0);
}

/* ---- fixture ---- */

static void setup(void)
{
	fake_vm_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ck_assert_int_ge(fake_vm_fd, 0);
	memset(&mem, 0, sizeof(mem));
	ck_assert_int_eq(guest_memory_add(&mem, 0, RAM), 0);
	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	ck_assert_int_eq(pci_host_init(&host, &layout, &pio, &mmio), 0);
	ck_assert_int_eq(msi_router_init(&router, fake_vm_fd), 0);
	virtio_dev_init(&vdev, &fake_ops, &mem, 0, NULL, 0);
	ck_assert_int_eq(event_loop_init(&loop), 0);
	ck_assert_int_eq(virtio_pci_attach(&t, &vdev, &host, fake_vm_fd, &router, 11, &loop), 0);
	bar = (cfg_rd(PCI_BAR0) & ~0xfull) | (uint64_t)cfg_rd(PCI_BAR0 + 4) << 32;
	ck_assert_uint_ne(bar, 0);
	/* Memory decoding on: the BAR decodes, its doorbells are to be placed. */
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	ck_assert_int_eq(pthread_create(&loop_thread, NULL, loop_main, NULL), 0);
}

static void teardown(void)
{
	virtio_pci_detach(&t);
	/* Every ioeventfd was released. */
	ck_assert_uint_eq(nr_kvm_ioeventfds, 0);
	event_loop_free(&loop);
	virtio_dev_destroy(&vdev);
	msi_router_destroy(&router);
	pci_host_destroy(&host);
	bus_free(&pio);
	bus_free(&mmio);
	guest_memory_free(&mem);
	close(fake_vm_fd);
	fake_vm_fd = -1;
}

/* ---- tests ---- */

/*
 * A ring that arrives after the BAR moved and before the loop re-placed the doorbells exits to
 * the vCPU and is served through the bus; once the loop re-placed them, KVM catches the rings.
 */
START_TEST(ring_before_the_loop_moved_the_doorbells)
{
	struct gate gate = {0};
	uint64_t to = bar + 2 * VIRTIO_PCI_BAR_SIZE;

	wait_doorbells_at(bar);
	ck_assert(publish_and_ring(bar, 0, 1));
	ck_assert(publish_and_ring(bar, 1, 1));
	wait_seen(1);
	/* The loop is held: the BAR move is recorded and the re-placement waits for it. */
	event_work_init(&gate.work, gate_wait, &gate);
	event_loop_post(&loop, &gate.work);
	while (!__atomic_load_n(&gate.entered, __ATOMIC_ACQUIRE))
		sleep_ms(1);
	move_bar(to);
	ck_assert(!publish_and_ring(to, 0, 2));
	ck_assert(!publish_and_ring(to, 1, 2));
	ck_assert(doorbells_at(bar)); /* still where they were */
	__atomic_store_n(&gate.open, true, __ATOMIC_RELEASE);
	wait_seen(2);
	wait_doorbells_at(to);
	ck_assert(publish_and_ring(to, 0, 3));
	ck_assert(publish_and_ring(to, 1, 3));
	wait_seen(3);
	/* Memory decoding off: no doorbells; on again: back at the BAR. */
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MASTER);
	for (unsigned ms = 0; kvm_ioeventfd_count(); ms++) {
		ck_assert_msg(ms < WAIT_MS, "the doorbells stayed after decoding went off");
		sleep_ms(1);
	}
	cfg_wr(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	wait_doorbells_at(to);
	loop_join();
	for (unsigned q = 0; q < NR_QUEUES; q++)
		ck_assert_uint_le(notifies[q], 3 + 3); /* rings, and one per doorbells moved */
}
END_TEST

/*
 * The guest moves the BAR back and forth and rings both queues at each place, waiting for the
 * device only now and then, so the loop serves rings while their ioeventfds are being moved.
 * Every piece of work published before a ring is seen by the device, no notification runs off
 * the loop's thread, and at the end the doorbells are at the BAR's last place.
 */
START_TEST(bar_moves_race_the_loop)
{
	const uint64_t places[] = {bar, bar + 2 * VIRTIO_PCI_BAR_SIZE,
	                           bar + 4 * VIRTIO_PCI_BAR_SIZE};
	unsigned caught = 0, exits = 0;
	uint64_t at = bar;

	for (unsigned i = 1; i <= ROUNDS; i++) {
		at = places[i % ARRAY_SIZE(places)];
		move_bar(at);
		for (unsigned q = 0; q < NR_QUEUES; q++) {
			if (publish_and_ring(at, q, i))
				caught++;
			else
				exits++;
		}
		if (i % 8 == 0)
			wait_seen(i);
	}
	wait_seen(ROUNDS);
	loop_join();
	ck_assert(doorbells_at(at));
	for (unsigned q = 0; q < NR_QUEUES; q++) {
		ck_assert_uint_eq(seen[q], ROUNDS);
		ck_assert_uint_le(notifies[q], 2 * ROUNDS);
	}
	ck_assert_uint_eq(caught + exits, ROUNDS * NR_QUEUES);
}
END_TEST

static Suite *virtio_pci_threads_suite(void)
{
	Suite *s = suite_create("virtio_pci_threads");
	TCase *tc = tcase_create("doorbells");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, ring_before_the_loop_moved_the_doorbells);
	tcase_add_test(tc, bar_moves_race_the_loop);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(virtio_pci_threads_suite());
}
