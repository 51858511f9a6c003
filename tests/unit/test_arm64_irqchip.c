/*
 * --irqchip against what the host's KVM offers (arch/aarch64/irqchip.c): the default with and
 * without --transport pci, each explicit choice, and the one-line refusals naming the offer.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "arch/aarch64/irqchip.h"
#include "tests/unit/unit.h"

static const struct arm64_gic_offer v3_its = {.v2 = false, .v3 = true, .its = true};
static const struct arm64_gic_offer v3_compat = {.v2 = true, .v3 = true, .its = true};
static const struct arm64_gic_offer v3_no_its = {.v3 = true};
static const struct arm64_gic_offer v2_only = {.v2 = true};
static const struct arm64_gic_offer none = {0};

static struct arm64_irqchip choose_ok(enum irqchip_kind want, bool pci,
                                      const struct arm64_gic_offer *host)
{
	struct arm64_irqchip chip = {0};
	char err[256] = "";

	ck_assert_msg(arm64_irqchip_choose(want, pci, host, &chip, err, sizeof(err)) == 0, "%s",
	              err);
	return chip;
}

static void expect(enum irqchip_kind want, bool pci, const struct arm64_gic_offer *host,
                   enum arm64_gic_version gic, enum arm64_msi_kind msi)
{
	struct arm64_irqchip chip = choose_ok(want, pci, host);

	ck_assert_int_eq(chip.gic, gic);
	ck_assert_int_eq(chip.msi, msi);
}

static void expect_refused(enum irqchip_kind want, const struct arm64_gic_offer *host,
                           const char *message)
{
	struct arm64_irqchip chip;
	char err[256] = "";

	ck_assert_int_eq(arm64_irqchip_choose(want, true, host, &chip, err, sizeof(err)), -ENODEV);
	ck_assert_msg(!strcmp(err, message), "got '%s', expected '%s'", err, message);
}

START_TEST(default_is_the_best_gic)
{
	/* virtio-mmio: no MSI controller (nothing would use it), as before */
	expect(IRQCHIP_AUTO, false, &v3_its, ARM64_GIC_V3, ARM64_MSI_NONE);
	expect(IRQCHIP_AUTO, false, &v2_only, ARM64_GIC_V2, ARM64_MSI_NONE);
	/* --transport pci: the MSI controller that goes with the GIC */
	expect(IRQCHIP_AUTO, true, &v3_its, ARM64_GIC_V3, ARM64_MSI_ITS);
	expect(IRQCHIP_AUTO, true, &v3_compat, ARM64_GIC_V3, ARM64_MSI_ITS);
	expect(IRQCHIP_AUTO, true, &v2_only, ARM64_GIC_V2, ARM64_MSI_V2M);
	/* a GICv3 without an ITS keeps the GICv3; PCI devices then use INTx */
	expect(IRQCHIP_AUTO, true, &v3_no_its, ARM64_GIC_V3, ARM64_MSI_NONE);
}
END_TEST

START_TEST(explicit_choices)
{
	for (int pci = 0; pci < 2; pci++) {
		expect(IRQCHIP_GICV2, pci, &v3_compat, ARM64_GIC_V2, ARM64_MSI_NONE);
		expect(IRQCHIP_GICV2M, pci, &v3_compat, ARM64_GIC_V2, ARM64_MSI_V2M);
		expect(IRQCHIP_GICV3, pci, &v3_compat, ARM64_GIC_V3, ARM64_MSI_NONE);
		expect(IRQCHIP_GICV3_ITS, pci, &v3_compat, ARM64_GIC_V3, ARM64_MSI_ITS);
		expect(IRQCHIP_GICV2M, pci, &v2_only, ARM64_GIC_V2, ARM64_MSI_V2M);
	}
}
END_TEST

START_TEST(refusals_name_the_offer)
{
	expect_refused(IRQCHIP_GICV2M, &v3_its,
	               "--irqchip gicv2m: this host's KVM cannot emulate a GICv2 (it offers gicv3, "
	               "gicv3-its; a GICv3 host needs its GICv2 compatibility for a GICv2)");
	expect_refused(IRQCHIP_GICV2, &v3_no_its,
	               "--irqchip gicv2: this host's KVM cannot emulate a GICv2 (it offers gicv3; "
	               "a GICv3 host needs its GICv2 compatibility for a GICv2)");
	expect_refused(IRQCHIP_GICV3_ITS, &v3_no_its,
	               "--irqchip gicv3-its: this host's KVM cannot emulate a GICv3 ITS (it offers "
	               "gicv3)");
	expect_refused(IRQCHIP_GICV3, &v2_only,
	               "--irqchip gicv3: this host's KVM cannot emulate a GICv3 (it offers gicv2, "
	               "gicv2m)");
	expect_refused(IRQCHIP_GICV3_ITS, &v2_only,
	               "--irqchip gicv3-its: this host's KVM cannot emulate a GICv3 ITS (it offers "
	               "gicv2, gicv2m)");
	expect_refused(IRQCHIP_AUTO, &none, "this host's KVM cannot emulate a GIC");
	expect_refused(
	        IRQCHIP_GICV3, &none,
	        "--irqchip gicv3: this host's KVM cannot emulate a GICv3 (it offers nothing)");
}
END_TEST

static Suite *arm64_irqchip_suite(void)
{
	Suite *s = suite_create("arm64_irqchip");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, default_is_the_best_gic);
	tcase_add_test(tc, explicit_choices);
	tcase_add_test(tc, refusals_name_the_offer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(arm64_irqchip_suite());
}
