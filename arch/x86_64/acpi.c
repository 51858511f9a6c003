#include "arch/x86_64/acpi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/aml.h"
#include "arch/x86_64/layout.h"

#define ACPI_OEM_ID       "VMM   "
#define ACPI_OEM_TABLE_ID "VMMTABLE"
#define ACPI_CREATOR_ID   "VMM "
#define ACPI_TABLE_ALIGN  16
#define ACPI_IOAPIC_ID    0 /* what KVM's IOAPIC reports in its ID register */

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
	char signature[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum;
	uint8_t reserved[3];
} __attribute__((packed));

/* Generic Address Structure. */
struct acpi_gas {
	uint8_t space_id;
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t address;
} __attribute__((packed));

#define ACPI_GAS_SYSTEM_IO 1
#define ACPI_ACCESS_BYTE   1

struct acpi_fadt {
	struct acpi_header header;
	uint32_t firmware_ctrl;
	uint32_t dsdt;
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
	uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	uint64_t hypervisor_vendor_id;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6 is 276 bytes");
_Static_assert(__builtin_offsetof(struct acpi_fadt, iapc_boot_arch) == 109, "IAPC_BOOT_ARCH");
_Static_assert(__builtin_offsetof(struct acpi_fadt, flags) == 112, "FADT flags");
_Static_assert(__builtin_offsetof(struct acpi_fadt, reset_reg) == 116, "RESET_REG");
_Static_assert(__builtin_offsetof(struct acpi_fadt, reset_value) == 128, "RESET_VALUE");
_Static_assert(__builtin_offsetof(struct acpi_fadt, minor_version) == 131, "FADT minor");
_Static_assert(__builtin_offsetof(struct acpi_fadt, x_dsdt) == 140, "X_DSDT");
_Static_assert(__builtin_offsetof(struct acpi_fadt, sleep_control_reg) == 244, "SLEEP_CONTROL");
_Static_assert(__builtin_offsetof(struct acpi_fadt, sleep_status_reg) == 256, "SLEEP_STATUS");
_Static_assert(__builtin_offsetof(struct acpi_fadt, hypervisor_vendor_id) == 268, "HYPERVISOR");

/* FADT flags and IA-PC boot architecture flags. */
#define FADT_WBINVD          (1u << 0)
#define FADT_PWR_BUTTON      (1u << 4) /* no fixed-feature power button */
#define FADT_SLP_BUTTON      (1u << 5)
#define FADT_RESET_REG_SUP   (1u << 10)
#define FADT_HW_REDUCED_ACPI (1u << 20)
#define IAPC_8042            (1u << 1)
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_PCIE_ASPM_OFF   (1u << 4)

struct madt_local_apic {
	uint8_t type, length, processor_uid, apic_id;
	uint32_t flags;
} __attribute__((packed));

struct madt_ioapic {
	uint8_t type, length, id, reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct madt_iso {
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));

struct madt_lapic_nmi {
	uint8_t type, length, processor_uid;
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

#define MADT_PCAT_COMPAT     1
#define MADT_LAPIC_ENABLED   1
#define MADT_ISO_LEVEL_HIGH  0x000d /* active high (01), level triggered (11 << 2) */
#define MADT_ALL_PROCESSORS  0xff

struct mcfg_allocation {
	uint64_t base;
	uint16_t segment;
	uint8_t start_bus, end_bus;
	uint32_t reserved;
} __attribute__((packed));

/* The tables are laid out in a host buffer mirroring [X86_ACPI_START, X86_ACPI_END). */
struct acpi_builder {
	uint8_t *buf;
	size_t len, cap;
};

static uint8_t checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

/* Reserves @len bytes, aligned; returns the offset or -1 when it does not fit. */
static long reserve(struct acpi_builder *b, size_t len)
{
	size_t at = ALIGN_UP(b->len, ACPI_TABLE_ALIGN);

	if (at > b->cap || len > b->cap - at)
		return -1;
	b->len = at + len;
	return (long)at;
}

static uint64_t gpa_of(long offset)
{
	return X86_ACPI_START + (uint64_t)offset;
}

static void header_init(struct acpi_header *h, const char *sig, uint32_t len, uint8_t revision)
{
	memcpy(h->signature, sig, 4);
	h->length = len;
	h->revision = revision;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
}

/* Copies a finished table (header first) into the buffer, checksummed; returns its offset. */
static long add_table(struct acpi_builder *b, void *table)
{
	struct acpi_header *h = table;
	long at = reserve(b, h->length);

	if (at < 0)
		return -1;
	h->checksum = 0;
	h->checksum = checksum(table, h->length);
	memcpy(b->buf + at, table, h->length);
	return at;
}

static void gas_io(struct acpi_gas *g, uint16_t port)
{
	*g = (struct acpi_gas){.space_id = ACPI_GAS_SYSTEM_IO,
	                       .bit_width = 8,
	                       .access_size = ACPI_ACCESS_BYTE,
	                       .address = port};
}

static long add_fadt(struct acpi_builder *b, long dsdt)
{
	struct acpi_fadt f = {0};

	header_init(&f.header, "FACP", sizeof(f), 6);
	f.minor_version = 5;
	f.flags = FADT_WBINVD | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_RESET_REG_SUP |
	          FADT_HW_REDUCED_ACPI;
	f.iapc_boot_arch = IAPC_8042 | IAPC_VGA_NOT_PRESENT | IAPC_PCIE_ASPM_OFF;
	f.sci_int = X86_ACPI_SCI_IRQ;
	gas_io(&f.reset_reg, X86_ACPI_RESET_PORT);
	f.reset_value = X86_ACPI_RESET_VALUE;
	f.x_dsdt = gpa_of(dsdt);
	gas_io(&f.sleep_control_reg, X86_ACPI_SLEEP_CONTROL_PORT);
	gas_io(&f.sleep_status_reg, X86_ACPI_SLEEP_STATUS_PORT);
	memcpy(&f.hypervisor_vendor_id, "vmm\0\0\0\0\0", 8);
	return add_table(b, &f);
}

static long add_madt(struct acpi_builder *b, unsigned nr_cpus)
{
	size_t len = sizeof(struct acpi_header) + 8 + nr_cpus * sizeof(struct madt_local_apic) +
	             sizeof(struct madt_ioapic) + sizeof(struct madt_iso) +
	             sizeof(struct madt_lapic_nmi);
	uint8_t *t = calloc(1, len), *p;
	long at;

	if (!t)
		return -1;
	header_init((struct acpi_header *)t, "APIC", (uint32_t)len, 5);
	p = t + sizeof(struct acpi_header);
	*(uint32_t *)p = (uint32_t)X86_LAPIC_ADDR;
	*(uint32_t *)(p + 4) = MADT_PCAT_COMPAT;
	p += 8;
	for (unsigned i = 0; i < nr_cpus; i++, p += sizeof(struct madt_local_apic))
		*(struct madt_local_apic *)p = (struct madt_local_apic){
		        0, sizeof(struct madt_local_apic), (uint8_t)i, (uint8_t)i, MADT_LAPIC_ENABLED};
	*(struct madt_ioapic *)p =
	        (struct madt_ioapic){1, sizeof(struct madt_ioapic), ACPI_IOAPIC_ID, 0,
	                             (uint32_t)X86_IOAPIC_ADDR, 0};
	p += sizeof(struct madt_ioapic);
	/* The SCI is level-triggered active-high (as KVM drives its line). */
	*(struct madt_iso *)p = (struct madt_iso){2, sizeof(struct madt_iso), 0, X86_ACPI_SCI_IRQ,
	                                          X86_ACPI_SCI_IRQ, MADT_ISO_LEVEL_HIGH};
	p += sizeof(struct madt_iso);
	/* LINT1 of every local APIC is the NMI input (cpu.c programs it so). */
	*(struct madt_lapic_nmi *)p =
	        (struct madt_lapic_nmi){4, sizeof(struct madt_lapic_nmi), MADT_ALL_PROCESSORS, 0, 1};
	at = add_table(b, t);
	free(t);
	return at;
}

static long add_mcfg(struct acpi_builder *b, const struct acpi_config *cfg)
{
	struct {
		struct acpi_header header;
		uint8_t reserved[8];
		struct mcfg_allocation alloc;
	} __attribute__((packed)) m = {0};

	header_init(&m.header, "MCFG", sizeof(m), 1);
	m.alloc.base = cfg->pci_ecam_base;
	m.alloc.end_bus = (uint8_t)((cfg->pci_ecam_size >> 20) - 1);
	return add_table(b, &m);
}

static void dsdt_com1(struct aml *a)
{
	aml_device(a, "COM1");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name(a, "_UID");
	aml_integer(a, 1);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_io(a, X86_COM1_PORT, 8);
	aml_irq_noflags(a, X86_COM1_IRQ);
	aml_end(a);
	aml_end(a);
}

static void dsdt_virtio_mmio(struct aml *a, const struct acpi_virtio_mmio *v, unsigned index)
{
	char name[5];

	snprintf(name, sizeof(name), "VR%02X", index & 0xff);
	aml_device(a, name);
	aml_name(a, "_HID");
	aml_string(a, "LNRO0005");
	aml_name(a, "_UID");
	aml_integer(a, index);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_memory32_fixed(a, (uint32_t)v->base, v->size);
	aml_interrupt(a, v->gsi, true, false);
	aml_end(a);
	aml_end(a);
}

static void dsdt_pci(struct aml *a, const struct acpi_config *cfg)
{
	unsigned end_bus = (unsigned)((cfg->pci_ecam_size >> 20) - 1);

	aml_device(a, "PCI0");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A08");
	aml_name(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name(a, "_SEG");
	aml_integer(a, 0);
	aml_name(a, "_BBN");
	aml_integer(a, 0);
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_word_bus_number(a, 0, (uint16_t)end_bus);
	aml_io(a, X86_PCI_CONFIG_PORT, 8);
	aml_dword_memory(a, (uint32_t)cfg->pci_mmio32_base, (uint32_t)cfg->pci_mmio32_size);
	if (cfg->pci_mmio64_size)
		aml_qword_memory(a, cfg->pci_mmio64_base, cfg->pci_mmio64_size);
	aml_end(a);
	aml_name(a, "_PRT");
	aml_package(a, cfg->nr_pci_slots);
	for (unsigned i = 0; i < cfg->nr_pci_slots; i++) {
		aml_package(a, 4);
		aml_integer(a, (uint64_t)cfg->pci_slots[i].slot << 16 | 0xffff);
		aml_integer(a, 0); /* INTA */
		aml_integer(a, 0); /* no link device: the next field is a GSI */
		aml_integer(a, cfg->pci_slots[i].gsi);
		aml_end(a);
	}
	aml_end(a);
	aml_end(a);

	/* Motherboard resources: Linux accepts the MCFG's ECAM only when it is reserved here. */
	aml_device(a, "MRES");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0C02");
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_memory32_fixed(a, (uint32_t)cfg->pci_ecam_base, (uint32_t)cfg->pci_ecam_size);
	aml_end(a);
	aml_end(a);
}

static long add_dsdt(struct acpi_builder *b, const struct acpi_config *cfg)
{
	size_t cap = b->cap - ALIGN_UP(b->len, ACPI_TABLE_ALIGN);
	uint8_t *t;
	struct aml a;
	long at;

	if (cap <= sizeof(struct acpi_header) || !(t = calloc(1, cap)))
		return -1;
	aml_init(&a, t + sizeof(struct acpi_header), cap - sizeof(struct acpi_header));
	aml_scope(&a, "\\_SB");
	dsdt_com1(&a);
	for (unsigned i = 0; i < cfg->nr_virtio_mmio; i++)
		dsdt_virtio_mmio(&a, &cfg->virtio_mmio[i], i);
	if (cfg->pci)
		dsdt_pci(&a, cfg);
	aml_end(&a);
	aml_name(&a, "\\_S5");
	aml_package(&a, 4);
	aml_integer(&a, ACPI_SLP_TYP_S5);
	aml_integer(&a, 0);
	aml_integer(&a, 0);
	aml_integer(&a, 0);
	aml_end(&a);
	if (!aml_ok(&a)) {
		free(t);
		return -1;
	}
	header_init((struct acpi_header *)t, "DSDT", (uint32_t)(sizeof(struct acpi_header) + a.len),
	            2);
	at = add_table(b, t);
	free(t);
	return at;
}

static int check_config(const struct acpi_config *cfg)
{
	if (cfg->nr_cpus == 0 || cfg->nr_cpus > 255 || cfg->nr_virtio_mmio > 256)
		return -EINVAL;
	for (unsigned i = 0; i < cfg->nr_virtio_mmio; i++)
		if (cfg->virtio_mmio[i].base + cfg->virtio_mmio[i].size > 1ull << 32)
			return -EINVAL;
	if (cfg->pci && (cfg->pci_ecam_size < (1u << 20) || cfg->pci_ecam_size > (256u << 20) ||
	                 cfg->pci_mmio32_base + cfg->pci_mmio32_size > 1ull << 32 ||
	                 cfg->pci_mmio32_size == 0))
		return -EINVAL;
	return 0;
}

int acpi_build(const struct guest_memory *mem, const struct acpi_config *cfg, uint64_t *rsdp_gpa)
{
	struct acpi_builder b = {.cap = X86_ACPI_END - X86_ACPI_START};
	struct acpi_rsdp rsdp = {0};
	long rsdp_at, xsdt_at, dsdt_at, fadt_at, madt_at, mcfg_at = -1;
	struct {
		struct acpi_header header;
		uint64_t entries[3];
	} __attribute__((packed)) xsdt = {0};
	unsigned n = 0;
	int ret = check_config(cfg);

	if (ret)
		return ret;
	b.buf = calloc(1, b.cap);
	if (!b.buf)
		return -ENOMEM;
	/* The RSDP first, at the start of the scanned area; the XSDT's slot right after it. */
	rsdp_at = reserve(&b, sizeof(rsdp));
	xsdt_at = reserve(&b, sizeof(xsdt));
	dsdt_at = add_dsdt(&b, cfg);
	fadt_at = dsdt_at < 0 ? -1 : add_fadt(&b, dsdt_at);
	madt_at = fadt_at < 0 ? -1 : add_madt(&b, cfg->nr_cpus);
	if (madt_at >= 0 && cfg->pci)
		mcfg_at = add_mcfg(&b, cfg);
	if (rsdp_at < 0 || xsdt_at < 0 || madt_at < 0 || (cfg->pci && mcfg_at < 0)) {
		free(b.buf);
		return -ENOSPC;
	}
	xsdt.entries[n++] = gpa_of(fadt_at);
	xsdt.entries[n++] = gpa_of(madt_at);
	if (mcfg_at >= 0)
		xsdt.entries[n++] = gpa_of(mcfg_at);
	header_init(&xsdt.header, "XSDT", (uint32_t)(sizeof(xsdt.header) + n * 8), 1);
	xsdt.header.checksum = checksum(&xsdt, xsdt.header.length);
	memcpy(b.buf + xsdt_at, &xsdt, xsdt.header.length);

	memcpy(rsdp.signature, "RSD PTR ", 8);
	memcpy(rsdp.oem_id, ACPI_OEM_ID, 6);
	rsdp.revision = 2;
	rsdp.length = sizeof(rsdp);
	rsdp.xsdt_address = gpa_of(xsdt_at);
	rsdp.checksum = checksum(&rsdp, 20);
	rsdp.extended_checksum = checksum(&rsdp, sizeof(rsdp));
	memcpy(b.buf + rsdp_at, &rsdp, sizeof(rsdp));

	ret = guest_write(mem, X86_ACPI_START, b.buf, b.len);
	free(b.buf);
	if (!ret)
		*rsdp_gpa = gpa_of(rsdp_at);
	return ret;
}
