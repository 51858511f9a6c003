#include "arch/aarch64/fdt.h"

#include <errno.h>
#include <inttypes.h>
#include <libfdt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/random.h>

#include "arch/aarch64/layout.h"

#define FDT_MAX_CPUS     256 /* Aff0 and Aff1 of KVM's MPIDR; one redistributor each */
#define GIC_PHANDLE      1
#define MSI_PHANDLE      2
#define GIC_SPI          0 /* first interrupt cell */
#define GIC_PPI          1
#define GIC_MAX_SPI      987        /* INTIDs 32..1019 */
#define GICV3_REDIST_LEN 0x20000ULL /* RD_base and SGI_base frames, per vCPU */
#define IRQ_EDGE_RISING  1          /* third interrupt cell, bits [3:0] */
#define IRQ_LEVEL_HIGH   4
#define KASLR_SEED_SIZE  8
#define RNG_SEED_SIZE    32
#define NODE_NAME_MAX    32
#define PCI_BUS_ECAM     0x100000ULL /* 1 MiB of config space per bus */
#define PCI_MAX_BUSES    256
#define PCI_SLOTS        32
#define PCI_RID_COUNT    0x10000 /* every requester ID maps to itself (msi-map) */
/* The first cell of a PCI address: the space code (bits 25:24) and prefetchable (bit 30). */
#define PCI_SPACE_MEM32  0x02000000u
#define PCI_SPACE_MEM64  0x03000000u
#define PCI_PREFETCHABLE 0x40000000u
#define PCI_INTA         1

/* The first libfdt error sticks: once set, nothing more is written and the build fails with it. */
struct fdt_writer {
	void *fdt;
	int err;
};

uint64_t arm64_vcpu_mpidr(unsigned id)
{
	return (uint64_t)(id & 0xf) | (uint64_t)((id >> 4) & 0xff) << 8 |
	       (uint64_t)((id >> 12) & 0xff) << 16;
}

static void node_name(char *buf, const char *prefix, uint64_t addr)
{
	snprintf(buf, NODE_NAME_MAX, "%s@%" PRIx64, prefix, addr);
}

static void begin(struct fdt_writer *w, const char *name)
{
	if (!w->err)
		w->err = fdt_begin_node(w->fdt, name);
}

static void begin_at(struct fdt_writer *w, const char *prefix, uint64_t addr)
{
	char name[NODE_NAME_MAX];

	node_name(name, prefix, addr);
	begin(w, name);
}

static void end(struct fdt_writer *w)
{
	if (!w->err)
		w->err = fdt_end_node(w->fdt);
}

static void prop(struct fdt_writer *w, const char *name, const void *data, int len)
{
	if (!w->err)
		w->err = fdt_property(w->fdt, name, data, len);
}

static void prop_empty(struct fdt_writer *w, const char *name)
{
	prop(w, name, NULL, 0);
}

static void prop_str(struct fdt_writer *w, const char *name, const char *s)
{
	if (!w->err)
		w->err = fdt_property_string(w->fdt, name, s);
}

static void prop_u32(struct fdt_writer *w, const char *name, uint32_t v)
{
	fdt32_t be = cpu_to_fdt32(v);

	prop(w, name, &be, sizeof(be));
}

static void prop_u64(struct fdt_writer *w, const char *name, uint64_t v)
{
	fdt64_t be = cpu_to_fdt64(v);

	prop(w, name, &be, sizeof(be));
}

/* A reg of one or two <address size> pairs, two cells each (the root's #address-cells). */
static void prop_reg(struct fdt_writer *w, uint64_t base0, uint64_t size0, uint64_t base1,
                     uint64_t size1, unsigned pairs)
{
	const fdt64_t be[4] = {cpu_to_fdt64(base0), cpu_to_fdt64(size0), cpu_to_fdt64(base1),
	                       cpu_to_fdt64(size1)};

	prop(w, "reg", be, (int)(pairs * 2 * sizeof(be[0])));
}

static void prop_spi(struct fdt_writer *w, unsigned spi, uint32_t flags)
{
	const fdt32_t cells[] = {cpu_to_fdt32(GIC_SPI), cpu_to_fdt32(spi), cpu_to_fdt32(flags)};

	prop(w, "interrupts", cells, sizeof(cells));
}

static void add_root_props(struct fdt_writer *w)
{
	prop_u32(w, "#address-cells", 2);
	prop_u32(w, "#size-cells", 2);
	prop_str(w, "compatible", "linux,dummy-virt");
	prop_str(w, "model", "vmm");
	prop_u32(w, "interrupt-parent", GIC_PHANDLE);
}

/* Early entropy for the guest; without getrandom() it boots without it. */
static void add_seeds(struct fdt_writer *w)
{
	uint8_t seed[KASLR_SEED_SIZE + RNG_SEED_SIZE];

	if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		return;
	prop(w, "kaslr-seed", seed, KASLR_SEED_SIZE);
	prop(w, "rng-seed", seed + KASLR_SEED_SIZE, RNG_SEED_SIZE);
}

/* stdout-path names the UART, so a bare "earlycon" finds it too. */
static void add_chosen(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	char uart[NODE_NAME_MAX + 1] = "/";

	node_name(uart + 1, "serial", cfg->uart_base);
	begin(w, "chosen");
	if (cfg->bootargs)
		prop_str(w, "bootargs", cfg->bootargs);
	prop_str(w, "stdout-path", uart);
	if (cfg->initrd_end != cfg->initrd_start) {
		prop_u64(w, "linux,initrd-start", cfg->initrd_start);
		prop_u64(w, "linux,initrd-end", cfg->initrd_end);
	}
	add_seeds(w);
	end(w);
}

static void add_memory(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	begin_at(w, "memory", cfg->ram_base);
	prop_str(w, "device_type", "memory");
	prop_reg(w, cfg->ram_base, cfg->ram_size, 0, 0, 1);
	end(w);
}

static void add_cpus(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	begin(w, "cpus");
	prop_u32(w, "#address-cells", 1);
	prop_u32(w, "#size-cells", 0);
	for (unsigned i = 0; i < cfg->nr_cpus; i++) {
		uint64_t mpidr = arm64_vcpu_mpidr(i);

		begin_at(w, "cpu", mpidr);
		prop_str(w, "device_type", "cpu");
		prop_str(w, "compatible", "arm,arm-v8");
		prop_str(w, "enable-method", "psci");
		prop_u32(w, "reg", (uint32_t)mpidr); /* Aff3 is always 0 */
		end(w);
	}
	end(w);
}

/* KVM implements PSCI 0.2 or later through HVC (KVM_ARM_VCPU_PSCI_0_2). */
static void add_psci(struct fdt_writer *w)
{
	static const char compatible[] = "arm,psci-0.2\0arm,psci";

	begin(w, "psci");
	prop(w, "compatible", compatible, sizeof(compatible));
	prop_str(w, "method", "hvc");
	end(w);
}

/* The PPIs' flags: level-high, and on a GICv2 the mask of the CPUs they reach ([15:8]). */
static uint32_t ppi_flags(const struct arm64_fdt_config *cfg)
{
	return IRQ_LEVEL_HIGH | (cfg->gic == ARM64_GIC_V2 ? ((1u << cfg->nr_cpus) - 1) << 8 : 0);
}

/* --pmu: the vCPUs' PMUv3 (KVM_ARM_VCPU_PMU_V3), its overflow interrupt a PPI. */
static void add_pmu(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	const fdt32_t cells[3] = {cpu_to_fdt32(GIC_PPI), cpu_to_fdt32(ARM64_PMU_PPI),
	                          cpu_to_fdt32(ppi_flags(cfg))};

	begin(w, "pmu");
	prop_str(w, "compatible", "arm,armv8-pmuv3");
	prop(w, "interrupts", cells, sizeof(cells));
	end(w);
}

/* The binding's order: secure physical, non-secure physical, virtual, hypervisor. */
static void add_timer(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	static const unsigned ppis[] = {ARM64_TIMER_PPI_SEC_PHYS, ARM64_TIMER_PPI_PHYS,
	                                ARM64_TIMER_PPI_VIRT, ARM64_TIMER_PPI_HYP};
	uint32_t flags = ppi_flags(cfg);
	fdt32_t cells[3 * ARRAY_SIZE(ppis)];

	for (unsigned i = 0; i < ARRAY_SIZE(ppis); i++) {
		cells[3 * i] = cpu_to_fdt32(GIC_PPI);
		cells[3 * i + 1] = cpu_to_fdt32(ppis[i]);
		cells[3 * i + 2] = cpu_to_fdt32(flags);
	}
	begin(w, "timer");
	prop_str(w, "compatible", "arm,armv8-timer");
	prop(w, "interrupts", cells, sizeof(cells));
	end(w);
}

/* The GICv3's ITS, whose single msi-cell is the device ID (for PCI: the requester ID). */
static void add_its(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	begin_at(w, "msi-controller", cfg->msi_base);
	prop_str(w, "compatible", "arm,gic-v3-its");
	prop_empty(w, "msi-controller");
	prop_u32(w, "#msi-cells", 1);
	prop_reg(w, cfg->msi_base, cfg->msi_size, 0, 0, 1);
	prop_u32(w, "phandle", MSI_PHANDLE);
	end(w);
}

/*
 * The GICv2m frame: the guest reads which SPIs it serves from its MSI_TYPER register (no
 * arm,msi-base-spi override: that is for frames whose register is wrong).
 */
static void add_v2m(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	begin_at(w, "v2m", cfg->msi_base);
	prop_str(w, "compatible", "arm,gic-v2m-frame");
	prop_empty(w, "msi-controller");
	prop_reg(w, cfg->msi_base, cfg->msi_size, 0, 0, 1);
	prop_u32(w, "phandle", MSI_PHANDLE);
	end(w);
}

/* The GIC's address cells: 2 when it has an MSI frame below it (its children's reg), else 0. */
static unsigned gic_address_cells(const struct arm64_fdt_config *cfg)
{
	return cfg->msi == ARM64_MSI_NONE ? 0 : 2;
}

static void add_gic(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	begin_at(w, "intc", cfg->gic_dist_base);
	if (cfg->gic == ARM64_GIC_V3) {
		prop_str(w, "compatible", "arm,gic-v3");
		prop_reg(w, cfg->gic_dist_base, cfg->gic_dist_size, cfg->gic_redist_base,
		         cfg->gic_redist_size, 2);
	} else {
		prop_str(w, "compatible", "arm,cortex-a15-gic");
		prop_reg(w, cfg->gic_dist_base, cfg->gic_dist_size, cfg->gic_cpu_base,
		         cfg->gic_cpu_size, 2);
	}
	prop_u32(w, "#interrupt-cells", 3);
	prop_empty(w, "interrupt-controller");
	prop_u32(w, "phandle", GIC_PHANDLE);
	if (gic_address_cells(cfg)) {
		prop_u32(w, "#address-cells", gic_address_cells(cfg));
		prop_u32(w, "#size-cells", 2);
		prop_empty(w, "ranges"); /* the children's addresses are the root's */
	}
	if (cfg->msi == ARM64_MSI_ITS)
		add_its(w, cfg);
	else if (cfg->msi == ARM64_MSI_V2M)
		add_v2m(w, cfg);
	end(w);
}

/* The UART's line is level-driven. */
static void add_uart(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	begin_at(w, "serial", cfg->uart_base);
	prop_str(w, "compatible", "ns16550a");
	prop_reg(w, cfg->uart_base, cfg->uart_size, 0, 0, 1);
	prop_u32(w, "clock-frequency", cfg->uart_clock);
	prop_spi(w, cfg->uart_spi, IRQ_LEVEL_HIGH);
	end(w);
}

/* Edge-triggered: the VMM raises these through KVM irqfds. */
static void add_virtio(struct fdt_writer *w, const struct arm64_fdt_device *dev)
{
	begin_at(w, "virtio_mmio", dev->base);
	prop_str(w, "compatible", "virtio,mmio");
	prop_reg(w, dev->base, dev->size, 0, 0, 1);
	prop_spi(w, dev->spi, IRQ_EDGE_RISING);
	prop_empty(w, "dma-coherent");
	end(w);
}

/* A PCI address's three cells: @space, then the 64-bit address. */
static void pci_addr(fdt32_t *cells, uint32_t space, uint64_t addr)
{
	cells[0] = cpu_to_fdt32(space);
	cells[1] = cpu_to_fdt32((uint32_t)(addr >> 32));
	cells[2] = cpu_to_fdt32((uint32_t)addr);
}

/* One identity-mapped window: child address (3 cells), parent address (2), size (2). */
static unsigned pci_range(fdt32_t *cells, uint32_t space, uint64_t base, uint64_t size)
{
	pci_addr(cells, space, base);
	cells[3] = cpu_to_fdt32((uint32_t)(base >> 32));
	cells[4] = cpu_to_fdt32((uint32_t)base);
	cells[5] = cpu_to_fdt32((uint32_t)(size >> 32));
	cells[6] = cpu_to_fdt32((uint32_t)size);
	return 7;
}

/* The 32-bit window, and the 64-bit one (prefetchable) when there is one. */
static void add_pci_ranges(struct fdt_writer *w, const struct arm64_fdt_pci *pci)
{
	fdt32_t cells[2 * 7];
	unsigned n = pci_range(cells, PCI_SPACE_MEM32, pci->mmio32_base, pci->mmio32_size);

	if (pci->mmio64_size)
		n += pci_range(cells + n, PCI_SPACE_MEM64 | PCI_PREFETCHABLE, pci->mmio64_base,
		               pci->mmio64_size);
	prop(w, "ranges", cells, (int)(n * sizeof(cells[0])));
}

/*
 * INTA of each device to its SPI, level-triggered: child unit address (3 cells: the slot in
 * bits 15:11 of the first), pin, the GIC, its unit address (gic_address_cells zeros), the SPI.
 */
static void add_pci_intx(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	const fdt32_t mask[4] = {cpu_to_fdt32(0xf800), 0, 0, cpu_to_fdt32(7)};
	const unsigned per = 4 + 1 + gic_address_cells(cfg) + 3;
	fdt32_t map[PCI_SLOTS * 10];
	unsigned n = 0;

	for (unsigned i = 0; i < cfg->pci->nr_intx; i++) {
		fdt32_t *e = map + i * per;

		pci_addr(e, cfg->pci->intx[i].slot << 11, 0);
		e[3] = cpu_to_fdt32(PCI_INTA);
		e[4] = cpu_to_fdt32(GIC_PHANDLE);
		n = 5;
		for (unsigned c = 0; c < gic_address_cells(cfg); c++)
			e[n++] = 0;
		e[n++] = cpu_to_fdt32(GIC_SPI);
		e[n++] = cpu_to_fdt32(cfg->pci->intx[i].spi);
		e[n++] = cpu_to_fdt32(IRQ_LEVEL_HIGH);
	}
	prop_u32(w, "#interrupt-cells", 1);
	prop(w, "interrupt-map-mask", mask, sizeof(mask));
	prop(w, "interrupt-map", map, (int)(cfg->pci->nr_intx * per * sizeof(map[0])));
}

/*
 * The host bridge: Linux's pci-host-ecam-generic. It assigns the BARs itself (no
 * linux,pci-probe-only). Every requester ID is its own device ID at the MSI controller.
 */
static void add_pci(struct fdt_writer *w, const struct arm64_fdt_config *cfg)
{
	const struct arm64_fdt_pci *pci = cfg->pci;
	const fdt32_t bus_range[2] = {0,
	                              cpu_to_fdt32((uint32_t)(pci->ecam_size / PCI_BUS_ECAM) - 1)};
	const fdt32_t msi_map[4] = {0, cpu_to_fdt32(MSI_PHANDLE), 0, cpu_to_fdt32(PCI_RID_COUNT)};

	begin_at(w, "pcie", pci->ecam_base);
	prop_str(w, "compatible", "pci-host-ecam-generic");
	prop_str(w, "device_type", "pci");
	prop_u32(w, "#address-cells", 3);
	prop_u32(w, "#size-cells", 2);
	prop_reg(w, pci->ecam_base, pci->ecam_size, 0, 0, 1);
	prop(w, "bus-range", bus_range, sizeof(bus_range));
	prop_u32(w, "linux,pci-domain", 0);
	add_pci_ranges(w, pci);
	add_pci_intx(w, cfg);
	if (cfg->msi != ARM64_MSI_NONE)
		prop(w, "msi-map", msi_map, sizeof(msi_map));
	prop_empty(w, "dma-coherent");
	end(w);
}

/* Non-empty and not wrapping past the end of the address space. */
static bool window_ok(uint64_t base, uint64_t size)
{
	return size && base <= UINT64_MAX - (size - 1);
}

static const char *gic_error(const struct arm64_fdt_config *cfg)
{
	if (cfg->gic != ARM64_GIC_V2 && cfg->gic != ARM64_GIC_V3)
		return "unknown GIC version";
	if (cfg->gic == ARM64_GIC_V2 && cfg->nr_cpus > ARM64_GICV2_MAX_CPUS)
		return "a GICv2 serves at most 8 vCPUs";
	if (!window_ok(cfg->gic_dist_base, cfg->gic_dist_size))
		return "empty or wrapping GIC distributor window";
	if (cfg->gic == ARM64_GIC_V2 && !window_ok(cfg->gic_cpu_base, cfg->gic_cpu_size))
		return "empty or wrapping GICv2 CPU interface window";
	if (cfg->gic == ARM64_GIC_V3 && !window_ok(cfg->gic_redist_base, cfg->gic_redist_size))
		return "empty or wrapping GICv3 redistributor window";
	if (cfg->gic == ARM64_GIC_V3 && cfg->gic_redist_size / GICV3_REDIST_LEN < cfg->nr_cpus)
		return "GICv3 redistributor window smaller than 128 KiB per vCPU";
	return NULL;
}

static const char *msi_error(const struct arm64_fdt_config *cfg)
{
	if (cfg->msi == ARM64_MSI_NONE)
		return NULL;
	if (cfg->msi != ARM64_MSI_ITS && cfg->msi != ARM64_MSI_V2M)
		return "unknown MSI controller";
	if ((cfg->msi == ARM64_MSI_ITS) != (cfg->gic == ARM64_GIC_V3))
		return "an ITS needs a GICv3, a GICv2m frame a GICv2";
	if (!window_ok(cfg->msi_base, cfg->msi_size))
		return "empty or wrapping MSI controller window";
	return NULL;
}

static const char *pci_error(const struct arm64_fdt_pci *pci)
{
	if (!pci)
		return NULL;
	if (!window_ok(pci->ecam_base, pci->ecam_size) || pci->ecam_size % PCI_BUS_ECAM ||
	    pci->ecam_size / PCI_BUS_ECAM > PCI_MAX_BUSES)
		return "PCI ECAM not 1 to 256 buses of 1 MiB";
	if (!window_ok(pci->mmio32_base, pci->mmio32_size) ||
	    pci->mmio32_base + pci->mmio32_size - 1 > UINT32_MAX)
		return "empty, wrapping or 64-bit PCI 32-bit window";
	if (pci->mmio64_size && !window_ok(pci->mmio64_base, pci->mmio64_size))
		return "wrapping PCI 64-bit window";
	if (pci->nr_intx > PCI_SLOTS || (pci->nr_intx && !pci->intx))
		return "more PCI INTx entries than slots, or none given";
	for (unsigned i = 0; i < pci->nr_intx; i++)
		if (pci->intx[i].slot >= PCI_SLOTS || pci->intx[i].spi > GIC_MAX_SPI)
			return "PCI INTx entry with a slot above 31 or an SPI above 987";
	return NULL;
}

static const char *devices_error(const struct arm64_fdt_config *cfg)
{
	const char *why = msi_error(cfg);

	if (!why)
		why = pci_error(cfg->pci);
	if (why)
		return why;
	if (!window_ok(cfg->uart_base, cfg->uart_size))
		return "empty or wrapping UART window";
	if (cfg->uart_spi > GIC_MAX_SPI)
		return "UART SPI above 987";
	if (cfg->nr_virtio && !cfg->virtio)
		return "virtio-mmio devices without their array";
	for (unsigned i = 0; i < cfg->nr_virtio; i++) {
		if (!window_ok(cfg->virtio[i].base, cfg->virtio[i].size))
			return "empty or wrapping virtio-mmio window";
		if (cfg->virtio[i].spi > GIC_MAX_SPI)
			return "virtio-mmio SPI above 987";
	}
	return NULL;
}

/* NULL when @cfg describes a machine the tree can express, else why not. */
static const char *config_error(const struct arm64_fdt_config *cfg)
{
	const char *why;

	if (!cfg->nr_cpus)
		return "no vCPUs";
	if (cfg->nr_cpus > FDT_MAX_CPUS)
		return "more than 256 vCPUs";
	if (!window_ok(cfg->ram_base, cfg->ram_size))
		return "empty or wrapping RAM range";
	if (cfg->initrd_end < cfg->initrd_start)
		return "initrd ends before it starts";
	why = gic_error(cfg);
	return why ? why : devices_error(cfg);
}

static int fail(const char **reason, int ret, const char *why)
{
	if (reason)
		*reason = why;
	return ret;
}

int arm64_fdt_build(const struct arm64_fdt_config *cfg, void *buf, size_t size, const char **reason)
{
	struct fdt_writer w = {.fdt = buf};
	const char *bad = buf ? config_error(cfg) : "no buffer";

	if (bad)
		return fail(reason, -EINVAL, bad);
	w.err = fdt_create(buf, (int)MIN(size, (size_t)INT_MAX));
	if (!w.err)
		w.err = fdt_finish_reservemap(buf);
	begin(&w, "");
	add_root_props(&w);
	add_chosen(&w, cfg);
	add_memory(&w, cfg);
	add_cpus(&w, cfg);
	add_psci(&w);
	add_timer(&w, cfg);
	if (cfg->pmu)
		add_pmu(&w, cfg);
	add_gic(&w, cfg);
	add_uart(&w, cfg);
	for (unsigned i = 0; i < cfg->nr_virtio; i++)
		add_virtio(&w, &cfg->virtio[i]);
	if (cfg->pci)
		add_pci(&w, cfg);
	end(&w);
	if (!w.err)
		w.err = fdt_finish(buf);
	if (w.err == -FDT_ERR_NOSPACE)
		return fail(reason, -ENOSPC, "the device tree does not fit in its buffer");
	if (w.err)
		return fail(reason, -EINVAL, fdt_strerror(w.err));
	return 0;
}
