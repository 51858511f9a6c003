/*
 * kvmchurn: creates and destroys KVM VMs, one after another, and nothing else: what another
 * VMM starting and stopping beside a running guest does to the host's KVM, without running
 * any guest code. tests/soak --churn runs it in the nested harness's L1 while an L2 guest
 * (under vmm or under QEMU) boots or moves data, to test whether that alone breaks the L2.
 *
 *   kvmchurn [-n COUNT] [-i INTERVAL_MS] [-c VCPUS] [-k] [-m MIB]
 *
 * Each round: open /dev/kvm, KVM_CREATE_VM, KVM_CREATE_IRQCHIP (unless -k: the in-kernel
 * local APICs, whose creation and destruction toggle KVM's static keys), VCPUS vCPUs
 * (default 1; 0 for none), with -m guest RAM of MIB MiB (anonymous, transparent huge pages
 * asked for, as vmm's) touched page by page and given to the VM as slot 0, then close and
 * unmap everything and wait INTERVAL_MS (default 1000).
 * COUNT 0 (the default) runs until killed. Exit status 0, or 1 with a line on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_VCPUS 8

static int fail(const char *what)
{
	fprintf(stderr, "kvmchurn: %s: %s\n", what, strerror(errno));
	return -1;
}

/* ram_mib MiB of touched huge-page memory as the VM's slot 0: 0 when done, -1 on error. */
static int add_ram(int vm, size_t ram_mib, void **ram)
{
	size_t size = ram_mib << 20;
	struct kvm_userspace_memory_region slot = {.memory_size = size};

	*ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*ram == MAP_FAILED) {
		*ram = NULL;
		return fail("mmap");
	}
	madvise(*ram, size, MADV_HUGEPAGE);
	for (size_t off = 0; off < size; off += 4096)
		((volatile char *)*ram)[off] = 1;
	slot.userspace_addr = (unsigned long)*ram;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return fail("KVM_SET_USER_MEMORY_REGION");
	return 0;
}

static int one_round(unsigned vcpus, int irqchip, size_t ram_mib)
{
	void *ram = NULL;
	int fds[MAX_VCPUS];
	unsigned made = 0;
	int ret = 0;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	int vm = kvm < 0 ? -1 : ioctl(kvm, KVM_CREATE_VM, 0);

	if (kvm < 0)
		return fail("/dev/kvm");
	if (vm < 0)
		ret = fail("KVM_CREATE_VM");
	else if (irqchip && ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		ret = fail("KVM_CREATE_IRQCHIP");
	else if (ram_mib)
		ret = add_ram(vm, ram_mib, &ram);
	while (!ret && made < vcpus) {
		fds[made] = ioctl(vm, KVM_CREATE_VCPU, (unsigned long)made);
		if (fds[made] < 0)
			ret = fail("KVM_CREATE_VCPU");
		else
			made++;
	}
	while (made)
		close(fds[--made]);
	if (vm >= 0)
		close(vm);
	if (ram)
		munmap(ram, ram_mib << 20);
	close(kvm);
	return ret;
}

int main(int argc, char **argv)
{
	unsigned long count = 0, interval_ms = 1000, vcpus = 1, ram_mib = 0;
	int irqchip = 1, opt;

	while ((opt = getopt(argc, argv, "n:i:c:km:")) != -1) {
		switch (opt) {
		case 'n':
			count = strtoul(optarg, NULL, 0);
			break;
		case 'i':
			interval_ms = strtoul(optarg, NULL, 0);
			break;
		case 'c':
			vcpus = strtoul(optarg, NULL, 0);
			break;
		case 'k':
			irqchip = 0;
			break;
		case 'm':
			ram_mib = strtoul(optarg, NULL, 0);
			break;
		default:
			fprintf(stderr, "usage: kvmchurn [-n COUNT] [-i INTERVAL_MS] [-c VCPUS] "
			                "[-k] [-m MIB]\n");
			return 2;
		}
	}
	if (vcpus > MAX_VCPUS) {
		fprintf(stderr, "kvmchurn: at most %d vCPUs\n", MAX_VCPUS);
		return 2;
	}
	for (unsigned long i = 0; !count || i < count; i++) {
		struct timespec pause = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000};

		if (one_round((unsigned)vcpus, irqchip, ram_mib))
			return 1;
		nanosleep(&pause, NULL);
	}
	return 0;
}
