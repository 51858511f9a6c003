/*
 * io_uring backend for virtio-blk. Each submitted operation takes one struct uring_op from a
 * fixed pool (max_inflight entries) until its completion callback has run. An op goes to the
 * submission ring at once when there is a free SQE, else onto a FIFO of pending ops that is
 * flushed whenever completions are reaped. io_uring_submit failing with -EAGAIN/-EBUSY leaves
 * the SQEs in the ring; they are submitted again on the next completion or, when nothing is in
 * flight to produce one, after a self-signal of the eventfd (one event-loop turn later).
 *
 * Between plug and unplug (a virtio-blk queue notification's worth of requests) ops only
 * join the pending FIFO; unplug submits them with one io_uring_submit.
 *
 * Short reads and writes: the iovec array the caller passed is advanced in place past the bytes
 * transferred and the remainder is resubmitted; a transfer of 0 bytes (end of file: the image
 * shrank under us) fails the operation with -EIO.
 *
 * Threads: the op pool, the pending FIFO and the ring have no lock: they belong to the thread
 * that first entered (submit or completion handler), the event loop's. on_owner_thread checks
 * each entry, so a caller on another thread (a queue notification served on a vCPU thread,
 * issue 17) stops the VMM at once instead of corrupting the pool. Create and destroy run while
 * the loop is not running.
 */
#include "devices/virtio/blk_uring.h"

#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vmm/log.h"

enum uring_op_kind { OP_READ, OP_WRITE, OP_FSYNC, OP_FALLOCATE };

struct uring_op {
	struct uring_op *next; /* free list or pending FIFO */
	void *cookie;
	enum uring_op_kind kind;
	int mode;          /* fallocate */
	struct iovec *iov; /* read/write: the caller's array, advanced on short transfers */
	unsigned iovcnt;
	uint64_t offset;
	uint64_t len; /* read/write: bytes still to transfer; fallocate: length */
};

struct blk_uring {
	struct blk_backend be;
	struct io_uring ring;
	int fd;
	struct event_loop *loop;
	struct event_source event; /* the completion eventfd */
	struct uring_op *ops;
	struct uring_op *free_ops;
	struct uring_op *pending_head, *pending_tail; /* waiting for a free SQE */
	unsigned inflight;                            /* ops taken from the pool */
	bool submit_stalled;                          /* last io_uring_submit refused */
	bool plugged;                                 /* a batch: submit at unplug */
	uint64_t submits;                             /* io_uring_submit calls (tests) */
	pthread_t owner;                              /* the thread all entries run on */
	bool owned;                                   /* owner is set */
};

static const struct blk_backend_ops uring_ops;

/* Binds @u to the calling thread on first use; afterwards true only on that thread. */
static bool on_owner_thread(struct blk_uring *u)
{
	if (!u->owned) {
		u->owner = pthread_self();
		u->owned = true;
	}
	return pthread_equal(u->owner, pthread_self());
}

static void prep_sqe(struct blk_uring *u, struct io_uring_sqe *sqe, struct uring_op *op)
{
	switch (op->kind) {
	case OP_READ:
		io_uring_prep_readv(sqe, u->fd, op->iov, op->iovcnt, op->offset);
		break;
	case OP_WRITE:
		io_uring_prep_writev(sqe, u->fd, op->iov, op->iovcnt, op->offset);
		break;
	case OP_FSYNC:
		io_uring_prep_fsync(sqe, u->fd, IORING_FSYNC_DATASYNC);
		break;
	case OP_FALLOCATE:
		io_uring_prep_fallocate(sqe, u->fd, op->mode, (off_t)op->offset, (off_t)op->len);
		break;
	}
	io_uring_sqe_set_data(sqe, op);
}

/* Wakes our own handler on the next loop turn, to retry a refused submission. */
static void kick(struct blk_uring *u)
{
	uint64_t one = 1;

	if (write(u->event.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("blk: io_uring eventfd write: %d", -errno);
}

/* Moves pending ops into free SQEs and submits the ring. */
static void flush_submissions(struct blk_uring *u)
{
	int r;

	while (u->pending_head) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
		struct uring_op *op = u->pending_head;

		if (!sqe)
			break;
		u->pending_head = op->next;
		if (!u->pending_head)
			u->pending_tail = NULL;
		prep_sqe(u, sqe, op);
	}
	do {
		r = io_uring_submit(&u->ring);
		u->submits++;
	} while (r == -EINTR);
	u->submit_stalled = r < 0;
	if (r == -EAGAIN || r == -EBUSY)
		kick(u); /* the refused SQEs stay in the ring; retry on the next loop turn */
	else if (r < 0)
		log_ratelimited(LOG_ERROR, "blk: io_uring_submit: %d", r);
}

static void queue_op(struct blk_uring *u, struct uring_op *op)
{
	op->next = NULL;
	if (u->pending_tail)
		u->pending_tail->next = op;
	else
		u->pending_head = op;
	u->pending_tail = op;
	if (!u->plugged)
		flush_submissions(u);
}

static struct uring_op *take_op(struct blk_uring *u, void *cookie, enum uring_op_kind kind)
{
	struct uring_op *op = u->free_ops;

	if (!op)
		return NULL;
	u->free_ops = op->next;
	u->inflight++;
	*op = (struct uring_op){.cookie = cookie, .kind = kind};
	return op;
}

static void put_op(struct blk_uring *u, struct uring_op *op)
{
	op->next = u->free_ops;
	u->free_ops = op;
	u->inflight--;
}

static uint64_t iov_total(const struct iovec *iov, unsigned n)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

static int submit_rw(struct blk_backend *be, bool is_write, struct iovec *iov, unsigned iovcnt,
                     uint64_t offset, void *cookie)
{
	struct blk_uring *u = container_of(be, struct blk_uring, be);
	struct uring_op *op;

	assert(on_owner_thread(u));
	if (iovcnt == 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	op = take_op(u, cookie, is_write ? OP_WRITE : OP_READ);
	if (!op)
		return -EAGAIN;
	op->iov = iov;
	op->iovcnt = iovcnt;
	op->offset = offset;
	op->len = iov_total(iov, iovcnt);
	queue_op(u, op);
	return 0;
}

static int submit_flush(struct blk_backend *be, void *cookie)
{
	struct blk_uring *u = container_of(be, struct blk_uring, be);
	struct uring_op *op;

	assert(on_owner_thread(u));
	op = take_op(u, cookie, OP_FSYNC);
	if (!op)
		return -EAGAIN;
	queue_op(u, op);
	return 0;
}

static int submit_fallocate(struct blk_backend *be, int mode, uint64_t offset, uint64_t len,
                            void *cookie)
{
	struct blk_uring *u = container_of(be, struct blk_uring, be);
	struct uring_op *op;

	assert(on_owner_thread(u));
	if (offset > INT64_MAX || len == 0 || len > INT64_MAX - offset)
		return -EINVAL;
	op = take_op(u, cookie, OP_FALLOCATE);
	if (!op)
		return -EAGAIN;
	op->mode = mode;
	op->offset = offset;
	op->len = len;
	queue_op(u, op);
	return 0;
}

/* Skips @done bytes of @op's iovecs after a short transfer. */
static void advance_iov(struct uring_op *op, uint64_t done)
{
	while (done && op->iovcnt) {
		if (done < op->iov->iov_len) {
			op->iov->iov_base = (uint8_t *)op->iov->iov_base + done;
			op->iov->iov_len -= done;
			return;
		}
		done -= op->iov->iov_len;
		op->iov++;
		op->iovcnt--;
	}
	/* Drop empty iovecs so the remainder starts with data. */
	while (op->iovcnt && op->iov->iov_len == 0) {
		op->iov++;
		op->iovcnt--;
	}
}

/*
 * Decides what a CQE means for @op: returns 1 when the op was resubmitted (more to transfer,
 * or a retryable error), else 0 with the final result in *result.
 */
static int handle_cqe(struct blk_uring *u, struct uring_op *op, int res, int *result)
{
	bool rw = op->kind == OP_READ || op->kind == OP_WRITE;

	if (res == -EAGAIN || res == -EINTR) {
		queue_op(u, op);
		return 1;
	}
	*result = res < 0 ? res : 0;
	if (!rw || res < 0)
		return 0;
	if (res == 0 && op->len) {
		*result = -EIO; /* end of file before the end of the request */
		return 0;
	}
	if ((uint64_t)res >= op->len)
		return 0;
	op->len -= (uint64_t)res;
	op->offset += (uint64_t)res;
	advance_iov(op, (uint64_t)res);
	queue_op(u, op);
	return 1;
}

static void reap_completions(struct blk_uring *u)
{
	struct io_uring_cqe *cqe;
	unsigned reaped = 0;

	while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
		struct uring_op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res, result = 0;
		void *cookie = op->cookie;

		io_uring_cqe_seen(&u->ring, cqe);
		reaped++;
		if (handle_cqe(u, op, res, &result))
			continue;
		put_op(u, op);
		u->be.complete(u->be.opaque, cookie, result);
	}
	if (reaped && u->be.complete_batch_end)
		u->be.complete_batch_end(u->be.opaque);
}

static void uring_event(void *opaque, uint32_t events)
{
	struct blk_uring *u = opaque;
	uint64_t count;

	(void)events;
	assert(on_owner_thread(u));
	if (read(u->event.fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_ratelimited(LOG_ERROR, "blk: io_uring eventfd read: %d", -errno);
	reap_completions(u);
	if (u->pending_head || u->submit_stalled)
		flush_submissions(u);
}

/*
 * io_uring_register(2) itself: Debian 12's liburing 2.3 declares io_uring_register_restrictions
 * and io_uring_enable_rings but its library does not export them.
 */
static int ring_register(struct io_uring *ring, unsigned op, const void *arg, unsigned nr)
{
	return syscall(__NR_io_uring_register, ring->ring_fd, op, arg, nr) < 0 ? -errno : 0;
}

int blk_uring_ring_init(struct io_uring *ring, unsigned entries, int event_fd, bool *restricted)
{
	static const uint8_t ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
	                              IORING_OP_FALLOCATE};
	struct io_uring_restriction res[ARRAY_SIZE(ops) + 1] = {0};
	int r = io_uring_queue_init(entries, ring, IORING_SETUP_R_DISABLED);

	*restricted = r == 0;
	if (r == -EINVAL) /* a kernel before 5.10: no disabled start, no restrictions */
		r = io_uring_queue_init(entries, ring, 0);
	if (r < 0)
		return r;
	r = io_uring_register_eventfd(ring, event_fd);
	if (r == 0 && *restricted) {
		for (unsigned i = 0; i < ARRAY_SIZE(ops); i++)
			res[i] = (struct io_uring_restriction){.opcode = IORING_RESTRICTION_SQE_OP,
			                                       .sqe_op = ops[i]};
		res[ARRAY_SIZE(ops)] = (struct io_uring_restriction){
		        .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = 0};
		r = ring_register(ring, IORING_REGISTER_RESTRICTIONS, res, ARRAY_SIZE(res));
		if (r == 0)
			r = ring_register(ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	}
	if (r < 0)
		io_uring_queue_exit(ring);
	return r;
}

static int setup_ring(struct blk_uring *u, unsigned entries, struct event_loop *loop)
{
	bool restricted;
	int r;

	u->event.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->event.fd < 0)
		return -errno;
	r = blk_uring_ring_init(&u->ring, entries, u->event.fd, &restricted);
	if (r < 0) {
		close(u->event.fd);
		return r;
	}
	if (!restricted)
		log_debug("blk: this kernel cannot restrict io_uring operations");
	if (loop)
		r = event_loop_add(loop, &u->event, EPOLLIN);
	if (r < 0) {
		close(u->event.fd);
		io_uring_queue_exit(&u->ring);
		return r;
	}
	u->loop = loop;
	return 0;
}

int blk_uring_create(struct blk_uring **out, int fd, unsigned max_inflight, struct event_loop *loop)
{
	struct blk_uring *u = calloc(1, sizeof(*u));
	int r;

	if (!u || max_inflight == 0)
		goto fail_nomem;
	u->ops = calloc(max_inflight, sizeof(*u->ops));
	if (!u->ops)
		goto fail_nomem;
	for (unsigned i = max_inflight; i-- > 0;) {
		u->ops[i].next = u->free_ops;
		u->free_ops = &u->ops[i];
	}
	u->fd = fd;
	u->be.ops = &uring_ops;
	u->event.handler = uring_event;
	u->event.opaque = u;
	r = setup_ring(u, max_inflight, loop);
	if (r < 0) {
		free(u->ops);
		free(u);
		return r;
	}
	*out = u;
	return 0;
fail_nomem:
	if (u)
		free(u->ops);
	free(u);
	return max_inflight ? -ENOMEM : -EINVAL;
}

struct blk_backend *blk_uring_backend(struct blk_uring *u)
{
	return &u->be;
}

void blk_uring_settle(struct blk_uring *u)
{
	assert(on_owner_thread(u));
	while (u->inflight) {
		int r;

		if (u->pending_head || u->submit_stalled)
			flush_submissions(u);
		r = io_uring_submit_and_wait(&u->ring, 1);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			log_error("blk: io_uring settle: %d", r);
			return;
		}
		reap_completions(u);
	}
}

/* Reaps what is in flight without calling back; gives up if the ring stops working. */
static void drain(struct blk_uring *u)
{
	while (u->pending_head) { /* never reached the kernel */
		struct uring_op *op = u->pending_head;

		u->pending_head = op->next;
		put_op(u, op);
	}
	u->pending_tail = NULL;
	while (u->inflight) {
		struct io_uring_cqe *cqe;
		int r = io_uring_submit_and_wait(&u->ring, 1);

		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			log_error("blk: io_uring drain: %d", r);
			return;
		}
		while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
			put_op(u, io_uring_cqe_get_data(cqe));
			io_uring_cqe_seen(&u->ring, cqe);
		}
	}
}

void blk_uring_destroy(struct blk_uring *u)
{
	if (!u)
		return;
	drain(u);
	if (u->loop)
		event_loop_del(u->loop, &u->event);
	io_uring_queue_exit(&u->ring);
	close(u->event.fd);
	free(u->ops);
	free(u);
}

static void plug(struct blk_backend *be)
{
	struct blk_uring *u = container_of(be, struct blk_uring, be);

	assert(on_owner_thread(u));
	u->plugged = true;
}

static void unplug(struct blk_backend *be)
{
	struct blk_uring *u = container_of(be, struct blk_uring, be);

	assert(on_owner_thread(u));
	u->plugged = false;
	if (u->pending_head)
		flush_submissions(u);
}

static const struct blk_backend_ops uring_ops = {
        .submit_rw = submit_rw,
        .submit_flush = submit_flush,
        .submit_fallocate = submit_fallocate,
        .plug = plug,
        .unplug = unplug,
};

uint64_t blk_uring_submits(const struct blk_uring *u)
{
	return u->submits;
}
