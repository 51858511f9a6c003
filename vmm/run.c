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

#include "guest-firmware/init/init_blob.h"
#include "vmm/initramfs.h"
#include "vmm/kmod.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define PANIC_MARK    "Kernel panic - not syncing"
#define DRAIN_POLL_NS 2000000 /* how often the drain after the exit status looks */

static const char *const port_names[RUN_NR_PORTS] = {
        [RUN_PORT_STATUS] = "vmm.status",
        [RUN_PORT_STDOUT] = "vmm.stdout",
        [RUN_PORT_STDERR] = "vmm.stderr",
        [RUN_PORT_STDIN] = "vmm.stdin",
};

/* ---- the initramfs ---------------------------------------------------------------------- */

/* Reads the whole file @path into a malloc'ed buffer. */
static int read_file(const char *path, uint8_t **data, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), ret = 0;
	size_t done = 0;

	*data = NULL;
	if (fd < 0 || fstat(fd, &st) < 0)
		ret = -errno;
	else if (!S_ISREG(st.st_mode))
		ret = -EINVAL;
	else if (!(*data = malloc((size_t)st.st_size + 1)))
		ret = -ENOMEM;
	while (!ret && done < (size_t)st.st_size) {
		ssize_t n = read(fd, *data + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			ret = n < 0 ? -errno : -EIO; /* truncated while reading */
		else
			done += (size_t)n;
	}
	if (fd >= 0)
		close(fd);
	if (ret) {
		free(*data);
		*data = NULL;
	}
	*len = done;
	return ret;
}

static bool has_modules_dep(const char *dir)
{
	char path[PATH_MAX];

	return (size_t)snprintf(path, sizeof(path), "%s/modules.dep", dir) < sizeof(path) &&
	       access(path, R_OK) == 0;
}

/*
 * The module tree to take modules from: --modules (itself, or a modules_install output holding
 * lib/modules/RELEASE), else /lib/modules/RELEASE; "" when there is none (the kernel must then
 * have what it needs built in).
 */
static int find_module_dir(const struct vm_config *cfg, const char *release, char *dir, size_t len)
{
	dir[0] = '\0';
	if (cfg->modules_dir) {
		if (has_modules_dep(cfg->modules_dir)) {
			snprintf(dir, len, "%s", cfg->modules_dir);
			return 0;
		}
		if (release[0]) {
			snprintf(dir, len, "%s/lib/modules/%s", cfg->modules_dir, release);
			if (has_modules_dep(dir))
				return 0;
		}
		log_error("--modules %s: no modules.dep there%s%s (run depmod, or give the "
		          "kernel's module tree)",
		          cfg->modules_dir, release[0] ? " nor in lib/modules/" : "", release);
		return -ENOENT;
	}
	if (release[0]) {
		snprintf(dir, len, "/lib/modules/%s", release);
		if (has_modules_dep(dir))
			return 0;
		log_info("--run: no /lib/modules/%s: the kernel must have its virtio drivers, "
		         "virtiofs and overlay built in (or give --modules DIR)",
		         release);
	} else {
		log_info("--run: the kernel image names no release: no modules are added");
	}
	dir[0] = '\0';
	return 0;
}

/* Adds the modules the init needs, and /vmm/modules listing them in load order. */
static int add_modules(struct cpio *c, const struct vm_config *cfg, const struct boot_image *kernel)
{
	const char *names[] = {cfg->transport == TRANSPORT_PCI ? "virtio_pci" : "virtio_mmio",
	                       "virtio_console", "virtiofs", "overlay"};
	char release[256], dir[PATH_MAX], err[512], path[PATH_MAX + 64];
	struct kmod_list list = {0};
	char *listing = NULL;
	size_t listing_len = 0;
	FILE *listing_f;
	int ret;

	if (kmod_kernel_release(kernel->data, kernel->size, release, sizeof(release)))
		release[0] = '\0';
	ret = find_module_dir(cfg, release, dir, sizeof(dir));
	if (ret)
		return ret;
	if (dir[0]) {
		ret = kmod_resolve(dir, names, ARRAY_SIZE(names), &list, err, sizeof(err));
		if (ret) {
			log_error("--run: %s", err);
			return ret;
		}
	}
	listing_f = open_memstream(&listing, &listing_len);
	if (!listing_f)
		ret = -ENOMEM;
	for (unsigned i = 0; !ret && i < list.nr; i++) {
		const char *base = strrchr(list.paths[i], '/');
		uint8_t *data;
		size_t len;

		base = base ? base + 1 : list.paths[i];
		snprintf(path, sizeof(path), "%s/%s", dir, list.paths[i]);
		ret = read_file(path, &data, &len);
		if (ret) {
			log_error("--run: module %s: %s", path, strerror(-ret));
			break;
		}
		snprintf(path, sizeof(path), "vmm/ko/%s", base);
		cpio_add_file(c, path, 0644, data, len);
		fprintf(listing_f, "/%s\n", path);
		free(data);
	}
	if (listing_f && fclose(listing_f) && !ret)
		ret = -ENOMEM;
	if (!ret)
		cpio_add_file(c, "vmm/modules", 0644, listing, listing_len);
	free(listing);
	kmod_list_free(&list);
	return ret;
}

/* /vmm/mounts: TAG, GUESTDIR, ro|rw, NUL-terminated, for each share (the root first). */
static int add_mounts(struct cpio *c, const struct shares *shares)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return -ENOMEM;
	for (unsigned i = 0; i < shares->nr; i++) {
		const struct share *sh = &shares->items[i];

		fprintf(f, "%s%c%s%c%s%c", sh->tag, 0, sh->guest, 0, sh->read_only ? "ro" : "rw",
		        0);
	}
	if (fclose(f)) {
		free(text);
		return -ENOMEM;
	}
	cpio_add_file(c, "vmm/mounts", 0644, text, len);
	free(text);
	return 0;
}

static int build_initramfs(struct run *run, const struct boot_image *kernel)
{
	const struct vm_config *cfg = run->vm->config;
	static const char *const dirs[] = {"dev", "proc", "sys", "newroot", "rw", "vmm", "vmm/ko"};
	const char *term = getenv("TERM");
	char cwd[PATH_MAX];
	struct cpio c;
	int ret;

	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "/");
	if (!term || !*term || strlen(term) > 64 ||
	    strspn(term, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") !=
	            strlen(term))
		term = "linux"; /* the init takes only a plain terminal name */
	cpio_init(&c);
	for (unsigned i = 0; i < ARRAY_SIZE(dirs); i++)
		cpio_add_dir(&c, dirs[i], 0755);
	cpio_add_chardev(&c, "dev/console", 0600, 5, 1);
	cpio_add_file(&c, "init", 0755, vmm_init_binary, vmm_init_binary_size);
	cpio_add_file(&c, "vmm/cmd", 0644, cfg->run_cmd, strlen(cfg->run_cmd));
	cpio_add_file(&c, "vmm/cwd", 0644, cwd, strlen(cwd));
	cpio_add_file(&c, "vmm/term", 0644, term, strlen(term));
	ret = add_mounts(&c, &run->vm->shares);
	if (!ret)
		ret = add_modules(&c, cfg, kernel);
	if (!ret)
		ret = cpio_finish(&c);
	if (ret) {
		if (ret == -ENOMEM || ret == -EINVAL)
			log_error("--run: cannot build the initramfs: %s", strerror(-ret));
		cpio_free(&c);
		return ret;
	}
	run->initrd_buf = c.buf;
	run->initrd = (struct boot_image){c.buf, c.len};
	return 0;
}

int run_create(struct vm *vm, struct run **out)
{
	const struct vm_config *cfg = vm->config;
	struct boot_image kernel;
	struct run *run = calloc(1, sizeof(*run));
	int ret;

	if (!run)
		return -ENOMEM;
	run->vm = vm;
	run->log_fd = -1;
	run->drain.fd = -1;
	pthread_mutex_init(&run->log_lock, NULL);
	*out = run;
	ret = boot_image_map("kernel", cfg->kernel_path, &kernel);
	if (ret)
		return ret;
	ret = build_initramfs(run, &kernel);
	boot_image_unmap(&kernel);
	if (ret)
		return ret;
	if (cfg->console_log) {
		run->log_fd =
		        open(cfg->console_log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (run->log_fd < 0) {
			log_error("--console-log %s: %s", cfg->console_log, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

void run_destroy(struct run *run)
{
	if (!run)
		return;
	if (run->streams_started) {
		out_stream_close(&run->out[0]);
		out_stream_close(&run->out[1]);
	}
	if (run->log_fd >= 0)
		close(run->log_fd);
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
	if (run->log_fd >= 0 && write(run->log_fd, buf, len) < 0) {
		log_warn("--console-log: %s; not written further", strerror(errno));
		close(run->log_fd);
		run->log_fd = -1;
	}
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
	ports[RUN_PORT_STATUS].backend =
	        (struct virtio_console_backend){.write = status_write, .guest_open = status_open};
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
