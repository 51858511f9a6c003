#include "vmm/out_stream.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/sandbox.h"

/* How often a writer waiting for its reader looks whether it was abandoned. */
#define ABANDON_POLL_MS 50

/*
 * Writes @len bytes; false when the reader went away or the stream was abandoned (the rest is
 * dropped). An fd another process made non-blocking (a shared pipe or terminal) is waited on,
 * not taken as broken.
 */
static bool write_all(struct out_stream *s, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(s->fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = {.fd = s->fd, .events = POLLOUT};

			if (__atomic_load_n(&s->abandoned, __ATOMIC_ACQUIRE))
				return false;
			if (poll(&p, 1, ABANDON_POLL_MS) < 0 && errno != EINTR)
				return false;
			continue;
		}
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static void *writer(void *opaque)
{
	struct out_stream *s = opaque;
	uint8_t chunk[16384];
	/* Unfiltered, this thread does not write: the output is dropped, as for a gone reader. */
	bool unfiltered = sandbox_thread_enter(SANDBOX_WRITER) != 0;

	if (unfiltered)
		log_error("seccomp: cannot filter an output writer thread; its output is dropped");
	pthread_mutex_lock(&s->lock);
	s->broken |= unfiltered;
	for (;;) {
		size_t n;
		bool broken = s->broken, wake;

		while (!s->len && !s->closing)
			pthread_cond_wait(&s->changed, &s->lock);
		if (!s->len || s->abandoned)
			break;
		n = MIN(MIN(s->len, sizeof(chunk)), OUT_STREAM_BUFFER - s->head);
		memcpy(chunk, s->buf + s->head, n);
		pthread_mutex_unlock(&s->lock);
		if (!broken)
			broken = !write_all(s, chunk, n);
		pthread_mutex_lock(&s->lock);
		s->broken = broken;
		s->written += broken ? 0 : n;
		s->head = (s->head + n) % OUT_STREAM_BUFFER;
		s->len -= n;
		wake = s->refused;
		s->refused = false;
		pthread_cond_broadcast(&s->changed);
		if (wake) {
			uint64_t one = 1;

			if (write(s->space_event.fd, &one, sizeof(one)) < 0)
				log_debug("out_stream: eventfd: %s", strerror(errno));
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static void on_space(void *opaque, uint32_t events)
{
	struct out_stream *s = opaque;
	uint64_t count;

	(void)events;
	if (read(s->space_event.fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_debug("out_stream: eventfd: %s", strerror(errno));
	s->space(s->opaque);
}

int out_stream_init(struct out_stream *s, int fd, struct event_loop *loop,
                    void (*space)(void *opaque), void *opaque)
{
	int ret;

	*s = (struct out_stream){.fd = fd, .loop = loop, .space = space, .opaque = opaque};
	s->inited = true;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	s->space_event = (struct event_source){.handler = on_space, .opaque = s};
	s->space_event.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->space_event.fd < 0)
		return -errno;
	s->buf = malloc(OUT_STREAM_BUFFER);
	if (!s->buf)
		return -ENOMEM;
	ret = event_loop_add(loop, &s->space_event, EPOLLIN);
	if (ret)
		return ret;
	ret = -pthread_create(&s->thread, NULL, writer, s);
	s->started = ret == 0;
	return ret;
}

/* Takes up to @len bytes; with @wait (or once blocking) waits for room and takes them all. */
static size_t take(struct out_stream *s, const uint8_t *buf, size_t len, bool wait)
{
	size_t done = 0;

	pthread_mutex_lock(&s->lock);
	while (done < len) {
		size_t tail = (s->head + s->len) % OUT_STREAM_BUFFER;
		size_t room = MIN(OUT_STREAM_BUFFER - s->len, OUT_STREAM_BUFFER - tail);
		size_t n = MIN(room, len - done);

		if (!n) {
			if (!(wait || s->blocking) || !s->started)
				break;
			/* The writer may be idle, waiting for what this take has queued so far. */
			pthread_cond_broadcast(&s->changed);
			pthread_cond_wait(&s->changed, &s->lock);
			continue;
		}
		memcpy(s->buf + tail, buf + done, n);
		s->len += n;
		done += n;
	}
	if (done < len)
		s->refused = true;
	if (done)
		pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
	return done;
}

size_t out_stream_take(struct out_stream *s, const uint8_t *buf, size_t len)
{
	return take(s, buf, len, false);
}

size_t out_stream_take_all(struct out_stream *s, const uint8_t *buf, size_t len)
{
	return take(s, buf, len, true);
}

void out_stream_set_blocking(struct out_stream *s)
{
	pthread_mutex_lock(&s->lock);
	s->blocking = true;
	pthread_mutex_unlock(&s->lock);
}

uint64_t out_stream_close_within(struct out_stream *s, unsigned ms)
{
	struct timespec deadline;
	uint64_t dropped = 0;

	if (!s->inited || !s->started) {
		out_stream_close(s);
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long)(ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_cond_broadcast(&s->changed);
	while (s->len && !s->broken &&
	       pthread_cond_timedwait(&s->changed, &s->lock, &deadline) != ETIMEDOUT)
		;
	if (s->len && !s->broken) {
		dropped = s->len;
		__atomic_store_n(&s->abandoned, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&s->lock);
	out_stream_close(s);
	return dropped;
}

void out_stream_close(struct out_stream *s)
{
	if (!s->inited)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->lock);
		s->closing = true;
		pthread_cond_broadcast(&s->changed);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		s->started = false;
	}
	if (s->space_event.fd >= 0) {
		if (s->loop)
			event_loop_del(s->loop, &s->space_event);
		close(s->space_event.fd);
		s->space_event.fd = -1;
	}
	free(s->buf);
	s->buf = NULL;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->changed);
	s->inited = false;
}
