/* Small helpers shared by every module: sizes, checked arithmetic, container_of. */
#ifndef VMM_VMM_UTIL_H
#define VMM_VMM_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

#define KIB (1024ULL)
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)

#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a)-1))
#define ALIGN_UP(x, a)   ALIGN_DOWN((x) + (uint64_t)(a)-1, (a))

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define STR_(x) #x
#define STR(x)  STR_(x) /* a macro's value as a string literal */

#define MUST_CHECK   __attribute__((warn_unused_result))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Checked arithmetic: return true when the result overflowed. */
#define add_overflows(a, b, res) __builtin_add_overflow(a, b, res)
#define mul_overflows(a, b, res) __builtin_mul_overflow(a, b, res)

/* True when [base, base + len) lies inside [lo, lo + size); no wrap-around possible. */
static inline int range_within(uint64_t base, uint64_t len, uint64_t lo, uint64_t size)
{
	return base >= lo && base - lo <= size && len <= size - (base - lo);
}

#endif
