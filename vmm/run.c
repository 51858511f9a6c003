#include "vmm/run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "vmm/initramfs.h"
#include "vmm/log.h"
#include "vmm/run_initramfs.h"
#include "vmm/vm.h"

#define PANIC_MARK    "Kernel panic - not syncing"
#define DRAIN_POLL_NS 2000000 /* how often the drain after the exit status looks */
/* How long a FIFO or device --console-log's reader gets, at exit, to take the rest. */
#define RUN_LOG_CLOSE_MS 2000

static const char *const port_names[RUN_NR_PORTS] = {
        [RUN_PORT_STATUS] = "vmm.status",
        [RUN_PORT_STDOUT] = "vmm.stdout",
        [RUN_PORT_STDERR] = "vmm.stderr",
        [RUN_PORT_STDIN] = "vmm.stdin",
};

int run_create(struct vm *vm, struct run **out)
{
	const struct vm_config *cfg = vm->config;
	struct run *run = calloc(1, sizeof(*run));
	struct cpio c;
	int ret;

	if (!run)
		return -ENOMEM;
	run->vm = vm;
	run->log_fd = -1;
	run->drain.fd = -1;
	pthread_mutex_init(&run->log_lock, NULL);
	*out = run;
	ret = run_ready_init(run);
	if (ret)
		return ret;
	if (!vm->restore) { /* a restored guest has booted its initramfs long ago */
		ret = run_build_initramfs(&c, cfg, &vm->shares);
		if (ret) {
			cpio_free(&c);
			return ret;
		}
		run->initrd_buf = c.buf;
		run->initrd = (struct boot_image){c.buf, c.len};
	}
	return cfg->console_log ? run_console_log_open(run, cfg->console_log) : 0;
}

void run_destroy(struct run *run)
{
	if (!run)
		return;
	if (run->streams_started) {
		out_stream_close(&run->out[0]);
		out_stream_close(&run->out[1]);
	}
	run_console_log_close(run);
	run_ready_destroy(run);
	if (run->drain.fd >= 0)
		close(run->drain.fd);
	free(run->initrd_buf);
	pthread_mutex_destroy(&run->log_lock);
	free(run);
}

const struct boot_image *run_initrd(const struct run *run)
{
	return &run->initrd;
}

/* ---- the kernel's console --------------------------------------------------------------- */

/* Under log_lock: assembles lines to spot a panic. */
static void scan_line(struct run *run, uint8_t c)
{
	if (c == '\n' || run->line_len == sizeof(run->line) - 1) {
		run->line[run->line_len] = '\0';
		if (strstr(run->line, PANIC_MARK))
			run->panic_seen = true;
		run->line_len = 0;
	}
	if (c != '\n' && c != '\r')
		run->line[run->line_len++] = (char)c;
}

size_t run_console_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct run *run = opaque;

	pthread_mutex_lock(&run->log_lock);
	if (run->log_started && run->log_is_file)
		out_stream_take_all(&run->log, buf, len);
	else if (run->log_started)
		run->log_dropped += len - out_stream_take(&run->log, buf, len);
	for (size_t i = 0; i < len; i++) {
		run->tail[run->tail_pos++] = (char)buf[i];
		if (run->tail_pos == sizeof(run->tail)) {
			run->tail_pos = 0;
			run->tail_wrapped = true;
		}
		scan_line(run, buf[i]);
	}
	pthread_mutex_unlock(&run->log_lock);
	return len;
}

int run_console_log_open(struct run *run, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644);
	struct stat st;
	int err;

	if (fd < 0) {
		err = errno;
		/* Non-blocking, open() of a FIFO nobody reads fails at once instead of waiting. */
		if (err == ENXIO && stat(path, &st) == 0 && S_ISFIFO(st.st_mode))
			log_error(
			        "--console-log %s: a FIFO with no reader (ENXIO); start its reader "
			        "first",
			        path);
		else
			log_error("--console-log %s: %s", path, strerror(err));
		return -err;
	}
	err = fstat(fd, &st) < 0 ? errno : 0;
	if (!err && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
		err = EINVAL;
	if (err) {
		log_error("--console-log %s: %s", path,
		          err == EINVAL ? "not a regular file, FIFO or character device"
		                        : strerror(err));
		close(fd);
		return -err;
	}
	run->log_fd = fd;
	run->log_is_file = S_ISREG(st.st_mode);
	return 0;
}

/* The log's buffer has room again after a refusal (on the loop): what did not fit is lost. */
static void log_space(void *opaque)
{
	struct run *run = opaque;
	uint64_t dropped;

	pthread_mutex_lock(&run->log_lock);
	dropped = run->log_dropped;
	pthread_mutex_unlock(&run->log_lock);
	log_debug("--console-log: the reader caught up; %llu bytes dropped so far",
	          (unsigned long long)dropped);
}

int run_console_log_start(struct run *run, struct event_loop *loop)
{
	int ret;

	if (run->log_fd < 0)
		return 0;
	ret = out_stream_init(&run->log, run->log_fd, loop, log_space, run);
	pthread_mutex_lock(&run->log_lock);
	run->log_started = ret == 0;
	pthread_mutex_unlock(&run->log_lock);
	return ret;
}

void run_console_log_close(struct run *run)
{
	uint64_t dropped;

	if (run->log_fd < 0)
		return;
	pthread_mutex_lock(&run->log_lock);
	run->log_started = false;
	dropped = run->log_dropped;
	pthread_mutex_unlock(&run->log_lock);
	/* A file drains; a FIFO's reader that stopped reading must not hold vmm's exit. */
	if (run->log_is_file)
		out_stream_close(&run->log);
	else
		dropped += out_stream_close_within(&run->log, RUN_LOG_CLOSE_MS);
	close(run->log_fd);
	run->log_fd = -1;
	if (dropped)
		log_warn("--console-log: %llu bytes dropped (the reader was too slow)",
		         (unsigned long long)dropped);
	if (run->log.broken && !run->log.abandoned)
		log_warn("--console-log: a write failed or the reader went away; the rest of the "
		         "log was dropped");
}

/* Prints the console's last RUN_TAIL_SHOW lines to stderr. */
static void show_console_tail(struct run *run)
{
	char text[RUN_LOG_TAIL + 1];
	size_t len = 0;
	char *start;
	unsigned lines = 0;

	pthread_mutex_lock(&run->log_lock);
	if (run->tail_wrapped) {
		len = sizeof(run->tail) - run->tail_pos;
		memcpy(text, run->tail + run->tail_pos, len);
	}
	memcpy(text + len, run->tail, run->tail_pos);
	len += run->tail_pos;
	pthread_mutex_unlock(&run->log_lock);
	text[len] = '\0';
	while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	if (!len)
		return;
	start = text + len;
	while (start > text && lines < RUN_TAIL_SHOW) {
		start--;
		if (*start == '\n' && ++lines == RUN_TAIL_SHOW)
			start++;
	}
	/* A panic's own line comes first, however long its trace (up to the buffer's size). */
	if (run->panic_seen) {
		char *panic = strstr(text, PANIC_MARK), *next;

		while (panic && (next = strstr(panic + 1, PANIC_MARK)))
			panic = next;
		while (panic && panic > text && panic[-1] != '\n')
			panic--;
		if (panic && panic < start)
			start = panic;
	}
	fprintf(stderr, "vmm: the guest kernel's last messages:\n%s\n", start);
}

/* ---- the ports -------------------------------------------------------------------------- */

/*
 * The drain's timer: hands the ports' pending output to the streams; once all the command
 * queued before its exit status is out of the guest, ends the VM (the init waits for that,
 * since powering off could lose what vmm has not taken yet).
 */
static void on_drain(void *opaque, uint32_t events)
{
	struct run *run = opaque;
	uint64_t ticks;

	(void)events;
	if (read(run->drain.fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_debug("--run: drain timer: %s", strerror(errno));
	if (!run->drain_marked) {
		virtio_console_port_mark_tx(run->console, RUN_PORT_STDOUT);
		virtio_console_port_mark_tx(run->console, RUN_PORT_STDERR);
		run->drain_marked = true;
	}
	virtio_console_port_writable(run->console, RUN_PORT_STDOUT);
	virtio_console_port_writable(run->console, RUN_PORT_STDERR);
	if (virtio_console_port_tx_done_to_mark(run->console, RUN_PORT_STDOUT) &&
	    virtio_console_port_tx_done_to_mark(run->console, RUN_PORT_STDERR)) {
		timerfd_settime(run->drain.fd, 0, &(struct itimerspec){0}, NULL);
		vm_request_stop(run->vm, 0, NULL);
	}
}

/* Called under the console's lock (from status_write): only arms the timer. */
static void start_drain(struct run *run)
{
	const struct itimerspec every = {.it_interval.tv_nsec = DRAIN_POLL_NS,
	                                 .it_value.tv_nsec = 1};

	if (run->drain.fd < 0 || timerfd_settime(run->drain.fd, 0, &every, NULL) < 0) {
		log_warn("--run: cannot wait for the command's output: %s", strerror(errno));
		vm_request_stop(run->vm, 0, NULL);
	}
}

static void handle_status_line(struct run *run, char *line)
{
	char *end;
	long value;

	log_debug("--run: the init says '%s'", line);
	if (!strcmp(line, "ready")) {
		run->init_ready = true;
	} else if (!strcmp(line, "waiting")) {
		if (!run_ready_waiting(run))
			run->protocol_error = true;
	} else if (!strncmp(line, "exit ", 5) && !run->have_status) {
		errno = 0;
		value = strtol(line + 5, &end, 10);
		if (errno || *end || end == line + 5 || value < 0 || value > 255) {
			run->protocol_error = true;
			return;
		}
		run->status = (int)value;
		run->have_status = true;
		start_drain(run);
	} else if (!strncmp(line, "error ", 6) && !run->init_error[0]) {
		snprintf(run->init_error, sizeof(run->init_error), "%s", line + 6);
		vm_request_stop(run->vm, 0, NULL); /* the init waits for it */
	} else {
		run->protocol_error = true;
	}
}

static size_t status_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct run *run = opaque;

	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n') {
			if (run->status_len < sizeof(run->status_buf) - 1)
				run->status_buf[run->status_len++] = (char)buf[i];
			else
				run->protocol_error = true;
			continue;
		}
		run->status_buf[run->status_len] = '\0';
		handle_status_line(run, run->status_buf);
		run->status_len = 0;
	}
	return len;
}

static void status_open(void *opaque, bool open)
{
	struct run *run = opaque;

	if (open)
		run->init_connected = true;
}

static size_t stdout_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct run *run = opaque;

	return out_stream_take(&run->out[0], buf, len);
}

static size_t stderr_write(void *opaque, const uint8_t *buf, size_t len)
{
	struct run *run = opaque;

	return out_stream_take(&run->out[1], buf, len);
}

static size_t drop_write(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	return len;
}

static void stdout_space(void *opaque)
{
	struct run *run = opaque;

	virtio_console_port_writable(run->console, RUN_PORT_STDOUT);
}

static void stderr_space(void *opaque)
{
	struct run *run = opaque;

	virtio_console_port_writable(run->console, RUN_PORT_STDERR);
}

static void stdin_space(void *opaque)
{
	struct run *run = opaque;

	chardev_input_space(&run->vm->console);
}

void run_console_ports(struct run *run, struct virtio_console *console,
                       struct virtio_console_port_config *ports)
{
	run->console = console;
	for (unsigned i = 0; i < RUN_NR_PORTS; i++)
		ports[i] = (struct virtio_console_port_config){.name = port_names[i]};
	ports[RUN_PORT_STATUS].backend = (struct virtio_console_backend){
	        .write = status_write, .rx_space = run_ready_rx_space, .guest_open = status_open};
	ports[RUN_PORT_STDOUT].backend = (struct virtio_console_backend){.write = stdout_write};
	ports[RUN_PORT_STDERR].backend = (struct virtio_console_backend){.write = stderr_write};
	ports[RUN_PORT_STDIN].backend =
	        (struct virtio_console_backend){.write = drop_write, .rx_space = stdin_space};
	for (unsigned i = 0; i < RUN_NR_PORTS; i++)
		ports[i].backend.opaque = run;
}

int run_start(struct run *run)
{
	int ret = out_stream_init(&run->out[0], STDOUT_FILENO, &run->vm->loop, stdout_space, run);

	run->drain = (struct event_source){.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC),
	                                   .handler = on_drain,
	                                   .opaque = run};
	if (!ret)
		ret = run->drain.fd < 0 ? -errno
		                        : event_loop_add(&run->vm->loop, &run->drain, EPOLLIN);
	if (!ret)
		ret = out_stream_init(&run->out[1], STDERR_FILENO, &run->vm->loop, stderr_space,
		                      run);
	run->streams_started = true;
	if (!ret)
		ret = run_console_log_start(run, &run->vm->loop);
	if (!ret)
		run_ready_start(run);
	return ret;
}

size_t run_stdin(struct run *run, const uint8_t *buf, size_t len)
{
	return virtio_console_port_receive(run->console, RUN_PORT_STDIN, buf, len);
}

void run_stdin_eof(struct run *run)
{
	virtio_console_port_set_host_connected(run->console, RUN_PORT_STDIN, false);
}

/* ---- the outcome ------------------------------------------------------------------------ */

int run_finish(struct run *run, int vm_status, bool crashed)
{
	log_debug("--run: the VM stopped (status %d%s); the init %s", vm_status,
	          crashed ? ", a crash" : "", run->have_status ? "reported" : "did not report");
	if (run->console) {
		out_stream_set_blocking(&run->out[0]);
		out_stream_set_blocking(&run->out[1]);
		virtio_console_flush(run->console);
	}
	if (run->streams_started) {
		out_stream_close(&run->out[0]);
		out_stream_close(&run->out[1]);
		run->streams_started = false;
	}
	if (vm_status == 0 && run->have_status)
		return run->status;
	if (vm_status == 0 && run->ready.saved)
		return 0;
	if (vm_status == EXIT_TIMEOUT) {
		show_console_tail(run);
		return EXIT_TIMEOUT;
	}
	if (run->panic_seen || crashed) {
		fprintf(stderr, "vmm: the guest kernel %s before the command ended\n",
		        run->panic_seen ? "panicked" : "crashed");
		show_console_tail(run);
		return EXIT_RUN_PANIC;
	}
	if (vm_status != 0) {
		show_console_tail(run);
		return EXIT_RUN_CANNOT;
	}
	if (run->init_error[0]) {
		fprintf(stderr, "vmm: --run: the guest's init failed: %s\n", run->init_error);
		show_console_tail(run);
		return EXIT_RUN_CANNOT;
	}
	if (!run->init_connected || run->protocol_error) {
		fprintf(stderr,
		        "vmm: --run: the guest's init %s (are virtio_console and virtiofs in this "
		        "kernel or its modules?)\n",
		        run->protocol_error ? "spoke garbage on its status port"
		                            : "never opened its status port");
		show_console_tail(run);
		return EXIT_RUN_CANNOT;
	}
	fprintf(stderr, "vmm: the guest stopped before the command ended\n");
	show_console_tail(run);
	return EXIT_RUN_PANIC;
}
