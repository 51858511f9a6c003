/*
 * The aarch64 device tree read back with libfdt the way a kernel would: every node and property
 * of a GICv3 machine with an initrd and two virtio-mmio devices, a GICv2 machine, the MPIDR of
 * cpu nodes, the optional /chosen properties, buffers that are too small and configs the builder
 * must refuse without writing anything.
 */
#include <check.h>
#include <errno.h>
#include <libfdt.h>
#include <stdint.h>
#include <string.h>

#include "arch/aarch64/fdt.h"
#include "tests/unit/unit.h"

#define BUF_SIZE (128 * 1024)
#define POISON   0xa5

static uint64_t blob[BUF_SIZE / sizeof(uint64_t)]; /* libfdt wants 8-byte alignment */
static void *const fdt = blob;

/* Not the layout.h map: the builder must take every address from the config. */
static const struct arm64_fdt_device devices[] = {
        {0x0a000000, 0x1000, 3},
        {0x0a000200, 0x200, 4},
};

static struct arm64_fdt_config v3_config(void)
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
	        .uart_base = 0x09000000,
	        .uart_size = 0x1000,
	        .uart_spi = 5,
	        .uart_clock = 1843200,
	        .virtio = devices,
	        .nr_virtio = ARRAY_SIZE(devices),
	        .bootargs = "console=ttyS0 earlycon",
	        .initrd_start = 0x48000000,
	        .initrd_end = 0x48123456,
	};
}

static struct arm64_fdt_config v2_config(unsigned cpus)
{
	struct arm64_fdt_config c = v3_config();

	c.nr_cpus = cpus;
	c.gic = ARM64_GIC_V2;
	c.gic_cpu_base = 0x08010000;
	c.gic_cpu_size = 0x2000;
	c.gic_redist_base = 0;
	c.gic_redist_size = 0;
	return c;
}

/* Builds @cfg into the buffer and checks the blob as a whole. */
static void build(const struct arm64_fdt_config *cfg)
{
	const char *reason = NULL;

	memset(blob, POISON, sizeof(blob));
	ck_assert_int_eq(arm64_fdt_build(cfg, fdt, sizeof(blob), &reason), 0);
	ck_assert_int_eq(fdt_check_header(fdt), 0);
	ck_assert_uint_le(fdt_totalsize(fdt), sizeof(blob));
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

static void expect_absent(int off, const char *name)
{
	ck_assert_ptr_null(fdt_getprop(fdt, off, name, NULL));
}

static void expect_empty(int off, const char *name)
{
	get(off, name, 0);
}

static void expect_str(int off, const char *name, const char *s)
{
	ck_assert_str_eq(get(off, name, (int)strlen(s) + 1), s);
}

static void expect_u32(int off, const char *name, uint32_t v)
{
	ck_assert_uint_eq(fdt32_to_cpu(*(const fdt32_t *)get(off, name, 4)), v);
}

static void expect_u64(int off, const char *name, uint64_t v)
{
	fdt64_t be;

	memcpy(&be, get(off, name, 8), sizeof(be));
	ck_assert_uint_eq(fdt64_to_cpu(be), v);
}

static void expect_cells(int off, const char *name, const uint32_t *cells, unsigned n)
{
	const fdt32_t *p = get(off, name, (int)(n * 4));

	for (unsigned i = 0; i < n; i++)
		ck_assert_msg(fdt32_to_cpu(p[i]) == cells[i], "%s[%u] = %#x, not %#x", name, i,
		              fdt32_to_cpu(p[i]), cells[i]);
}

/* reg as <address size> pairs of two cells each. */
static void expect_reg(int off, const uint64_t *pairs, unsigned n)
{
	uint32_t cells[8];

	ck_assert_uint_le(n, 2);
	for (unsigned i = 0; i < 2 * n; i++) {
		cells[2 * i] = (uint32_t)(pairs[i] >> 32);
		cells[2 * i + 1] = (uint32_t)pairs[i];
	}
	expect_cells(off, "reg", cells, 4 * n);
}

static void expect_spi(int off, unsigned spi, uint32_t flags)
{
	const uint32_t cells[] = {0, spi, flags};

	expect_cells(off, "interrupts", cells, 3);
}

static int only_compatible(const char *compatible)
{
	int off = fdt_node_offset_by_compatible(fdt, -1, compatible);

	ck_assert_msg(off >= 0, "no %s node", compatible);
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, off, compatible), -FDT_ERR_NOTFOUND);
	return off;
}

static unsigned count_subnodes(int parent)
{
	unsigned n = 0;
	int off;

	fdt_for_each_subnode(off, fdt, parent) n++;
	return n;
}

START_TEST(root_properties)
{
	const struct arm64_fdt_config cfg = v3_config();
	uint32_t phandle;

	build(&cfg);
	expect_u32(0, "#address-cells", 2);
	expect_u32(0, "#size-cells", 2);
	expect_str(0, "compatible", "linux,dummy-virt");
	expect_str(0, "model", "vmm");
	phandle = fdt_get_phandle(fdt, node("/intc@8000000"));
	ck_assert_uint_ne(phandle, 0);
	ck_assert_uint_ne(phandle, UINT32_MAX);
	expect_u32(0, "interrupt-parent", phandle);
	/* chosen, memory, cpus, psci, timer, intc, serial and two virtio_mmio */
	ck_assert_uint_eq(count_subnodes(0), 9);
}
END_TEST

START_TEST(chosen_with_initrd)
{
	const struct arm64_fdt_config cfg = v3_config();
	const char *stdout_path;
	int chosen;

	build(&cfg);
	chosen = node("/chosen");
	expect_str(chosen, "bootargs", "console=ttyS0 earlycon");
	expect_u64(chosen, "linux,initrd-start", 0x48000000);
	expect_u64(chosen, "linux,initrd-end", 0x48123456);
	expect_str(chosen, "stdout-path", "/serial@9000000");
	stdout_path = fdt_getprop(fdt, chosen, "stdout-path", NULL);
	ck_assert_int_eq(fdt_path_offset(fdt, stdout_path), only_compatible("ns16550a"));
}
END_TEST

/* Fresh entropy in every tree: two builds give different seeds. */
START_TEST(chosen_seeds)
{
	const struct arm64_fdt_config cfg = v3_config();
	uint8_t kaslr[8], rng[32];
	int chosen;

	build(&cfg);
	chosen = node("/chosen");
	memcpy(kaslr, get(chosen, "kaslr-seed", 8), sizeof(kaslr));
	memcpy(rng, get(chosen, "rng-seed", 32), sizeof(rng));
	build(&cfg);
	chosen = node("/chosen");
	ck_assert_mem_ne(get(chosen, "kaslr-seed", 8), kaslr, sizeof(kaslr));
	ck_assert_mem_ne(get(chosen, "rng-seed", 32), rng, sizeof(rng));
}
END_TEST

START_TEST(chosen_without_initrd)
{
	struct arm64_fdt_config cfg = v3_config();
	int chosen;

	cfg.initrd_start = cfg.initrd_end = 0x48000000;
	build(&cfg);
	chosen = node("/chosen");
	expect_absent(chosen, "linux,initrd-start");
	expect_absent(chosen, "linux,initrd-end");
	expect_str(chosen, "bootargs", "console=ttyS0 earlycon");
	expect_str(chosen, "stdout-path", "/serial@9000000");
}
END_TEST

START_TEST(chosen_without_bootargs)
{
	struct arm64_fdt_config cfg = v3_config();
	int chosen;

	cfg.bootargs = NULL;
	build(&cfg);
	chosen = node("/chosen");
	expect_absent(chosen, "bootargs");
	expect_str(chosen, "stdout-path", "/serial@9000000");
	expect_u64(chosen, "linux,initrd-start", 0x48000000);
}
END_TEST

START_TEST(memory_node)
{
	const struct arm64_fdt_config cfg = v3_config();
	const uint64_t reg[] = {0x40000000, 256 * MIB};
	int mem;

	build(&cfg);
	mem = node("/memory@40000000");
	expect_str(mem, "device_type", "memory");
	expect_reg(mem, reg, 1);
}
END_TEST

START_TEST(cpus_node)
{
	const struct arm64_fdt_config cfg = v3_config();
	int cpus;

	build(&cfg);
	cpus = node("/cpus");
	expect_u32(cpus, "#address-cells", 1);
	expect_u32(cpus, "#size-cells", 0);
	ck_assert_uint_eq(count_subnodes(cpus), 2);
	for (unsigned i = 0; i < 2; i++) {
		int cpu = node(i ? "/cpus/cpu@1" : "/cpus/cpu@0");

		expect_str(cpu, "device_type", "cpu");
		expect_str(cpu, "compatible", "arm,arm-v8");
		expect_str(cpu, "enable-method", "psci");
		expect_u32(cpu, "reg", i);
	}
}
END_TEST

START_TEST(vcpu_mpidr)
{
	ck_assert_uint_eq(arm64_vcpu_mpidr(0), 0x0);
	ck_assert_uint_eq(arm64_vcpu_mpidr(15), 0xf);
	ck_assert_uint_eq(arm64_vcpu_mpidr(16), 0x100);
	ck_assert_uint_eq(arm64_vcpu_mpidr(255), 0xf0f);
	ck_assert_uint_eq(arm64_vcpu_mpidr(4096), 0x10000);
}
END_TEST

/* 256 vCPUs: cpu nodes are named and numbered by MPIDR, not by index. */
START_TEST(cpu_reg_is_mpidr)
{
	struct arm64_fdt_config cfg = v3_config();
	static const struct {
		const char *path;
		uint32_t reg;
	} cpus[] = {
	        {"/cpus/cpu@0", 0x0},
	        {"/cpus/cpu@f", 0xf},
	        {"/cpus/cpu@100", 0x100},
	        {"/cpus/cpu@f0f", 0xf0f},
	};

	cfg.nr_cpus = 256;
	cfg.gic_redist_size = 256 * 0x20000;
	build(&cfg);
	ck_assert_uint_eq(count_subnodes(node("/cpus")), 256);
	for (unsigned i = 0; i < ARRAY_SIZE(cpus); i++)
		expect_u32(node(cpus[i].path), "reg", cpus[i].reg);
	ck_assert_int_eq(fdt_path_offset(fdt, "/cpus/cpu@10"), -FDT_ERR_NOTFOUND);
}
END_TEST

START_TEST(psci_node)
{
	const struct arm64_fdt_config cfg = v3_config();
	static const char compatible[] = "arm,psci-0.2\0arm,psci";
	int psci;

	build(&cfg);
	psci = node("/psci");
	ck_assert_mem_eq(get(psci, "compatible", sizeof(compatible)), compatible,
	                 sizeof(compatible));
	ck_assert_int_eq(fdt_stringlist_count(fdt, psci, "compatible"), 2);
	expect_str(psci, "method", "hvc");
}
END_TEST

START_TEST(timer_gicv3)
{
	const struct arm64_fdt_config cfg = v3_config();
	const uint32_t irqs[] = {1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4};
	int timer;

	build(&cfg);
	timer = only_compatible("arm,armv8-timer");
	ck_assert_int_eq(timer, node("/timer"));
	expect_cells(timer, "interrupts", irqs, ARRAY_SIZE(irqs));
}
END_TEST

/* --pmu: a PMUv3 node with its overflow PPI 7 (the GICv2 form carries the CPU mask). */
START_TEST(pmu_node)
{
	struct arm64_fdt_config cfg = v3_config();
	const uint32_t v3[] = {1, 7, 4}, v2[] = {1, 7, 0x304};
	int pmu;

	build(&cfg);
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, -1, "arm,armv8-pmuv3"),
	                 -FDT_ERR_NOTFOUND);
	cfg.pmu = true;
	build(&cfg);
	pmu = only_compatible("arm,armv8-pmuv3");
	ck_assert_int_eq(pmu, node("/pmu"));
	expect_cells(pmu, "interrupts", v3, ARRAY_SIZE(v3));
	cfg = v2_config(2);
	cfg.pmu = true;
	build(&cfg);
	expect_cells(only_compatible("arm,armv8-pmuv3"), "interrupts", v2, ARRAY_SIZE(v2));
}
END_TEST

START_TEST(gicv3_node)
{
	const struct arm64_fdt_config cfg = v3_config();
	const uint64_t reg[] = {0x08000000, 0x10000, 0x080a0000, 0x40000};
	int gic;

	build(&cfg);
	gic = only_compatible("arm,gic-v3");
	ck_assert_int_eq(gic, node("/intc@8000000"));
	expect_str(gic, "compatible", "arm,gic-v3");
	expect_u32(gic, "#interrupt-cells", 3);
	expect_empty(gic, "interrupt-controller");
	expect_reg(gic, reg, 2);
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, -1, "arm,cortex-a15-gic"),
	                 -FDT_ERR_NOTFOUND);
}
END_TEST

START_TEST(uart_node)
{
	const struct arm64_fdt_config cfg = v3_config();
	const uint64_t reg[] = {0x09000000, 0x1000};
	int uart;

	build(&cfg);
	uart = node("/serial@9000000");
	expect_str(uart, "compatible", "ns16550a");
	expect_reg(uart, reg, 1);
	expect_u32(uart, "clock-frequency", 1843200);
	expect_spi(uart, 5, 4);
}
END_TEST

START_TEST(virtio_nodes)
{
	const struct arm64_fdt_config cfg = v3_config();
	const char *paths[] = {"/virtio_mmio@a000000", "/virtio_mmio@a000200"};
	int off = -1;

	build(&cfg);
	for (unsigned i = 0; i < ARRAY_SIZE(devices); i++) {
		const uint64_t reg[] = {devices[i].base, devices[i].size};

		off = fdt_node_offset_by_compatible(fdt, off, "virtio,mmio");
		ck_assert_int_eq(off, node(paths[i]));
		expect_str(off, "compatible", "virtio,mmio");
		expect_reg(off, reg, 1);
		expect_spi(off, devices[i].spi, 1);
		expect_empty(off, "dma-coherent");
	}
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, off, "virtio,mmio"), -FDT_ERR_NOTFOUND);
}
END_TEST

START_TEST(no_virtio_devices)
{
	struct arm64_fdt_config cfg = v3_config();

	cfg.virtio = NULL;
	cfg.nr_virtio = 0;
	build(&cfg);
	ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, -1, "virtio,mmio"), -FDT_ERR_NOTFOUND);
}
END_TEST

/* GICv2: distributor and CPU interface; PPIs carry the CPU mask in bits [15:8]. */
START_TEST(gicv2)
{
	static const struct {
		unsigned cpus;
		uint32_t flags;
	} cases[] = {{1, 0x104}, {3, 0x704}, {8, 0xff04}};
	const uint64_t reg[] = {0x08000000, 0x10000, 0x08010000, 0x2000};

	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct arm64_fdt_config cfg = v2_config(cases[i].cpus);
		const uint32_t f = cases[i].flags;
		const uint32_t irqs[] = {1, 13, f, 1, 14, f, 1, 11, f, 1, 10, f};
		int gic;

		build(&cfg);
		gic = only_compatible("arm,cortex-a15-gic");
		ck_assert_int_eq(gic, node("/intc@8000000"));
		expect_u32(gic, "#interrupt-cells", 3);
		expect_empty(gic, "interrupt-controller");
		expect_reg(gic, reg, 2);
		expect_u32(0, "interrupt-parent", fdt_get_phandle(fdt, gic));
		expect_cells(node("/timer"), "interrupts", irqs, ARRAY_SIZE(irqs));
		ck_assert_uint_eq(count_subnodes(node("/cpus")), cases[i].cpus);
		ck_assert_int_eq(fdt_node_offset_by_compatible(fdt, -1, "arm,gic-v3"),
		                 -FDT_ERR_NOTFOUND);
	}
}
END_TEST

/* -ENOSPC below the size the tree needs, with a reason; success at exactly that size. */
START_TEST(buffer_too_small)
{
	const struct arm64_fdt_config cfg = v3_config();
	const size_t sizes[] = {0, 16, 100, 512};
	uint32_t need;

	build(&cfg);
	need = fdt_totalsize(fdt);
	for (unsigned i = 0; i <= ARRAY_SIZE(sizes); i++) {
		const char *reason = NULL;
		size_t size = i < ARRAY_SIZE(sizes) ? sizes[i] : need - 1;

		ck_assert_int_eq(arm64_fdt_build(&cfg, fdt, size, &reason), -ENOSPC);
		ck_assert_ptr_nonnull(reason);
		ck_assert_uint_gt(strlen(reason), 0);
	}
	ck_assert_int_eq(arm64_fdt_build(&cfg, fdt, need, NULL), 0);
	ck_assert_int_eq(fdt_check_full(fdt, need), 0);
}
END_TEST

/* How many bytes from the start of blob still hold POISON. */
static size_t untouched_bytes(void)
{
	size_t i = 0;

	while (i < sizeof(blob) && ((const uint8_t *)blob)[i] == POISON)
		i++;
	return i;
}

static void expect_invalid(const struct arm64_fdt_config *cfg)
{
	const char *reason = NULL;

	memset(blob, POISON, sizeof(blob));
	ck_assert_int_eq(arm64_fdt_build(cfg, fdt, sizeof(blob), &reason), -EINVAL);
	ck_assert_ptr_nonnull(reason);
	ck_assert_uint_gt(strlen(reason), 0);
	/* One assertion, not one per byte: each ck_assert costs a write to Check's pipe, and a
	 * byte-by-byte check ran past the test timeout on a loaded machine. */
	ck_assert_uint_eq(untouched_bytes(), sizeof(blob));
}

/* One rule per case, each rejected before a byte is written. */
START_TEST(bad_cpus_and_gic)
{
	struct arm64_fdt_config c = v3_config();

	c.nr_cpus = 0;
	expect_invalid(&c);
	c.nr_cpus = 257;
	c.gic_redist_size = 257 * 0x20000;
	expect_invalid(&c);
	c = v2_config(9);
	expect_invalid(&c);
	c = v2_config(2);
	c.gic_cpu_size = 0;
	expect_invalid(&c);
	c = v3_config();
	c.gic = 4;
	expect_invalid(&c);
	c = v3_config();
	c.gic_redist_size = 2 * 0x20000 - 1; /* 128 KiB per vCPU */
	expect_invalid(&c);
	c = v3_config();
	c.gic_dist_size = 0;
	expect_invalid(&c);
}
END_TEST

START_TEST(bad_windows_and_devices)
{
	const struct arm64_fdt_device no_size[] = {{0x0a000000, 0, 3}};
	const struct arm64_fdt_device high_spi[] = {{0x0a000000, 0x200, 988}};
	struct arm64_fdt_config c = v3_config();

	c.ram_size = 0;
	expect_invalid(&c);
	c.ram_base = UINT64_MAX - 0xfff;
	c.ram_size = 0x2000;
	expect_invalid(&c);
	c = v3_config();
	c.initrd_end = c.initrd_start - 1;
	expect_invalid(&c);
	c = v3_config();
	c.uart_size = 0;
	expect_invalid(&c);
	c = v3_config();
	c.uart_spi = 988;
	expect_invalid(&c);
	c = v3_config();
	c.virtio = NULL;
	expect_invalid(&c);
	c.virtio = no_size;
	c.nr_virtio = 1;
	expect_invalid(&c);
	c.virtio = high_spi;
	expect_invalid(&c);
}
END_TEST

/* The limits themselves are accepted. */
START_TEST(config_limits)
{
	struct arm64_fdt_config c = v2_config(8);
	const struct arm64_fdt_device top_spi[] = {{0x0a000000, 0x200, 987}};
	const char *reason = NULL;

	build(&c);
	c = v3_config();
	c.ram_base = UINT64_MAX - 0xfff;
	c.ram_size = 0x1000;
	c.uart_spi = 987;
	c.virtio = top_spi;
	c.nr_virtio = 1;
	build(&c);
	ck_assert_int_eq(arm64_fdt_build(&c, NULL, sizeof(blob), &reason), -EINVAL);
	ck_assert_ptr_nonnull(reason);
}
END_TEST

static Suite *arm64_fdt_suite(void)
{
	Suite *s = suite_create("arm64_fdt");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, root_properties);
	tcase_add_test(tc, chosen_with_initrd);
	tcase_add_test(tc, chosen_seeds);
	tcase_add_test(tc, chosen_without_initrd);
	tcase_add_test(tc, chosen_without_bootargs);
	tcase_add_test(tc, memory_node);
	tcase_add_test(tc, cpus_node);
	tcase_add_test(tc, vcpu_mpidr);
	tcase_add_test(tc, cpu_reg_is_mpidr);
	tcase_add_test(tc, psci_node);
	tcase_add_test(tc, timer_gicv3);
	tcase_add_test(tc, pmu_node);
	tcase_add_test(tc, gicv3_node);
	tcase_add_test(tc, uart_node);
	tcase_add_test(tc, virtio_nodes);
	tcase_add_test(tc, no_virtio_devices);
	tcase_add_test(tc, gicv2);
	tcase_add_test(tc, buffer_too_small);
	tcase_add_test(tc, bad_cpus_and_gic);
	tcase_add_test(tc, bad_windows_and_devices);
	tcase_add_test(tc, config_limits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(arm64_fdt_suite());
}
