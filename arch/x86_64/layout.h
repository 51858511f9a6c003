/* The x86_64 guest-physical memory map and port assignments, in one place. */
#ifndef VMM_ARCH_X86_64_LAYOUT_H
#define VMM_ARCH_X86_64_LAYOUT_H

#include "vmm/util.h"

/* Low memory, all below the EBDA and all inside RAM (--mem is at least X86_MIN_RAM). */
#define X86_GDT_ADDR       0x500ULL
#define X86_PVH_INFO_ADDR  0x6000ULL /* hvm_start_info, then module list and memory map */
#define X86_PVH_INFO_SIZE  0x1000ULL
#define X86_ZERO_PAGE_ADDR 0x7000ULL /* struct boot_params */
#define X86_PML4_ADDR      0x9000ULL
#define X86_PDPT_ADDR      0xA000ULL
#define X86_PD_ADDR        0xB000ULL /* four pages: 2 MiB pages identity-mapping 0..4 GiB */
#define X86_CMDLINE_ADDR   0x20000ULL
#define X86_CMDLINE_MAX    0x10000ULL /* bytes, including the NUL */
#define X86_EBDA_START     0x9FC00ULL /* [EBDA, 1 MiB) is reserved in the e820 map */
#define X86_ACPI_START     0xE0000ULL /* ACPI tables, RSDP first (found by the BIOS-area scan) */
#define X86_ACPI_END       0x100000ULL
#define X86_HIGH_MEM_START 0x100000ULL

/* RAM runs from 0 up to the 32-bit hole, and continues above 4 GiB. */
#define X86_MMIO_HOLE_START 0xC0000000ULL
#define X86_MMIO_HOLE_END   0x100000000ULL
#define X86_MIN_RAM         (8 * MIB)

/* Inside the hole. */
#define X86_PCI_MMIO32_BASE      0xC0000000ULL /* 32-bit BARs */
#define X86_PCI_MMIO32_SIZE      0x10000000ULL
#define X86_TEST_DEVICE_MMIO     0xD0000000ULL
#define X86_TEST_DEVICE_MMIO_LEN 0x1000ULL
#define X86_VIRTIO_MMIO_BASE     0xD0100000ULL /* virtio-mmio windows, one page apart */
#define X86_VIRTIO_MMIO_STRIDE   0x1000ULL
#define X86_VIRTIO_MMIO_MAX      16
#define X86_PCI_ECAM_BASE        0xE0000000ULL /* bus 0 only: 32 devices x 8 functions x 4 KiB */
#define X86_PCI_ECAM_SIZE        0x100000ULL
#define X86_IOAPIC_ADDR          0xFEC00000ULL
#define X86_LAPIC_ADDR           0xFEE00000ULL
#define X86_IDENTITY_MAP_ADDR    0xFFFBC000ULL /* one page, KVM_SET_IDENTITY_MAP_ADDR */
#define X86_TSS_ADDR             0xFFFBD000ULL /* three pages, KVM_SET_TSS_ADDR */

/* Ports. */
#define X86_COM1_PORT            0x3F8
#define X86_COM1_IRQ             4
#define X86_I8042_DATA_PORT      0x60
#define X86_I8042_CMD_PORT       0x64
#define X86_CMOS_PORT            0x70  /* index at 0x70, data at 0x71 */
#define X86_DEBUG_EXIT_PORT      0xF4  /* a byte written here ends vmm with that status */
#define X86_PCI_CONFIG_PORT      0xCF8 /* CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC..0xCFF */
#define X86_TEST_DEVICE_PORT     0x520
#define X86_TEST_DEVICE_PORT_LEN 0x10

/* 64-bit BARs: a window starting at the first 1 GiB boundary above RAM (and above 4 GiB). */
#define X86_PCI_MMIO64_ALIGN GIB
#define X86_PCI_MMIO64_SIZE  (16 * GIB)

/* ACPI: hardware-reduced sleep control/status registers and the reset register (ports). */
#define X86_ACPI_SLEEP_CONTROL_PORT 0x600
#define X86_ACPI_SLEEP_STATUS_PORT  0x601
#define X86_ACPI_RESET_PORT         0x602
#define X86_ACPI_RESET_VALUE        0x01
#define X86_ACPI_SCI_IRQ            9

/*
 * GSIs for virtio-mmio devices and PCI INTx, in the order devices get them: IOAPIC pins 16-23
 * (no ISA device), then ISA IRQs nothing here uses.
 */
#define X86_DEVICE_GSIS                                                                            \
	{                                                                                          \
		16, 17, 18, 19, 20, 21, 22, 23, 5, 6, 7, 10, 11, 12, 14, 15                        \
	}

/* GDT selectors used at entry. */
#define X86_GDT_CODE_SEL 0x10
#define X86_GDT_DATA_SEL 0x18
#define X86_GDT_TSS_SEL  0x20

#endif
