/*
 * libFuzzer target: multiport virtio-console (devices/virtio/console.c and console_control.c):
 * the driver's control messages (DEVICE_READY, PORT_READY, PORT_OPEN, ...) and the device's
 * replies, with port data on the side. Three ports (a console and two named ones) over 64 KiB of
 * guest RAM; queue q's ring at 0x800 * q, data above 0x8000. The input: le64 driver features,
 * 8 bytes of queue size (log2, modulo 7), then fz_run_bus operations: RAM writes and hooks (a
 * byte, modulo 7): 0 notify a queue (a byte), 1 host input on a port (port byte, length byte,
 * bytes), 2 a port writable again (a byte), 3 host connect or disconnect (port byte, then bit
 * 0 of a byte), 4 the backends take at most N bytes per write (a byte), 5 the loop runs the
 * work the device posted at its batch limit, 6 reset and bring up again.
 */
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/console.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define RAM      (64 * KIB)
#define NR_PORTS 3
#define NR_Q     (2 * (NR_PORTS + 1))

static struct guest_memory mem;
static struct event_loop loop;
static struct virtio_console con;
static uint16_t qsize[NR_Q];
static uint64_t features;
static size_t accept;
static uint64_t written;

static size_t port_write(void *opaque, const uint8_t *buf, size_t len)
{
	size_t n = len < accept ? len : accept;

	(void)opaque;
	for (size_t i = 0; i < n; i++) /* every byte handed over: ASan checks the range */
		written += buf[i];
	return n;
}

static void rx_space(void *opaque)
{
	(void)opaque;
}

static void guest_open(void *opaque, bool open)
{
	(void)opaque;
	written += open;
}

static void count_interrupt(void *opaque, int q)
{
	(void)opaque;
	(void)q;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_virtio_setup(&mem, RAM, &loop);
	return 0;
}

/* What a driver does: negotiate, place every ring (queue q's at 0x800 * q), DRIVER_OK. */
static void driver_up(void)
{
	fz_virtio_driver_up(&con.vdev, features, qsize, NR_Q, 0, 0x800);
}

static void hook(void *opaque, struct fz *f)
{
	uint8_t buf[255];
	unsigned port;
	size_t n;

	(void)opaque;
	switch (fz_u8(f) % 7) {
	case 0:
		con.vdev.ops->queue_notify(&con.vdev, fz_u8(f) % NR_Q);
		break;
	case 1:
		port = fz_u8(f) % (NR_PORTS + 1); /* one past the last: must be refused */
		n = fz_bytes(f, buf, fz_u8(f));
		(void)virtio_console_port_receive(&con, port, buf, n);
		break;
	case 2:
		virtio_console_port_writable(&con, fz_u8(f) % NR_PORTS);
		break;
	case 3:
		port = fz_u8(f) % NR_PORTS;
		virtio_console_port_set_host_connected(&con, port, fz_u8(f) & 1);
		break;
	case 4:
		accept = fz_u8(f);
		break;
	case 5: /* the loop's turn: the work the device posted at its batch limit */
		if (con.resume_work.queued) {
			event_loop_cancel(&loop, &con.resume_work);
			con.resume_work.fn(con.resume_work.opaque);
		}
		break;
	default:
		driver_up();
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct virtio_console_backend be = {port_write, rx_space, guest_open, NULL};
	const struct virtio_console_port_config ports[NR_PORTS] = {
	        {.name = NULL, .is_console = true, .backend = be},
	        {.name = "org.vmm.run", .backend = be},
	        {.name = "x", .backend = be},
	};
	const struct fz_bus b = {.mem = &mem, .mem_span = RAM, .hook = hook};
	struct fz f = fz_make(data, size);

	fz_memory_clear(&mem);
	features = fz_u64(&f);
	for (unsigned q = 0; q < NR_Q; q++)
		qsize[q] = (uint16_t)(1u << fz_u8(&f) % 7);
	accept = SIZE_MAX;
	virtio_console_init_multiport(&con, &mem, ports, NR_PORTS);
	virtio_console_set_loop(&con, &loop);
	con.vdev.transport = (struct virtio_transport){count_interrupt, NULL};
	driver_up();
	fz_run_bus(&b, &f);
	virtio_console_destroy(&con);
	return 0;
}
