/*
 * The console's host side (see chardev.h). Output goes through an out_stream, so a stalled
 * reader of stdout holds up only the stream's writer thread: chardev_try_write refuses and the
 * device waits (the UART shows its transmitter busy), chardev_write waits in the caller.
 */
#include "vmm/chardev.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/log.h"

#define CTRL_A 0x01

static void set_raw_mode(struct chardev *chr)
{
	struct termios raw;

	if (tcgetattr(chr->in_fd, &chr->saved_termios) < 0)
		return;
	raw = chr->saved_termios;
	cfmakeraw(&raw);
	/* Keep output post-processing so the host terminal still turns \n into \r\n. */
	raw.c_oflag |= OPOST;
	if (tcsetattr(chr->in_fd, TCSANOW, &raw) == 0)
		chr->raw_mode_set = true;
}

/* Applies the Ctrl-A escape in place; returns the new length. Sets quit when asked. */
static size_t filter_escapes(struct chardev *chr, uint8_t *buf, size_t len, bool *quit)
{
	size_t out = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t c = buf[i];

		if (chr->escape_pending) {
			chr->escape_pending = false;
			if (c == 'x' || c == 'X') {
				*quit = true;
				return out;
			}
			buf[out++] =
			        c; /* Ctrl-A Ctrl-A sends one; other keys go through as typed */
			continue;
		}
		if (c == CTRL_A) {
			chr->escape_pending = true;
			continue;
		}
		buf[out++] = c;
	}
	return out;
}

/* No more input: the guest keeps running and the device is told (a port reads EOF). */
static void input_ended(struct chardev *chr)
{
	chr->in_closed = true;
	if (chr->ops->eof)
		chr->ops->eof(chr->opaque);
}

/* The next chunk of a regular file given as input; at its end, the input is closed. */
static void read_file_input(struct chardev *chr)
{
	ssize_t n;

	do
		n = read(chr->in_fd, chr->pending, sizeof(chr->pending));
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		input_ended(chr);
		return;
	}
	chr->pending_off = 0;
	chr->pending_len = (size_t)n;
}

/* Pushes pending input into the device; stops watching stdin while the device is full. */
static void flush_pending(struct chardev *chr)
{
	while (chr->pending_len || (chr->file_input && !chr->in_closed)) {
		size_t n;

		if (!chr->pending_len) {
			read_file_input(chr);
			continue;
		}
		n = chr->ops->deliver(chr->opaque, chr->pending + chr->pending_off,
		                      chr->pending_len);
		if (n == 0)
			break;
		chr->pending_off += n;
		chr->pending_len -= n;
	}
	if (!chr->in_closed && !chr->file_input)
		event_loop_modify(chr->loop, &chr->input, chr->pending_len ? 0 : EPOLLIN);
}

static void on_input(void *opaque, uint32_t events)
{
	struct chardev *chr = opaque;
	bool quit = false;
	ssize_t n;

	(void)events;
	n = read(chr->in_fd, chr->pending, sizeof(chr->pending));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		event_loop_del(chr->loop, &chr->input);
		input_ended(chr);
		return;
	}
	chr->pending_off = 0;
	chr->pending_len = (size_t)n;
	if (chr->is_tty)
		chr->pending_len = filter_escapes(chr, chr->pending, chr->pending_len, &quit);
	if (quit) {
		chr->ops->quit(chr->opaque);
		return;
	}
	flush_pending(chr);
}

static void on_space(void *opaque, uint32_t events)
{
	struct chardev *chr = opaque;
	uint64_t count;

	(void)events;
	if (read(chr->space.fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_debug("console: eventfd read: %d", errno);
	flush_pending(chr);
}

/* Room in the output buffer again after a refused write: every waiter retries. Loop thread. */
static void on_output_space(void *opaque)
{
	struct chardev *chr = opaque;

	for (unsigned i = 0; i < chr->nr_waiters; i++)
		chr->waiters[i].fn(chr->waiters[i].opaque);
}

int chardev_init(struct chardev *chr, int in_fd, int out_fd, struct event_loop *loop,
                 const struct chardev_ops *ops, void *opaque, unsigned flags)
{
	struct chardev_waiter waiters[CHARDEV_MAX_WAITERS];
	unsigned nr_waiters = MIN(chr->nr_waiters, CHARDEV_MAX_WAITERS);
	int ret;

	memcpy(waiters, chr->waiters, sizeof(waiters));
	*chr = (struct chardev){
	        .in_fd = in_fd, .out_fd = out_fd, .ops = ops, .opaque = opaque, .loop = loop};
	memcpy(chr->waiters, waiters, sizeof(waiters));
	chr->nr_waiters = nr_waiters;
	chr->space = (struct event_source){.handler = on_space, .opaque = chr};
	chr->input = (struct event_source){.fd = in_fd, .handler = on_input, .opaque = chr};
	chr->space.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (chr->space.fd < 0)
		return -errno;
	ret = event_loop_add(loop, &chr->space, EPOLLIN);
	if (!ret)
		ret = out_stream_init(&chr->out, out_fd, loop, on_output_space, chr);
	if (ret)
		return ret;
	chr->is_tty = (flags & CHARDEV_TERMINAL) && isatty(in_fd);
	if (chr->is_tty)
		set_raw_mode(chr);
	ret = event_loop_add(loop, &chr->input, EPOLLIN);
	if (ret == -EPERM) {
		/*
		 * A regular file or /dev/null cannot be polled: it is read as the device takes it,
		 * starting from the loop (the device may not be ready to take input yet).
		 */
		chr->file_input = true;
		chardev_input_space(chr);
		ret = 0;
	}
	return ret;
}

void chardev_destroy(struct chardev *chr)
{
	if (chr->raw_mode_set) {
		tcsetattr(chr->in_fd, TCSANOW, &chr->saved_termios);
		chr->raw_mode_set = false;
	}
	if (chr->out.inited) {
		/* Devices hand over what they hold, now that a write waits for room. */
		out_stream_set_blocking(&chr->out);
		on_output_space(chr);
		out_stream_close(&chr->out);
	}
	if (chr->space.fd > 0) {
		close(chr->space.fd);
		chr->space.fd = -1;
	}
}

void chardev_write(struct chardev *chr, const uint8_t *buf, size_t len)
{
	if (chr->out.started)
		out_stream_take_all(&chr->out, buf, len);
}

size_t chardev_try_write(struct chardev *chr, const uint8_t *buf, size_t len)
{
	return chr->out.started ? out_stream_take(&chr->out, buf, len) : 0;
}

int chardev_add_output_waiter(struct chardev *chr, void (*fn)(void *opaque), void *opaque)
{
	if (chr->nr_waiters == CHARDEV_MAX_WAITERS)
		return -ENOSPC;
	chr->waiters[chr->nr_waiters++] = (struct chardev_waiter){fn, opaque};
	return 0;
}

void chardev_input_space(struct chardev *chr)
{
	uint64_t one = 1;

	if (write(chr->space.fd, &one, sizeof(one)) < 0)
		log_debug("console: eventfd write: %d", errno);
}

size_t chardev_write_cb(void *chr, const uint8_t *buf, size_t len)
{
	chardev_write(chr, buf, len);
	return len; /* blocking: all of it is taken (or dropped when the reader has gone) */
}

size_t chardev_try_write_cb(void *chr, const uint8_t *buf, size_t len)
{
	return chardev_try_write(chr, buf, len);
}

void chardev_input_space_cb(void *chr)
{
	chardev_input_space(chr);
}
