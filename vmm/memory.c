#include "vmm/memory.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define HUGE_PAGE_SIZE (2 * MIB)

/*
 * Anonymous memory, or @fd's first @size bytes mapped shared when @fd >= 0; when @aligned, at an
 * address @offset past a 2 MiB boundary, like the guest-physical address it backs, so the host
 * can back (and KVM map) whole 2 MiB blocks. NULL on failure.
 */
static void *map_guest_ram(uint64_t size, uint64_t offset, bool aligned, int fd)
{
	uint64_t slack = aligned ? HUGE_PAGE_SIZE : 0, head;
	uint8_t *area = mmap(NULL, size + slack, PROT_READ | PROT_WRITE,
	                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (area == MAP_FAILED)
		return NULL;
	head = aligned ? (offset - (uintptr_t)area % HUGE_PAGE_SIZE + HUGE_PAGE_SIZE) %
	                         HUGE_PAGE_SIZE
	               : 0;
	if (head)
		munmap(area, head);
	if (slack - head)
		munmap(area + head + size, slack - head);
	if (fd >= 0 && mmap(area + head, size, PROT_READ | PROT_WRITE,
	                    MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd, 0) == MAP_FAILED) {
		int err = errno;

		munmap(area + head, size);
		errno = err;
		return NULL;
	}
	return area + head;
}

/* A memfd of @size bytes for a shared region; -1 with errno on failure. */
static int create_ram_fd(uint64_t size)
{
	int fd = memfd_create("vmm-guest-ram", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/*
 * Why transparent huge pages will not back a region, or NULL: the host's THP setting for
 * anonymous memory, or for shared memory (memfd) its shmem setting, says never (the word in
 * brackets is the active one).
 */
static const char *huge_pages_off(bool shared)
{
	const char *path = shared ? "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
	                          : "/sys/kernel/mm/transparent_hugepage/enabled";
	char text[128] = "";
	FILE *f = fopen(path, "re");

	if (!f)
		return "the host has no transparent huge pages";
	if (!fgets(text, sizeof(text), f))
		text[0] = '\0';
	fclose(f);
	if (strstr(text, "[never]") || strstr(text, "[deny]"))
		return shared ? "the host's shmem_enabled THP setting is never (shared memory, for "
		                "virtio-fs: echo advise > /sys/kernel/mm/transparent_hugepage/"
		                "shmem_enabled)"
		              : "the host's transparent_hugepage setting is never";
	return NULL;
}

int guest_memory_add(struct guest_memory *mem, uint64_t gpa, uint64_t size)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t end;
	void *host;
	int fd = -1;

	if (size == 0 || gpa % page || size % page || add_overflows(gpa, size, &end))
		return -EINVAL;
	if (mem->nr_regions == MEM_MAX_REGIONS)
		return -ENOSPC;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		if (gpa < r->gpa + r->size && r->gpa < end)
			return -EINVAL;
	}
	if (mem->shared && (fd = create_ram_fd(size)) < 0)
		return -errno;
	host = map_guest_ram(size, gpa % HUGE_PAGE_SIZE, mem->huge_pages, fd);
	if (!host) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		return -err;
	}
	if (mem->huge_pages) {
		madvise(host, size, MADV_HUGEPAGE);
		mem->huge_pages_off = huge_pages_off(mem->shared);
	}
	madvise(host, size, MADV_MERGEABLE);
	mem->regions[mem->nr_regions++] =
	        (struct mem_region){.gpa = gpa, .size = size, .host = host, .fd = fd};
	return 0;
}

void guest_memory_free(struct guest_memory *mem)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		munmap(mem->regions[i].host, mem->regions[i].size);
		if (mem->regions[i].fd >= 0)
			close(mem->regions[i].fd);
	}
	mem->nr_regions = 0;
}

static const struct mem_region *find_region(const struct guest_memory *mem, uint64_t gpa)
{
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

void *gpa_to_hva(const struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	const struct mem_region *r = find_region(mem, gpa);

	if (!r || !range_within(gpa, len, r->gpa, r->size))
		return NULL;
	return r->host + (gpa - r->gpa);
}

/* Walks [gpa, gpa + len) region by region, copying with @copy. */
static int guest_copy(const struct guest_memory *mem, uint64_t gpa, uint8_t *buf, uint64_t len,
                      int to_guest)
{
	uint64_t end;

	if (add_overflows(gpa, len, &end))
		return -EFAULT;
	while (len) {
		const struct mem_region *r = find_region(mem, gpa);
		uint64_t chunk;
		uint8_t *host;

		if (!r)
			return -EFAULT;
		chunk = MIN(len, r->size - (gpa - r->gpa));
		host = r->host + (gpa - r->gpa);
		if (to_guest)
			memcpy(host, buf, chunk);
		else
			memcpy(buf, host, chunk);
		gpa += chunk;
		buf += chunk;
		len -= chunk;
	}
	return 0;
}

int guest_read(const struct guest_memory *mem, uint64_t gpa, void *buf, uint64_t len)
{
	return guest_copy(mem, gpa, buf, len, 0);
}

int guest_write(const struct guest_memory *mem, uint64_t gpa, const void *buf, uint64_t len)
{
	return guest_copy(mem, gpa, (uint8_t *)buf, len, 1);
}

uint64_t guest_memory_size(const struct guest_memory *mem)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < mem->nr_regions; i++)
		total += mem->regions[i].size;
	return total;
}

void host_writes_to_guest_visible(const void *addr, size_t len)
{
#if defined(__aarch64__)
	uint64_t ctr, line;
	uintptr_t p, end = (uintptr_t)addr + len;

	if (!len)
		return;
	__asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
	line = 4ULL << ((ctr >> 16) &
	                0xf); /* DminLine: log2 of the smallest D-cache line's words */
	for (p = (uintptr_t)addr & ~(uintptr_t)(line - 1); p < end; p += line)
		__asm__ volatile("dc civac, %0" : : "r"(p) : "memory");
	__asm__ volatile("dsb ish" : : : "memory");
#else
	(void)addr;
	(void)len;
#endif
}
