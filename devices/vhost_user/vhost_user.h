/*
 * The front-end side of the vhost-user protocol (QEMU docs/interop/vhost-user.rst): blocking
 * request/reply over a connected AF_UNIX stream socket to a back-end process (virtiofsd, a
 * vhost-user blk or net daemon) that then processes virtqueues in guest RAM by itself.
 *
 * Every request is sent whole with MSG_NOSIGNAL (a dead back-end is an error, not SIGPIPE), and
 * every reply is checked: request code echoed, version 1 with the REPLY flag, and exactly the
 * expected payload size. The socket has send and receive timeouts, so a stuck back-end makes a
 * request fail with -ETIMEDOUT instead of hanging the caller. After any transport or protocol
 * failure the connection is unusable (a late reply could be taken for the next one): every
 * later request fails with -ENOTCONN and the first error stays in the message.
 *
 * Threads: no locking inside; the owner serialises all calls on one struct vhost_user (the
 * virtio-fs device makes them under its vdev.lock, or before it is attached).
 */
#ifndef VMM_DEVICES_VHOST_USER_VHOST_USER_H
#define VMM_DEVICES_VHOST_USER_VHOST_USER_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/memory.h"
#include "vmm/util.h"

/* Front-end requests (the ids of the spec). */
enum vhost_user_request {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
};

/* Header flags. */
#define VHOST_USER_VERSION         0x1
#define VHOST_USER_VERSION_MASK    0x3
#define VHOST_USER_FLAG_REPLY      0x4
#define VHOST_USER_FLAG_NEED_REPLY 0x8

/* The virtio feature bit (reserved by virtio) that announces protocol features. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

/* Protocol features; this front-end implements these two. */
#define VHOST_USER_PROTOCOL_F_MQ        0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_SUPPORTED                                                              \
	(1ULL << VHOST_USER_PROTOCOL_F_MQ | 1ULL << VHOST_USER_PROTOCOL_F_REPLY_ACK)

#define VHOST_USER_MAX_REGIONS 8     /* SET_MEM_TABLE without CONFIGURE_MEM_SLOTS */
#define VHOST_USER_MAX_VRINGS  256   /* the vring index has 8 bits in KICK/CALL */
#define VHOST_USER_VRING_NOFD  0x100 /* KICK/CALL payload: no fd passed (polling) */
#define VHOST_USER_TIMEOUT_MS  10000 /* default send/receive timeout */
#define VHOST_USER_ERR_LEN     160

/* Wire formats (native byte order, no padding); the payload follows the 12-byte header. */
struct vhost_user_header {
	uint32_t request;
	uint32_t flags;
	uint32_t size; /* of the payload */
};

struct vhost_user_vring_state {
	uint32_t index;
	uint32_t num;
};

/* Ring addresses are user addresses: host pointers in the front-end's address space. */
struct vhost_user_vring_addr {
	uint32_t index;
	uint32_t flags; /* VHOST_VRING_F_LOG; always 0 here */
	uint64_t desc;
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};

struct vhost_user_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr; /* where the front-end maps it */
	uint64_t mmap_offset;    /* of the region in the fd passed with it */
};

struct vhost_user_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_mem_region regions[VHOST_USER_MAX_REGIONS];
};

struct vhost_user {
	int sock;
	unsigned timeout_ms;
	bool broken;                  /* a request failed on the transport: no more requests */
	uint64_t features;            /* the back-end's GET_FEATURES answer */
	bool protocol;                /* VHOST_USER_F_PROTOCOL_FEATURES offered (and so in use) */
	uint64_t protocol_features;   /* negotiated: ours & the back-end's */
	char err[VHOST_USER_ERR_LEN]; /* the last failure, one line */
};

/*
 * Takes ownership of the connected stream socket @sock (closed by vhost_user_close, or here on
 * failure) and sets its send and receive timeouts to @timeout_ms (0: VHOST_USER_TIMEOUT_MS).
 * Returns 0 or -errno (message in vhost_user_error).
 */
int vhost_user_init(struct vhost_user *vu, int sock, unsigned timeout_ms) MUST_CHECK;
/* Closes the socket (the back-end sees EOF). Safe after a failed init and twice. */
void vhost_user_close(struct vhost_user *vu);
/* Changes the timeout of later requests; returns 0 or -errno from setsockopt. */
int vhost_user_set_timeout(struct vhost_user *vu, unsigned timeout_ms) MUST_CHECK;
/* The last failure as one line ("" when none); valid until the next call. */
const char *vhost_user_error(const struct vhost_user *vu);

/*
 * Session start: GET_FEATURES (kept in vu->features); when the back-end offers
 * VHOST_USER_F_PROTOCOL_FEATURES, GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES with the
 * common subset of @protocol_wanted (within VHOST_USER_PROTOCOL_SUPPORTED); then SET_OWNER.
 * With REPLY_ACK negotiated, every later request without a reply of its own asks for an ack.
 * Returns 0 or -errno: -EIO (connection lost or the back-end refused), -EPROTO (a malformed
 * reply), -ETIMEDOUT, -ENOTCONN (an earlier failure).
 */
int vhost_user_negotiate(struct vhost_user *vu, uint64_t protocol_wanted) MUST_CHECK;
/* GET_QUEUE_NUM: the most queues the back-end serves; only with PROTOCOL_F_MQ (-ENOTSUP). */
int vhost_user_get_queue_num(struct vhost_user *vu, uint64_t *num) MUST_CHECK;
/*
 * SET_FEATURES with @features: the virtio features the driver negotiated; the caller adds
 * VHOST_USER_F_PROTOCOL_FEATURES when vu->protocol is set.
 */
int vhost_user_set_features(struct vhost_user *vu, uint64_t features) MUST_CHECK;

/*
 * SET_MEM_TABLE with every region of @mem (at most VHOST_USER_MAX_REGIONS): guest address,
 * size, our mapping as the user address, fd_offset as the mmap offset, and the region's fd.
 * -EINVAL ("guest RAM is not shareable") when a region has no fd: the VM must be created
 * with shared memory.
 */
int vhost_user_set_mem_table(struct vhost_user *vu, const struct guest_memory *mem) MUST_CHECK;

/*
 * Ring set-up for vring @index (< VHOST_USER_MAX_VRINGS, else -EINVAL). The ring pointers must
 * lie in regions sent with SET_MEM_TABLE (the caller's checked host views of the rings).
 */
int vhost_user_set_vring_num(struct vhost_user *vu, unsigned index, unsigned num) MUST_CHECK;
int vhost_user_set_vring_addr(struct vhost_user *vu, unsigned index, const void *desc,
                              const void *avail, const void *used) MUST_CHECK;
/* The next available index the back-end processes (0 for a freshly set-up ring). */
int vhost_user_set_vring_base(struct vhost_user *vu, unsigned index, unsigned base) MUST_CHECK;
/* Stops the ring; @base (may be NULL) gets the back-end's next available index. */
int vhost_user_get_vring_base(struct vhost_user *vu, unsigned index, unsigned *base) MUST_CHECK;
/*
 * The eventfds: @fd is passed (the back-end gets its own copy; ours stays open), or with
 * @fd < 0 the no-fd flag is set instead (polling). A KICK starts the ring.
 */
int vhost_user_set_vring_kick(struct vhost_user *vu, unsigned index, int fd) MUST_CHECK;
int vhost_user_set_vring_call(struct vhost_user *vu, unsigned index, int fd) MUST_CHECK;
/* Only when vu->protocol is set (-ENOTSUP otherwise): rings start disabled then. */
int vhost_user_set_vring_enable(struct vhost_user *vu, unsigned index, bool enable) MUST_CHECK;

/* The request's name for messages ("GET_FEATURES"), or "unknown request". Thread-safe. */
const char *vhost_user_request_name(uint32_t request);

#endif
