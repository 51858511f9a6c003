/*
 * The hardware-reduced ACPI power-management registers (ACPI 6.5, 4.8.3.7 and 4.8.4.4): a
 * sleep control register at offset 0 (writing SLP_EN with the soft-off SLP_TYP powers off), a
 * sleep status register at offset 1 (reads 0: nothing ever wakes from soft-off) and a reset
 * register at offset 2 (writing the reset value resets). The arch places the three bytes and
 * names them in its FADT.
 */
#ifndef VMM_DEVICES_ACPI_PM_H
#define VMM_DEVICES_ACPI_PM_H

#include <stdint.h>

#include "vmm/bus.h"

#define ACPI_PM_SLEEP_CONTROL 0
#define ACPI_PM_SLEEP_STATUS  1
#define ACPI_PM_RESET         2
#define ACPI_PM_SIZE          3

#define ACPI_SLP_EN        (1u << 5)
#define ACPI_SLP_TYP_SHIFT 2
#define ACPI_SLP_TYP_MASK  (7u << ACPI_SLP_TYP_SHIFT)

struct acpi_pm {
	uint8_t soft_off_type; /* SLP_TYP of \_S5 */
	uint8_t reset_value;
	void (*poweroff)(void *opaque);
	void (*reset)(void *opaque);
	void *opaque;
};

/* Register with length ACPI_PM_SIZE, opaque = struct acpi_pm. */
extern const struct bus_ops acpi_pm_ops;

#endif
