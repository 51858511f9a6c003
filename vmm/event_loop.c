#include "vmm/event_loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

int event_loop_init(struct event_loop *loop)
{
	loop->stop = false;
	loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	return loop->epoll_fd < 0 ? -errno : 0;
}

void event_loop_free(struct event_loop *loop)
{
	if (loop->epoll_fd >= 0)
		close(loop->epoll_fd);
	loop->epoll_fd = -1;
}

static int control(struct event_loop *loop, int op, struct event_source *src, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = src};

	return epoll_ctl(loop->epoll_fd, op, src->fd, &ev) < 0 ? -errno : 0;
}

int event_loop_add(struct event_loop *loop, struct event_source *src, uint32_t events)
{
	return control(loop, EPOLL_CTL_ADD, src, events);
}

int event_loop_modify(struct event_loop *loop, struct event_source *src, uint32_t events)
{
	return control(loop, EPOLL_CTL_MOD, src, events);
}

void event_loop_del(struct event_loop *loop, struct event_source *src)
{
	control(loop, EPOLL_CTL_DEL, src, 0);
}

int event_loop_run(struct event_loop *loop)
{
	struct epoll_event events[16];

	while (!loop->stop) {
		int n = epoll_wait(loop->epoll_fd, events, ARRAY_SIZE(events), -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (int i = 0; i < n && !loop->stop; i++) {
			struct event_source *src = events[i].data.ptr;
			src->handler(src->opaque, events[i].events);
		}
	}
	return 0;
}

void event_loop_stop(struct event_loop *loop)
{
	loop->stop = true;
}
