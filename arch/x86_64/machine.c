/* The x86_64 machine: memory map, in-kernel irqchip and PIT, legacy devices, kernel loading. */
#include "arch/x86_64/machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/arch.h"
#include "arch/x86_64/acpi.h"
#include "vmm/log.h"
#include "vmm/run.h"
#include "vmm/sandbox.h"
#include "vmm/vm.h"

#define PTE_PRESENT  0x1ULL
#define PTE_WRITABLE 0x2ULL
#define PTE_HUGE     0x80ULL

/* GDT entries: null, unused, code, data, then a 16-byte TSS descriptor. */
#define GDT_CODE64 0x00af9b000000ffffULL
#define GDT_CODE32 0x00cf9b000000ffffULL
#define GDT_DATA   0x00cf93000000ffffULL
#define GDT_TSS    0x00008b0000000067ULL

int arch_memory_init(struct guest_memory *mem, uint64_t ram_size)
{
	uint64_t low = MIN(ram_size, X86_MMIO_HOLE_START);
	int ret;

	/*
	 * 2 MiB-congruent with MADV_HUGEPAGE, as on arm64: nested in the harness's L1, a Linux
	 * boot to init took 29,099 L1 exits, 25,767 of them 4 KiB page faults, and takes 2,525 with
	 * 54 faults on 2 MiB pages. (linux-net's rare L2 triple fault, not root-caused, was seen
	 * with either mapping.)
	 */
	mem->huge_pages = true;
	ret = guest_memory_add(mem, 0, low);

	if (!ret && ram_size > low)
		ret = guest_memory_add(mem, X86_MMIO_HOLE_END, ram_size - low);
	return ret;
}

int x86_write_boot_tables(const struct guest_memory *mem, enum x86_entry_mode mode)
{
	uint64_t gdt[6] = {0,        0,       mode == X86_ENTRY_LONG64 ? GDT_CODE64 : GDT_CODE32,
	                   GDT_DATA, GDT_TSS, 0};
	uint64_t pml4 = X86_PDPT_ADDR | PTE_PRESENT | PTE_WRITABLE;
	uint64_t pdpt[4], pd[512];
	int ret = guest_write(mem, X86_GDT_ADDR, gdt, sizeof(gdt));

	if (ret || mode != X86_ENTRY_LONG64)
		return ret;
	/* Identity map 0..4 GiB with 2 MiB pages: four page directories. */
	for (unsigned i = 0; i < 4 && !ret; i++) {
		pdpt[i] = (X86_PD_ADDR + i * 4096) | PTE_PRESENT | PTE_WRITABLE;
		for (unsigned j = 0; j < 512; j++)
			pd[j] = ((uint64_t)i * GIB + j * 2 * MIB) | PTE_PRESENT | PTE_WRITABLE |
			        PTE_HUGE;
		ret = guest_write(mem, X86_PD_ADDR + i * 4096, pd, sizeof(pd));
	}
	if (!ret)
		ret = guest_write(mem, X86_PDPT_ADDR, pdpt, sizeof(pdpt));
	if (!ret)
		ret = guest_write(mem, X86_PML4_ADDR, &pml4, sizeof(pml4));
	return ret;
}

static int load_kernel(struct vm *vm)
{
	const struct vm_config *cfg = vm->config;
	struct boot_image kernel, initrd = {0};
	const char *reason = NULL;
	char *cmdline;
	int ret = boot_image_map("kernel", cfg->kernel_path, &kernel);

	if (ret)
		return ret;
	if (cfg->initrd_path && (ret = boot_image_map("initrd", cfg->initrd_path, &initrd))) {
		boot_image_unmap(&kernel);
		return ret;
	}
	cmdline = config_kernel_cmdline(cfg->cmdline, config_default_args(cfg));
	if (!cmdline)
		ret = -ENOMEM;
	else
		ret = x86_load_kernel(&vm->mem, &kernel, vm->run ? run_initrd(vm->run) : &initrd,
		                      cmdline, &vm->arch->boot, &reason);
	if (ret)
		log_error("kernel '%s': %s", cfg->kernel_path, reason ? reason : strerror(-ret));
	else if ((ret = x86_write_boot_tables(&vm->mem, vm->arch->boot.mode)))
		log_error("cannot write the boot page tables: %s", strerror(-ret));
	free(cmdline);
	boot_image_unmap(&initrd);
	boot_image_unmap(&kernel);
	return ret;
}

static int create_irqchip(struct vm *vm)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)X86_TSS_ADDR) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){X86_IDENTITY_MAP_ADDR}) < 0)
		return -errno;
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return -errno;
	return ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0 ? -errno : 0;
}

/* A guest reset, or power-off: either ends vmm with status 0. */
static void machine_reset(void *opaque)
{
	vm_request_stop(opaque, 0, NULL);
}

static void debug_exit(void *opaque, int status)
{
	vm_request_stop(opaque, status, NULL);
}

size_t arch_console_input(struct vm *vm, const uint8_t *buf, size_t len)
{
	return uart_receive(&vm->arch->com1, buf, len);
}

static void com1_tx_defer(void *opaque, bool deferrable)
{
	struct vm *vm = opaque;
	int ret = coalesced_io_set_pio(&vm->coalesced, X86_COM1_PORT, deferrable);

	if (ret)
		log_ratelimited(LOG_WARN, "COM1: cannot %s coalescing its THR writes: %s",
		                deferrable ? "start" : "stop", strerror(-ret));
}

static int register_devices(struct vm *vm)
{
	struct arch_vm *a = vm->arch;
	const struct irq_line com1_irq = {.vm_fd = vm->vm_fd, .gsi = X86_COM1_IRQ, .irqfd = -1};
	/* To stdout the UART never blocks its vCPU: it holds what the host cannot take yet. */
	bool to_chardev = vm->console_opaque == &vm->console;
	size_t (*tx)(void *, const uint8_t *, size_t) =
	        to_chardev ? chardev_try_write_cb : vm->console_write;
	const struct uart_backend com1_backend = {tx, chardev_input_space_cb, vm->console_opaque};
	int ret;

	uart_init(&a->com1, &com1_irq, &com1_backend);
	i8042_init(&a->kbc, machine_reset, vm);
	cmos_init(&a->cmos);
	test_device_init(&a->test_device);
	a->debug_exit = (struct debug_exit){debug_exit, vm};
	a->acpi_pm = (struct acpi_pm){.soft_off_type = ACPI_SLP_TYP_S5,
	                              .reset_value = X86_ACPI_RESET_VALUE,
	                              .poweroff = machine_reset,
	                              .reset = machine_reset,
	                              .opaque = vm};
	a->devices_initialized = true;
	/* Restored in this order: the irqchip before the devices that drive its lines. */
	ret = x86_vm_snapshot_add(vm);
	if (!ret)
		ret = uart_snapshot_add(&a->com1, &vm->snapshot, 0);
	if (!ret)
		ret = i8042_snapshot_add(&a->kbc, &vm->snapshot);
	if (!ret)
		ret = cmos_snapshot_add(&a->cmos, &vm->snapshot);
	if (!ret && vm->config->test_device)
		snapshot_unsupported(&vm->snapshot, "the test device");
	if (ret)
		return ret;

	ret = to_chardev ? chardev_add_output_waiter(&vm->console, uart_tx_space_cb, &a->com1) : 0;
	if (!ret)
		ret = bus_register(&vm->pio, X86_COM1_PORT, 8, &uart_bus_ops, &a->com1, "com1");
	if (!ret)
		ret = bus_register(&vm->pio, X86_I8042_DATA_PORT, 1, &i8042_data_ops, &a->kbc,
		                   "i8042");
	if (!ret)
		ret = bus_register(&vm->pio, X86_I8042_CMD_PORT, 1, &i8042_cmd_ops, &a->kbc,
		                   "i8042");
	if (!ret)
		ret = bus_register(&vm->pio, X86_CMOS_PORT, 2, &cmos_bus_ops, &a->cmos, "cmos");
	/* The index port only latches; the data port access after it exits and replays it. */
	if (!ret)
		ret = coalesced_io_add_pio(&vm->coalesced, X86_CMOS_PORT, 1);
	/* THR, but in loopback: polled console output and the 8250 driver's interrupt passes. */
	if (!ret)
		ret = coalesced_io_add_lingering_pio(&vm->coalesced, X86_COM1_PORT, 1);
	if (!ret) {
		sandbox_allow_coalesced_zone_changes();
		uart_set_tx_defer_hook(&a->com1, com1_tx_defer, vm);
	}
	/*
	 * Only when asked (--debug-exit, which config refuses with --run): otherwise any guest
	 * could choose vmm's exit status, 124 reading as --timeout or 2 as a usage error.
	 */
	if (!ret && vm->config->debug_exit && !vm->run)
		ret = bus_register(&vm->pio, X86_DEBUG_EXIT_PORT, 1, &debug_exit_ops,
		                   &a->debug_exit, "debug-exit");
	if (!ret)
		ret = bus_register(&vm->pio, X86_ACPI_SLEEP_CONTROL_PORT, ACPI_PM_SIZE,
		                   &acpi_pm_ops, &a->acpi_pm, "acpi-pm");
	if (!ret && vm->config->test_device)
		ret = bus_register(&vm->pio, X86_TEST_DEVICE_PORT, X86_TEST_DEVICE_PORT_LEN,
		                   &test_device_ops, &a->test_device, "test-device");
	if (!ret && vm->config->test_device)
		ret = bus_register(&vm->mmio, X86_TEST_DEVICE_MMIO, X86_TEST_DEVICE_MMIO_LEN,
		                   &test_device_ops, &a->test_device, "test-device");
	return ret;
}

int arch_vm_init(struct vm *vm)
{
	int ret;

	vm->arch = calloc(1, sizeof(*vm->arch));
	if (!vm->arch)
		return -ENOMEM;
	ret = create_irqchip(vm);
	if (ret) {
		log_error("cannot create the in-kernel irqchip and PIT: %s", strerror(-ret));
		return ret;
	}
	ret = x86_get_supported_cpuid(vm->kvm_fd, &vm->arch->supported_cpuid);
	if (ret) {
		log_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(-ret));
		return ret;
	}
	ret = register_devices(vm);
	if (ret)
		log_error("cannot register the platform devices: %s", strerror(-ret));
	return ret;
}

/*
 * Config space is ECAM only, described by the MCFG, unless the guest's command line keeps
 * Linux from using it. With 0xCF8 ports Linux takes them for every register below 256, one
 * exit per read; without them it reads ECAM, which vmm maps read-only so reads never exit.
 * Linux 6.1 then prints "PCI: Fatal: No config space access function found" before it finds
 * the MCFG (QEMU's microvm shows the same line): harmless, and its characters cost far fewer
 * UART exits than the config reads did (bench/boot's quiet Linux boot, nested: 401 exits
 * to vmm with the ports, 360 without, the line's 130 UART exits included).
 */
static bool guest_needs_config_ports(const struct vm_config *cfg)
{
	return config_cmdline_has_value(cfg->cmdline, "acpi", "off") ||
	       config_cmdline_has_value(cfg->cmdline, "pci", "nommconf") ||
	       config_cmdline_has_value(cfg->cmdline, "pci", "conf1");
}

bool arch_pci_layout(const struct vm *vm, struct pci_layout *out)
{
	uint64_t ram_top = X86_MMIO_HOLE_END;

	for (unsigned i = 0; i < vm->mem.nr_regions; i++)
		ram_top = MAX(ram_top, vm->mem.regions[i].gpa + vm->mem.regions[i].size);
	*out = (struct pci_layout){
	        .ecam_base = X86_PCI_ECAM_BASE,
	        .ecam_size = X86_PCI_ECAM_SIZE,
	        .config_port = guest_needs_config_ports(vm->config) ? X86_PCI_CONFIG_PORT : 0,
	        .mmio32_base = X86_PCI_MMIO32_BASE,
	        .mmio32_size = X86_PCI_MMIO32_SIZE,
	        .mmio64_base = ALIGN_UP(ram_top, X86_PCI_MMIO64_ALIGN),
	        .mmio64_size = X86_PCI_MMIO64_SIZE,
	};
	return true;
}

/* MSIs go to the local APICs: plain MSI routes, as KVM takes them. */
void arch_msi_translation(const struct vm *vm, struct msi_translation *out)
{
	(void)vm;
	*out = (struct msi_translation){0};
}

/* The ACPI tables describe the CPUs and the devices vm->devices placed. */
static int write_acpi_tables(struct vm *vm)
{
	const struct vm_devices *d = &vm->devices;
	struct acpi_virtio_mmio mmio[DEVICES_MAX];
	struct acpi_pci_slot slots[DEVICES_MAX];
	struct acpi_config cfg = {
	        .nr_cpus = vm->config->cpus,
	        .virtio_mmio = mmio,
	        .nr_virtio_mmio = d->nr_mmio,
	        .pci = d->has_pci,
	        .pci_ecam_base = d->pci.layout.ecam_base,
	        .pci_ecam_size = d->pci.layout.ecam_size,
	        .pci_config_port = d->pci.layout.config_port,
	        .pci_mmio32_base = d->pci.layout.mmio32_base,
	        .pci_mmio32_size = d->pci.layout.mmio32_size,
	        .pci_mmio64_base = d->pci.layout.mmio64_base,
	        .pci_mmio64_size = d->pci.layout.mmio64_size,
	        .pci_slots = slots,
	        .nr_pci_slots = d->nr_pci_devices,
	};
	uint64_t rsdp;
	int ret;

	for (unsigned i = 0; i < d->nr_mmio; i++)
		mmio[i] = (struct acpi_virtio_mmio){d->mmio[i].base, VIRTIO_MMIO_SIZE,
		                                    d->mmio[i].gsi};
	for (unsigned i = 0; i < d->nr_pci_devices; i++)
		slots[i] = (struct acpi_pci_slot){d->pci_devices[i].transport.pci.slot,
		                                  d->pci_devices[i].gsi};
	ret = acpi_build(&vm->mem, &cfg, &rsdp);
	if (ret)
		log_error("cannot write the ACPI tables: %s", strerror(-ret));
	return ret;
}

int arch_vm_load(struct vm *vm)
{
	int ret = write_acpi_tables(vm);

	if (!ret)
		ret = load_kernel(vm);
	if (!ret && (ret = x86_set_entry_registers(&vm->vcpus[0], &vm->arch->boot)))
		log_error("vCPU 0: cannot set the entry registers: %s", strerror(-ret));
	return ret;
}

void arch_vm_destroy(struct vm *vm)
{
	struct arch_vm *a = vm->arch;

	if (!a)
		return;
	if (a->devices_initialized) {
		uart_destroy(&a->com1);
		i8042_destroy(&a->kbc);
		cmos_destroy(&a->cmos);
		test_device_destroy(&a->test_device);
	}
	free(a->supported_cpuid);
	free(a);
	vm->arch = NULL;
}
