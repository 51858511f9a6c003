/*
 * How MSIs become KVM routes (vmm/msi.c's msi_route_entry): plain MSI routes (x86), routes
 * tagged with the requester ID (arm64's ITS), and a GICv2m frame's doorbell turned into routes
 * to its SPIs; and the frame's registers (devices/gicv2m.c) that tell the guest those SPIs.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "devices/gicv2m.h"
#include "tests/unit/unit.h"
#include "vmm/msi.h"

#define DOORBELL (0x08020000ULL + GICV2M_MSI_SETSPI)

static const struct msi_translation v2m = {
        .doorbell = DOORBELL,
        .doorbell_first = 96,
        .doorbell_count = 128,
        .doorbell_pin_base = 32,
};

START_TEST(plain_msi_route)
{
	const struct msi_translation plain = {0};
	struct kvm_irq_routing_entry e;

	ck_assert_int_eq(msi_route_entry(&plain, 30, 0x1fee01000ULL, 0x4041, 0x18, &e), 0);
	ck_assert_uint_eq(e.gsi, 30);
	ck_assert_uint_eq(e.type, KVM_IRQ_ROUTING_MSI);
	ck_assert_uint_eq(e.flags, 0);
	ck_assert_uint_eq(e.u.msi.address_lo, 0xfee01000);
	ck_assert_uint_eq(e.u.msi.address_hi, 1);
	ck_assert_uint_eq(e.u.msi.data, 0x4041);
	ck_assert_uint_eq(e.u.msi.devid, 0); /* not claimed without the flag */
}
END_TEST

/* The ITS: its GITS_TRANSLATER address, the event ID as data, the requester ID as device ID. */
START_TEST(its_route_carries_the_requester_id)
{
	const struct msi_translation its = {.devid = true};
	struct kvm_irq_routing_entry e;

	ck_assert_int_eq(msi_route_entry(&its, 40, 0x08090040, 3, 2 << 3, &e), 0);
	ck_assert_uint_eq(e.type, KVM_IRQ_ROUTING_MSI);
	ck_assert_uint_eq(e.flags, KVM_MSI_VALID_DEVID);
	ck_assert_uint_eq(e.u.msi.address_lo, 0x08090040);
	ck_assert_uint_eq(e.u.msi.address_hi, 0);
	ck_assert_uint_eq(e.u.msi.data, 3);
	ck_assert_uint_eq(e.u.msi.devid, 0x10);
}
END_TEST

/* GICv2m: data is the SPI's INTID; the route goes to irqchip 0's pin INTID - 32. */
START_TEST(v2m_doorbell_routes_to_the_spi)
{
	struct kvm_irq_routing_entry e;

	ck_assert_int_eq(msi_route_entry(&v2m, 25, DOORBELL, 96, 0x8, &e), 0);
	ck_assert_uint_eq(e.gsi, 25);
	ck_assert_uint_eq(e.type, KVM_IRQ_ROUTING_IRQCHIP);
	ck_assert_uint_eq(e.flags, 0);
	ck_assert_uint_eq(e.u.irqchip.irqchip, 0);
	ck_assert_uint_eq(e.u.irqchip.pin, 64);
	ck_assert_int_eq(msi_route_entry(&v2m, 26, DOORBELL, 223, 0x8, &e), 0);
	ck_assert_uint_eq(e.u.irqchip.pin, 191);
}
END_TEST

/* Guest-chosen messages the frame does not serve are refused, not routed somewhere else. */
START_TEST(v2m_refuses_other_messages)
{
	static const struct {
		uint64_t address;
		uint32_t data;
	} bad[] = {
	        {DOORBELL, 95},      {DOORBELL, 224},   {DOORBELL, 0}, {DOORBELL, 0xffffffff},
	        {DOORBELL + 4, 100}, {0xfee00000, 100}, {0, 100},      {DOORBELL | 1ULL << 32, 100},
	};
	struct kvm_irq_routing_entry e;

	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
		ck_assert_msg(msi_route_entry(&v2m, 25, bad[i].address, bad[i].data, 0, &e) ==
		                      -EINVAL,
		              "case %u", i);
}
END_TEST

static uint32_t read32(struct gicv2m *f, uint64_t offset)
{
	uint32_t v = 0xdeadbeef;

	ck_assert_int_eq(gicv2m_bus_ops.read(f, offset, &v, 4), 0);
	return v;
}

START_TEST(v2m_frame_registers)
{
	struct gicv2m f;
	uint16_t half = 0xffff;

	ck_assert_int_eq(gicv2m_init(&f, -1, 96, 128), 0);
	/* MSI_TYPER: first SPI's INTID in bits 25:16, the count in bits 9:0 */
	ck_assert_uint_eq(read32(&f, GICV2M_MSI_TYPER), 96u << 16 | 128);
	ck_assert_uint_eq(read32(&f, GICV2M_MSI_IIDR), 0);
	ck_assert_uint_eq(read32(&f, GICV2M_MSI_SETSPI), 0);
	ck_assert_uint_eq(read32(&f, 0x800), 0);
	ck_assert_int_eq(gicv2m_bus_ops.read(&f, GICV2M_MSI_TYPER, &half, 2), 0);
	ck_assert_uint_eq(half, 0); /* only whole-register reads see it */
}
END_TEST

static uint32_t raised[8];
static unsigned nr_raised;

static void record(void *opaque, uint32_t intid)
{
	(void)opaque;
	if (nr_raised < ARRAY_SIZE(raised))
		raised[nr_raised] = intid;
	nr_raised++;
}

/* A vCPU's write to MSI_SETSPI_NS raises that SPI when the frame serves it. */
START_TEST(v2m_setspi_write)
{
	static const uint32_t writes[] = {96, 95, 224, 150, 0xffffffff};
	struct gicv2m f;
	uint16_t half = 100;

	ck_assert_int_eq(gicv2m_init(&f, -1, 96, 128), 0);
	f.test_raise = record;
	nr_raised = 0;
	for (unsigned i = 0; i < ARRAY_SIZE(writes); i++)
		ck_assert_int_eq(gicv2m_bus_ops.write(&f, GICV2M_MSI_SETSPI, &writes[i], 4), 0);
	ck_assert_int_eq(gicv2m_bus_ops.write(&f, GICV2M_MSI_SETSPI, &half, 2), 0);
	ck_assert_int_eq(gicv2m_bus_ops.write(&f, GICV2M_MSI_TYPER, &writes[0], 4), 0);
	ck_assert_uint_eq(nr_raised, 2);
	ck_assert_uint_eq(raised[0], 96);
	ck_assert_uint_eq(raised[1], 150);
	ck_assert_uint_eq(read32(&f, GICV2M_MSI_TYPER), 96u << 16 | 128); /* read-only */
}
END_TEST

START_TEST(v2m_init_checks_the_range)
{
	struct gicv2m f;

	ck_assert_int_eq(gicv2m_init(&f, -1, 31, 1), -EINVAL);    /* a PPI */
	ck_assert_int_eq(gicv2m_init(&f, -1, 32, 0), -EINVAL);    /* none */
	ck_assert_int_eq(gicv2m_init(&f, -1, 1000, 21), -EINVAL); /* past INTID 1019 */
	ck_assert_int_eq(gicv2m_init(&f, -1, 32, 1024), -EINVAL); /* wider than the field */
	ck_assert_int_eq(gicv2m_init(&f, -1, 1000, 20), 0);
	ck_assert_int_eq(gicv2m_init(&f, -1, 32, 988), 0);
}
END_TEST

static Suite *msi_routes_suite(void)
{
	Suite *s = suite_create("msi_routes");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, plain_msi_route);
	tcase_add_test(tc, its_route_carries_the_requester_id);
	tcase_add_test(tc, v2m_doorbell_routes_to_the_spi);
	tcase_add_test(tc, v2m_refuses_other_messages);
	tcase_add_test(tc, v2m_frame_registers);
	tcase_add_test(tc, v2m_setspi_write);
	tcase_add_test(tc, v2m_init_checks_the_range);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(msi_routes_suite());
}
