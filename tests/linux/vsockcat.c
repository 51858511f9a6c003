/*
 * vsockcat: netcat for the vsock tests, run in the guest (AF_VSOCK) and in the host (the Unix
 * sockets of vmm's hybrid vsock). Static, so the same binary goes into a guest initramfs.
 *
 *   vsockcat -l PORT          vsock: listen on PORT, take one stream
 *   vsockcat CID PORT         vsock: connect to CID:PORT
 *   vsockcat -L PATH          Unix: listen on PATH (a stale socket is replaced), take one stream
 *   vsockcat -U PATH [LINE]   Unix: connect to PATH; with LINE, send "LINE\n" first and wait for
 *                             one reply line (printed on stderr) before any data
 *
 * Then stdin goes to the stream and the stream to stdout; stdin's end shuts the stream's
 * sending side. Exits 0 once both directions ended, 1 on an error, 3 when the stream closed
 * before LINE's reply came (vmm: nobody listens on that guest port).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* After sys/socket.h: some libcs' copy of it needs struct sockaddr declared. */
#include <linux/vm_sockets.h>

static int die(const char *what)
{
	fprintf(stderr, "vsockcat: %s: %s\n", what, strerror(errno));
	exit(1);
}

static unsigned parse_u32(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > 0xffffffffUL) {
		fprintf(stderr, "vsockcat: '%s' is not a number\n", s);
		exit(1);
	}
	return (unsigned)v;
}

/* A stream socket on @a: connected to it, or bound there and the first connection taken. */
static int stream_socket(const struct sockaddr *a, socklen_t len, int listening)
{
	int s = socket(a->sa_family, SOCK_STREAM, 0), c;

	if (s < 0)
		die("socket");
	if (!listening) {
		if (connect(s, a, len) < 0)
			die("connect");
		return s;
	}
	if (bind(s, a, len) < 0 || listen(s, 1) < 0)
		die("bind");
	c = accept(s, NULL, NULL);
	if (c < 0)
		die("accept");
	close(s);
	return c;
}

static int vsock_socket(unsigned cid, unsigned port, int listening)
{
	struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};

	return stream_socket((struct sockaddr *)&a, sizeof(a), listening);
}

static int unix_socket(const char *path, int listening)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(a.sun_path)) {
		errno = ENAMETOOLONG;
		die(path);
	}
	strcpy(a.sun_path, path);
	if (listening)
		unlink(path); /* a stale socket of an earlier run */
	return stream_socket((struct sockaddr *)&a, sizeof(a), listening);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sends "LINE\n" and reads the reply line a byte at a time (no data past it is taken). */
static void handshake(int s, const char *line)
{
	char reply[64];
	size_t n = 0;

	if (write_all(s, line, strlen(line)) || write_all(s, "\n", 1))
		die("write");
	while (n < sizeof(reply) - 1) {
		ssize_t r = read(s, reply + n, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "vsockcat: closed before a reply to '%s'\n", line);
			exit(3);
		}
		if (reply[n] == '\n')
			break;
		n++;
	}
	reply[n] = 0;
	fprintf(stderr, "%s\n", reply);
}

/* stdin -> @s and @s -> stdout until both have ended. */
static void relay(int s)
{
	struct pollfd p[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = s, .events = POLLIN}};
	static char buf[1 << 16];

	while (p[0].fd >= 0 || p[1].fd >= 0) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				die("read");
			if (n == 0) {
				if (i == 0)
					shutdown(s, SHUT_WR);
				p[i].fd = -1;
				continue;
			}
			if (write_all(i == 0 ? s : STDOUT_FILENO, buf, (size_t)n))
				die("write");
		}
	}
}

int main(int argc, char **argv)
{
	int s;

	if (argc == 3 && !strcmp(argv[1], "-l"))
		s = vsock_socket(VMADDR_CID_ANY, parse_u32(argv[2]), 1);
	else if (argc == 3 && !strcmp(argv[1], "-L"))
		s = unix_socket(argv[2], 1);
	else if ((argc == 3 || argc == 4) && !strcmp(argv[1], "-U"))
		s = unix_socket(argv[2], 0);
	else if (argc == 3 && argv[1][0] != '-')
		s = vsock_socket(parse_u32(argv[1]), parse_u32(argv[2]), 0);
	else {
		fprintf(stderr, "usage: vsockcat -l PORT | CID PORT | -L PATH | -U PATH [LINE]\n");
		return 1;
	}
	if (argc == 4)
		handshake(s, argv[3]);
	relay(s);
	return 0;
}
