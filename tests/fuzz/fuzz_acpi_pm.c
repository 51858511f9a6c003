/*
 * libFuzzer target: the ACPI PM registers (devices/acpi_pm.c: sleep control and status, reset)
 * through the bus, as a guest's port I/O reaches them. Power-off and reset only count.
 */
#include "devices/acpi_pm.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"

#define PORT 0x600

static struct bus pio;
static struct acpi_pm pm;
static unsigned calls;

static void count(void *opaque)
{
	(void)opaque;
	calls++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	bus_init(&pio, "pio");
	fz_must(bus_register(&pio, PORT, ACPI_PM_SIZE, &acpi_pm_ops, &pm, "acpi pm"), "bus");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fz_window win = {&pio, PORT, 4, 4};
	const struct fz_bus b = {.win = &win, .nr_win = 1};
	struct fz f = fz_make(data, size);

	acpi_pm_init(&pm, 5, 0x01, count, count, NULL);
	fz_run_bus(&b, &f);
	return 0;
}
