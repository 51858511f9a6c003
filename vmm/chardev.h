/*
 * The host side of the guest console: guest output to an fd (stdout) through a bounded buffer
 * that a writer thread drains (vmm/out_stream.h), host input from an fd (stdin) with
 * back-pressure, a terminal put in raw mode and restored, and the Ctrl-A escape (Ctrl-A x
 * quits, Ctrl-A Ctrl-A sends a literal Ctrl-A) when the input is a terminal.
 *
 * Threads: chardev_init and chardev_destroy on the main thread (destroy once no device writes
 * any more); input handling and the output waiters on the event loop's thread; the writes and
 * chardev_input_space from any thread. The output stream has its own lock and thread.
 */
#ifndef VMM_VMM_CHARDEV_H
#define VMM_VMM_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "vmm/event_loop.h"
#include "vmm/out_stream.h"

struct chardev_ops {
	/* Offers input to the device; returns how many bytes it took. */
	size_t (*deliver)(void *opaque, const uint8_t *buf, size_t len);
	/* The user typed the quit escape. */
	void (*quit)(void *opaque);
	/* Optional: the input ended (EOF, or input that cannot be read), all of it delivered. */
	void (*eof)(void *opaque);
};

/* How many devices may wait for output room (the UART and the virtio console). */
#define CHARDEV_MAX_WAITERS 2

struct chardev_waiter {
	void (*fn)(void *opaque);
	void *opaque;
};

struct chardev {
	int in_fd, out_fd;
	bool is_tty, raw_mode_set, in_closed, escape_pending;
	bool file_input; /* a regular file (epoll refuses it): read as the device takes it */
	struct termios saved_termios;
	const struct chardev_ops *ops;
	void *opaque;
	struct event_loop *loop;
	struct event_source input, space; /* stdin; eventfd signalled when the device has room */
	uint8_t pending[4096];
	size_t pending_off, pending_len;
	struct out_stream out; /* guest output to out_fd */
	/* Called when output room comes back after a refused write; kept by chardev_init. */
	struct chardev_waiter waiters[CHARDEV_MAX_WAITERS];
	unsigned nr_waiters;
};

/* chardev_init flags. */
#define CHARDEV_TERMINAL 1 /* a terminal input is put in raw mode, with the Ctrl-A escape */

/*
 * Sets up the chardev on @in_fd/@out_fd: registers its input with @loop and starts the output
 * stream's writer thread. Without CHARDEV_TERMINAL a terminal stays as it is and its bytes pass
 * through unfiltered. Output waiters added before (on the zeroed struct) are kept. Returns 0 or
 * -errno; call chardev_destroy in either case.
 */
int chardev_init(struct chardev *chr, int in_fd, int out_fd, struct event_loop *loop,
                 const struct chardev_ops *ops, void *opaque, unsigned flags) MUST_CHECK;
/*
 * Restores the terminal, then flushes the output: every waiter is called once more while writes
 * wait for room (so a device hands over what it holds), and everything taken is written out
 * (this waits for a slow reader; a reader that went away drops it). Call once no device writes
 * any more (the vCPUs have stopped). Safe on a zeroed chardev and to call more than once.
 */
void chardev_destroy(struct chardev *chr);

/*
 * Guest output that may wait: blocks while the output buffer is full (as long as the reader
 * stalls), in order with chardev_try_write's. Dropped when the reader has gone (EPIPE). Any
 * thread.
 */
void chardev_write(struct chardev *chr, const uint8_t *buf, size_t len);
/*
 * Guest output that never blocks: takes what the output buffer has room for and returns how
 * much (0 before chardev_init or once it is full). When it took less than @len, every output
 * waiter is called on the event loop's thread once there is room again. Any thread.
 */
size_t chardev_try_write(struct chardev *chr, const uint8_t *buf, size_t len);
/*
 * Adds @fn(@opaque), called on the event loop's thread when output room comes back after a
 * refused chardev_try_write, and once more from chardev_destroy. Main thread, before the
 * devices run. Returns 0, or -ENOSPC past CHARDEV_MAX_WAITERS.
 */
int chardev_add_output_waiter(struct chardev *chr, void (*fn)(void *opaque),
                              void *opaque) MUST_CHECK;

/* The device has room for input again. Any thread; only writes to an eventfd. */
void chardev_input_space(struct chardev *chr);

/*
 * The above as device backend callbacks whose opaque is the chardev, so every console device
 * connects to the host the same way. chardev_write_cb waits until all of @len is taken and
 * returns @len; chardev_try_write_cb never blocks and returns what it took (see
 * chardev_try_write: the device also registers an output waiter).
 */
size_t chardev_write_cb(void *chr, const uint8_t *buf, size_t len);
size_t chardev_try_write_cb(void *chr, const uint8_t *buf, size_t len);
void chardev_input_space_cb(void *chr);

#endif
