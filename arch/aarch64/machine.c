/*
 * The aarch64 machine: RAM at 2 GiB, in-kernel GICv3 (or v2) with an ITS (or a GICv2m frame)
 * for MSIs, an MMIO 16550, PCI on request, device tree.
 */
#include "arch/aarch64/machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/aarch64/irqchip.h"
#include "arch/arch.h"
#include "devices/virtio/virtio_mmio.h"
#include "vmm/boot_image.h"
#include "vmm/config.h"
#include "vmm/log.h"
#include "vmm/run.h"
#include "vmm/vm.h"

int arch_memory_init(struct guest_memory *mem, uint64_t ram_size)
{
	mem->huge_pages = true;
	return guest_memory_add(mem, ARM64_RAM_BASE, ram_size);
}

static int set_device_attr(int fd, uint32_t group, uint64_t attr, const void *value)
{
	struct kvm_device_attr a = {.group = group, .attr = attr, .addr = (uintptr_t)value};

	return ioctl(fd, KVM_SET_DEVICE_ATTR, &a) < 0 ? -errno : 0;
}

static int create_gic_device(struct vm *vm, uint32_t type)
{
	struct kvm_create_device dev = {.type = type};

	return ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &dev) < 0 ? -errno : (int)dev.fd;
}

/* What this host's KVM can emulate (KVM_CREATE_DEVICE_TEST creates nothing). */
static struct arm64_gic_offer gic_offer(struct vm *vm)
{
	struct kvm_create_device v2 = {.type = KVM_DEV_TYPE_ARM_VGIC_V2,
	                               .flags = KVM_CREATE_DEVICE_TEST};
	struct kvm_create_device v3 = {.type = KVM_DEV_TYPE_ARM_VGIC_V3,
	                               .flags = KVM_CREATE_DEVICE_TEST};
	struct kvm_create_device its = {.type = KVM_DEV_TYPE_ARM_VGIC_ITS,
	                                .flags = KVM_CREATE_DEVICE_TEST};

	return (struct arm64_gic_offer){
	        .v2 = ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &v2) == 0,
	        .v3 = ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &v3) == 0,
	        .its = ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &its) == 0,
	};
}

static int create_gicv3(struct vm *vm)
{
	struct arch_vm *a = vm->arch;
	const uint64_t dist = ARM64_GIC_DIST_BASE, redist = ARM64_GIC_REDIST_BASE;
	const uint64_t its = ARM64_GIC_ITS_BASE;
	int ret;

	a->gic_fd = create_gic_device(vm, KVM_DEV_TYPE_ARM_VGIC_V3);
	if (a->gic_fd < 0)
		return a->gic_fd;
	ret = set_device_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST,
	                      &dist);
	if (!ret)
		ret = set_device_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR,
		                      KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist);
	if (ret || a->msi != ARM64_MSI_ITS)
		return ret;
	a->its_fd = create_gic_device(vm, KVM_DEV_TYPE_ARM_VGIC_ITS);
	if (a->its_fd < 0)
		return a->its_fd;
	return set_device_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, &its);
}

static int create_gicv2(struct vm *vm)
{
	struct arch_vm *a = vm->arch;
	const uint64_t dist = ARM64_GIC_DIST_BASE, cpu = ARM64_GIC_CPU_BASE;
	int ret;

	a->gic_fd = create_gic_device(vm, KVM_DEV_TYPE_ARM_VGIC_V2);
	if (a->gic_fd < 0)
		return a->gic_fd;
	ret = set_device_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST,
	                      &dist);
	if (!ret)
		ret = set_device_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_ADDR,
		                      KVM_VGIC_V2_ADDR_TYPE_CPU, &cpu);
	if (ret || a->msi != ARM64_MSI_V2M)
		return ret;
	ret = gicv2m_init(&a->v2m, vm->vm_fd, ARM64_GICV2M_FIRST_INTID, ARM64_GICV2M_NR_SPIS);
	if (!ret)
		ret = bus_register(&vm->mmio, ARM64_GICV2M_BASE, GICV2M_FRAME_SIZE, &gicv2m_bus_ops,
		                   &a->v2m, "gicv2m");
	return ret;
}

/*
 * The GIC --irqchip asks for (arm64_irqchip_choose: by default a GICv3 where KVM has one, else
 * a GICv2, and with --transport pci the ITS or the GICv2m frame), or a one-line error.
 */
static int create_gic(struct vm *vm)
{
	struct arch_vm *a = vm->arch;
	const struct arm64_gic_offer offer = gic_offer(vm);
	struct arm64_irqchip chip;
	char err[256];
	int ret = arm64_irqchip_choose(vm->config->irqchip, vm->config->transport == TRANSPORT_PCI,
	                               &offer, &chip, err, sizeof(err));

	if (ret) {
		log_error("%s", err);
		return -EINVAL;
	}
	a->gic = chip.gic;
	a->msi = chip.msi;
	if (a->gic == ARM64_GIC_V2 && vm->config->cpus > ARM64_GICV2_MAX_CPUS) {
		log_error("--cpus %u: the GIC is a GICv2, which serves at most %d vCPUs%s",
		          vm->config->cpus, ARM64_GICV2_MAX_CPUS,
		          offer.v3 ? " (--irqchip gicv3 has no such limit)" : "");
		return -EINVAL;
	}
	ret = a->gic == ARM64_GIC_V3 ? create_gicv3(vm) : create_gicv2(vm);
	if (ret)
		log_error("cannot create the in-kernel GIC%s: %s",
		          a->msi == ARM64_MSI_ITS   ? " and its ITS"
		          : a->msi == ARM64_MSI_V2M ? " and its GICv2m frame"
		                                    : "",
		          strerror(-ret));
	return ret ? -EINVAL : 0;
}

int arm64_gic_finalize(struct arch_vm *a)
{
	int ret = set_device_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT,
	                          NULL);

	if (!ret && a->its_fd >= 0)
		ret = set_device_attr(a->its_fd, KVM_DEV_ARM_VGIC_GRP_CTRL,
		                      KVM_DEV_ARM_VGIC_CTRL_INIT, NULL);
	return ret;
}

size_t arch_console_input(struct vm *vm, const uint8_t *buf, size_t len)
{
	return uart_receive(&vm->arch->uart, buf, len);
}

int arch_vm_init(struct vm *vm)
{
	const struct irq_line uart_irq = {.vm_fd = vm->vm_fd, .gsi = ARM64_UART_SPI, .irqfd = -1};
	/* To stdout the UART never blocks its vCPU: it holds what the host cannot take yet. */
	bool to_chardev = vm->console_opaque == &vm->console;
	size_t (*tx)(void *, const uint8_t *, size_t) =
	        to_chardev ? chardev_try_write_cb : vm->console_write;
	const struct uart_backend uart_backend = {tx, chardev_input_space_cb, vm->console_opaque};
	struct arch_vm *a = calloc(1, sizeof(*a));
	int ret;

	if (!a)
		return -ENOMEM;
	a->gic_fd = -1;
	a->its_fd = -1;
	vm->arch = a;
	if (ioctl(vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &a->vcpu_template) < 0) {
		ret = -errno;
		log_error("KVM_ARM_PREFERRED_TARGET: %s", strerror(errno));
		return ret;
	}
	if (vm->config->pmu && ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PMU_V3) <= 0) {
		log_error(
		        "--pmu: this host's KVM offers its guests no PMU (no KVM_CAP_ARM_PMU_V3)");
		return -EINVAL;
	}
	ret = create_gic(vm);
	if (ret)
		return ret;
	uart_init(&a->uart, &uart_irq, &uart_backend);
	a->uart_initialized = true;
	ret = to_chardev ? chardev_add_output_waiter(&vm->console, uart_tx_space_cb, &a->uart) : 0;
	if (!ret)
		ret = bus_register(&vm->mmio, ARM64_UART_BASE, 8, &uart_bus_ops, &a->uart, "uart");
	if (ret)
		log_error("cannot register the UART: %s", strerror(-ret));
	return ret;
}

/* arm64 has no architectural "running under a hypervisor" flag. */
bool arch_host_is_virtual(void)
{
	return false;
}

/* --transport pci: bus 0's ECAM and one 32-bit window for every BAR (layout.h). */
bool arch_pci_layout(const struct vm *vm, struct pci_layout *out)
{
	if (vm->config->transport != TRANSPORT_PCI)
		return false;
	*out = (struct pci_layout){
	        .ecam_base = ARM64_PCI_ECAM_BASE,
	        .ecam_size = ARM64_PCI_ECAM_SIZE,
	        .mmio32_base = ARM64_PCI_MMIO32_BASE,
	        .mmio32_size = ARM64_PCI_MMIO32_SIZE,
	};
	return true;
}

/*
 * The ITS finds a device's tables by its ID (the requester ID, which the device tree's msi-map
 * passes through); a GICv2m frame's messages become routes to their SPI.
 */
void arch_msi_translation(const struct vm *vm, struct msi_translation *out)
{
	const struct arch_vm *a = vm->arch;

	*out = (struct msi_translation){.devid = a->msi == ARM64_MSI_ITS};
	if (a->msi == ARM64_MSI_V2M) {
		out->doorbell = ARM64_GICV2M_BASE + GICV2M_MSI_SETSPI;
		out->doorbell_first = a->v2m.first_intid;
		out->doorbell_count = a->v2m.count;
		out->doorbell_pin_base = GICV2M_SPI_INTID_0;
	}
}

static int load_kernel(struct vm *vm, struct boot_image *kernel, struct boot_image *initrd)
{
	const struct vm_config *cfg = vm->config;
	const char *reason = NULL;
	int ret = boot_image_map("kernel", cfg->kernel_path, kernel);

	if (ret || (cfg->initrd_path && (ret = boot_image_map("initrd", cfg->initrd_path, initrd))))
		return ret;
	ret = arm64_load_image(&vm->mem, kernel, vm->run ? run_initrd(vm->run) : initrd,
	                       &vm->arch->boot, &reason);
	if (ret)
		log_error("kernel '%s': %s", cfg->kernel_path, reason ? reason : strerror(-ret));
	else if (vm->arch->boot.raw) /* a file mistaken for an Image would otherwise just hang */
		log_warn("kernel '%s': no arm64 Image header: run as a raw payload at %#llx",
		         cfg->kernel_path, (unsigned long long)vm->arch->boot.entry);
	return ret;
}

/* The host bridge's windows and the INTx line of each device on it, for the device tree. */
static void describe_pci(const struct vm_devices *d, struct arm64_fdt_pci *pci,
                         struct arm64_fdt_pci_intx *intx)
{
	const struct pci_layout *l = &d->pci.layout;

	*pci = (struct arm64_fdt_pci){
	        .ecam_base = l->ecam_base,
	        .ecam_size = l->ecam_size,
	        .mmio32_base = l->mmio32_base,
	        .mmio32_size = l->mmio32_size,
	        .mmio64_base = l->mmio64_base,
	        .mmio64_size = l->mmio64_size,
	        .intx = intx,
	};
	for (unsigned s = 1; s < PCI_SLOTS; s++) {
		const struct pci_device *dev = d->pci.slots[s];

		if (dev && dev->intx_pin)
			intx[pci->nr_intx++] = (struct arm64_fdt_pci_intx){s, dev->intx_gsi};
	}
}

/*
 * The device tree describes the vCPUs, the GIC (with its ITS or GICv2m frame), the UART, every
 * virtio-mmio device and the PCI host bridge.
 */
static int write_device_tree(struct vm *vm, const char *cmdline)
{
	const struct arch_vm *a = vm->arch;
	const struct vm_devices *d = &vm->devices;
	struct arm64_fdt_device virtio[DEVICES_MAX];
	struct arm64_fdt_pci_intx intx[PCI_SLOTS];
	struct arm64_fdt_pci pci;
	struct arm64_fdt_config cfg = {
	        .ram_base = vm->mem.regions[0].gpa,
	        .ram_size = vm->mem.regions[0].size,
	        .nr_cpus = vm->config->cpus,
	        .gic = a->gic,
	        .gic_dist_base = ARM64_GIC_DIST_BASE,
	        .gic_dist_size = ARM64_GIC_DIST_SIZE,
	        .gic_cpu_base = ARM64_GIC_CPU_BASE,
	        .gic_cpu_size = ARM64_GIC_CPU_SIZE,
	        .gic_redist_base = ARM64_GIC_REDIST_BASE,
	        .gic_redist_size = vm->config->cpus * ARM64_GIC_REDIST_STRIDE,
	        .msi = a->msi,
	        .msi_base = a->msi == ARM64_MSI_ITS ? ARM64_GIC_ITS_BASE : ARM64_GICV2M_BASE,
	        .msi_size = a->msi == ARM64_MSI_ITS ? ARM64_GIC_ITS_SIZE : GICV2M_FRAME_SIZE,
	        .uart_base = ARM64_UART_BASE,
	        .uart_size = ARM64_UART_SIZE,
	        .uart_spi = ARM64_UART_SPI,
	        .uart_clock = ARM64_UART_CLOCK,
	        .virtio = virtio,
	        .nr_virtio = d->nr_mmio,
	        .pci = d->has_pci ? &pci : NULL,
	        .bootargs = cmdline,
	        .pmu = vm->config->pmu,
	        .initrd_start = a->boot.initrd_start,
	        .initrd_end = a->boot.initrd_start + a->boot.initrd_size,
	};
	void *slot = gpa_to_hva(&vm->mem, a->boot.dtb_addr, ARM64_FDT_MAX_SIZE);
	const char *reason = NULL;
	int ret;

	if (d->has_pci)
		describe_pci(d, &pci, intx);
	for (unsigned i = 0; i < d->nr_mmio; i++)
		virtio[i] = (struct arm64_fdt_device){d->mmio[i].base, VIRTIO_MMIO_SIZE,
		                                      d->mmio[i].gsi};
	ret = slot ? arm64_fdt_build(&cfg, slot, ARM64_FDT_MAX_SIZE, &reason) : -EFAULT;
	if (ret)
		log_error("cannot write the device tree: %s", reason ? reason : strerror(-ret));
	return ret;
}

int arch_vm_load(struct vm *vm)
{
	const struct vm_config *cfg = vm->config;
	struct boot_image kernel = {0}, initrd = {0};
	char *cmdline = config_kernel_cmdline(cfg->cmdline, config_default_args(cfg));
	int ret = cmdline ? load_kernel(vm, &kernel, &initrd) : -ENOMEM;

	if (!ret)
		ret = write_device_tree(vm, cmdline);
	if (!ret && (ret = arm64_set_entry_registers(&vm->vcpus[0], &vm->arch->boot)))
		log_error("vCPU 0: cannot set the entry registers: %s", strerror(-ret));
	free(cmdline);
	boot_image_unmap(&initrd);
	boot_image_unmap(&kernel);
	return ret;
}

void arch_vm_destroy(struct vm *vm)
{
	struct arch_vm *a = vm->arch;

	if (!a)
		return;
	if (a->uart_initialized)
		uart_destroy(&a->uart);
	if (a->its_fd >= 0)
		close(a->its_fd);
	if (a->gic_fd >= 0)
		close(a->gic_fd);
	free(a);
	vm->arch = NULL;
}
