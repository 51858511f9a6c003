/*
 * Guest RAM: one anonymous mapping per region, and the one bounds-checked translation from
 * guest-physical addresses to host pointers. No other code adds offsets to a region's base.
 */
#ifndef VMM_VMM_MEMORY_H
#define VMM_VMM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

#define MEM_MAX_REGIONS 4
/* KVM memory slot ids: guest RAM region i is slot i; the PCI host's ECAM copy follows. */
#define MEM_SLOT_PCI_ECAM MEM_MAX_REGIONS

struct mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
	int fd;             /* the memfd backing a shared region, else -1 */
	uint64_t fd_offset; /* where the region starts in fd */
};

struct guest_memory {
	struct mem_region regions[MEM_MAX_REGIONS];
	unsigned nr_regions;
	/*
	 * Set before adding regions: back them 2 MiB-congruent with their guest-physical address
	 * and with MADV_HUGEPAGE, so the host and KVM can map whole 2 MiB blocks.
	 */
	bool huge_pages;
	/*
	 * Set before adding regions: back each region with its own memfd, mapped shared, so that
	 * another process (a vhost-user back-end) can map guest RAM too.
	 */
	bool shared;
	/* With huge_pages: why the host will back guest RAM with 4 KiB pages anyway, or NULL. */
	const char *huge_pages_off;
};

/*
 * Maps a region (anonymous, or a memfd when @mem->shared) of @size bytes at guest-physical @gpa.
 * Regions must be page aligned, non-empty and must not overlap or wrap. Returns 0, -EINVAL, -ENOSPC
 * (too many regions) or the mmap errno.
 */
int guest_memory_add(struct guest_memory *mem, uint64_t gpa, uint64_t size) MUST_CHECK;
/* Unmaps every region. Safe on a zeroed or partly built struct. */
void guest_memory_free(struct guest_memory *mem);

/*
 * Translates [gpa, gpa + len) to a host pointer. The whole range must lie inside one region;
 * returns NULL otherwise (including when gpa + len wraps). @gpa and @len may be guest-controlled.
 */
void *gpa_to_hva(const struct guest_memory *mem, uint64_t gpa, uint64_t len);

/* Copies to or from guest memory; the range may span adjacent regions. Returns 0 or -EFAULT. */
int guest_read(const struct guest_memory *mem, uint64_t gpa, void *buf, uint64_t len) MUST_CHECK;
int guest_write(const struct guest_memory *mem, uint64_t gpa, const void *buf,
                uint64_t len) MUST_CHECK;

/* Total bytes of RAM in all regions. */
uint64_t guest_memory_size(const struct guest_memory *mem);

/*
 * Makes the host's writes to [@addr, + @len) visible to a guest that reads that memory through
 * a non-cacheable mapping (an arm64 guest's Device mapping of a RAM-backed MMIO region, e.g.
 * the PCI ECAM mirror): without stage-2 forced write-back such reads go past the caches, so on
 * arm64 the lines are cleaned to the point of coherency (DC CIVAC, which Linux lets user space
 * run). Nothing to do on x86_64, whose caches are coherent with every access. Any thread.
 */
void host_writes_to_guest_visible(const void *addr, size_t len);

#endif
