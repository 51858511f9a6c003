/* Scatter-list copies: see iov.h. */
#include "devices/virtio/iov.h"

#include <stdbool.h>
#include <string.h>

#include "vmm/util.h"

unsigned iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len,
                   struct iovec *out, unsigned max, uint64_t *covered)
{
	unsigned used = 0;

	*covered = 0;
	for (unsigned i = 0; i < n && used < max && *covered < len; i++) {
		uint64_t take;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		take = MIN(iov[i].iov_len - off, len - *covered);
		out[used].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[used].iov_len = take;
		used++;
		*covered += take;
		off = 0;
	}
	return used;
}

/* Copies between @buf and the bytes from @off on of @iov, either way; returns the bytes copied. */
static uint64_t iov_copy(const struct iovec *iov, unsigned n, uint64_t off, uint8_t *buf,
                         uint64_t len, bool to_iov)
{
	uint64_t done = 0;

	for (unsigned i = 0; i < n && done < len; i++) {
		uint64_t take;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		take = MIN(iov[i].iov_len - off, len - done);
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + off, buf + done, take);
		else
			memcpy(buf + done, (const uint8_t *)iov[i].iov_base + off, take);
		done += take;
		off = 0;
	}
	return done;
}

uint64_t iov_to_buf(const struct iovec *iov, unsigned n, uint64_t off, void *buf, uint64_t len)
{
	return iov_copy(iov, n, off, buf, len, false);
}

uint64_t iov_from_buf(const struct iovec *iov, unsigned n, uint64_t off, const void *buf,
                      uint64_t len)
{
	return iov_copy(iov, n, off, (uint8_t *)buf, len, true);
}
