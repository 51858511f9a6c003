#include "devices/acpi_pm.h"

#include <errno.h>
#include <string.h>

#include "vmm/log.h"

static int acpi_pm_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	(void)opaque;
	(void)offset;
	memset(data, 0, size);
	return 0;
}

static int acpi_pm_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	const struct acpi_pm *pm = opaque;
	uint8_t value = *(const uint8_t *)data;
	unsigned type;

	if (size != 1)
		return 0;
	switch (offset) {
	case ACPI_PM_SLEEP_CONTROL:
		if (!(value & ACPI_SLP_EN))
			return 0;
		type = (value & ACPI_SLP_TYP_MASK) >> ACPI_SLP_TYP_SHIFT;
		if (type == pm->soft_off_type)
			pm->poweroff(pm->opaque);
		else
			log_ratelimited(LOG_WARN, "acpi: sleep type %u is not supported (only soft-off)",
			                type);
		return 0;
	case ACPI_PM_RESET:
		if (value == pm->reset_value)
			pm->reset(pm->opaque);
		return 0;
	default:
		return 0;
	}
}

const struct bus_ops acpi_pm_ops = {
        .read = acpi_pm_read,
        .write = acpi_pm_write,
};
