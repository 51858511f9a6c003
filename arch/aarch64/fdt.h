/*
 * The aarch64 guest's flattened device tree, built from a config struct (Linux's arm64 DT
 * bindings): /chosen, memory, cpus with PSCI 0.2, the architected timer, a GICv2 or GICv3 (with
 * a GICv2m frame or an ITS), the 16550A UART, the virtio-mmio devices and a PCIe host bridge. Pure:
 * no KVM, so it is unit-tested on every host.
 */
#ifndef VMM_ARCH_AARCH64_FDT_H
#define VMM_ARCH_AARCH64_FDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

enum arm64_gic_version { ARM64_GIC_V2 = 2, ARM64_GIC_V3 = 3 };
/* What gives the guest MSIs: nothing, a GICv3 ITS, or a GICv2m frame (a GICv2's). */
enum arm64_msi_kind { ARM64_MSI_NONE, ARM64_MSI_ITS, ARM64_MSI_V2M };

/* A virtio-mmio window and its SPI (numbered from 0, INTID = SPI + 32). */
struct arm64_fdt_device {
	uint64_t base, size;
	unsigned spi;
};

/* A PCI device's INTA: its slot on bus 0 and the SPI it is wired to. */
struct arm64_fdt_pci_intx {
	unsigned slot, spi;
};

/*
 * The PCIe host bridge (pci-host-ecam-generic): its ECAM (1 MiB per bus, from bus 0), the
 * 32-bit memory window and an optional 64-bit one (size 0: none), both identity-mapped, and
 * the INTx map. MSIs go to the config's MSI controller, when there is one.
 */
struct arm64_fdt_pci {
	uint64_t ecam_base, ecam_size;
	uint64_t mmio32_base, mmio32_size;
	uint64_t mmio64_base, mmio64_size;
	const struct arm64_fdt_pci_intx *intx;
	unsigned nr_intx;
};

/* Every address comes from here; windows must be non-empty and must not wrap. */
struct arm64_fdt_config {
	uint64_t ram_base, ram_size;
	unsigned nr_cpus; /* 1..256 (1..8 for GICv2) */
	enum arm64_gic_version gic;
	uint64_t gic_dist_base, gic_dist_size;
	uint64_t gic_cpu_base, gic_cpu_size; /* GICv2 CPU interface */
	uint64_t gic_redist_base,
	        gic_redist_size;     /* GICv3: all vCPUs' redistributors, one region */
	enum arm64_msi_kind msi;     /* ITS: GICv3 only; V2M: GICv2 only */
	uint64_t msi_base, msi_size; /* the ITS's or the GICv2m frame's registers */
	uint64_t uart_base, uart_size;
	unsigned uart_spi;
	uint32_t uart_clock;
	const struct arm64_fdt_device *virtio;
	unsigned nr_virtio;
	const struct arm64_fdt_pci *pci;   /* NULL: no PCI */
	const char *bootargs;              /* may be NULL: no bootargs property */
	bool pmu;                          /* a PMUv3 node, its interrupt ARM64_PMU_PPI */
	uint64_t initrd_start, initrd_end; /* equal: no initrd properties */
};

/*
 * Builds the tree into @buf (@size bytes, 8-byte aligned); the blob is fdt_totalsize(@buf) bytes
 * long. Returns 0, or -ENOSPC (does not fit) / -EINVAL (bad config: 0 cpus, too many for GICv2,
 * ...) with *@reason a static one-line explanation. A bad config is rejected before @buf is
 * touched. @cfg is host-provided; set-up time only.
 */
int arm64_fdt_build(const struct arm64_fdt_config *cfg, void *buf, size_t size,
                    const char **reason) MUST_CHECK;

/*
 * The MPIDR affinity KVM gives vCPU @id (Aff0 = id & 0xf, Aff1 = (id >> 4) & 0xff, Aff2 =
 * (id >> 12) & 0xff): the cpu node's reg and PSCI CPU_ON's target.
 */
uint64_t arm64_vcpu_mpidr(unsigned id);

#endif
