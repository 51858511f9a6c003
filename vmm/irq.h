/*
 * Interrupts into the in-kernel irqchip, and the eventfds that keep device work off the vCPU
 * threads: irqfds (a write raises a GSI without a KVM call from the device's thread) and
 * ioeventfds (a guest write to a doorbell address completes in KVM and signals an eventfd).
 */
#ifndef VMM_VMM_IRQ_H
#define VMM_VMM_IRQ_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/util.h"

struct irq_line {
	int vm_fd;
	unsigned gsi;
	int irqfd; /* -1 until irq_line_use_irqfd() */
};

/* Drives the line to @level (0 or 1) with KVM_IRQ_LINE. Returns 0 or -errno. */
int irq_set_level(const struct irq_line *line, int level);

/* Attaches an irqfd to the line's GSI (edge: each irq_trigger is one interrupt). */
int irq_line_use_irqfd(struct irq_line *line) MUST_CHECK;
/* Raises an edge on the line through its irqfd; any thread. Returns 0 or -errno. */
int irq_trigger(const struct irq_line *line);
/* Detaches and closes the irqfd, if any. */
void irq_line_release(struct irq_line *line);

struct ioeventfd {
	int vm_fd;
	int fd;
	uint64_t addr;
	unsigned len;
	bool pio;
	bool datamatch;
	uint64_t data;
};

/*
 * Registers an eventfd signalled when the guest writes @len bytes (1, 2, 4 or 8) at @addr
 * (port I/O when @pio), optionally only when the value equals @data. Returns 0 or -errno.
 */
int ioeventfd_add(struct ioeventfd *ev, int vm_fd, uint64_t addr, unsigned len, bool pio,
                  bool datamatch, uint64_t data) MUST_CHECK;
void ioeventfd_remove(struct ioeventfd *ev);

#endif
