/*
 * The io_uring block backend on a temporary file (vectored write and read-back, fdatasync,
 * fallocate, short reads at the end of the file, the in-flight limit), and blk_open's image
 * checks (missing file, locking, sizes, cache=none and the block size it advertises). Skipped
 * with a message where io_uring is not available.
 */
#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/blk_uring.h"
#include "tests/unit/unit.h"

#define FILE_SIZE (1024 * 1024)

struct fixture {
	char path[64];
	int fd;
	struct event_loop loop;
	struct blk_uring *u;
	struct blk_backend *be;
	unsigned done, want, batches;
	int results[128];
};

static void on_complete(void *opaque, void *cookie, int result)
{
	struct fixture *f = opaque;
	uintptr_t i = (uintptr_t)cookie;

	ck_assert_uint_lt(i, ARRAY_SIZE(f->results));
	f->results[i] = result;
	if (++f->done == f->want)
		event_loop_stop(&f->loop);
}

static void on_batch_end(void *opaque)
{
	struct fixture *f = opaque;

	f->batches++;
}

static int make_file(char *path, size_t size)
{
	int fd;

	strcpy(path, "/tmp/vmm-test-blk-XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* Returns false (test skipped) when io_uring cannot be set up here. */
static bool setup(struct fixture *f, unsigned max_inflight)
{
	int r;

	memset(f, 0, sizeof(*f));
	f->fd = make_file(f->path, FILE_SIZE);
	ck_assert_int_eq(event_loop_init(&f->loop), 0);
	r = blk_uring_create(&f->u, f->fd, max_inflight, &f->loop);
	if (r < 0) {
		printf("SKIP: io_uring unavailable: %s\n", strerror(-r));
		return false;
	}
	f->be = blk_uring_backend(f->u);
	f->be->complete = on_complete;
	f->be->complete_batch_end = on_batch_end;
	f->be->opaque = f;
	return true;
}

static void teardown(struct fixture *f)
{
	blk_uring_destroy(f->u);
	event_loop_free(&f->loop);
	close(f->fd);
	unlink(f->path);
}

/* Runs the loop until @n more completions have arrived. */
static void wait_for(struct fixture *f, unsigned n)
{
	f->want = f->done + n;
	f->loop.stop = false;
	ck_assert_int_eq(event_loop_run(&f->loop), 0);
	ck_assert_uint_eq(f->done, f->want);
}

START_TEST(write_read_flush_punch)
{
	static uint8_t a[1000], b[3096], c[4096], back[8192];
	struct iovec wv[] = {{a, sizeof(a)}, {b, sizeof(b)}, {c, sizeof(c)}};
	struct iovec rv[] = {{back, 512}, {back + 512, sizeof(back) - 512}};
	struct fixture f;

	if (!setup(&f, 16))
		return;
	memset(a, 1, sizeof(a));
	memset(b, 2, sizeof(b));
	memset(c, 3, sizeof(c));
	ck_assert_int_eq(f.be->ops->submit_rw(f.be, true, wv, 3, 4096, (void *)0), 0);
	ck_assert_int_eq(f.be->ops->submit_flush(f.be, (void *)1), 0);
	wait_for(&f, 2);
	ck_assert_int_eq(f.results[0], 0);
	ck_assert_int_eq(f.results[1], 0);
	ck_assert_int_eq(f.be->ops->submit_rw(f.be, false, rv, 2, 4096, (void *)2), 0);
	wait_for(&f, 1);
	ck_assert_int_eq(f.results[2], 0);
	ck_assert_mem_eq(back, a, sizeof(a));
	ck_assert_mem_eq(back + 1000, b, sizeof(b));
	ck_assert_mem_eq(back + 4096, c, sizeof(c));

	/* Punch out the middle 4 KiB: zeros read back, the file keeps its size. */
	ck_assert_int_eq(f.be->ops->submit_fallocate(f.be,
	                                             FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	                                             4096 + 2048, 4096, (void *)3),
	                 0);
	wait_for(&f, 1);
	ck_assert_int_eq(f.results[3], 0);
	rv[0] = (struct iovec){back, sizeof(back)};
	ck_assert_int_eq(f.be->ops->submit_rw(f.be, false, rv, 1, 4096, (void *)4), 0);
	wait_for(&f, 1);
	for (unsigned i = 2048; i < 6144; i++)
		ck_assert_uint_eq(back[i], 0);
	ck_assert_uint_eq(back[2047], 2);
	ck_assert_uint_eq(back[6144], 3);
	ck_assert_int_eq(lseek(f.fd, 0, SEEK_END), FILE_SIZE);
	ck_assert_uint_ge(f.batches, 4);
	teardown(&f);
}
END_TEST

START_TEST(short_read_at_end_of_file)
{
	static uint8_t buf[4096];
	struct iovec v = {buf, sizeof(buf)};
	struct fixture f;

	if (!setup(&f, 4))
		return;
	/* 512 bytes exist past the offset: the remainder reads 0 bytes, an error. */
	ck_assert_int_eq(f.be->ops->submit_rw(f.be, false, &v, 1, FILE_SIZE - 512, (void *)0), 0);
	wait_for(&f, 1);
	ck_assert_int_eq(f.results[0], -EIO);
	teardown(&f);
}
END_TEST

START_TEST(inflight_limit)
{
	static uint8_t bufs[8][512];
	struct iovec v[8];
	struct fixture f;

	if (!setup(&f, 8))
		return;
	for (uintptr_t i = 0; i < 8; i++) {
		v[i] = (struct iovec){bufs[i], 512};
		ck_assert_int_eq(f.be->ops->submit_rw(f.be, false, &v[i], 1, i * 512, (void *)i),
		                 0);
	}
	ck_assert_int_eq(f.be->ops->submit_flush(f.be, (void *)8), -EAGAIN);
	wait_for(&f, 8);
	ck_assert_int_eq(f.be->ops->submit_flush(f.be, (void *)8), 0);
	wait_for(&f, 1);
	ck_assert_int_eq(f.be->ops->submit_fallocate(f.be, 0, 0, 0, (void *)9), -EINVAL);
	teardown(&f);
}
END_TEST

/* Submits between plug and unplug reach the kernel together: one io_uring_submit. */
START_TEST(plugged_batch)
{
	static uint8_t bufs[8][512];
	struct iovec v[8];
	struct fixture f;
	uint64_t before;

	if (!setup(&f, 8))
		return;
	before = blk_uring_submits(f.u);
	f.be->ops->plug(f.be);
	for (uintptr_t i = 0; i < 8; i++) {
		v[i] = (struct iovec){bufs[i], 512};
		ck_assert_int_eq(f.be->ops->submit_rw(f.be, false, &v[i], 1, i * 512, (void *)i),
		                 0);
	}
	ck_assert_uint_eq(blk_uring_submits(f.u), before);
	f.be->ops->unplug(f.be);
	ck_assert_uint_eq(blk_uring_submits(f.u), before + 1);
	wait_for(&f, 8);
	for (unsigned i = 0; i < 8; i++)
		ck_assert_int_eq(f.results[i], 0);
	/* Unplugged, each submit goes at once. */
	ck_assert_int_eq(f.be->ops->submit_flush(f.be, (void *)8), 0);
	ck_assert_uint_eq(blk_uring_submits(f.u), before + 2);
	wait_for(&f, 1);
	teardown(&f);
}
END_TEST

/* ---- blk_open ---- */

static int open_disk(struct blk_dev *b, const char *path, bool ro, enum blk_cache cache, char *err)
{
	static struct event_loop loop;
	static struct guest_memory mem;
	struct blk_options opts = {.path = path, .read_only = ro, .cache = cache};

	if (loop.epoll_fd == 0)
		ck_assert_int_eq(event_loop_init(&loop), 0);
	return blk_open(b, &opts, &mem, &loop, err, 256);
}

static bool uring_works(void)
{
	struct blk_uring *u;
	int r = blk_uring_create(&u, 0, 1, NULL);

	if (r == 0)
		blk_uring_destroy(u);
	else
		printf("SKIP: io_uring unavailable: %s\n", strerror(-r));
	return r == 0;
}

/* A FIFO (no writer: a plain open would block forever) is refused at once, read-only too. */
START_TEST(open_fifo)
{
	char path[64] = "/tmp/vmm-fifo-XXXXXX"; /* room for "/disk" */
	struct blk_dev b;
	char err[256], want[300];

	ck_assert_ptr_nonnull(mkdtemp(path));
	strcat(path, "/disk");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	snprintf(want, sizeof(want), "disk '%s': not a regular file or block device", path);
	for (int ro = 0; ro < 2; ro++) {
		ck_assert_int_eq(open_disk(&b, path, ro, BLK_CACHE_WRITEBACK, err), -EINVAL);
		ck_assert_str_eq(err, want);
	}
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
}
END_TEST

START_TEST(open_missing_file)
{
	struct blk_dev b;
	char err[256];

	ck_assert_int_eq(open_disk(&b, "/nonexistent/x.img", false, BLK_CACHE_WRITEBACK, err),
	                 -ENOENT);
	ck_assert_str_eq(err, "disk '/nonexistent/x.img': No such file or directory");
}
END_TEST

START_TEST(open_locks_the_image)
{
	struct blk_dev a, b, c;
	char path[64], err[256];
	int fd = make_file(path, FILE_SIZE);

	if (!uring_works())
		return;
	ck_assert_int_eq(open_disk(&a, path, false, BLK_CACHE_WRITEBACK, err), 0);
	ck_assert_int_eq(open_disk(&b, path, false, BLK_CACHE_WRITEBACK, err), -EWOULDBLOCK);
	ck_assert_msg(strstr(err, "in use by another process (locked)"), "%s", err);
	ck_assert_int_eq(open_disk(&b, path, true, BLK_CACHE_WRITEBACK, err), -EWOULDBLOCK);
	blk_close(&a);
	/* Readers share the image. */
	ck_assert_int_eq(open_disk(&a, path, true, BLK_CACHE_WRITEBACK, err), 0);
	ck_assert_int_eq(open_disk(&c, path, true, BLK_CACHE_NONE, err), 0);
	ck_assert_uint_eq(le64toh(a.config.capacity), FILE_SIZE / 512);
	ck_assert(a.vdev.device_features & (1ull << VIRTIO_BLK_F_RO));
	ck_assert_int_eq(open_disk(&b, path, false, BLK_CACHE_WRITEBACK, err), -EWOULDBLOCK);
	blk_close(&a);
	blk_close(&c);
	close(fd);
	unlink(path);
}
END_TEST

START_TEST(open_sizes)
{
	struct blk_dev b;
	char path[64], err[256];
	int fd = make_file(path, 1000);

	if (!uring_works())
		return;
	/* Rounded down to whole sectors (with a warning). */
	ck_assert_int_eq(open_disk(&b, path, false, BLK_CACHE_NONE, err), 0);
	ck_assert_uint_eq(le64toh(b.config.capacity), 1);
	blk_close(&b);
	ck_assert_int_eq(ftruncate(fd, 511), 0);
	ck_assert_int_eq(open_disk(&b, path, false, BLK_CACHE_WRITEBACK, err), -EINVAL);
	ck_assert_msg(strstr(err, "smaller than one 512-byte sector"), "%s", err);
	ck_assert_int_eq(open_disk(&b, "/tmp", true, BLK_CACHE_WRITEBACK, err), -EINVAL);
	ck_assert_str_eq(err, "disk '/tmp': not a regular file or block device");
	close(fd);
	unlink(path);
}
END_TEST

/*
 * cache=none advertises the host's direct-I/O alignment as blk_size (issue 17): statx's
 * STATX_DIOALIGN offset alignment here (at least 512); 512 where the filesystem refuses
 * O_DIRECT, and the page cache where statx says direct I/O does not work on the file.
 */
START_TEST(open_cache_none_block_size)
{
	struct blk_dev b;
	char path[64], err[256];
	int fd = make_file(path, FILE_SIZE), probe;
	uint32_t want = 512, blk_size;
	bool direct = true;
	struct statx stx;

	if (!uring_works())
		return;
	probe = open(path, O_RDWR | O_DIRECT);
	if (probe < 0) {
		ck_assert_int_eq(errno, EINVAL); /* no O_DIRECT on this filesystem */
		direct = false;
	} else {
		if (statx(probe, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
		    (stx.stx_mask & STATX_DIOALIGN)) {
			direct = stx.stx_dio_offset_align != 0;
			want = MAX(stx.stx_dio_offset_align, 512u);
		}
		close(probe);
	}
	if (!direct)
		want = 512;
	ck_assert_msg(open_disk(&b, path, false, BLK_CACHE_NONE, err) == 0, "%s", err);
	blk_size = le32toh(b.config.blk_size);
	ck_assert_uint_eq(blk_size, want);
	ck_assert(b.vdev.device_features & 1ull << VIRTIO_BLK_F_BLK_SIZE);
	ck_assert_int_eq(!!(fcntl(b.fd, F_GETFL) & O_DIRECT), direct);
	printf("cache=none on %s: blk_size %u, O_DIRECT %s\n", path, blk_size,
	       direct ? "on" : "off");
	blk_close(&b);
	/* The page cache takes any alignment: 512. */
	ck_assert_int_eq(open_disk(&b, path, false, BLK_CACHE_WRITEBACK, err), 0);
	ck_assert_uint_eq(le32toh(b.config.blk_size), 512);
	blk_close(&b);
	close(fd);
	unlink(path);
}
END_TEST

/* Runs one SQE on @ring and returns its completion's result. */
static int run_one(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	int res;

	ck_assert_int_eq(io_uring_submit(ring), 1);
	ck_assert_int_eq(io_uring_wait_cqe(ring, &cqe), 0);
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

/*
 * The disk's ring takes the operations a disk needs and nothing else (io_uring operations are
 * not syscalls: seccomp does not see them), and no further registration.
 */
START_TEST(ring_restricted_to_disk_operations)
{
	char path[] = "/tmp/vmm-uring-XXXXXX";
	int fd = mkstemp(path), efd = eventfd(0, EFD_CLOEXEC), extra = eventfd(0, EFD_CLOEXEC);
	char buf[16] = "restricted ring";
	struct iovec iov = {buf, sizeof(buf)};
	struct io_uring_sqe *sqe;
	struct io_uring ring;
	bool restricted;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(blk_uring_ring_init(&ring, 8, efd, &restricted), 0);
	ck_assert_msg(restricted, "this kernel (5.10 or later) restricts io_uring rings");
	io_uring_prep_writev(io_uring_get_sqe(&ring), fd, &iov, 1, 0);
	ck_assert_int_eq(run_one(&ring), (int)sizeof(buf));
	io_uring_prep_fsync(io_uring_get_sqe(&ring), fd, IORING_FSYNC_DATASYNC);
	ck_assert_int_eq(run_one(&ring), 0);
	io_uring_prep_openat(io_uring_get_sqe(&ring), AT_FDCWD, "/etc/passwd", O_RDONLY, 0);
	ck_assert_int_eq(run_one(&ring), -EACCES);
	io_uring_prep_close(io_uring_get_sqe(&ring), fd);
	ck_assert_int_eq(run_one(&ring), -EACCES);
	/* An allowed operation with an SQE flag (here: linked) is refused too. */
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_fsync(sqe, fd, 0);
	io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
	ck_assert_int_eq(run_one(&ring), -EACCES);
	ck_assert_int_eq(io_uring_register_eventfd(&ring, extra), -EACCES);
	io_uring_queue_exit(&ring);
	close(extra);
	close(efd);
	close(fd);
	unlink(path);
}
END_TEST
static Suite *blk_uring_suite(void)
{
	Suite *s = suite_create("blk_uring");
	TCase *tc = tcase_create("uring");

	tcase_add_test(tc, write_read_flush_punch);
	tcase_add_test(tc, ring_restricted_to_disk_operations);
	tcase_add_test(tc, short_read_at_end_of_file);
	tcase_add_test(tc, inflight_limit);
	tcase_add_test(tc, plugged_batch);
	suite_add_tcase(s, tc);
	tc = tcase_create("open");
	tcase_add_test(tc, open_missing_file);
	tcase_add_test(tc, open_fifo);
	tcase_add_test(tc, open_locks_the_image);
	tcase_add_test(tc, open_sizes);
	tcase_add_test(tc, open_cache_none_block_size);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(blk_uring_suite());
}
