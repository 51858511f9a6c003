/* The aarch64 guest-physical memory map and interrupt assignments, in one place. */
#ifndef VMM_ARCH_AARCH64_LAYOUT_H
#define VMM_ARCH_AARCH64_LAYOUT_H

#include "vmm/util.h"

/* Devices live below 2 GiB; RAM starts at 2 GiB (as on QEMU's virt machine). */
#define ARM64_GIC_DIST_BASE      0x08000000ULL /* GICv2 and GICv3 distributor */
#define ARM64_GIC_DIST_SIZE      0x10000ULL
#define ARM64_GIC_CPU_BASE       0x08010000ULL /* GICv2 CPU interface */
#define ARM64_GIC_CPU_SIZE       0x2000ULL
#define ARM64_GICV2M_BASE        0x08020000ULL /* --irqchip gicv2m: the MSI frame (4 KiB) */
#define ARM64_GIC_ITS_BASE       0x08080000ULL /* --irqchip gicv3-its: the ITS (128 KiB) */
#define ARM64_GIC_ITS_SIZE       0x20000ULL
#define ARM64_GIC_REDIST_BASE    0x08100000ULL /* GICv3 redistributors, one per vCPU */
#define ARM64_GIC_REDIST_STRIDE  0x20000ULL    /* RD_base and SGI_base frames, 64 KiB each */
#define ARM64_GIC_REDIST_MAX     256           /* fills up to 0x0A100000 */
#define ARM64_GICV2_MAX_CPUS     8
#define ARM64_UART_BASE          0x0B000000ULL /* 16550A, registers one byte apart */
#define ARM64_UART_SIZE          0x1000ULL
#define ARM64_UART_CLOCK         1843200       /* Hz, the classic 1.8432 MHz crystal */
#define ARM64_VIRTIO_MMIO_BASE   0x0B100000ULL /* virtio-mmio windows, one page apart */
#define ARM64_VIRTIO_MMIO_STRIDE 0x1000ULL
#define ARM64_VIRTIO_MMIO_MAX    16
#define ARM64_PCI_MMIO32_BASE    0x10000000ULL /* --transport pci: BARs (all of them) */
#define ARM64_PCI_MMIO32_SIZE    0x20000000ULL
#define ARM64_PCI_ECAM_BASE      0x30000000ULL /* bus 0 only: 32 devices x 8 functions x 4 KiB */
#define ARM64_PCI_ECAM_SIZE      0x100000ULL
#define ARM64_RAM_BASE           0x80000000ULL
#define ARM64_MIN_RAM            (64 * MIB)
#define ARM64_MAX_RAM            (512 * GIB) /* RAM ends below KVM's default 40-bit IPA space */

/* The device tree's place: at most 2 MiB, 2 MiB aligned, at the top of RAM (arm64 booting.rst). */
#define ARM64_FDT_MAX_SIZE (2 * MIB)

/*
 * Shared peripheral interrupts, numbered from 0 (GIC INTID = SPI + 32; KVM's irqfd GSI N is
 * SPI N): the UART, then virtio-mmio devices and nothing else, in order.
 */
#define ARM64_UART_SPI 0
#define ARM64_DEVICE_GSIS                                                                          \
	{                                                                                          \
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16                              \
	}

/*
 * --irqchip gicv2m: the SPIs its frame hands out for MSIs, as INTIDs (KVM's default GIC has
 * INTIDs up to 255); clear of the wired ones above.
 */
#define ARM64_GICV2M_FIRST_INTID 96
#define ARM64_GICV2M_NR_SPIS     128

/* Private peripheral interrupts of the architected timer (PPI numbers; INTID = PPI + 16). */
#define ARM64_TIMER_PPI_SEC_PHYS 13
#define ARM64_TIMER_PPI_PHYS     14
#define ARM64_TIMER_PPI_VIRT     11
#define ARM64_TIMER_PPI_HYP      10
#define ARM64_PMU_PPI            7 /* --pmu's overflow interrupt: PPI 7, INTID 23, as QEMU virt */

#endif
