/* The aarch64 machine: RAM at 2 GiB, in-kernel GICv3 (or v2), an MMIO 16550, device tree. */
#include "arch/aarch64/machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

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

/*
 * GICv3 where KVM has it; GICv2 (at most 8 vCPUs) on hosts whose GIC cannot emulate v3. With
 * --irqchip, that version or a one-line error.
 */
static int create_gic(struct vm *vm)
{
	struct arch_vm *a = vm->arch;
	const uint64_t dist = ARM64_GIC_DIST_BASE, cpu = ARM64_GIC_CPU_BASE;
	const uint64_t redist = ARM64_GIC_REDIST_BASE;
	enum irqchip_kind want = vm->config->irqchip;
	int fd = want == IRQCHIP_GICV2 ? -ENODEV : create_gic_device(vm, KVM_DEV_TYPE_ARM_VGIC_V3);
	int ret;

	if (fd < 0 && want == IRQCHIP_GICV3) {
		log_error("--irqchip gicv3: this host's KVM cannot emulate a GICv3 (%s)",
		          strerror(-fd));
		return -EINVAL;
	}
	if (fd >= 0) {
		a->gic = ARM64_GIC_V3;
		a->gic_fd = fd;
		ret = set_device_attr(fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST,
		                      &dist);
		if (!ret)
			ret = set_device_attr(fd, KVM_DEV_ARM_VGIC_GRP_ADDR,
			                      KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist);
		return ret;
	}
	fd = create_gic_device(vm, KVM_DEV_TYPE_ARM_VGIC_V2);
	if (fd < 0 && want == IRQCHIP_GICV2) {
		log_error("--irqchip gicv2: this host's KVM cannot emulate a GICv2 (%s; a GICv3 "
		          "host needs its GICv2 compatibility for that)",
		          strerror(-fd));
		return -EINVAL;
	}
	if (fd < 0)
		return fd;
	a->gic = ARM64_GIC_V2;
	a->gic_fd = fd;
	if (vm->config->cpus > ARM64_GICV2_MAX_CPUS) {
		log_error("--cpus %u: this host's GIC is a GICv2, which serves at most %d vCPUs",
		          vm->config->cpus, ARM64_GICV2_MAX_CPUS);
		return -EINVAL;
	}
	ret = set_device_attr(fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, &dist);
	if (!ret)
		ret = set_device_attr(fd, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU,
		                      &cpu);
	return ret;
}

int arm64_gic_finalize(struct arch_vm *a)
{
	return set_device_attr(a->gic_fd, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT,
	                       NULL);
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
	if (ret) {
		if (ret != -EINVAL)
			log_error("cannot create the in-kernel GIC: %s", strerror(-ret));
		return ret;
	}
	uart_init(&a->uart, &uart_irq, &uart_backend);
	a->uart_initialized = true;
	ret = to_chardev ? chardev_add_output_waiter(&vm->console, uart_tx_space_cb, &a->uart) : 0;
	if (!ret)
		ret = bus_register(&vm->mmio, ARM64_UART_BASE, 8, &uart_bus_ops, &a->uart, "uart");
	if (ret)
		log_error("cannot register the UART: %s", strerror(-ret));
	return ret;
}

bool arch_pci_layout(const struct vm *vm, struct pci_layout *out)
{
	(void)vm;
	(void)out;
	return false;
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

/* The device tree describes the vCPUs, the GIC, the UART and every virtio-mmio device. */
static int write_device_tree(struct vm *vm, const char *cmdline)
{
	const struct arch_vm *a = vm->arch;
	const struct vm_devices *d = &vm->devices;
	struct arm64_fdt_device virtio[DEVICES_MAX];
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
	        .uart_base = ARM64_UART_BASE,
	        .uart_size = ARM64_UART_SIZE,
	        .uart_spi = ARM64_UART_SPI,
	        .uart_clock = ARM64_UART_CLOCK,
	        .virtio = virtio,
	        .nr_virtio = d->nr_mmio,
	        .bootargs = cmdline,
	        .pmu = vm->config->pmu,
	        .initrd_start = a->boot.initrd_start,
	        .initrd_end = a->boot.initrd_start + a->boot.initrd_size,
	};
	void *slot = gpa_to_hva(&vm->mem, a->boot.dtb_addr, ARM64_FDT_MAX_SIZE);
	const char *reason = NULL;
	int ret;

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
	if (a->gic_fd >= 0)
		close(a->gic_fd);
	free(a);
	vm->arch = NULL;
}
