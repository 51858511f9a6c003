/*
 * vhost-user front-end: message framing, fd passing and reply checks (see vhost_user.h).
 *
 * A request is one header plus payload written with sendmsg(MSG_NOSIGNAL), its fds attached
 * to the first byte as SCM_RIGHTS. A reply is read header first; only a header that echoes the
 * request, says version 1 with REPLY and announces exactly the payload we expect is followed by
 * reading the payload. Anything else leaves the byte stream in an unknown state, so the
 * connection is shut down and marked broken. Fds in a reply (none are expected) are closed.
 *
 * Threads: none of its own; the owner serialises calls (see the header).
 */
#include "devices/vhost_user/vhost_user.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const request_names[] = {
        [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
        [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
        [VHOST_USER_SET_OWNER] = "SET_OWNER",
        [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
        [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
        [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
        [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
        [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
        [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
        [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
        [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
        [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
        [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
        [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
};

const char *vhost_user_request_name(uint32_t request)
{
	if (request < ARRAY_SIZE(request_names) && request_names[request])
		return request_names[request];
	return "unknown request";
}

const char *vhost_user_error(const struct vhost_user *vu)
{
	return vu->err;
}

/* Records a failure of @req as "vhost-user REQ: what"; returns @err. */
static int PRINTF(4, 5) fail(struct vhost_user *vu, uint32_t req, int err, const char *fmt, ...)
{
	int n = snprintf(vu->err, sizeof(vu->err), "vhost-user %s: ", vhost_user_request_name(req));
	va_list ap;

	if (n < 0 || (size_t)n >= sizeof(vu->err))
		return err;
	va_start(ap, fmt);
	vsnprintf(vu->err + n, sizeof(vu->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return err;
}

/* The stream is out of step: no further requests; the back-end sees the connection end. */
static void mark_broken(struct vhost_user *vu)
{
	vu->broken = true;
	shutdown(vu->sock, SHUT_RDWR);
}

/* A send or receive of @req failed with @r (-errno, or -EIO for EOF). */
static int transport_error(struct vhost_user *vu, uint32_t req, const char *what, int r)
{
	mark_broken(vu);
	if (r == -EIO || r == -EPIPE || r == -ECONNRESET)
		return fail(vu, req, -EIO, "the back-end closed the connection (%s)", what);
	if (r == -EAGAIN || r == -ETIMEDOUT)
		return fail(vu, req, -ETIMEDOUT, "no progress within %u ms (%s)", vu->timeout_ms,
		            what);
	return fail(vu, req, r, "%s: %s", what, strerror(-r));
}

static void put_fds(struct msghdr *msg, void *buf, size_t buflen, const int *fds, unsigned nfds)
{
	struct cmsghdr *c;

	memset(buf, 0, buflen);
	msg->msg_control = buf;
	msg->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	c = CMSG_FIRSTHDR(msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
}

/* Writes header and payload whole, fds with the first byte. Returns 0 or -errno. */
static int send_msg(struct vhost_user *vu, const struct vhost_user_header *hdr, const void *payload,
                    const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_REGIONS)];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov[2] = {{(void *)hdr, sizeof(*hdr)}, {(void *)payload, hdr->size}};
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = hdr->size ? 2 : 1};

	if (nfds > VHOST_USER_MAX_REGIONS)
		return -EINVAL; /* our bug: no request carries more */
	if (nfds)
		put_fds(&msg, ctrl.buf, sizeof(ctrl.buf), fds, nfds);
	while (msg.msg_iovlen) {
		ssize_t n = sendmsg(vu->sock, &msg, MSG_NOSIGNAL);
		size_t done;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		/* A short write: the fds went with the first byte; send the rest without them. */
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
		for (done = (size_t)n; msg.msg_iovlen && done >= msg.msg_iov->iov_len;) {
			done -= msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + done;
			msg.msg_iov->iov_len -= done;
		}
	}
	return 0;
}

/* Closes any fds that came with a reply (the requests we send expect none). */
static void drop_fds(struct msghdr *msg)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
	}
}

/* Reads exactly @len bytes. Returns 0, -EIO at EOF, -EAGAIN after the timeout, or -errno. */
static int recv_all(struct vhost_user *vu, void *buf, size_t len)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_REGIONS)];
		struct cmsghdr align;
	} ctrl;

	while (len) {
		struct iovec iov = {buf, len};
		struct msghdr msg = {.msg_iov = &iov,
		                     .msg_iovlen = 1,
		                     .msg_control = ctrl.buf,
		                     .msg_controllen = sizeof(ctrl.buf)};
		ssize_t n = recvmsg(vu->sock, &msg, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		drop_fds(&msg);
		if (n == 0)
			return -EIO;
		buf = (char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads the reply to @req, which must carry exactly @size bytes of payload into @reply. */
static int recv_reply(struct vhost_user *vu, uint32_t req, void *reply, uint32_t size)
{
	struct vhost_user_header hdr;
	int r = recv_all(vu, &hdr, sizeof(hdr));

	if (r < 0)
		return transport_error(vu, req, "waiting for the reply", r);
	if (hdr.request != req) {
		mark_broken(vu);
		return fail(vu, req, -EPROTO, "the reply is for request %u (%s)", hdr.request,
		            vhost_user_request_name(hdr.request));
	}
	if ((hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
	    !(hdr.flags & VHOST_USER_FLAG_REPLY)) {
		mark_broken(vu);
		return fail(vu, req, -EPROTO, "reply flags %#x (want version 1 with REPLY)",
		            hdr.flags);
	}
	if (hdr.size != size) {
		mark_broken(vu);
		return fail(vu, req, -EPROTO, "reply payload of %u bytes, expected %u", hdr.size,
		            size);
	}
	r = recv_all(vu, reply, size);
	if (r < 0)
		return transport_error(vu, req, "reading the reply payload", r);
	return 0;
}

/*
 * Sends @req with @size bytes of @payload and @nfds fds. With @reply, waits for a reply of
 * exactly @reply_size bytes; without, asks for an ack when REPLY_ACK was negotiated (a
 * non-zero ack is -EIO; the connection stays usable).
 */
static int transact(struct vhost_user *vu, uint32_t req, const void *payload, uint32_t size,
                    const int *fds, unsigned nfds, void *reply, uint32_t reply_size)
{
	struct vhost_user_header hdr = {req, VHOST_USER_VERSION, size};
	bool want_ack = !reply && (vu->protocol_features >> VHOST_USER_PROTOCOL_F_REPLY_ACK & 1);
	uint64_t ack = 0;
	int r;

	if (vu->broken || vu->sock < 0) {
		if (!vu->err[0])
			fail(vu, req, -ENOTCONN, "not connected");
		return -ENOTCONN; /* the first failure stays in vu->err */
	}
	if (want_ack) {
		hdr.flags |= VHOST_USER_FLAG_NEED_REPLY;
		reply = &ack;
		reply_size = sizeof(ack);
	}
	r = send_msg(vu, &hdr, payload, fds, nfds);
	if (r < 0)
		return transport_error(vu, req, "sending the request", r);
	if (!reply)
		return 0;
	r = recv_reply(vu, req, reply, reply_size);
	if (r < 0)
		return r;
	if (want_ack && ack)
		return fail(vu, req, -EIO, "the back-end refused it (status %llu)",
		            (unsigned long long)ack);
	return 0;
}

static int get_u64(struct vhost_user *vu, uint32_t req, uint64_t *value)
{
	return transact(vu, req, NULL, 0, NULL, 0, value, sizeof(*value));
}

static int set_u64(struct vhost_user *vu, uint32_t req, uint64_t value, int fd)
{
	return transact(vu, req, &value, sizeof(value), &fd, fd >= 0, NULL, 0);
}

int vhost_user_set_timeout(struct vhost_user *vu, unsigned timeout_ms)
{
	struct timeval tv;

	if (timeout_ms == 0)
		timeout_ms = VHOST_USER_TIMEOUT_MS;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
	if (setsockopt(vu->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(vu->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		int e = errno;

		snprintf(vu->err, sizeof(vu->err), "vhost-user: socket timeouts: %s", strerror(e));
		return -e;
	}
	vu->timeout_ms = timeout_ms;
	return 0;
}

int vhost_user_init(struct vhost_user *vu, int sock, unsigned timeout_ms)
{
	int flags = fcntl(sock, F_GETFL);
	int r;

	memset(vu, 0, sizeof(*vu));
	vu->sock = sock;
	/* Blocking I/O bounded by the timeouts: a non-blocking socket would fail at once. */
	if (flags < 0 || fcntl(sock, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		r = -errno;
		snprintf(vu->err, sizeof(vu->err), "vhost-user: socket: %s", strerror(-r));
		vhost_user_close(vu);
		return r;
	}
	r = vhost_user_set_timeout(vu, timeout_ms);
	if (r < 0)
		vhost_user_close(vu);
	return r;
}

void vhost_user_close(struct vhost_user *vu)
{
	if (vu->sock >= 0)
		close(vu->sock);
	vu->sock = -1;
}

int vhost_user_negotiate(struct vhost_user *vu, uint64_t protocol_wanted)
{
	uint64_t offered, chosen;
	int r = get_u64(vu, VHOST_USER_GET_FEATURES, &vu->features);

	if (r < 0)
		return r;
	vu->protocol = vu->features >> VHOST_USER_F_PROTOCOL_FEATURES & 1;
	if (vu->protocol) {
		r = get_u64(vu, VHOST_USER_GET_PROTOCOL_FEATURES, &offered);
		if (r < 0)
			return r;
		chosen = offered & protocol_wanted & VHOST_USER_PROTOCOL_SUPPORTED;
		/* Sent before REPLY_ACK is in force, so without asking for an ack. */
		r = set_u64(vu, VHOST_USER_SET_PROTOCOL_FEATURES, chosen, -1);
		if (r < 0)
			return r;
		vu->protocol_features = chosen;
	}
	return transact(vu, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
}

int vhost_user_get_queue_num(struct vhost_user *vu, uint64_t *num)
{
	if (!(vu->protocol_features >> VHOST_USER_PROTOCOL_F_MQ & 1))
		return fail(vu, VHOST_USER_GET_QUEUE_NUM, -ENOTSUP,
		            "protocol feature MQ not negotiated");
	return get_u64(vu, VHOST_USER_GET_QUEUE_NUM, num);
}

int vhost_user_set_features(struct vhost_user *vu, uint64_t features)
{
	return set_u64(vu, VHOST_USER_SET_FEATURES, features, -1);
}

int vhost_user_set_mem_table(struct vhost_user *vu, const struct guest_memory *mem)
{
	struct vhost_user_memory m = {.nregions = mem->nr_regions};
	int fds[VHOST_USER_MAX_REGIONS];

	if (mem->nr_regions == 0 || mem->nr_regions > VHOST_USER_MAX_REGIONS)
		return fail(vu, VHOST_USER_SET_MEM_TABLE, -EINVAL,
		            "guest RAM has %u regions; 1 to %u can be shared", mem->nr_regions,
		            VHOST_USER_MAX_REGIONS);
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];

		if (r->fd < 0)
			return fail(vu, VHOST_USER_SET_MEM_TABLE, -EINVAL,
			            "guest RAM is not shareable (RAM at %#llx is not backed by a "
			            "memory fd; the VM needs shared memory)",
			            (unsigned long long)r->gpa);
		m.regions[i] = (struct vhost_user_mem_region){
		        .guest_phys_addr = r->gpa,
		        .memory_size = r->size,
		        .userspace_addr = (uintptr_t)r->host,
		        .mmap_offset = r->fd_offset,
		};
		fds[i] = r->fd;
	}
	return transact(vu, VHOST_USER_SET_MEM_TABLE, &m,
	                (uint32_t)(offsetof(struct vhost_user_memory, regions) +
	                           m.nregions * sizeof(m.regions[0])),
	                fds, m.nregions, NULL, 0);
}

static int check_index(struct vhost_user *vu, uint32_t req, unsigned index)
{
	if (index < VHOST_USER_MAX_VRINGS)
		return 0;
	return fail(vu, req, -EINVAL, "vring index %u out of range", index);
}

static int set_state(struct vhost_user *vu, uint32_t req, unsigned index, unsigned num)
{
	struct vhost_user_vring_state s = {index, num};
	int r = check_index(vu, req, index);

	return r < 0 ? r : transact(vu, req, &s, sizeof(s), NULL, 0, NULL, 0);
}

int vhost_user_set_vring_num(struct vhost_user *vu, unsigned index, unsigned num)
{
	return set_state(vu, VHOST_USER_SET_VRING_NUM, index, num);
}

int vhost_user_set_vring_base(struct vhost_user *vu, unsigned index, unsigned base)
{
	return set_state(vu, VHOST_USER_SET_VRING_BASE, index, base);
}

int vhost_user_set_vring_enable(struct vhost_user *vu, unsigned index, bool enable)
{
	if (!vu->protocol)
		return fail(vu, VHOST_USER_SET_VRING_ENABLE, -ENOTSUP,
		            "the back-end has no protocol features");
	return set_state(vu, VHOST_USER_SET_VRING_ENABLE, index, enable);
}

int vhost_user_set_vring_addr(struct vhost_user *vu, unsigned index, const void *desc,
                              const void *avail, const void *used)
{
	struct vhost_user_vring_addr a = {
	        .index = index,
	        .desc = (uintptr_t)desc,
	        .used = (uintptr_t)used,
	        .avail = (uintptr_t)avail,
	};
	int r = check_index(vu, VHOST_USER_SET_VRING_ADDR, index);

	return r < 0 ? r : transact(vu, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, NULL, 0);
}

int vhost_user_get_vring_base(struct vhost_user *vu, unsigned index, unsigned *base)
{
	struct vhost_user_vring_state s = {index, 0}, reply;
	int r = check_index(vu, VHOST_USER_GET_VRING_BASE, index);

	if (r == 0)
		r = transact(vu, VHOST_USER_GET_VRING_BASE, &s, sizeof(s), NULL, 0, &reply,
		             sizeof(reply));
	if (r < 0)
		return r;
	if (reply.index != index) {
		mark_broken(vu);
		return fail(vu, VHOST_USER_GET_VRING_BASE, -EPROTO,
		            "the reply is for vring %u, not %u", reply.index, index);
	}
	if (base)
		*base = reply.num;
	return 0;
}

static int set_fd(struct vhost_user *vu, uint32_t req, unsigned index, int fd)
{
	int r = check_index(vu, req, index);

	if (r < 0)
		return r;
	return set_u64(vu, req, index | (fd < 0 ? VHOST_USER_VRING_NOFD : 0), fd);
}

int vhost_user_set_vring_kick(struct vhost_user *vu, unsigned index, int fd)
{
	return set_fd(vu, VHOST_USER_SET_VRING_KICK, index, fd);
}

int vhost_user_set_vring_call(struct vhost_user *vu, unsigned index, int fd)
{
	return set_fd(vu, VHOST_USER_SET_VRING_CALL, index, fd);
}
