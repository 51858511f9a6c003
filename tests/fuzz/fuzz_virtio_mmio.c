/*
 * libFuzzer target: the virtio-mmio transport's register file (devices/virtio/virtio_mmio.c)
 * through the MMIO bus, with the core (virtio.c) and the fuzz device of fake_virtio.c behind
 * it, over 64 KiB of guest RAM the input writes (fz_run_bus operations; the hook runs the
 * event loop's doorbell handler). No VM: vm_fd -1, so QueueNotify writes reach the transport on
 * the bus, which hands them to the loop, and interrupts go to a counting hook.
 */
#include <string.h>

#include "devices/virtio/virtio_mmio.h"
#include "tests/fuzz/fake_virtio.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/event_loop.h"
#include "vmm/log.h"

#define RAM  (64 * KIB)
#define BASE 0xd0000000ULL

static struct guest_memory mem;
static struct event_loop loop;
static struct bus mmio;
static struct fake_virtio fake;
static struct virtio_mmio t;
static unsigned irqs;

static void count_irq(void *opaque, int q)
{
	(void)opaque;
	(void)q;
	irqs++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_virtio_setup(&mem, RAM, &loop);
	return 0;
}

/*
 * Hook: the event loop's turn. Doorbell writes that reached the transport on the bus are handed
 * to the loop; this runs the loop's handler for them, as its thread would.
 */
static void run_loop(void *opaque, struct fz *f)
{
	(void)opaque;
	(void)f;
	fz_serve_doorbell(&t.doorbell);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The whole window, and a little past it (unclaimed). */
	const struct fz_window win = {&mmio, BASE, VIRTIO_MMIO_SIZE + 0x10, 8};
	const struct fz_bus b = {
	        .win = &win, .nr_win = 1, .mem = &mem, .mem_span = RAM, .hook = run_loop};
	struct fz f = fz_make(data, size);

	fz_memory_clear(&mem);
	bus_init(&mmio, "mmio");
	fake_virtio_init(&fake, &mem);
	fz_must(virtio_mmio_attach(&t, &fake.vdev, &mmio, BASE, -1, 5, &loop),
	        "virtio_mmio_attach");
	virtio_mmio_set_test_interrupt(&t, count_irq, NULL);
	fz_run_bus(&b, &f);
	run_loop(NULL, &f);
	virtio_mmio_detach(&t);
	virtio_dev_destroy(&fake.vdev);
	bus_free(&mmio);
	return 0;
}
