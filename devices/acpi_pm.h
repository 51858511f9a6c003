/*
 * The hardware-reduced ACPI power-management registers (ACPI 6.5, 4.8.3.7 and 4.8.3.6), three
 * byte registers the arch places in its I/O space and names in its FADT:
 * - offset 0, sleep control: a write with SLP_EN (bit 5) and SLP_TYP (bits 2-4) equal to the
 *   soft-off type (\_S5's) powers off; other sleep types are logged and ignored.
 * - offset 1, sleep status: reads 0, writes are ignored. WAK_STS never gets set because the
 *   only sleep state offered is soft-off, from which nothing wakes.
 * - offset 2, reset: writing the reset value resets the machine; other values are ignored.
 * Other access sizes than one byte are ignored (reads see zeros): the FADT declares 8-bit
 * registers. The device holds no mutable state, so it needs no lock; the callbacks run on the
 * vCPU thread that made the access.
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
	uint8_t soft_off_type; /* SLP_TYP of \_S5, 0-7 */
	uint8_t reset_value;   /* RESET_VALUE of the FADT */
	void (*poweroff)(void *opaque);
	void (*reset)(void *opaque);
	void *opaque;
};

/*
 * Sets up @pm: @poweroff(@opaque) runs when the guest enters soft-off (@soft_off_type),
 * @reset(@opaque) when it writes @reset_value to the reset register.
 */
void acpi_pm_init(struct acpi_pm *pm, uint8_t soft_off_type, uint8_t reset_value,
                  void (*poweroff)(void *opaque), void (*reset)(void *opaque), void *opaque);

/* Register with length ACPI_PM_SIZE, opaque = struct acpi_pm. Accesses are guest-controlled. */
extern const struct bus_ops acpi_pm_ops;

#endif
