/*
 * The output stream (vmm/out_stream.c) against a pipe and a slow reader thread: 8 MiB of
 * pseudo-random bytes offered from an event loop with back-pressure (the producer stops when a
 * take comes back short and resumes only in the space callback), checked byte for byte at the
 * reader; the final blocking flush; a non-blocking pipe; a reader that goes away (output
 * dropped, no SIGPIPE death, close returns).
 *
 * Threads: the test's main thread runs the event loop and takes; the stream's writer thread
 * writes the pipe; a reader thread of the test reads it. Built with -Db_sanitize=thread this is
 * a ThreadSanitizer test of the stream too.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/event_loop.h"
#include "vmm/out_stream.h"

#define TOTAL      (8 * 1024 * 1024)
#define MAX_OFFER  65536
#define READ_LIMIT 8192

struct reader {
	int fd;
	pthread_t thread;
	uint8_t *got;
	size_t len, cap;
	size_t close_after; /* 0: read to EOF; else close the read end after this many bytes */
	unsigned seed;
};

/* Small reads of random size with short sleeps: much slower than the producer. */
static void *reader_main(void *opaque)
{
	struct reader *r = opaque;

	for (;;) {
		size_t want = (size_t)rand_r(&r->seed) % READ_LIMIT + 1;
		ssize_t n = read(r->fd, r->got + r->len, MIN(want, r->cap - r->len));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r->len += (size_t)n;
		if (r->len == r->cap || (r->close_after && r->len >= r->close_after))
			break;
		if (rand_r(&r->seed) % 4 == 0)
			usleep((useconds_t)(rand_r(&r->seed) % 300));
	}
	close(r->fd);
	return NULL;
}

static void reader_start(struct reader *r, int fd, size_t close_after)
{
	*r = (struct reader){
	        .fd = fd, .cap = TOTAL + MAX_OFFER, .close_after = close_after, .seed = 7};
	r->got = malloc(r->cap);
	ck_assert_ptr_nonnull(r->got);
	ck_assert_int_eq(pthread_create(&r->thread, NULL, reader_main, r), 0);
}

struct producer {
	struct out_stream out;
	struct event_loop loop;
	struct event_source guard;
	uint8_t *data;
	size_t pos, until;
	unsigned seed;
	unsigned refusals, spaces;
	bool waiting; /* a take came back short: only the space callback may go on */
};

/* Offers chunks of random size until a take is short (then waits for space) or @until. */
static void produce(struct producer *p)
{
	while (p->pos < p->until) {
		size_t want = (size_t)rand_r(&p->seed) % MAX_OFFER + 1; /* MIN evaluates twice */
		size_t took;

		want = MIN(want, p->until - p->pos);
		took = out_stream_take(&p->out, p->data + p->pos, want);

		ck_assert_uint_le(took, want);
		p->pos += took;
		if (took < want) {
			p->refusals++;
			p->waiting = true;
			return;
		}
	}
	event_loop_stop(&p->loop);
}

static void on_space(void *opaque)
{
	struct producer *p = opaque;

	ck_assert_msg(p->waiting, "a space callback without a refused take");
	p->spaces++;
	p->waiting = false;
	produce(p);
}

/* A lost space callback would leave the loop waiting forever: stop it after 30 s. */
static void on_guard(void *opaque, uint32_t events)
{
	struct producer *p = opaque;

	(void)events;
	event_loop_stop(&p->loop);
}

static void producer_init(struct producer *p, int fd)
{
	struct itimerspec later = {.it_value.tv_sec = 30};
	unsigned seed = 12345;

	memset(p, 0, sizeof(*p));
	p->seed = 99;
	p->data = malloc(TOTAL);
	ck_assert_ptr_nonnull(p->data);
	for (size_t i = 0; i < TOTAL; i++)
		p->data[i] = (uint8_t)(rand_r(&seed) >> 7);
	ck_assert_int_eq(event_loop_init(&p->loop), 0);
	p->guard = (struct event_source){.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC),
	                                 .handler = on_guard,
	                                 .opaque = p};
	ck_assert_int_ge(p->guard.fd, 0);
	ck_assert_int_eq(timerfd_settime(p->guard.fd, 0, &later, NULL), 0);
	ck_assert_int_eq(event_loop_add(&p->loop, &p->guard, EPOLLIN), 0);
	ck_assert_int_eq(out_stream_init(&p->out, fd, &p->loop, on_space, p), 0);
}

/* Offers [pos, @until) with back-pressure, on the event loop. */
static void produce_until(struct producer *p, size_t until)
{
	p->until = until;
	produce(p);
	if (p->pos < until)
		ck_assert_int_eq(event_loop_run(&p->loop), 0);
	p->loop.stop = false;
	ck_assert_msg(p->pos == until, "stuck at %zu of %zu (%u refusals, %u space callbacks)",
	              p->pos, until, p->refusals, p->spaces);
	ck_assert(!p->waiting);
}

static void producer_free(struct producer *p)
{
	out_stream_close(&p->out);
	close(p->guard.fd);
	event_loop_free(&p->loop);
	free(p->data);
}

/*
 * 6 MiB with back-pressure, the last 2 MiB in one blocking take (the final flush), then close:
 * the reader has every byte once, in order.
 */
static void exact_copy(bool nonblocking_fd)
{
	struct producer p;
	struct reader r;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	if (nonblocking_fd)
		ck_assert_int_eq(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
	producer_init(&p, fds[1]);
	reader_start(&r, fds[0], 0);
	produce_until(&p, 6 * 1024 * 1024);
	ck_assert_uint_gt(p.refusals, 0); /* the reader is slow enough for back-pressure */
	ck_assert_uint_eq(p.spaces, p.refusals);
	out_stream_set_blocking(&p.out);
	ck_assert_uint_eq(out_stream_take(&p.out, p.data + p.pos, TOTAL - p.pos), TOTAL - p.pos);
	out_stream_close(&p.out);
	ck_assert(!p.out.broken);
	ck_assert_uint_eq(p.out.written, TOTAL);
	close(fds[1]); /* the reader sees EOF */
	ck_assert_int_eq(pthread_join(r.thread, NULL), 0);
	ck_assert_uint_eq(r.len, TOTAL);
	ck_assert_msg(!memcmp(r.got, p.data, TOTAL), "the bytes read differ from those offered");
	producer_free(&p);
	free(r.got);
}

START_TEST(back_pressure_exact)
{
	exact_copy(false);
}
END_TEST

/* Someone made the fd non-blocking (a shared pipe): EAGAIN is waited out, nothing lost. */
START_TEST(nonblocking_fd_exact)
{
	exact_copy(true);
}
END_TEST

/* The reader goes away after 100 KiB: takes go on succeeding, the rest is dropped. */
START_TEST(reader_goes_away)
{
	const size_t read_first = 100 * 1024;
	struct producer p;
	struct reader r;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	producer_init(&p, fds[1]);
	reader_start(&r, fds[0], read_first);
	produce_until(&p, TOTAL / 2);
	ck_assert_int_eq(pthread_join(r.thread, NULL), 0); /* gone by now */
	produce_until(&p, TOTAL * 3 / 4);
	out_stream_set_blocking(&p.out);
	ck_assert_uint_eq(out_stream_take(&p.out, p.data + p.pos, TOTAL - p.pos), TOTAL - p.pos);
	out_stream_close(&p.out);
	ck_assert(p.out.broken);
	ck_assert_uint_ge(r.len, read_first);
	ck_assert_uint_le(p.out.written, TOTAL);
	ck_assert_uint_ge(p.out.written, r.len);
	ck_assert(!memcmp(r.got, p.data, r.len));
	close(fds[1]);
	producer_free(&p);
	free(r.got);
}
END_TEST

/* No reader from the start: the first write fails with EPIPE, every take still succeeds. */
START_TEST(no_reader)
{
	struct producer p;
	int fds[2];

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	close(fds[0]);
	producer_init(&p, fds[1]);
	ck_assert_uint_eq(out_stream_take(&p.out, p.data, 4096), 4096);
	produce_until(&p, TOTAL / 2);
	out_stream_set_blocking(&p.out);
	ck_assert_uint_eq(out_stream_take(&p.out, p.data + p.pos, TOTAL - p.pos), TOTAL - p.pos);
	out_stream_close(&p.out);
	ck_assert(p.out.broken);
	ck_assert_uint_eq(p.out.written, 0);
	close(fds[1]);
	producer_free(&p);
}
END_TEST

/* Close of a stream never started (zeroed) and a second close do nothing (fd 0 stays open). */
START_TEST(close_never_started_and_twice)
{
	struct out_stream never;
	struct producer p;
	char buf[8] = "";
	int fds[2];

	if (fcntl(0, F_GETFD) < 0)
		ck_assert_int_eq(open("/dev/null", O_RDONLY), 0);
	memset(&never, 0, sizeof(never));
	out_stream_close(&never);
	ck_assert_int_ge(fcntl(0, F_GETFD), 0);

	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	producer_init(&p, fds[1]);
	ck_assert_uint_eq(out_stream_take(&p.out, (const uint8_t *)"hello", 5), 5);
	out_stream_close(&p.out);
	out_stream_close(&p.out);
	ck_assert_int_ge(fcntl(0, F_GETFD), 0);
	ck_assert_int_ge(fcntl(fds[1], F_GETFD), 0); /* not the stream's to close */
	close(fds[1]);
	ck_assert_int_eq(read(fds[0], buf, sizeof(buf) - 1), 5);
	ck_assert_str_eq(buf, "hello");
	close(fds[0]);
	producer_free(&p);
}
END_TEST

static Suite *out_stream_suite(void)
{
	Suite *s = suite_create("out_stream");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 50);
	tcase_add_test(tc, back_pressure_exact);
	tcase_add_test(tc, nonblocking_fd_exact);
	tcase_add_test(tc, reader_goes_away);
	tcase_add_test(tc, no_reader);
	tcase_add_test(tc, close_never_started_and_twice);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* As vmm does: a reader gone is EPIPE for the writer thread, not the end of the process. */
	signal(SIGPIPE, SIG_IGN);
	return unit_run(out_stream_suite());
}
