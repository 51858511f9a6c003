#include "devices/acpi_pm.h"

#include <string.h>

#include "vmm/log.h"

void acpi_pm_init(struct acpi_pm *pm, uint8_t soft_off_type, uint8_t reset_value,
                  void (*poweroff)(void *opaque), void (*reset)(void *opaque), void *opaque)
{
	*pm = (struct acpi_pm){.soft_off_type = soft_off_type,
	                       .reset_value = reset_value,
	                       .poweroff = poweroff,
	                       .reset = reset,
	                       .opaque = opaque};
}

/* Every register reads 0: SLP_EN is write-only, WAK_STS is never set, RESET is write-only. */
static int acpi_pm_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	(void)opaque;
	(void)offset;
	memset(data, 0, size);
	return 0;
}

static void sleep_control(const struct acpi_pm *pm, uint8_t value)
{
	unsigned type = (value & ACPI_SLP_TYP_MASK) >> ACPI_SLP_TYP_SHIFT;

	if (!(value & ACPI_SLP_EN))
		return;
	if (type == pm->soft_off_type)
		pm->poweroff(pm->opaque);
	else
		log_ratelimited(LOG_WARN, "acpi-pm: sleep type %u ignored (only soft-off, %u)",
		                type, pm->soft_off_type);
}

static int acpi_pm_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	const struct acpi_pm *pm = opaque;
	uint8_t value;

	if (size != 1) {
		log_ratelimited(LOG_DEBUG, "acpi-pm: %u-byte write at offset %llu ignored", size,
		                (unsigned long long)offset);
		return 0;
	}
	value = *(const uint8_t *)data;
	if (offset == ACPI_PM_SLEEP_CONTROL)
		sleep_control(pm, value);
	else if (offset == ACPI_PM_RESET && value == pm->reset_value)
		pm->reset(pm->opaque);
	return 0;
}

const struct bus_ops acpi_pm_ops = {
        .read = acpi_pm_read,
        .write = acpi_pm_write,
};
