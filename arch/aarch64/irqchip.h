/*
 * Which GIC, and which MSI controller with it, a VM gets: --irqchip against what the host's KVM
 * can emulate. Pure, so it is unit-tested on every host.
 */
#ifndef VMM_ARCH_AARCH64_IRQCHIP_H
#define VMM_ARCH_AARCH64_IRQCHIP_H

#include <stdbool.h>
#include <stddef.h>

#include "arch/aarch64/fdt.h"
#include "vmm/config.h"

/* What the host's KVM can create (KVM_CREATE_DEVICE_TEST). A GICv2m frame comes with a GICv2. */
struct arm64_gic_offer {
	bool v2, v3, its;
};

struct arm64_irqchip {
	enum arm64_gic_version gic;
	enum arm64_msi_kind msi;
};

/*
 * The GIC for --irqchip @want on a host offering @host. IRQCHIP_AUTO: a GICv3 where there is
 * one, else a GICv2; with @pci (--transport pci) also the MSI controller for MSI-X, the ITS
 * (when the host has one) or the GICv2m frame; without, none (nothing would use it). Returns 0,
 * or -ENODEV with one line in @err naming what the host offers.
 */
int arm64_irqchip_choose(enum irqchip_kind want, bool pci, const struct arm64_gic_offer *host,
                         struct arm64_irqchip *out, char *err, size_t errlen) MUST_CHECK;

#endif
