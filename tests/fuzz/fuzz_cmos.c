/*
 * libFuzzer target: the CMOS/RTC (devices/cmos.c) at ports 0x70-0x71 through the bus, as a
 * guest's port I/O reaches it. The clock is the host's, so an input's reads of the time
 * registers differ from run to run; the paths taken do not depend on it.
 */
#include "devices/cmos.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"

static struct bus pio;
static struct cmos cmos;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	bus_init(&pio, "pio");
	fz_must(bus_register(&pio, 0x70, 2, &cmos_bus_ops, &cmos, "cmos"), "bus");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fz_window win = {&pio, 0x70, 2, 4};
	const struct fz_bus b = {.win = &win, .nr_win = 1};
	struct fz f = fz_make(data, size);

	cmos_init(&cmos);
	fz_run_bus(&b, &f);
	cmos_destroy(&cmos);
	return 0;
}
