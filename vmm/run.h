/*
 * Test-run mode (--run CMD): the initramfs vmm generates in memory (run_initramfs.c), the four
 * virtio-console ports the init talks to vmm on (vmm.status, vmm.stdout, vmm.stderr, vmm.stdin),
 * the kernel's console kept out of stdout (in memory, and in --console-log), and the exit status.
 *
 * The status arrives only on the vmm.status port, which the init opens before anything else
 * runs in the guest and keeps open (Linux lets one process open a port), so no guest program
 * can report a status, or make vmm report 124 or 125.
 *
 * Threads: run_create and run_destroy on the main thread; the console log from any vCPU thread
 * (under its lock), which only hands --console-log's bytes to its out_stream (never a write(),
 * so a slow file or FIFO cannot stall a vCPU); ports and stdin on the event loop's thread; the
 * output streams' writer threads are out_stream's.
 */
#ifndef VMM_VMM_RUN_H
#define VMM_VMM_RUN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/console.h"
#include "vmm/boot_image.h"
#include "vmm/config.h"
#include "vmm/out_stream.h"
#include "vmm/run_ready.h"
#include "vmm/util.h"

struct vm;

enum run_port { RUN_PORT_STATUS, RUN_PORT_STDOUT, RUN_PORT_STDERR, RUN_PORT_STDIN, RUN_NR_PORTS };

#define RUN_LOG_TAIL  (16 * 1024) /* kernel console bytes kept for a failure report */
#define RUN_LINE_MAX  512         /* one status message */
#define RUN_TAIL_SHOW 30          /* lines of it printed when the run fails */

struct run {
	struct vm *vm;
	struct boot_image initrd; /* the generated initramfs (heap) */
	void *initrd_buf;
	struct virtio_console *console; /* the ports' device, once created */
	struct out_stream out[2];       /* stdout, stderr */
	bool streams_started;

	pthread_mutex_t log_lock; /* guards the console log */
	int log_fd;               /* --console-log, or -1 */
	struct out_stream log;    /* its writer; takes bytes once log_started */
	bool log_started;
	bool log_is_file;     /* a regular file always takes the bytes: wait for room, never drop */
	uint64_t log_dropped; /* bytes the log's buffer had no room for, dropped from the log */
	char tail[RUN_LOG_TAIL]; /* ring of the console's last bytes */
	size_t tail_pos;
	bool tail_wrapped;
	char line[160]; /* the console line being assembled, for the panic check */
	size_t line_len;
	bool panic_seen;

	/*
	 * After the exit status: the output the command queued before it is drained (a timer
	 * polls the stdout and stderr ports), then vmm stops the guest, which waits for that.
	 */
	struct event_source drain;
	bool drain_marked;

	/* The status port; event-loop thread. */
	char status_buf[RUN_LINE_MAX];
	size_t status_len;
	bool init_connected, init_ready, have_status, protocol_error;
	int status;
	char init_error[RUN_LINE_MAX];

	struct run_ready ready; /* --save-ready, and restores of its snapshots (run_ready.h) */
};

/*
 * Builds the initramfs for @vm->config (kernel modules resolved from the kernel image's
 * release; none when restoring a snapshot) and opens --console-log. One line on failure;
 * -errno.
 */
int run_create(struct vm *vm, struct run **out) MUST_CHECK;
void run_destroy(struct run *run);

/* The initramfs the arch loader boots instead of --initrd. */
const struct boot_image *run_initrd(const struct run *run);

/* The port layout for virtio_console_init_multiport; @ports has RUN_NR_PORTS entries. */
void run_console_ports(struct run *run, struct virtio_console *console,
                       struct virtio_console_port_config *ports);
/* Starts the stdout/stderr writer threads (event loop running). */
int run_start(struct run *run) MUST_CHECK;

/*
 * The kernel console's backend (the UART): kept in memory and handed to --console-log, never
 * blocking (what the log's buffer has no room for is dropped from the log only). Any thread.
 */
size_t run_console_write(void *run, const uint8_t *buf, size_t len);

/*
 * Opens @path as the console log (run_create does): a regular file (created or truncated), a
 * FIFO that has a reader or a character device, non-blocking. Refuses at once a FIFO without a
 * reader (-ENXIO) and any other kind of file (-EINVAL, or open()'s error). One line logged on
 * failure; -errno.
 */
int run_console_log_open(struct run *run, const char *path) MUST_CHECK;
/*
 * Starts the log's writer thread with @loop (run_start does, before the vCPUs run). Nothing to
 * do without a log. Returns 0 or -errno.
 */
int run_console_log_start(struct run *run, struct event_loop *loop) MUST_CHECK;
/*
 * Once the vCPUs stopped: writes out what the log's buffer holds (waiting for the reader, as for
 * vmm's stdout), closes the log and warns once about bytes dropped or a failed write
 * (run_destroy does). Safe without a log and twice.
 */
void run_console_log_close(struct run *run);

/* vmm's stdin, for the command: returns the bytes the port took; eof closes the port. */
size_t run_stdin(struct run *run, const uint8_t *buf, size_t len);
void run_stdin_eof(struct run *run);

/*
 * After the vCPUs stopped: delivers the output the guest queued, then returns the exit status
 * for how the VM stopped (@vm_status: 0 guest power-off or reset, EXIT_TIMEOUT, else a crash
 * (@crashed) or a vmm failure), printing what went wrong and the console's last lines on a
 * failure.
 */
int run_finish(struct run *run, int vm_status, bool crashed);

#endif
