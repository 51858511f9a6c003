/*
 * KVM's coalesced I/O: a write to a registered zone does not exit to vmm. KVM appends it to a
 * ring it shares with vmm (one per VM, one page of every vCPU's kvm_run mapping) and resumes
 * the guest; vmm replays the ring onto its buses, in order, before it handles any exit.
 *
 * Only for registers whose writes do nothing by themselves until a later access that exits:
 * index and address latches such as PCI CONFIG_ADDRESS (0xCF8) or the CMOS index port (0x70),
 * as QEMU does, and a UART's THR outside loopback (uart_8250.h: the status or interrupt
 * identification read that follows a character or a FIFO load exits and replays it). Each
 * such pair then costs the guest one exit to vmm instead of two, a FIFO load of 16 THR writes
 * none.
 *
 * Threads: zones are added during set-up; a zone is switched on and off by whichever thread
 * the device's register write ran on, under zone_lock; any vCPU thread flushes, under lock,
 * so that replays happen one at a time and in the ring's order.
 */
#ifndef VMM_VMM_COALESCED_IO_H
#define VMM_VMM_COALESCED_IO_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/event_loop.h"
#include "vmm/util.h"

#define COALESCED_IO_MAX_ZONES 4
/* While a lingering zone is on, the ring is also flushed this often (milliseconds). */
#define COALESCED_IO_LINGER_MS 50

struct coalesced_io {
	const struct bus *pio;
	struct kvm_coalesced_mmio_zone zones[COALESCED_IO_MAX_ZONES];
	bool zone_on[COALESCED_IO_MAX_ZONES];      /* under zone_lock */
	bool zone_lingers[COALESCED_IO_MAX_ZONES]; /* coalesced_io_add_lingering_pio's */
	unsigned nr_zones;
	int vm_fd; /* coalesced_io_start's, while it has the ring */
	pthread_mutex_t zone_lock;
	/* KVM's ring, NULL until coalesced_io_start found the capability (then: writes exit). */
	struct kvm_coalesced_mmio_ring *ring;
	uint32_t ring_entries;
	pthread_mutex_t lock;
	uint64_t replayed; /* writes that reached vmm through the ring (--stats), under lock */
	struct event_source linger_timer; /* coalesced_io_watch's timerfd, fd -1 before */
	bool linger_armed;                /* under zone_lock */
};

void coalesced_io_init(struct coalesced_io *c, const struct bus *pio);
void coalesced_io_destroy(struct coalesced_io *c);

/*
 * Asks for writes to ports [@port, @port + @len) to be coalesced once started (set-up only).
 * The device on the bus must accept them late: see the top of this file. Returns 0 or -ENOSPC.
 */
int coalesced_io_add_pio(struct coalesced_io *c, uint16_t port, uint32_t len) MUST_CHECK;

/*
 * As coalesced_io_add_pio, for writes the guest need not follow with an access that exits
 * (a UART's last character before the guest idles, its in-kernel HLT never exiting): while
 * such a zone is on, the event loop also flushes the ring every COALESCED_IO_LINGER_MS.
 */
int coalesced_io_add_lingering_pio(struct coalesced_io *c, uint16_t port, uint32_t len) MUST_CHECK;

/*
 * Sets up the lingering writes' flush timer on @loop (its thread flushes). After
 * coalesced_io_start, before the loop runs. Returns 0 or -errno.
 */
int coalesced_io_watch(struct coalesced_io *c, struct event_loop *loop) MUST_CHECK;

/*
 * Switches coalescing of the zone coalesced_io_add_pio made for @port on (@on) or off, with
 * KVM at once once started (before: what coalesced_io_start registers). Writes already in
 * the ring stay there, replayed in order by the next flush. Any thread. Returns 0, -ENOENT
 * (no such zone) or -errno from KVM.
 */
int coalesced_io_set_pio(struct coalesced_io *c, uint16_t port, bool on) MUST_CHECK;

/*
 * Registers the zones with KVM and finds the ring in a vCPU's kvm_run mapping (@run, of
 * @mmap_size bytes). Without KVM_CAP_COALESCED_PIO nothing is registered and the writes keep
 * exiting; that is not an error. Returns 0 or -errno from KVM_REGISTER_COALESCED_MMIO.
 */
int coalesced_io_start(struct coalesced_io *c, int kvm_fd, int vm_fd, void *run,
                       size_t mmap_size) MUST_CHECK;

/*
 * Replays every write in the ring onto the port bus, oldest first (any vCPU thread, before it
 * handles an exit). The ring's indices and lengths are checked before use.
 */
void coalesced_io_flush(struct coalesced_io *c);

#endif
