/*
 * Guest output to a host fd (vmm's stdout or stderr) with back-pressure instead of blocking:
 * the device hands bytes to a bounded buffer (out_stream_take returns how many it took) and a
 * writer thread of the stream's own does the blocking writes, so a slow reader of vmm's stdout
 * stalls only the guest's writer, never the event loop or a vCPU. When the buffer has room
 * again after a refusal, @space is called on the event loop's thread (through an eventfd).
 *
 * Threads: out_stream_take and out_stream_take_all on any thread (a device's transmit path:
 * the event loop for virtio-console, a vCPU for the UART); the writer thread owns the fd; the
 * buffer is shared under the stream's lock, which is taken after any device lock.
 */
#ifndef VMM_VMM_OUT_STREAM_H
#define VMM_VMM_OUT_STREAM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/event_loop.h"
#include "vmm/util.h"

#define OUT_STREAM_BUFFER (256 * 1024)

/* A zeroed struct out_stream is a stream never started: out_stream_close accepts it. */
struct out_stream {
	int fd;
	pthread_t thread;
	bool inited;  /* out_stream_init ran: there is something to close */
	bool started; /* the writer thread runs */
	struct event_loop *loop;
	struct event_source space_event;
	void (*space)(void *opaque);
	void *opaque;

	pthread_mutex_t lock; /* guards what follows */
	pthread_cond_t changed;
	uint8_t *buf;
	size_t head, len; /* bytes [head, head + len) modulo OUT_STREAM_BUFFER are pending */
	bool refused;     /* a take got less than it offered: call space when room comes */
	bool blocking;    /* take waits for room instead of refusing (final flush) */
	bool closing;     /* write what is pending, then end the thread */
	bool broken;      /* the reader went away (EPIPE, ...): output is dropped from now on */
	bool abandoned;   /* out_stream_close_within gave up on the reader: stop writing */
	uint64_t written; /* bytes written to fd (not those dropped) */
};

/*
 * Starts a stream to @fd (not owned: left open). @space(@opaque) runs on @loop's thread when
 * room comes back after a take was refused. Returns 0 or -errno; call out_stream_close in
 * either case.
 */
int out_stream_init(struct out_stream *s, int fd, struct event_loop *loop,
                    void (*space)(void *opaque), void *opaque) MUST_CHECK;
/* Takes up to @len bytes; fewer (maybe 0) when the buffer is full. Never blocks; any thread. */
size_t out_stream_take(struct out_stream *s, const uint8_t *buf, size_t len);
/*
 * Takes all @len bytes, waiting for the writer to make room (the caller blocks as long as the
 * reader stalls), in order with out_stream_take's bytes. Returns @len, or fewer only when the
 * writer thread never started. Any thread that the writer does not wait for.
 */
size_t out_stream_take_all(struct out_stream *s, const uint8_t *buf, size_t len);
/* From now on out_stream_take waits for room and takes everything (the guest has stopped). */
void out_stream_set_blocking(struct out_stream *s);
/*
 * Writes out what is pending (blocks until the reader took it, or went away), ends the thread
 * and frees the stream. Safe on a zeroed stream and twice.
 */
void out_stream_close(struct out_stream *s);
/*
 * As out_stream_close, but waits at most @ms for the reader to take what is pending; the rest
 * is dropped. Returns how many bytes were dropped that way (0 when all was written). For
 * output a stalled reader must not hold vmm's exit for (a log on a FIFO).
 */
uint64_t out_stream_close_within(struct out_stream *s, unsigned ms);

#endif
