/*
 * --console-log (vmm/run.c): the kernel console's bytes reach the log through an out_stream, so
 * run_console_write (a vCPU thread, for the UART) never blocks on it: a FIFO whose reader never
 * reads takes many MiB at once (what does not fit is dropped from the log, counted and reported
 * once at exit) while the panic scan still sees everything; a FIFO without a reader is refused
 * at once with a clear line; a regular file gets every byte; kinds of file a log cannot be are
 * refused. alarm() turns a hang into a failure.
 *
 * Threads: the test's (as the vCPU, and the main thread) and the log's writer thread: a
 * threaded suite (TSan).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/event_loop.h"
#include "vmm/out_stream.h"
#include "vmm/run.h"

#define CHUNK     4096
#define FIFO_FEED (64 * 1024 * 1024)
#define PANIC     "Kernel panic - not syncing: test\n"

static char dir[] = "/tmp/test_run_console.XXXXXX";
static char path[sizeof(dir) + 16];
static struct event_loop loop;
static struct run *run;
static int saved_stderr = -1, captured = -1;

/* A struct run as run_create leaves it before --console-log (no VM: only the log is used). */
static void setup(void)
{
	signal(SIGPIPE, SIG_IGN); /* as vmm: a reader going away is EPIPE */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/log", dir);
	ck_assert_int_eq(event_loop_init(&loop), 0);
	run = calloc(1, sizeof(*run));
	ck_assert_ptr_nonnull(run);
	run->log_fd = -1;
	run->drain.fd = -1;
	pthread_mutex_init(&run->log_lock, NULL);
}

static void teardown(void)
{
	run_destroy(run);
	event_loop_free(&loop);
	unlink(path);
	rmdir(dir);
}

/* vmm's log lines (stderr) go to a file from now until capture_end. */
static void capture_start(void)
{
	char name[sizeof(dir) + 16];

	snprintf(name, sizeof(name), "%s/stderr", dir);
	captured = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(captured, 0);
	unlink(name);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_eq(dup2(captured, STDERR_FILENO), STDERR_FILENO);
}

/* Puts stderr back; @text gets what was logged meanwhile. */
static void capture_end(char *text, size_t size)
{
	ssize_t n;

	fflush(stderr);
	ck_assert_int_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
	close(saved_stderr);
	n = pread(captured, text, size - 1, 0);
	ck_assert_int_ge(n, 0);
	text[n] = '\0';
	close(captured);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(fifo_without_reader_refused)
{
	char text[512];

	ck_assert_int_eq(mkfifo(path, 0600), 0);
	alarm(10); /* a blocking open() would wait for a reader forever */
	capture_start();
	ck_assert_int_eq(run_console_log_open(run, path), -ENXIO);
	capture_end(text, sizeof(text));
	alarm(0);
	ck_assert_int_eq(run->log_fd, -1);
	ck_assert_msg(strstr(text, path) && strstr(text, "a FIFO with no reader (ENXIO)"),
	              "unclear error: %s", text);
	ck_assert_ptr_eq(strchr(text, '\n'), text + strlen(text) - 1); /* one line */
}
END_TEST

/* A log on a FIFO whose reader, returned, keeps it open and never reads. */
static int log_to_fifo_never_read(void)
{
	int reader;

	ck_assert_int_eq(mkfifo(path, 0600), 0);
	reader = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(reader, 0);
	ck_assert_int_eq(run_console_log_open(run, path), 0);
	ck_assert_int_eq(run_console_log_start(run, &loop), 0);
	return reader;
}

/*
 * The reader keeps the FIFO open and never reads: the vCPU's writes all return at once, the
 * log drops what neither its buffer nor the pipe holds, the panic scan still sees the last line.
 * Once the reader goes, closing the log reports the drops in one line.
 */
START_TEST(fifo_reader_never_reads)
{
	static uint8_t chunk[CHUNK];
	char text[1024], want[128];
	int reader;
	double start;

	reader = log_to_fifo_never_read();
	memset(chunk, 'x', sizeof(chunk));
	chunk[sizeof(chunk) - 1] = '\n';
	alarm(30); /* a write() to the FIFO would block here for good */
	start = now();
	for (size_t done = 0; done < FIFO_FEED; done += CHUNK)
		ck_assert_uint_eq(run_console_write(run, chunk, CHUNK), CHUNK);
	ck_assert_uint_eq(run_console_write(run, (const uint8_t *)PANIC, strlen(PANIC)),
	                  strlen(PANIC));
	ck_assert_msg(now() - start < 20, "%.1f s for the writes", now() - start);
	ck_assert(run->panic_seen);
	/* Nothing more than the stream's buffer and the pipe (at most 1 MiB) was taken. */
	ck_assert_uint_ge(run->log_dropped, FIFO_FEED - OUT_STREAM_BUFFER - 1024 * 1024);
	ck_assert_uint_le(run->log_dropped, FIFO_FEED + strlen(PANIC));
	snprintf(want, sizeof(want), "--console-log: %llu bytes dropped (the reader was too slow)",
	         (unsigned long long)run->log_dropped);
	close(reader); /* the writer's EPIPE ends its wait */
	capture_start();
	run_console_log_close(run);
	capture_end(text, sizeof(text));
	alarm(0);
	ck_assert_msg(strstr(text, want), "no drop report in: %s", text);
	ck_assert_int_eq(run->log_fd, -1);
	run_console_log_close(run); /* twice: nothing */
}
END_TEST

/* A reader that keeps the FIFO open and never reads holds vmm's exit for 2 s, not for good. */
START_TEST(close_with_stalled_reader)
{
	static uint8_t chunk[CHUNK];
	char text[1024];
	uint64_t taken;
	int reader;
	double start;

	reader = log_to_fifo_never_read();
	memset(chunk, 'y', sizeof(chunk));
	for (size_t done = 0; done < 4 * OUT_STREAM_BUFFER; done += CHUNK)
		run_console_write(run, chunk, CHUNK);
	taken = 4 * OUT_STREAM_BUFFER - run->log_dropped;
	alarm(10);
	start = now();
	capture_start();
	run_console_log_close(run);
	capture_end(text, sizeof(text));
	alarm(0);
	ck_assert_msg(now() - start < 5, "%.1f s to close", now() - start);
	/* What the stream held but the pipe never took is counted as dropped too. */
	ck_assert_msg(strstr(text, "bytes dropped (the reader was too slow)"), "said: %s", text);
	ck_assert_msg(!strstr(text, "went away"), "said: %s", text);
	ck_assert_uint_gt(taken, 0);
	close(reader);
}
END_TEST

/*
 * A regular file always takes the bytes: 4 MiB in writes of 1 MiB (virtio-console's largest
 * batch, four times the stream's buffer) arrive whole, in order, and nothing is said.
 */
START_TEST(regular_file_gets_everything)
{
	static uint8_t data[OUT_STREAM_BUFFER * 16], back[sizeof(data) + 1];
	char text[256];
	int fd;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	ck_assert_int_eq(run_console_log_open(run, path), 0);
	ck_assert_int_eq(run_console_log_start(run, &loop), 0);
	for (size_t i = 0; i < sizeof(data); i += 1 << 20)
		run_console_write(run, data + i,
		                  i + (1 << 20) <= sizeof(data) ? 1 << 20 : sizeof(data) - i);
	capture_start();
	run_console_log_close(run);
	capture_end(text, sizeof(text));
	ck_assert_str_eq(text, "");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, back, sizeof(back)), sizeof(data));
	close(fd);
	ck_assert_int_eq(memcmp(back, data, sizeof(data)), 0);
	ck_assert_uint_eq(run->log_dropped, 0);
}
END_TEST

/* A character device is taken; a directory is refused with one line. */
START_TEST(kinds_of_file)
{
	char text[512];

	ck_assert_int_eq(run_console_log_open(run, "/dev/null"), 0);
	ck_assert_int_ge(run->log_fd, 0);
	run_console_log_close(run);
	capture_start();
	ck_assert_int_eq(run_console_log_open(run, dir), -EISDIR);
	capture_end(text, sizeof(text));
	ck_assert_msg(strstr(text, "--console-log ") && strstr(text, dir), "%s", text);
	ck_assert_int_eq(run->log_fd, -1);
}
END_TEST

static Suite *run_console_suite(void)
{
	Suite *s = suite_create("run_console");
	TCase *tc = tcase_create("console_log");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 50);
	tcase_add_test(tc, fifo_without_reader_refused);
	tcase_add_test(tc, fifo_reader_never_reads);
	tcase_add_test(tc, close_with_stalled_reader);
	tcase_add_test(tc, regular_file_gets_everything);
	tcase_add_test(tc, kinds_of_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(run_console_suite());
}
