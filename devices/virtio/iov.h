/*
 * Bytes in and out of scatter lists (a descriptor chain's buffers, as struct iovec), bounded by
 * both the list and the caller's length. No thread rules of their own.
 */
#ifndef VMM_DEVICES_VIRTIO_IOV_H
#define VMM_DEVICES_VIRTIO_IOV_H

#include <stdint.h>
#include <sys/uio.h>

/* Copies up to @len bytes from @iov (@n entries), starting @off bytes in, to @buf; returns them. */
uint64_t iov_to_buf(const struct iovec *iov, unsigned n, uint64_t off, void *buf, uint64_t len);

/* Copies up to @len bytes of @buf into @iov from @off bytes in; returns how many fitted. */
uint64_t iov_from_buf(const struct iovec *iov, unsigned n, uint64_t off, const void *buf,
                      uint64_t len);

/*
 * Describes bytes [@off, @off + @len) of @iov in @out (at most @max entries, none empty), for a
 * readv or sendmsg straight into or out of guest buffers. Returns the entries used; *@covered
 * says how many bytes they hold (less than @len when @iov or @max ran out).
 */
unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
                   struct iovec *out, unsigned max, uint64_t *covered);

#endif
