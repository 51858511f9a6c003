/*
 * The adaptive polling window of a virtqueue (issue 21): how long the thread serving a queue
 * keeps looking at its avail ring, notifications off, after finding it empty. Adapted like
 * KVM's halt-polling, from the gap between the ring going empty and the next chain arriving
 * (found by polling or by a notification): a gap within the window was a hit (the window
 * stays); a gap past the window but within the cap means polling longer would have caught it
 * (the window grows: POLL_WINDOW_START_NS, then doubling, at most the cap); a gap past the cap
 * means polling was wasted (the window halves, and below POLL_WINDOW_START_NS drops to 0, where
 * the queue sleeps at once until its gaps come within the cap again).
 *
 * Plain data and pure functions of the times passed in (poll_window_now's clock), so tests
 * drive it with made-up clocks. Below them, the two steps every polled device queue takes
 * (struct vq_poll: virtio-blk's request queues, virtio-net's transmit queues).
 * Threads: one window per queue, used by the thread that serves the queue only.
 */
#ifndef VMM_DEVICES_VIRTIO_POLL_WINDOW_H
#define VMM_DEVICES_VIRTIO_POLL_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtqueue.h"
#include "vmm/event_loop.h"

#define POLL_WINDOW_START_NS 4000u    /* the first window after a grow from 0 */
#define POLL_WINDOW_MAX_NS   1000000u /* the largest cap a user may set (1 ms) */

struct poll_window {
	uint32_t max_ns;               /* the cap; 0: never poll */
	uint32_t ns;                   /* the current window */
	uint64_t idle_since;           /* when the ring was found empty; 0: not idle */
	uint64_t hits, grows, shrinks; /* for tests and debug logs */
};

/* CLOCK_MONOTONIC in ns: the devices' times for the functions below. */
uint64_t poll_window_now(void);

/* A window capped at @max_ns (at most POLL_WINDOW_MAX_NS), starting at 0. */
void poll_window_init(struct poll_window *w, uint32_t max_ns);

/*
 * The ring was found empty at @now (ns, monotonic, non-zero): returns how many ns to poll from
 * now (0: turn notifications on and sleep). Starts the gap being measured, unless one is already.
 */
uint32_t poll_window_idle(struct poll_window *w, uint64_t now);

/* A chain arrived at @now: ends the gap (if one was being measured) and adapts the window. */
void poll_window_work(struct poll_window *w, uint64_t now);

/*
 * A device queue polled with a window: the window, the end of the poll going on and the posted
 * look (the device event_work_init()s it with its own fn, which calls vq_poll_look). Guarded
 * like the queue; used by the thread that serves the queue.
 */
struct vq_poll {
	struct poll_window win;
	uint64_t deadline;      /* poll_window_now's clock: the poll going on ends then */
	struct event_work work; /* one look at the ring, posted while polling */
};

/*
 * @vq was found empty at @now: polls it for the window its gaps earned, notifications off, or,
 * with @hold (no new poll) or a closed window, turns notifications on, looking once more. True
 * when @p->work must be posted: to poll, or for chains that arrived meanwhile.
 */
bool vq_poll_idle(struct vq_poll *p, struct virtqueue *vq, uint64_t now, bool hold);

/*
 * One posted look at @vq: true when it has chains to serve now (found, or found as the
 * window's end turned notifications back on). False with *@again set while the window lasts
 * (post @p->work again), false alone when the poll is over.
 */
bool vq_poll_look(struct vq_poll *p, struct virtqueue *vq, bool *again);

#endif
