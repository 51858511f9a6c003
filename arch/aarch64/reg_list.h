/*
 * A list of registers as an aarch64 snapshot stores them: each an id (a KVM_GET_REG_LIST id,
 * or a GIC device attribute) and its value's bytes. In a state file a list is
 *
 *   u32 count | count x (u64 id | u32 size | size bytes)
 *
 * and a loader reads it against the list of the machine it restores: the same ids (in any
 * order), each once and with the same size, else one line names the first register that
 * differs. It calls no KVM ioctl, so it builds and is tested on any host.
 *
 * Threads: a list belongs to whoever made it; nothing here locks or keeps global state.
 */
#ifndef VMM_ARCH_AARCH64_REG_LIST_H
#define VMM_ARCH_AARCH64_REG_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/snapshot_file.h"
#include "vmm/util.h"

#define ARM64_REG_MAX_SIZE 256  /* bytes: KVM_REG_SIZE_U2048, an SVE Z register */
#define ARM64_REG_LIST_MAX 8192 /* registers in one list; KVM has about 500 per vCPU */

struct arm64_reg {
	uint64_t id;
	uint32_t size;
	_Alignas(16) uint8_t value[ARM64_REG_MAX_SIZE]; /* what KVM reads and writes */
};

struct arm64_reg_list {
	struct arm64_reg *regs;
	unsigned count, capacity;
};

/*
 * Appends register @id of @size bytes (1..ARM64_REG_MAX_SIZE), its value zero; returns it, or
 * NULL (out of memory, a bad size, or ARM64_REG_LIST_MAX reached).
 */
struct arm64_reg *arm64_reg_list_add(struct arm64_reg_list *l, uint64_t id, uint32_t size);
/* Frees the list; safe on a zeroed one and twice. */
void arm64_reg_list_free(struct arm64_reg_list *l);

/* The size KVM encodes in a KVM_GET_REG_LIST id (KVM_REG_SIZE_MASK): 1 to 2048 bytes. */
uint32_t arm64_reg_id_size(uint64_t id);

/* Writes @l to the open section of @w in the format above. */
void arm64_reg_list_put(struct snap_writer *w, const struct arm64_reg_list *l);

/*
 * Reads a list from @c into @l, whose ids and sizes (the restoring machine's) are set: each
 * saved register's value goes to the register of @l with its id. The count is bounded by
 * ARM64_REG_LIST_MAX and by what is left of the section before anything is read. Returns 0,
 * or -EINVAL with one line in @err naming @what ("vCPU register") and the register: one the
 * file has and @l has not, one @l has and the file has not, one twice, or a size that
 * differs. On failure @l's values are unspecified.
 */
int arm64_reg_list_get(struct snap_cursor *c, struct arm64_reg_list *l, const char *what, char *err,
                       size_t errlen) MUST_CHECK;

#endif
