/* aarch64 snapshot register lists: see reg_list.h. */
#include "arch/aarch64/reg_list.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_MIN 12 /* id and size: what each saved register takes at least */

struct arm64_reg *arm64_reg_list_add(struct arm64_reg_list *l, uint64_t id, uint32_t size)
{
	struct arm64_reg *r;

	if (size == 0 || size > ARM64_REG_MAX_SIZE || l->count >= ARM64_REG_LIST_MAX)
		return NULL;
	if (l->count == l->capacity) {
		unsigned cap = l->capacity ? 2 * l->capacity : 64;
		struct arm64_reg *p = realloc(l->regs, (size_t)cap * sizeof(*p));

		if (!p)
			return NULL;
		l->regs = p;
		l->capacity = cap;
	}
	r = &l->regs[l->count++];
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->size = size;
	return r;
}

void arm64_reg_list_free(struct arm64_reg_list *l)
{
	free(l->regs);
	*l = (struct arm64_reg_list){0};
}

uint32_t arm64_reg_id_size(uint64_t id)
{
	return 1U << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT);
}

void arm64_reg_list_put(struct snap_writer *w, const struct arm64_reg_list *l)
{
	snap_put_u32(w, l->count);
	for (unsigned i = 0; i < l->count; i++) {
		snap_put_u64(w, l->regs[i].id);
		snap_put_u32(w, l->regs[i].size);
		snap_put_bytes(w, l->regs[i].value, l->regs[i].size);
	}
}

/* The restoring machine's registers sorted by id, for a lookup per saved register. */
struct slot {
	uint64_t id;
	unsigned index;
};

static int compare_slots(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static struct arm64_reg *find(const struct slot *index, struct arm64_reg_list *l, uint64_t id)
{
	struct slot key = {.id = id};
	const struct slot *s =
	        l->count ? bsearch(&key, index, l->count, sizeof(key), compare_slots) : NULL;

	return s ? &l->regs[s->index] : NULL;
}

/* Reads one saved register into its place in @l, marking it in @seen. */
static int get_one(struct snap_cursor *c, struct arm64_reg_list *l, const struct slot *index,
                   bool *seen, const char *what, char *err, size_t errlen)
{
	uint64_t id = snap_get_u64(c);
	uint32_t size = snap_get_u32(c);
	struct arm64_reg *r = find(index, l, id);

	if (!r) {
		snprintf(err, errlen, "the state file has %s %#llx, which this machine lacks", what,
		         (unsigned long long)id);
		return -EINVAL;
	}
	if (seen[r - l->regs]) {
		snprintf(err, errlen, "the state file has %s %#llx twice", what,
		         (unsigned long long)id);
		return -EINVAL;
	}
	if (size != r->size) {
		snprintf(err, errlen, "%s %#llx is %u bytes in the state file, %u here", what,
		         (unsigned long long)id, size, r->size);
		return -EINVAL;
	}
	seen[r - l->regs] = true;
	snap_get_bytes(c, r->value, size);
	return 0;
}

int arm64_reg_list_get(struct snap_cursor *c, struct arm64_reg_list *l, const char *what, char *err,
                       size_t errlen)
{
	uint32_t count = snap_get_u32(c);
	struct slot *index = NULL;
	bool *seen = NULL;
	int ret = -EINVAL;

	if (count > ARM64_REG_LIST_MAX || (size_t)count * ENTRY_MIN > snap_cursor_left(c)) {
		snprintf(err, errlen, "the state file's list of %u %ss is longer than its section",
		         count, what);
		return -EINVAL;
	}
	index = calloc(l->count + 1, sizeof(*index));
	seen = calloc(l->count + 1, sizeof(*seen));
	if (!index || !seen) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < l->count; i++)
		index[i] = (struct slot){l->regs[i].id, i};
	qsort(index, l->count, sizeof(*index), compare_slots);
	for (uint32_t i = 0; i < count; i++)
		if ((ret = get_one(c, l, index, seen, what, err, errlen)))
			goto out;
	ret = 0;
	for (unsigned i = 0; i < l->count && !ret; i++) {
		if (!seen[i]) {
			snprintf(err, errlen, "the state file lacks %s %#llx", what,
			         (unsigned long long)l->regs[i].id);
			ret = -EINVAL;
		}
	}
out:
	free(index);
	free(seen);
	return ret;
}
