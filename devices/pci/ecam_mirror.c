/*
 * Bus 0's config space served from memory: see pci_host_map_ecam in pci.h.
 *
 * The mirror holds function 0 of each of the 32 slots, one page each, in the layout ECAM
 * gives them: the first 256 bytes as pci_host_config_read returns them, zeros after them, and
 * all-ones for an empty slot. Each page is its own read-only KVM memory slot at the function's
 * ECAM address, so a guest read never exits and a write exits as MMIO to the host's ECAM
 * handler (pci.c), which updates the page. Functions 1 to 7 are not mirrored: they do not
 * exist, and Linux reads them only behind a multi-function header.
 *
 * Of a type-0 header only the Status register's Interrupt Status bit changes without a config
 * write; the device sets it with pci_device_set_interrupt_status, an atomic update of the
 * device and its page. Everything else is copied under the host's lock after each write.
 */
#include "devices/pci/ecam_mirror.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "vmm/log.h"
#include "vmm/memory.h"

#define MIRROR_SIZE ((size_t)PCI_SLOTS * PCI_ECAM_FN_SIZE)

static uint8_t *slot_page(const struct pci_host *h, unsigned slot)
{
	return h->ecam_mirror + (size_t)slot * PCI_ECAM_FN_SIZE;
}

static struct kvm_userspace_memory_region slot_region(const struct pci_host *h, unsigned slot,
                                                      bool present)
{
	return (struct kvm_userspace_memory_region){
	        .slot = h->ecam_first_memslot + slot,
	        .flags = present ? KVM_MEM_READONLY : 0,
	        .guest_phys_addr = h->layout.ecam_base + ((uint64_t)slot << 15),
	        .memory_size = present ? PCI_ECAM_FN_SIZE : 0,
	        .userspace_addr = present ? (uintptr_t)slot_page(h, slot) : 0,
	};
}

void pci_ecam_mirror_update(struct pci_host *h, const struct pci_device *d)
{
	uint8_t *page;

	if (!h->ecam_mirror)
		return;
	page = slot_page(h, d->slot);
	/* All but the Status register's low byte, whose one changing bit is updated atomically. */
	memcpy(page, d->config, PCI_STATUS);
	memcpy(page + PCI_STATUS + 1, d->config + PCI_STATUS + 1, PCI_CONFIG_SIZE - PCI_STATUS - 1);
	host_writes_to_guest_visible(page, PCI_CONFIG_SIZE);
}

void pci_ecam_mirror_fill(struct pci_host *h, const struct pci_device *d)
{
	uint8_t *page;

	if (!h->ecam_mirror)
		return;
	page = slot_page(h, d->slot);
	memset(page + PCI_CONFIG_SIZE, 0, PCI_ECAM_FN_SIZE - PCI_CONFIG_SIZE);
	pci_ecam_mirror_update(h, d);
	__atomic_store_n(page + PCI_STATUS,
	                 (uint8_t)(d->config[PCI_STATUS] |
	                           __atomic_load_n(&d->interrupt_status, __ATOMIC_RELAXED)),
	                 __ATOMIC_RELAXED);
	host_writes_to_guest_visible(page, PCI_ECAM_FN_SIZE);
}

/* Deletes the memory slots of slots [0, @n). Host lock held, or set-up. */
static void unmap_slots(struct pci_host *h, unsigned n)
{
	for (unsigned s = 0; s < n && h->vm_fd >= 0; s++) {
		struct kvm_userspace_memory_region r = slot_region(h, s, false);

		if (ioctl(h->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			log_error("PCI: cannot unmap the config space of slot %u: %s", s,
			          strerror(errno));
	}
}

int pci_host_map_ecam(struct pci_host *h, int vm_fd, uint32_t first_memslot)
{
	uint8_t *mirror;
	int ret = 0;

	if (vm_fd >= 0 && ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0)
		return -EOPNOTSUPP;
	if (vm_fd >= 0 && ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS) <
	                          (int)(first_memslot + PCI_SLOTS))
		return -ENOSPC;
	mirror =
	        mmap(NULL, MIRROR_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mirror == MAP_FAILED)
		return -errno;
	memset(mirror, 0xff, MIRROR_SIZE);
	host_writes_to_guest_visible(mirror, MIRROR_SIZE); /* the empty slots' all-ones */
	pthread_mutex_lock(&h->lock);
	h->ecam_mirror = mirror;
	h->vm_fd = vm_fd;
	h->ecam_first_memslot = first_memslot;
	for (unsigned s = 0; s < PCI_SLOTS; s++) {
		struct kvm_userspace_memory_region r = slot_region(h, s, true);

		if (h->slots[s])
			pci_ecam_mirror_fill(h, h->slots[s]);
		if (vm_fd >= 0 && ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			ret = -errno;
			unmap_slots(h, s);
			break;
		}
	}
	if (ret) {
		h->ecam_mirror = NULL;
		munmap(mirror, MIRROR_SIZE);
	} else {
		h->ecam_mapped = true;
	}
	pthread_mutex_unlock(&h->lock);
	return ret;
}

void pci_ecam_mirror_destroy(struct pci_host *h)
{
	if (h->ecam_mirror)
		munmap(h->ecam_mirror, MIRROR_SIZE);
	h->ecam_mirror = NULL;
}

bool pci_host_ecam_reads_exit(struct pci_host *h)
{
	bool mapped;

	pthread_mutex_lock(&h->lock);
	mapped = h->ecam_mapped;
	pthread_mutex_unlock(&h->lock);
	return !mapped;
}

void pci_device_trap_config_reads(struct pci_device *d)
{
	struct pci_host *h = d->host;

	if (!h || !h->ecam_mapped)
		return;
	unmap_slots(h, PCI_SLOTS);
	h->ecam_mapped = false;
	log_debug("PCI: slot %u's config space changes when read: ECAM reads exit from now on",
	          d->slot);
}

void pci_device_set_interrupt_status(struct pci_device *d, bool pending)
{
	uint8_t bit = pending ? PCI_STATUS_INTERRUPT : 0;
	const struct pci_host *h = d->host;

	__atomic_store_n(&d->interrupt_status, bit, __ATOMIC_RELAXED);
	if (!h || !h->ecam_mirror)
		return;
	if (pending)
		__atomic_fetch_or(slot_page(h, d->slot) + PCI_STATUS, bit, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(slot_page(h, d->slot) + PCI_STATUS,
		                   (uint8_t)~PCI_STATUS_INTERRUPT, __ATOMIC_RELAXED);
	host_writes_to_guest_visible(slot_page(h, d->slot) + PCI_STATUS, 1);
}
