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
#define ACPI_IOAPIC_ID    0    /* what KVM's IOAPIC reports in its ID register after reset */
#define ACPI_RTC_CENTURY  0x32 /* the CMOS register devices/cmos.c keeps the century in */

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
	uint8_t checksum; /* over the first 20 bytes (the ACPI 1.0 part) */
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t extended_checksum; /* over all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header");
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP revision 2");

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
_Static_assert(offsetof(struct acpi_fadt, sci_int) == 46, "SCI_INT");
_Static_assert(offsetof(struct acpi_fadt, century) == 108, "CENTURY");
_Static_assert(offsetof(struct acpi_fadt, iapc_boot_arch) == 109, "IAPC_BOOT_ARCH");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags");
_Static_assert(offsetof(struct acpi_fadt, reset_reg) == 116, "RESET_REG");
_Static_assert(offsetof(struct acpi_fadt, reset_value) == 128, "RESET_VALUE");
_Static_assert(offsetof(struct acpi_fadt, minor_version) == 131, "FADT minor version");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "X_DSDT");
_Static_assert(offsetof(struct acpi_fadt, sleep_control_reg) == 244, "SLEEP_CONTROL_REG");
_Static_assert(offsetof(struct acpi_fadt, sleep_status_reg) == 256, "SLEEP_STATUS_REG");
_Static_assert(offsetof(struct acpi_fadt, hypervisor_vendor_id) == 268, "HYPERVISOR_VENDOR_ID");

/* FADT flags. */
#define FADT_WBINVD          (1u << 0)
#define FADT_PWR_BUTTON      (1u << 4) /* set: no fixed-feature power button */
#define FADT_SLP_BUTTON      (1u << 5) /* set: no fixed-feature sleep button */
#define FADT_RESET_REG_SUP   (1u << 10)
#define FADT_HW_REDUCED_ACPI (1u << 20)
/* IA-PC boot architecture flags. */
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_PCIE_ASPM_OFF   (1u << 4)

struct madt_fixed {
	uint32_t lapic_address;
	uint32_t flags;
} __attribute__((packed));

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

#define MADT_LOCAL_APIC     0
#define MADT_IOAPIC         1
#define MADT_ISO            2
#define MADT_LAPIC_NMI      4
#define MADT_PCAT_COMPAT    1
#define MADT_LAPIC_ENABLED  1
#define MADT_ISO_LEVEL_HIGH 0x000d /* polarity active-high (01), trigger level (11 << 2) */
#define MADT_ALL_PROCESSORS 0xff

struct mcfg_allocation {
	uint64_t base;
	uint16_t segment;
	uint8_t start_bus, end_bus;
	uint32_t reserved;
} __attribute__((packed));

#define ACPI_MAX_CPUS        255  /* 8-bit APIC IDs, 0xff being the broadcast ID */
#define ACPI_MAX_VIRTIO_MMIO 4096 /* device names V000 .. VFFF */
#define ACPI_MAX_PCI_SLOTS   32

/*
 * The tables are laid out in a host buffer that mirrors [X86_ACPI_START, X86_ACPI_END) and is
 * copied to the guest in one piece. A table that does not fit sets @full; the callers go on
 * (writing nothing more) and acpi_build() checks @full once.
 */
struct acpi_builder {
	uint8_t *buf;
	size_t len, cap;
	size_t table; /* offset of the table being built */
	bool full;
};

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + p[i]);
	return (uint8_t)-sum;
}

static void emit(struct acpi_builder *b, const void *data, size_t len)
{
	if (b->full || len > b->cap - b->len) {
		b->full = true;
		return;
	}
	memcpy(b->buf + b->len, data, len);
	b->len += len;
}

static uint64_t gpa_of(size_t offset)
{
	return X86_ACPI_START + offset;
}

/* Starts a table on an aligned offset; returns its guest address. */
static uint64_t table_begin(struct acpi_builder *b, const char *sig, uint8_t revision)
{
	struct acpi_header h = {.revision = revision, .oem_revision = 1, .creator_revision = 1};

	if (ALIGN_UP(b->len, ACPI_TABLE_ALIGN) > b->cap)
		b->full = true;
	else
		b->len = ALIGN_UP(b->len, ACPI_TABLE_ALIGN);
	b->table = b->len;
	memcpy(h.signature, sig, sizeof(h.signature));
	memcpy(h.oem_id, ACPI_OEM_ID, sizeof(h.oem_id));
	memcpy(h.oem_table_id, ACPI_OEM_TABLE_ID, sizeof(h.oem_table_id));
	memcpy(h.creator_id, ACPI_CREATOR_ID, sizeof(h.creator_id));
	emit(b, &h, sizeof(h));
	return gpa_of(b->table);
}

/* Fills in the length and checksum of the table begun last. */
static void table_end(struct acpi_builder *b)
{
	struct acpi_header *h = (struct acpi_header *)(b->buf + b->table);

	if (b->full)
		return;
	h->length = (uint32_t)(b->len - b->table);
	h->checksum = 0;
	h->checksum = checksum(b->buf + b->table, b->len - b->table);
}

static struct acpi_gas gas_io8(uint16_t port)
{
	return (struct acpi_gas){.space_id = ACPI_GAS_SYSTEM_IO,
	                         .bit_width = 8,
	                         .access_size = ACPI_ACCESS_BYTE,
	                         .address = port};
}

/* Hardware-reduced: no PM1/GPE blocks, no FACS; sleep and reset go through the I/O registers. */
static uint64_t add_fadt(struct acpi_builder *b, uint64_t dsdt)
{
	uint64_t at = table_begin(b, "FACP", 6);
	struct acpi_fadt f = {0};

	f.minor_version = 5; /* ACPI 6.5 */
	f.flags = FADT_WBINVD | FADT_PWR_BUTTON | FADT_SLP_BUTTON | FADT_RESET_REG_SUP |
	          FADT_HW_REDUCED_ACPI;
	/*
	 * No 8042 flag: Linux then leaves the i8042 alone (no probe, whose IRQ 1 has no legacy PIC
	 * to come from here), while reboot=k still writes its reset command to port 0x64. The
	 * CMOS RTC stays (no "no RTC" flag).
	 */
	f.iapc_boot_arch = IAPC_VGA_NOT_PRESENT | IAPC_PCIE_ASPM_OFF;
	f.century = ACPI_RTC_CENTURY;
	f.sci_int = X86_ACPI_SCI_IRQ;
	f.reset_reg = gas_io8(X86_ACPI_RESET_PORT);
	f.reset_value = X86_ACPI_RESET_VALUE;
	f.x_dsdt = dsdt;
	f.sleep_control_reg = gas_io8(X86_ACPI_SLEEP_CONTROL_PORT);
	f.sleep_status_reg = gas_io8(X86_ACPI_SLEEP_STATUS_PORT);
	memcpy(&f.hypervisor_vendor_id, "vmm\0\0\0\0\0", sizeof(f.hypervisor_vendor_id));
	emit(b, (const uint8_t *)&f + sizeof(f.header), sizeof(f) - sizeof(f.header));
	table_end(b);
	return at;
}

static uint64_t add_madt(struct acpi_builder *b, unsigned nr_cpus)
{
	uint64_t at = table_begin(b, "APIC", 5);
	const struct madt_fixed fixed = {(uint32_t)X86_LAPIC_ADDR, MADT_PCAT_COMPAT};
	const struct madt_ioapic ioapic = {
	        MADT_IOAPIC, sizeof(ioapic), ACPI_IOAPIC_ID, 0, (uint32_t)X86_IOAPIC_ADDR, 0};
	/* The SCI is level-triggered, active-high, on its ISA pin (no IRQ0 -> GSI2 override:
	 * KVM's PIT drives IOAPIC pin 0). */
	const struct madt_iso sci = {MADT_ISO,         sizeof(sci),      0,
	                             X86_ACPI_SCI_IRQ, X86_ACPI_SCI_IRQ, MADT_ISO_LEVEL_HIGH};
	/* LINT1 of every local APIC is the NMI input (cpu.c programs it so). */
	const struct madt_lapic_nmi nmi = {MADT_LAPIC_NMI, sizeof(nmi), MADT_ALL_PROCESSORS, 0, 1};

	emit(b, &fixed, sizeof(fixed));
	for (unsigned i = 0; i < nr_cpus; i++) {
		const struct madt_local_apic lapic = {MADT_LOCAL_APIC, sizeof(lapic), (uint8_t)i,
		                                      (uint8_t)i, MADT_LAPIC_ENABLED};

		emit(b, &lapic, sizeof(lapic));
	}
	emit(b, &ioapic, sizeof(ioapic));
	emit(b, &sci, sizeof(sci));
	emit(b, &nmi, sizeof(nmi));
	table_end(b);
	return at;
}

static unsigned pci_end_bus(const struct acpi_config *cfg)
{
	return (unsigned)(cfg->pci_ecam_size >> 20) - 1;
}

static uint64_t add_mcfg(struct acpi_builder *b, const struct acpi_config *cfg)
{
	uint64_t at = table_begin(b, "MCFG", 1);
	const uint8_t reserved[8] = {0};
	const struct mcfg_allocation alloc = {.base = cfg->pci_ecam_base,
	                                      .end_bus = (uint8_t)pci_end_bus(cfg)};

	emit(b, reserved, sizeof(reserved));
	emit(b, &alloc, sizeof(alloc));
	table_end(b);
	return at;
}

static uint64_t add_xsdt(struct acpi_builder *b, const uint64_t *tables, unsigned n)
{
	uint64_t at = table_begin(b, "XSDT", 1);

	emit(b, tables, n * sizeof(*tables));
	table_end(b);
	return at;
}

/* The RSDP goes first, at the start of the area the kernel scans. */
static void fill_rsdp(struct acpi_builder *b, uint64_t xsdt)
{
	struct acpi_rsdp rsdp = {.revision = 2, .length = sizeof(rsdp), .xsdt_address = xsdt};

	memcpy(rsdp.signature, "RSD PTR ", sizeof(rsdp.signature));
	memcpy(rsdp.oem_id, ACPI_OEM_ID, sizeof(rsdp.oem_id));
	rsdp.checksum = checksum((const uint8_t *)&rsdp, 20);
	rsdp.extended_checksum = checksum((const uint8_t *)&rsdp, sizeof(rsdp));
	memcpy(b->buf, &rsdp, sizeof(rsdp));
}

static void name_eisaid(struct aml *a, const char *name, const char *id)
{
	aml_name(a, name);
	aml_eisaid(a, id);
}

static void name_integer(struct aml *a, const char *name, uint64_t value)
{
	aml_name(a, name);
	aml_integer(a, value);
}

static void dsdt_com1(struct aml *a)
{
	aml_device(a, "COM1");
	name_eisaid(a, "_HID", "PNP0501");
	name_integer(a, "_UID", 1);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_io(a, X86_COM1_PORT, 8);
	aml_irq_noflags(a, X86_COM1_IRQ);
	aml_end(a);
	aml_end(a);
}

/*
 * The CMOS RTC, so Linux binds rtc_cmos through PNP; no IRQ, as the device raises none (and a
 * hardware-reduced Linux has no legacy PIC to assume IRQ 8 on).
 */
static void dsdt_rtc(struct aml *a)
{
	aml_device(a, "RTC");
	name_eisaid(a, "_HID", "PNP0B00");
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_io(a, X86_CMOS_PORT, 2);
	aml_end(a);
	aml_end(a);
}

/* Linux's virtio_mmio driver binds to LNRO0005 devices. */
static void dsdt_virtio_mmio(struct aml *a, const struct acpi_virtio_mmio *v, unsigned index)
{
	char name[8];

	snprintf(name, sizeof(name), "V%03X", index & 0xfff); /* index < 4096 */
	aml_device(a, name);
	aml_name(a, "_HID");
	aml_string(a, "LNRO0005");
	name_integer(a, "_UID", index);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_memory32_fixed(a, (uint32_t)v->base, v->size);
	aml_interrupt(a, v->gsi, true, false);
	aml_end(a);
	aml_end(a);
}

/* _PRT: INTA of each slot, any function (0xFFFF), straight to a GSI (no link device). */
static void dsdt_prt(struct aml *a, const struct acpi_config *cfg)
{
	aml_name(a, "_PRT");
	aml_package(a, cfg->nr_pci_slots);
	for (unsigned i = 0; i < cfg->nr_pci_slots; i++) {
		aml_package(a, 4);
		aml_integer(a, (uint64_t)cfg->pci_slots[i].slot << 16 | 0xffff);
		aml_integer(a, 0); /* INTA */
		aml_integer(a, 0); /* source: none, so the next field is a GSI */
		aml_integer(a, cfg->pci_slots[i].gsi);
		aml_end(a);
	}
	aml_end(a);
}

static void dsdt_pci(struct aml *a, const struct acpi_config *cfg)
{
	aml_device(a, "PCI0");
	name_eisaid(a, "_HID", "PNP0A08");
	name_eisaid(a, "_CID", "PNP0A03");
	name_integer(a, "_SEG", 0);
	name_integer(a, "_BBN", 0);
	name_integer(a, "_UID", 0);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_word_bus_number(a, 0, pci_end_bus(cfg) + 1);
	/* Linux drops exactly this range from the bridge windows and keeps it for config access. */
	if (cfg->pci_config_port)
		aml_io(a, cfg->pci_config_port, 8);
	aml_dword_memory(a, (uint32_t)cfg->pci_mmio32_base, (uint32_t)cfg->pci_mmio32_size);
	if (cfg->pci_mmio64_size)
		aml_qword_memory(a, cfg->pci_mmio64_base, cfg->pci_mmio64_size);
	aml_end(a);
	dsdt_prt(a, cfg);
	aml_end(a);

	/* Motherboard resources: Linux uses the MCFG's ECAM only when it is reserved here. */
	aml_device(a, "MRES");
	name_eisaid(a, "_HID", "PNP0C02");
	name_integer(a, "_UID", 0);
	aml_name(a, "_CRS");
	aml_resource_template(a);
	aml_memory32_fixed(a, (uint32_t)cfg->pci_ecam_base, (uint32_t)cfg->pci_ecam_size);
	aml_end(a);
	aml_end(a);
}

static void dsdt_body(struct aml *a, const struct acpi_config *cfg)
{
	aml_scope(a, "\\_SB");
	dsdt_com1(a);
	dsdt_rtc(a);
	for (unsigned i = 0; i < cfg->nr_virtio_mmio; i++)
		dsdt_virtio_mmio(a, &cfg->virtio_mmio[i], i);
	if (cfg->pci)
		dsdt_pci(a, cfg);
	aml_end(a);
	/* Soft-off: the SLP_TYP the sleep control register powers off on. */
	aml_name(a, "\\_S5");
	aml_package(a, 4);
	aml_integer(a, ACPI_SLP_TYP_S5);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a);
}

static uint64_t add_dsdt(struct acpi_builder *b, const struct acpi_config *cfg)
{
	uint64_t at = table_begin(b, "DSDT", 2); /* revision 2: 64-bit integers */
	struct aml a;

	if (b->full)
		return at;
	aml_init(&a, b->buf + b->len, b->cap - b->len);
	dsdt_body(&a, cfg);
	/* The config was checked, so the only way the AML can fail is running out of room. */
	if (!aml_ok(&a)) {
		b->full = true;
		return at;
	}
	b->len += a.len;
	table_end(b);
	return at;
}

/* A non-empty window wholly below 4 GiB. */
static bool window32(uint64_t base, uint64_t size)
{
	return size && range_within(base, size, 0, 1ull << 32);
}

static int check_pci(const struct acpi_config *cfg)
{
	if (cfg->pci_ecam_size < MIB || cfg->pci_ecam_size > 256 * MIB ||
	    cfg->pci_ecam_size % MIB || !window32(cfg->pci_ecam_base, cfg->pci_ecam_size) ||
	    !window32(cfg->pci_mmio32_base, cfg->pci_mmio32_size) ||
	    (cfg->pci_mmio64_size && cfg->pci_mmio64_size - 1 > UINT64_MAX - cfg->pci_mmio64_base))
		return -EINVAL;
	if (cfg->nr_pci_slots > ACPI_MAX_PCI_SLOTS || (cfg->nr_pci_slots && !cfg->pci_slots))
		return -EINVAL;
	for (unsigned i = 0; i < cfg->nr_pci_slots; i++)
		if (cfg->pci_slots[i].slot >= ACPI_MAX_PCI_SLOTS)
			return -EINVAL;
	return 0;
}

static int check_config(const struct acpi_config *cfg)
{
	if (cfg->nr_cpus == 0 || cfg->nr_cpus > ACPI_MAX_CPUS)
		return -EINVAL;
	if (cfg->nr_virtio_mmio > ACPI_MAX_VIRTIO_MMIO ||
	    (cfg->nr_virtio_mmio && !cfg->virtio_mmio))
		return -EINVAL;
	for (unsigned i = 0; i < cfg->nr_virtio_mmio; i++)
		if (!window32(cfg->virtio_mmio[i].base, cfg->virtio_mmio[i].size))
			return -EINVAL;
	return cfg->pci ? check_pci(cfg) : 0;
}

int acpi_build(const struct guest_memory *mem, const struct acpi_config *cfg, uint64_t *rsdp)
{
	struct acpi_builder b = {.cap = X86_ACPI_END - X86_ACPI_START};
	const struct acpi_rsdp rsdp_room = {0};
	uint64_t tables[3], dsdt;
	unsigned n = 0;
	int ret = check_config(cfg);

	if (ret)
		return ret;
	b.buf = calloc(1, b.cap);
	if (!b.buf)
		return -ENOMEM;
	emit(&b, &rsdp_room, sizeof(rsdp_room)); /* filled last, when the XSDT's place is known */
	dsdt = add_dsdt(&b, cfg);
	tables[n++] = add_fadt(&b, dsdt);
	tables[n++] = add_madt(&b, cfg->nr_cpus);
	if (cfg->pci)
		tables[n++] = add_mcfg(&b, cfg);
	fill_rsdp(&b, add_xsdt(&b, tables, n));
	if (b.full)
		ret = -ENOSPC;
	else
		ret = guest_write(mem, X86_ACPI_START, b.buf, b.len);
	free(b.buf);
	if (!ret)
		*rsdp = X86_ACPI_START;
	return ret;
}
