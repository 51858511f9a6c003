#include "vmm/unix_listen.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Something accepts connections on @addr. */
static bool socket_live(const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live = fd >= 0 && connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0;

	if (fd >= 0)
		close(fd);
	return live;
}

int unix_listen(const char *path, size_t reserve, mode_t mode, const char *what, char *err,
                size_t errlen)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	struct stat st;
	int fd, r;

	if (strlen(path) + reserve >= sizeof(addr.sun_path)) {
		snprintf(err, errlen, "%s: '%s' is too long for a Unix socket path", what, path);
		return -ENAMETOOLONG;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s: '%s' exists and is not a socket", what, path);
			return -EEXIST;
		}
		if (socket_live(&addr)) {
			snprintf(err, errlen, "%s: '%s' is in use: another process listens there",
			         what, path);
			return -EADDRINUSE;
		}
		unlink(path); /* a stale socket of an earlier run */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    (mode && chmod(path, mode) < 0) || listen(fd, 64) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot listen on '%s': %s", what, path, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	return fd;
}
