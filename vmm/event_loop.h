/* The main thread's epoll loop: host-side fds (stdin, signals, timers, device eventfds). */
#ifndef VMM_VMM_EVENT_LOOP_H
#define VMM_VMM_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/util.h"

typedef void (*event_handler_fn)(void *opaque, uint32_t events);

struct event_source {
	int fd;
	event_handler_fn handler;
	void *opaque;
};

struct event_loop {
	int epoll_fd;
	bool stop;
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

#endif
