/*
 * The event loop: epoll over the registered fds, plus a queue of deferred work run from the
 * handler of an eventfd of the loop's own. Work posted while the queue is run waits for the
 * next round, so the fds that became ready meanwhile are served before it (epoll reports a
 * level-triggered fd again only after the others ready with it).
 *
 * Threads: everything runs on the loop's thread but event_loop_post, which takes loop->lock.
 * The queue is two lists under the lock: loop->work (posted) and the round being run (handed
 * over at the start of a round, taken one entry at a time so a work fn may cancel another).
 */
#include "vmm/event_loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"

static int control(struct event_loop *loop, int op, struct event_source *src, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = src};

	return epoll_ctl(loop->epoll_fd, op, src->fd, &ev) < 0 ? -errno : 0;
}

static void wake(struct event_loop *loop)
{
	uint64_t one = 1;

	if (write(loop->wake.fd, &one, sizeof(one)) < 0)
		log_debug("event loop: eventfd: %s", strerror(errno));
}

/*
 * Runs the work posted before this round, all of it (also when a fn stops the loop); what is
 * posted meanwhile waits for the next round.
 */
static void run_work(void *opaque, uint32_t events)
{
	struct event_loop *loop = opaque;
	uint64_t count;

	(void)events;
	if (read(loop->wake.fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_debug("event loop: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&loop->lock);
	loop->round = loop->work;
	loop->work = NULL;
	loop->work_tail = &loop->work;
	while (loop->round) {
		struct event_work *w = loop->round;

		loop->round = w->next;
		w->next = NULL;
		w->queued = false;
		pthread_mutex_unlock(&loop->lock);
		w->fn(w->opaque);
		pthread_mutex_lock(&loop->lock);
	}
	if (loop->work)
		wake(loop);
	pthread_mutex_unlock(&loop->lock);
}

int event_loop_init(struct event_loop *loop)
{
	int ret;

	*loop = (struct event_loop){.epoll_fd = -1, .work_tail = &loop->work};
	loop->wake = (struct event_source){.handler = run_work, .opaque = loop};
	loop->wake.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->wake.fd < 0)
		return -errno;
	loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	ret = loop->epoll_fd < 0 ? -errno : control(loop, EPOLL_CTL_ADD, &loop->wake, EPOLLIN);
	if (ret) {
		if (loop->epoll_fd >= 0)
			close(loop->epoll_fd);
		close(loop->wake.fd);
		loop->epoll_fd = loop->wake.fd = -1;
		return ret;
	}
	pthread_mutex_init(&loop->lock, NULL);
	return 0;
}

void event_loop_free(struct event_loop *loop)
{
	if (loop->epoll_fd < 0)
		return;
	close(loop->epoll_fd);
	close(loop->wake.fd);
	loop->epoll_fd = loop->wake.fd = -1;
	pthread_mutex_destroy(&loop->lock);
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
	__atomic_store_n(&loop->stop, true, __ATOMIC_RELAXED); /* event_loop_stopped may look */
}

void event_work_init(struct event_work *w, void (*fn)(void *opaque), void *opaque)
{
	*w = (struct event_work){.fn = fn, .opaque = opaque};
}

void event_loop_post(struct event_loop *loop, struct event_work *w)
{
	pthread_mutex_lock(&loop->lock);
	if (!w->queued) {
		w->queued = true;
		w->next = NULL;
		*loop->work_tail = w;
		loop->work_tail = &w->next;
		if (loop->work == w) /* the list was empty: nothing has woken the loop yet */
			wake(loop);
	}
	pthread_mutex_unlock(&loop->lock);
}

/* Unlinks @w from the list at @head if it is there; keeps *@tail (when given) right. */
static bool unlink_work(struct event_work **head, struct event_work ***tail, struct event_work *w)
{
	for (struct event_work **p = head; *p; p = &(*p)->next) {
		if (*p != w)
			continue;
		*p = w->next;
		if (tail && *tail == &w->next)
			*tail = p;
		w->next = NULL;
		return true;
	}
	return false;
}

void event_loop_cancel(struct event_loop *loop, struct event_work *w)
{
	pthread_mutex_lock(&loop->lock);
	if (w->queued && !unlink_work(&loop->work, &loop->work_tail, w))
		unlink_work(&loop->round, NULL, w);
	w->queued = false;
	pthread_mutex_unlock(&loop->lock);
}
