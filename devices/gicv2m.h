/*
 * A GICv2m MSI frame (Arm's GICv2m, as in the Server Base System Architecture): a GICv2 has no
 * MSIs, so this 4 KiB frame turns a write into an SPI. KVM does not emulate it; vmm does.
 * MSI_TYPER (0x008) tells the guest which SPIs the frame serves (first INTID in bits 25:16,
 * count in bits 9:0), MSI_IIDR (0xfcc) reads 0 (no quirks); a 32-bit write of INTID N to
 * MSI_SETSPI_NS (0x040) raises N, an edge. Devices' MSI-X messages do not come here: their
 * routes go to the SPI directly (msi_translation's doorbell); only a vCPU's write does.
 */
#ifndef VMM_DEVICES_GICV2M_H
#define VMM_DEVICES_GICV2M_H

#include <stdint.h>

#include "vmm/bus.h"

#define GICV2M_FRAME_SIZE  0x1000
#define GICV2M_MSI_TYPER   0x008
#define GICV2M_MSI_SETSPI  0x040
#define GICV2M_MSI_IIDR    0xfcc
#define GICV2M_SPI_INTID_0 32 /* INTID of SPI 0 */

struct gicv2m {
	uint32_t first_intid, count; /* the SPIs it serves, as INTIDs */
	int vm_fd;                   /* raises them with KVM_IRQ_LINE; -1: test_raise */
	void (*test_raise)(void *opaque, uint32_t intid);
	void *test_opaque;
};

/*
 * A frame serving INTIDs [@first_intid, + @count) (SPIs: 32..1019) on @vm_fd. Returns 0, or
 * -EINVAL when the range is not SPIs or does not fit MSI_TYPER's fields.
 */
int gicv2m_init(struct gicv2m *f, int vm_fd, uint32_t first_intid, uint32_t count) MUST_CHECK;

/* Register accesses (guest-controlled): other offsets read 0 and ignore writes. */
extern const struct bus_ops gicv2m_bus_ops;

#endif
