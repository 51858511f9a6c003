/*
 * The host side of the guest console: guest output to an fd (stdout), host input from an fd
 * (stdin) with back-pressure, a terminal put in raw mode and restored, and the Ctrl-A escape
 * (Ctrl-A x quits, Ctrl-A Ctrl-A sends a literal Ctrl-A) when the input is a terminal.
 */
#ifndef VMM_VMM_CHARDEV_H
#define VMM_VMM_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "vmm/event_loop.h"

struct chardev_ops {
	/* Offers input to the device; returns how many bytes it took. */
	size_t (*deliver)(void *opaque, const uint8_t *buf, size_t len);
	/* The user typed the quit escape. */
	void (*quit)(void *opaque);
	/* Optional: the input ended (EOF, or input that cannot be read), all of it delivered. */
	void (*eof)(void *opaque);
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
};

/* chardev_init flags. */
#define CHARDEV_TERMINAL 1 /* a terminal input is put in raw mode, with the Ctrl-A escape */

/*
 * Sets up the chardev on @in_fd/@out_fd and registers its input with @loop. Without
 * CHARDEV_TERMINAL a terminal stays as it is and its bytes pass through unfiltered.
 */
int chardev_init(struct chardev *chr, int in_fd, int out_fd, struct event_loop *loop,
                 const struct chardev_ops *ops, void *opaque, unsigned flags) MUST_CHECK;
/* Restores the terminal. Safe to call more than once. */
void chardev_destroy(struct chardev *chr);

/* Guest output. Blocking; drops output when the reader has gone (EPIPE). Any thread. */
void chardev_write(struct chardev *chr, const uint8_t *buf, size_t len);

/* The device has room for input again. Any thread; only writes to an eventfd. */
void chardev_input_space(struct chardev *chr);

/*
 * The two above as device backend callbacks whose opaque is the chardev, so every console
 * device connects to the host the same way. chardev_write_cb has the virtio console's
 * signature: it blocks until all of @len is written and returns @len.
 */
size_t chardev_write_cb(void *chr, const uint8_t *buf, size_t len);
void chardev_input_space_cb(void *chr);

#endif
