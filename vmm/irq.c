#include "vmm/irq.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

int irq_set_level(const struct irq_line *line, int level)
{
	struct kvm_irq_level irq = {.irq = line->gsi, .level = level ? 1 : 0};

	return ioctl(line->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}
