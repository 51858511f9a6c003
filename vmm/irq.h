/* Interrupt lines into the in-kernel irqchip (PIC + IOAPIC), driven by level. */
#ifndef VMM_VMM_IRQ_H
#define VMM_VMM_IRQ_H

struct irq_line {
	int vm_fd;
	unsigned gsi;
};

/* Drives the line to @level (0 or 1) with KVM_IRQ_LINE. Returns 0 or -errno. */
int irq_set_level(const struct irq_line *line, int level);

#endif
