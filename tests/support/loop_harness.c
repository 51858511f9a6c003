/* The event loop's side of device tests (see loop_harness.h). */
#include "tests/support/loop_harness.h"

#include <check.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/util.h"

void test_loop_serve(struct event_loop *loop, bool *in_loop)
{
	struct epoll_event ev[8];
	int n;

	*in_loop = true;
	while ((n = epoll_wait(loop->epoll_fd, ev, ARRAY_SIZE(ev), 0)) > 0) {
		for (int i = 0; i < n; i++) {
			struct event_source *src = ev[i].data.ptr;

			src->handler(src->opaque, ev[i].events);
		}
	}
	ck_assert_int_eq(n, 0);
	*in_loop = false;
}

void test_loop_serve_once(struct event_loop *loop)
{
	struct epoll_event ev[8];
	int n = epoll_wait(loop->epoll_fd, ev, ARRAY_SIZE(ev), 0);

	ck_assert_int_ge(n, 0);
	for (int i = 0; i < n; i++) {
		struct event_source *src = ev[i].data.ptr;

		src->handler(src->opaque, ev[i].events);
	}
}

void test_loop_add_fd(struct event_loop *loop, struct event_source *src, int fd,
                      event_handler_fn fn, void *opaque)
{
	*src = (struct event_source){.fd = fd, .handler = fn, .opaque = opaque};
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(event_loop_add(loop, src, EPOLLIN), 0);
}

void test_loop_add_eventfd(struct event_loop *loop, struct event_source *src, event_handler_fn fn,
                           void *opaque)
{
	test_loop_add_fd(loop, src, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), fn, opaque);
}

void test_loop_add_guard(struct event_loop *loop, struct event_source *src, unsigned secs,
                         event_handler_fn fn, void *opaque)
{
	struct itimerspec later = {.it_value.tv_sec = secs};

	test_loop_add_fd(loop, src, timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), fn, opaque);
	ck_assert_int_eq(timerfd_settime(src->fd, 0, &later, NULL), 0);
}

void test_eventfd_kick(int fd)
{
	uint64_t one = 1;

	ck_assert_int_eq(write(fd, &one, sizeof(one)), sizeof(one));
}

void test_eventfd_drain(int fd)
{
	uint64_t v;

	ck_assert_int_eq(read(fd, &v, sizeof(v)), sizeof(v));
}
