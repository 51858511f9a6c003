#include "vmm/irq.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/arch.h"

int irq_set_level(const struct irq_line *line, int level)
{
	struct kvm_irq_level irq = {.irq = ARCH_KVM_IRQ_LINE(line->gsi), .level = level ? 1 : 0};

	return ioctl(line->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

int irq_line_use_irqfd(struct irq_line *line)
{
	struct kvm_irqfd irqfd = {.gsi = line->gsi};
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (fd < 0)
		return -errno;
	irqfd.fd = (uint32_t)fd;
	if (ioctl(line->vm_fd, KVM_IRQFD, &irqfd) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	line->irqfd = fd;
	return 0;
}

int irq_trigger(const struct irq_line *line)
{
	uint64_t one = 1;

	return write(line->irqfd, &one, sizeof(one)) < 0 ? -errno : 0;
}

void irq_line_release(struct irq_line *line)
{
	struct kvm_irqfd irqfd = {.gsi = line->gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN};

	if (line->irqfd < 0)
		return;
	irqfd.fd = (uint32_t)line->irqfd;
	ioctl(line->vm_fd, KVM_IRQFD, &irqfd);
	close(line->irqfd);
	line->irqfd = -1;
}

static int ioeventfd_ioctl(const struct ioeventfd *ev, uint32_t extra_flags)
{
	struct kvm_ioeventfd req = {
	        .datamatch = ev->data,
	        .addr = ev->addr,
	        .len = ev->len,
	        .fd = ev->fd,
	        .flags = extra_flags | (ev->pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
	                 (ev->datamatch ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0),
	};

	return ioctl(ev->vm_fd, KVM_IOEVENTFD, &req) < 0 ? -errno : 0;
}

int ioeventfd_add(struct ioeventfd *ev, int vm_fd, uint64_t addr, unsigned len, bool pio,
                  bool datamatch, uint64_t data)
{
	int ret;

	*ev = (struct ioeventfd){.vm_fd = vm_fd,
	                         .addr = addr,
	                         .len = len,
	                         .pio = pio,
	                         .datamatch = datamatch,
	                         .data = data};
	ev->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev->fd < 0)
		return -errno;
	ret = ioeventfd_ioctl(ev, 0);
	if (ret) {
		close(ev->fd);
		ev->fd = -1;
	}
	return ret;
}

void ioeventfd_remove(struct ioeventfd *ev)
{
	if (ev->fd < 0)
		return;
	ioeventfd_ioctl(ev, KVM_IOEVENTFD_FLAG_DEASSIGN);
	close(ev->fd);
	ev->fd = -1;
}
