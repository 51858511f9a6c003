/*
 * The io_uring block backend behind struct blk_backend_ops: vectored reads and writes, fdatasync
 * and fallocate on one image fd, many requests in flight, completions signalled through an
 * eventfd that the event loop watches. Short transfers are resubmitted for the remainder; a
 * submission the kernel refuses for lack of resources (-EAGAIN, -EBUSY) or a full submission
 * ring is retried once completions free room.
 *
 * Threading: no lock; everything runs on the event-loop thread. Submissions come from the
 * device's queue work, which runs there because virtio queue notifications are only ever served
 * on the loop (the transports hand doorbells that reach them on a vCPU thread to the loop, see
 * struct virtio_doorbell), and from its completion callbacks; completions come from the
 * eventfd handler. The first submit or completion binds the ring to its thread and every later
 * one asserts it is the same. Completion callbacks never run inside a submit call.
 */
#ifndef VMM_DEVICES_VIRTIO_BLK_URING_H
#define VMM_DEVICES_VIRTIO_BLK_URING_H

#include "devices/virtio/blk.h"
#include "vmm/event_loop.h"
#include "vmm/util.h"

struct blk_uring;
struct io_uring;

/*
 * Initialises @ring with @entries entries, its completions signalled on @event_fd, and locked
 * down: the ring starts disabled, takes only the operations a disk needs (READV, WRITEV,
 * FSYNC, FALLOCATE, with no SQE flags) and no further io_uring_register call, then is enabled.
 * io_uring operations are not syscalls, so seccomp cannot see them: without this, code that
 * took over vmm could open files or sockets through the ring. On a kernel without ring
 * restrictions (before 5.10) the ring is set up unrestricted and *@restricted says so.
 * Returns 0 or the -errno of io_uring_queue_init or registration.
 */
int blk_uring_ring_init(struct io_uring *ring, unsigned entries, int event_fd,
                        bool *restricted) MUST_CHECK;

/*
 * Sets up a ring for @fd (not taken over: the caller closes it after blk_uring_destroy) that
 * accepts up to @max_inflight operations at once (more return -EAGAIN), and registers its
 * completion eventfd with @loop. The caller sets be->complete and be->opaque on the returned
 * backend (blk_uring_backend) before submitting. Returns 0, -ENOMEM or the io_uring_queue_init
 * errno (-ENOSYS or -EPERM where io_uring is unavailable).
 */
int blk_uring_create(struct blk_uring **out, int fd, unsigned max_inflight,
                     struct event_loop *loop) MUST_CHECK;
struct blk_backend *blk_uring_backend(struct blk_uring *u);

/*
 * Waits for the operations still in flight (their completion callbacks are not called),
 * unregisters the eventfd from the loop and frees the ring. Safe with NULL.
 */
void blk_uring_destroy(struct blk_uring *u);

/* How many times @u called io_uring_submit (each a system call), for tests. */
uint64_t blk_uring_submits(const struct blk_uring *u);
/*
 * Waits until every operation taken has completed, each through the backend's complete
 * callback as usual (a snapshot then finds nothing in flight). The owner (event-loop) thread.
 */
void blk_uring_settle(struct blk_uring *u);

#endif
