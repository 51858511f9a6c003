#include "arch/aarch64/irqchip.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* "gicv2, gicv2m, gicv3, gicv3-its" as far as the host has them, or "nothing". */
static void offers(const struct arm64_gic_offer *host, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", host->v2 ? "gicv2, gicv2m" : "",
	         host->v2 && host->v3 ? ", " : "",
	         host->v3 ? (host->its ? "gicv3, gicv3-its" : "gicv3") : "");
	if (!buf[0])
		snprintf(buf, len, "nothing");
}

static int refuse(const struct arm64_gic_offer *host, enum irqchip_kind want, char *err,
                  size_t errlen)
{
	static const char *const what[] = {
	        [IRQCHIP_AUTO] = "a GIC",
	        [IRQCHIP_GICV2] = "a GICv2",
	        [IRQCHIP_GICV2M] = "a GICv2",
	        [IRQCHIP_GICV3] = "a GICv3",
	        [IRQCHIP_GICV3_ITS] = "a GICv3 ITS",
	};
	char list[64];

	offers(host, list, sizeof(list));
	if (want == IRQCHIP_AUTO)
		snprintf(err, errlen, "this host's KVM cannot emulate a GIC");
	else
		snprintf(err, errlen,
		         "--irqchip %s: this host's KVM cannot emulate %s (it offers %s%s)",
		         config_irqchip_name(want), what[want], list,
		         host->v3 && (want == IRQCHIP_GICV2 || want == IRQCHIP_GICV2M)
		                 ? "; a GICv3 host needs its GICv2 compatibility for a GICv2"
		                 : "");
	return -ENODEV;
}

int arm64_irqchip_choose(enum irqchip_kind want, bool pci, const struct arm64_gic_offer *host,
                         struct arm64_irqchip *out, char *err, size_t errlen)
{
	switch (want) {
	case IRQCHIP_AUTO:
		if (!host->v2 && !host->v3)
			return refuse(host, want, err, errlen);
		out->gic = host->v3 ? ARM64_GIC_V3 : ARM64_GIC_V2;
		out->msi = !pci       ? ARM64_MSI_NONE
		           : host->v3 ? (host->its ? ARM64_MSI_ITS : ARM64_MSI_NONE)
		                      : ARM64_MSI_V2M;
		return 0;
	case IRQCHIP_GICV2:
	case IRQCHIP_GICV2M:
		if (!host->v2)
			return refuse(host, want, err, errlen);
		out->gic = ARM64_GIC_V2;
		out->msi = want == IRQCHIP_GICV2M ? ARM64_MSI_V2M : ARM64_MSI_NONE;
		return 0;
	case IRQCHIP_GICV3:
	case IRQCHIP_GICV3_ITS:
		if (!host->v3 || (want == IRQCHIP_GICV3_ITS && !host->its))
			return refuse(host, want, err, errlen);
		out->gic = ARM64_GIC_V3;
		out->msi = want == IRQCHIP_GICV3_ITS ? ARM64_MSI_ITS : ARM64_MSI_NONE;
		return 0;
	}
	snprintf(err, errlen, "--irqchip: unknown kind %d", (int)want);
	return -EINVAL;
}
