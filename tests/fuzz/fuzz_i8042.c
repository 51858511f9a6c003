/*
 * libFuzzer target: the i8042 keyboard controller (devices/i8042.c) at ports 0x60 and 0x64
 * through the bus, as a guest's port I/O reaches them. The reset callback only counts.
 */
#include "devices/i8042.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"

static struct bus pio;
static struct i8042 kbc;
static unsigned resets;

static void on_reset(void *opaque)
{
	(void)opaque;
	resets++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	bus_init(&pio, "pio");
	fz_must(bus_register(&pio, 0x60, 1, &i8042_data_ops, &kbc, "i8042 data"), "bus");
	fz_must(bus_register(&pio, 0x64, 1, &i8042_cmd_ops, &kbc, "i8042 cmd"), "bus");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* 0x60-0x67: both ports and the unclaimed ones around them. */
	const struct fz_window win = {&pio, 0x60, 8, 4};
	const struct fz_bus b = {.win = &win, .nr_win = 1};
	struct fz f = fz_make(data, size);

	i8042_init(&kbc, on_reset, NULL);
	fz_run_bus(&b, &f);
	i8042_destroy(&kbc);
	return 0;
}
