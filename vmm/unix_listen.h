/* A listening Unix stream socket at a path, for --vsock and --api-socket. */
#ifndef VMM_VMM_UNIX_LISTEN_H
#define VMM_VMM_UNIX_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

#include "vmm/util.h"

/*
 * Listens on the Unix socket @path (non-blocking, close-on-exec), with @reserve bytes of
 * sun_path left over for names derived from it. A stale socket there (nobody accepts on it)
 * is replaced; a live one, or any other kind of file, is an error. @mode (e.g. 0600), if not
 * 0, is set before the socket listens, so nobody connects through wider permissions. Returns
 * the fd, or -errno with one line in @err that starts with @what (the option's name).
 */
int unix_listen(const char *path, size_t reserve, mode_t mode, const char *what, char *err,
                size_t errlen) MUST_CHECK;

#endif
