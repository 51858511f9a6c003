/*
 * The main thread's epoll loop: host-side fds (stdin, signals, timers, device eventfds), and
 * deferred work (struct event_work) that devices post to continue a job they stopped at their
 * batch limit, so one busy device cannot keep the others, signals and timers waiting.
 *
 * Threads: handlers and deferred work run on the thread in event_loop_run; event_loop_post may
 * be called from any thread (the work list is under the loop's lock); the rest on the loop's
 * thread, or before it runs and after it stopped.
 */
#ifndef VMM_VMM_EVENT_LOOP_H
#define VMM_VMM_EVENT_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/util.h"

typedef void (*event_handler_fn)(void *opaque, uint32_t events);

struct event_source {
	int fd;
	event_handler_fn handler;
	void *opaque;
};

/* A job the loop runs once per event_loop_post; set up with event_work_init. */
struct event_work {
	void (*fn)(void *opaque);
	void *opaque;
	struct event_work *next; /* under the loop's lock: */
	bool queued;             /* on the loop's list, fn not yet called */
};

struct event_loop {
	int epoll_fd; /* -1: not initialised (event_loop_free then does nothing) */
	bool stop;
	struct event_source wake; /* eventfd: work was posted */
	pthread_mutex_t lock;     /* guards what follows and every event_work's next/queued */
	struct event_work *work;  /* posted, in order */
	struct event_work **work_tail;
	struct event_work *round; /* the rest of the round being run */
};

int event_loop_init(struct event_loop *loop) MUST_CHECK;
void event_loop_free(struct event_loop *loop);

/*
 * Watches @src->fd for @events (EPOLLIN...); @src->handler runs on the loop's thread. @src must
 * stay valid until event_loop_del. Returns 0 or -errno.
 */
int event_loop_add(struct event_loop *loop, struct event_source *src, uint32_t events) MUST_CHECK;
int event_loop_modify(struct event_loop *loop, struct event_source *src, uint32_t events);
void event_loop_del(struct event_loop *loop, struct event_source *src);

/* Dispatches events until event_loop_stop() is called from a handler. */
int event_loop_run(struct event_loop *loop);
void event_loop_stop(struct event_loop *loop);
/*
 * event_loop_stop() was called: work posted now runs only if the loop is run again, so a device
 * finishing up at exit does its work at once instead. Any thread (a device's, under its lock).
 */
static inline bool event_loop_stopped(const struct event_loop *loop)
{
	return __atomic_load_n(&loop->stop, __ATOMIC_RELAXED);
}

void event_work_init(struct event_work *w, void (*fn)(void *opaque), void *opaque);
/*
 * Has @w->fn(@w->opaque) called once on the loop's thread, after the fds ready by then were
 * served (fn may post @w again: it then runs after the next round of fds). Posting work that
 * is already queued does nothing. Any thread; takes the loop's lock briefly, never waits for
 * the loop.
 */
void event_loop_post(struct event_loop *loop, struct event_work *w);
/*
 * Takes @w off the queue: its fn is not called for earlier posts. On the loop's thread (a
 * handler or work fn), or when the loop is not running; call before @w's memory goes away.
 */
void event_loop_cancel(struct event_loop *loop, struct event_work *w);

#endif
