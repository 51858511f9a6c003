/*
 * The aarch64 device tree's MSI controllers and PCIe host bridge, read back with libfdt the way
 * Linux reads them: the ITS and the GICv2m frame below the GIC (with the GIC's address cells
 * and ranges), the pci-host-ecam-generic node's windows, INTx map and msi-map (resolved to the
 * MSI controller by phandle), and the configs the builder refuses.
 */
#include <check.h>
#include <errno.h>
#include <libfdt.h>
#include <stdint.h>
#include <string.h>

#include "arch/aarch64/fdt.h"
#include "tests/unit/unit.h"

#define BUF_SIZE (128 * 1024)

static uint64_t blob[BUF_SIZE / sizeof(uint64_t)];
static void *const fdt = blob;

/* Not the layout.h map: the builder must take every address from the config. */
static const struct arm64_fdt_pci_intx intx[] = {{1, 5}, {3, 7}};

static struct arm64_fdt_pci pci_config(void)
{
	return (struct arm64_fdt_pci){
	        .ecam_base = 0x3f000000,
	        .ecam_size = 0x200000, /* 2 buses */
	        .mmio32_base = 0x10000000,
	        .mmio32_size = 0x2eff0000,
	        .mmio64_base = 0x8000000000ULL,
	        .mmio64_size = 0x8000000000ULL,
	        .intx = intx,
	        .nr_intx = ARRAY_SIZE(intx),
	};
}

static struct arm64_fdt_config v3_its_config(const struct arm64_fdt_pci *pci)
{
	return (struct arm64_fdt_config){
	        .ram_base = 0x40000000,
	        .ram_size = 256 * MIB,
	        .nr_cpus = 2,
	        .gic = ARM64_GIC_V3,
	        .gic_dist_base = 0x08000000,
	        .gic_dist_size = 0x10000,
	        .gic_redist_base = 0x080a0000,
	        .gic_redist_size = 0x40000,
	        .msi = ARM64_MSI_ITS,
	        .msi_base = 0x08080000,
	        .msi_size = 0x20000,
	        .uart_base = 0x09000000,
	        .uart_size = 0x1000,
	        .uart_spi = 1,
	        .uart_clock = 1843200,
	        .pci = pci,
	};
}

static struct arm64_fdt_config v2m_config(const struct arm64_fdt_pci *pci)
{
	struct arm64_fdt_config c = v3_its_config(pci);

	c.gic = ARM64_GIC_V2;
	c.gic_cpu_base = 0x08010000;
	c.gic_cpu_size = 0x2000;
	c.msi = ARM64_MSI_V2M;
	c.msi_base = 0x08020000;
	c.msi_size = 0x1000;
	return c;
}

static void build(const struct arm64_fdt_config *cfg)
{
	const char *reason = NULL;

	ck_assert_msg(arm64_fdt_build(cfg, fdt, sizeof(blob), &reason) == 0, "%s", reason);
	ck_assert_int_eq(fdt_check_full(fdt, fdt_totalsize(fdt)), 0);
}

static int node(const char *path)
{
	int off = fdt_path_offset(fdt, path);

	ck_assert_msg(off >= 0, "%s: %s", path, fdt_strerror(off));
	return off;
}

static const void *get(int off, const char *name, int len)
{
	int got = -1;
	const void *p = fdt_getprop(fdt, off, name, &got);

	ck_assert_msg(p != NULL, "%s missing", name);
	ck_assert_int_eq(got, len);
	return p;
}

static void expect_str(int off, const char *name, const char *s)
{
	ck_assert_str_eq(get(off, name, (int)strlen(s) + 1), s);
}

static void expect_cells(int off, const char *name, const uint32_t *cells, unsigned n)
{
	const fdt32_t *p = get(off, name, (int)(n * 4));

	for (unsigned i = 0; i < n; i++)
		ck_assert_msg(fdt32_to_cpu(p[i]) == cells[i], "%s[%u] = %#x, not %#x", name, i,
		              fdt32_to_cpu(p[i]), cells[i]);
}

static void expect_u32(int off, const char *name, uint32_t v)
{
	expect_cells(off, name, &v, 1);
}

/* The node the phandle in cell @index of @name points to. */
static int phandle_target(int off, const char *name, unsigned index)
{
	const fdt32_t *p = fdt_getprop(fdt, off, name, NULL);

	ck_assert_ptr_nonnull(p);
	return fdt_node_offset_by_phandle(fdt, fdt32_to_cpu(p[index]));
}

START_TEST(its_below_gicv3)
{
	const struct arm64_fdt_config cfg = v3_its_config(NULL);
	const uint32_t reg[] = {0, 0x08080000, 0, 0x20000};
	int gic, its;

	build(&cfg);
	gic = node("/intc@8000000");
	expect_u32(gic, "#address-cells", 2);
	expect_u32(gic, "#size-cells", 2);
	get(gic, "ranges", 0);
	its = node("/intc@8000000/msi-controller@8080000");
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, -1, "arm,gic-v3-its"), its);
	get(its, "msi-controller", 0);
	expect_u32(its, "#msi-cells", 1);
	expect_cells(its, "reg", reg, 4);
	ck_assert_int_gt((int)fdt_get_phandle(fdt, its), 1); /* not the GIC's */
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, -1, "arm,gic-v2m-frame"),
	                 -FDT_ERR_NOTFOUND);
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, -1, "pci-host-ecam-generic"),
	                 -FDT_ERR_NOTFOUND);
}
END_TEST

START_TEST(v2m_below_gicv2)
{
	const struct arm64_fdt_config cfg = v2m_config(NULL);
	const uint32_t reg[] = {0, 0x08020000, 0, 0x1000};
	int gic, v2m;

	build(&cfg);
	gic = node("/intc@8000000");
	expect_str(gic, "compatible", "arm,cortex-a15-gic");
	expect_u32(gic, "#address-cells", 2);
	v2m = node("/intc@8000000/v2m@8020000");
	expect_str(v2m, "compatible", "arm,gic-v2m-frame");
	get(v2m, "msi-controller", 0);
	expect_cells(v2m, "reg", reg, 4);
	/* Linux reads the SPIs from MSI_TYPER: no override, and no cells in msi-parent/msi-map. */
	ck_assert_ptr_null(fdt_getprop(fdt, v2m, "arm,msi-base-spi", NULL));
	ck_assert_ptr_null(fdt_getprop(fdt, v2m, "#msi-cells", NULL));
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, -1, "arm,gic-v3-its"),
	                 -FDT_ERR_NOTFOUND);
}
END_TEST

START_TEST(gic_without_msi_has_no_children)
{
	struct arm64_fdt_config cfg = v3_its_config(NULL);
	int gic;

	cfg.msi = ARM64_MSI_NONE;
	build(&cfg);
	gic = node("/intc@8000000");
	ck_assert_ptr_null(fdt_getprop(fdt, gic, "#address-cells", NULL));
	ck_assert_ptr_null(fdt_getprop(fdt, gic, "ranges", NULL));
	ck_assert_int_eq(fdt_first_subnode(fdt, gic), -FDT_ERR_NOTFOUND);
}
END_TEST

START_TEST(pci_host_with_its)
{
	const struct arm64_fdt_pci pci = pci_config();
	const struct arm64_fdt_config cfg = v3_its_config(&pci);
	const uint32_t reg[] = {0, 0x3f000000, 0, 0x200000};
	const uint32_t bus_range[] = {0, 1};
	const uint32_t ranges[] = {
	        0x02000000, 0,    0x10000000, 0,    0x10000000, 0,    0x2eff0000,
	        0x43000000, 0x80, 0,          0x80, 0,          0x80, 0,
	};
	const uint32_t mask[] = {0xf800, 0, 0, 7};
	/* slot << 11, 0, 0, INTA, the GIC, its two address cells, SPI n level-high */
	const uint32_t map[] = {
	        1 << 11, 0, 0, 1, 1, 0, 0, 0, 5, 4, 3 << 11, 0, 0, 1, 1, 0, 0, 0, 7, 4,
	};
	const fdt32_t *msi_map;
	int pcie;

	build(&cfg);
	pcie = node("/pcie@3f000000");
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, -1, "pci-host-ecam-generic"), pcie);
	expect_str(pcie, "device_type", "pci");
	expect_u32(pcie, "#address-cells", 3);
	expect_u32(pcie, "#size-cells", 2);
	expect_u32(pcie, "#interrupt-cells", 1);
	expect_cells(pcie, "reg", reg, 4);
	expect_cells(pcie, "bus-range", bus_range, 2);
	expect_cells(pcie, "ranges", ranges, ARRAY_SIZE(ranges));
	expect_cells(pcie, "interrupt-map-mask", mask, 4);
	expect_cells(pcie, "interrupt-map", map, ARRAY_SIZE(map));
	ck_assert_int_eq(phandle_target(pcie, "interrupt-map", 4), node("/intc@8000000"));
	get(pcie, "dma-coherent", 0);
	/* rid-base 0, the ITS, device-id base 0, 65536 IDs: each requester ID is its device ID */
	msi_map = get(pcie, "msi-map", 16);
	ck_assert_uint_eq(fdt32_to_cpu(msi_map[0]), 0);
	ck_assert_uint_eq(fdt32_to_cpu(msi_map[2]), 0);
	ck_assert_uint_eq(fdt32_to_cpu(msi_map[3]), 0x10000);
	ck_assert_int_eq(phandle_target(pcie, "msi-map", 1),
	                 node("/intc@8000000/msi-controller@8080000"));
}
END_TEST

START_TEST(pci_host_with_v2m)
{
	const struct arm64_fdt_pci pci = pci_config();
	const struct arm64_fdt_config cfg = v2m_config(&pci);
	int pcie;

	build(&cfg);
	pcie = node("/pcie@3f000000");
	ck_assert_int_eq(phandle_target(pcie, "msi-map", 1), node("/intc@8000000/v2m@8020000"));
}
END_TEST

/* No MSI controller: INTx only, so no msi-map, and the GIC's unit address has no cells. */
START_TEST(pci_host_intx_only)
{
	struct arm64_fdt_pci pci = pci_config();
	struct arm64_fdt_config cfg = v3_its_config(&pci);
	const uint32_t ranges[] = {0x02000000, 0, 0x10000000, 0, 0x10000000, 0, 0x2eff0000};
	const uint32_t map[] = {1 << 11, 0, 0, 1, 1, 0, 5, 4, 3 << 11, 0, 0, 1, 1, 0, 7, 4};
	int pcie;

	cfg.msi = ARM64_MSI_NONE;
	pci.mmio64_size = 0;
	build(&cfg);
	pcie = node("/pcie@3f000000");
	ck_assert_ptr_null(fdt_getprop(fdt, pcie, "msi-map", NULL));
	ck_assert_ptr_null(fdt_getprop(fdt, pcie, "msi-parent", NULL));
	expect_cells(pcie, "ranges", ranges, ARRAY_SIZE(ranges));
	expect_cells(pcie, "interrupt-map", map, ARRAY_SIZE(map));
}
END_TEST

START_TEST(pci_host_without_devices)
{
	struct arm64_fdt_pci pci = pci_config();
	const struct arm64_fdt_config cfg = v3_its_config(&pci);

	pci.nr_intx = 0;
	pci.intx = NULL;
	build(&cfg);
	get(node("/pcie@3f000000"), "interrupt-map", 0);
}
END_TEST

/* Each bad config is refused with its reason, the buffer untouched. */
START_TEST(bad_msi_and_pci)
{
	static const struct {
		int msi; /* -1: keep */
		uint64_t ecam_size, mmio32_base;
		unsigned slot, spi;
		const char *reason;
	} cases[] = {
	        {ARM64_MSI_V2M, 0x200000, 0x10000000, 1, 5, "an ITS needs a GICv3"},
	        {-1, 0x180000, 0x10000000, 1, 5, "PCI ECAM not 1 to 256 buses"},
	        {-1, 0x10100000, 0x10000000, 1, 5, "PCI ECAM not 1 to 256 buses"},
	        {-1, 0, 0x10000000, 1, 5, "PCI ECAM not 1 to 256 buses"},
	        {-1, 0x200000, 0xf0000000, 1, 5, "64-bit PCI 32-bit window"},
	        {-1, 0x200000, 0x10000000, 32, 5, "slot above 31"},
	        {-1, 0x200000, 0x10000000, 1, 988, "SPI above 987"},
	        {7, 0x200000, 0x10000000, 1, 5, "unknown MSI controller"},
	};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		struct arm64_fdt_pci pci = pci_config();
		struct arm64_fdt_config cfg = v3_its_config(&pci);
		struct arm64_fdt_pci_intx one = {cases[i].slot, cases[i].spi};
		const char *reason = NULL;

		if (cases[i].msi >= 0)
			cfg.msi = (enum arm64_msi_kind)cases[i].msi;
		pci.ecam_size = cases[i].ecam_size;
		pci.mmio32_base = cases[i].mmio32_base;
		pci.intx = &one;
		pci.nr_intx = 1;
		memset(blob, 0xa5, 64);
		ck_assert_int_eq(arm64_fdt_build(&cfg, fdt, sizeof(blob), &reason), -EINVAL);
		ck_assert_msg(reason && strstr(reason, cases[i].reason), "case %u: %s", i,
		              reason ? reason : "(none)");
		ck_assert_uint_eq(((const uint8_t *)blob)[0], 0xa5);
	}
}
END_TEST

static Suite *arm64_fdt_pci_suite(void)
{
	Suite *s = suite_create("arm64_fdt_pci");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, its_below_gicv3);
	tcase_add_test(tc, v2m_below_gicv2);
	tcase_add_test(tc, gic_without_msi_has_no_children);
	tcase_add_test(tc, pci_host_with_its);
	tcase_add_test(tc, pci_host_with_v2m);
	tcase_add_test(tc, pci_host_intx_only);
	tcase_add_test(tc, pci_host_without_devices);
	tcase_add_test(tc, bad_msi_and_pci);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(arm64_fdt_pci_suite());
}
