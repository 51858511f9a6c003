/*
 * The event loop's side of device tests: serving what a loop has ready as its thread would,
 * and the fds a VMM's loop has besides a device's own (a queue's ioeventfd, vmm's signalfd),
 * stood for by eventfds, plus a guard timer that fails a test that gets stuck. Failures are
 * Check assertions. Threads: whichever thread runs the loop (or the test's, before and after).
 */
#ifndef VMM_TESTS_SUPPORT_LOOP_HARNESS_H
#define VMM_TESTS_SUPPORT_LOOP_HARNESS_H

#include <stdbool.h>

#include "vmm/event_loop.h"

/*
 * Serves what @loop has ready, as the loop's thread would (its sources are registered with
 * their struct event_source as the epoll data), until nothing is left. *@in_loop is true while
 * a handler runs.
 */
void test_loop_serve(struct event_loop *loop, bool *in_loop);
/* One round of @loop: what is ready now runs once (posted work that re-posts runs later). */
void test_loop_serve_once(struct event_loop *loop);

/* Registers @fd (which must be valid) on @loop for EPOLLIN: @src calls @fn(@opaque, events). */
void test_loop_add_fd(struct event_loop *loop, struct event_source *src, int fd,
                      event_handler_fn fn, void *opaque);
/* The same for a new non-blocking eventfd; close @src->fd after event_loop_free. */
void test_loop_add_eventfd(struct event_loop *loop, struct event_source *src, event_handler_fn fn,
                           void *opaque);
/* The same for a one-shot timer firing @secs seconds from now (a stuck test's guard). */
void test_loop_add_guard(struct event_loop *loop, struct event_source *src, unsigned secs,
                         event_handler_fn fn, void *opaque);

/* Adds 1 to eventfd @fd. */
void test_eventfd_kick(int fd);
/* Reads eventfd (or timerfd) @fd's counter, which must be non-zero. */
void test_eventfd_drain(int fd);

#endif
