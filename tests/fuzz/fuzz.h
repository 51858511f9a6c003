/*
 * Shared by the libFuzzer targets of tests/fuzz: a reader that takes little-endian fields off
 * the front of the fuzzer's input (past its end every field reads as zero), and a driver that
 * turns the input into what a vCPU's exits would do to a device: register accesses on buses,
 * writes into guest RAM, and target-specific actions in between.
 * Each target is one thread (libFuzzer's); whatever an input changes is reset before the next.
 */
#ifndef VMM_TESTS_FUZZ_FUZZ_H
#define VMM_TESTS_FUZZ_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "vmm/bus.h"
#include "vmm/event_loop.h"
#include "vmm/memory.h"

/* The libFuzzer entry points each target defines (the Initialize one is optional). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	const uint8_t *p;
	size_t n; /* bytes left */
};

static inline struct fz fz_make(const uint8_t *data, size_t size)
{
	return (struct fz){data, size};
}

static inline bool fz_empty(const struct fz *f)
{
	return f->n == 0;
}

uint8_t fz_u8(struct fz *f);
uint16_t fz_u16(struct fz *f);
uint32_t fz_u32(struct fz *f);
uint64_t fz_u64(struct fz *f);
/* Copies up to @max bytes into @dst; returns how many (fewer at the input's end). */
size_t fz_bytes(struct fz *f, void *dst, size_t max);
/* Takes the rest of the input: sets *@len and returns a pointer to it. */
const uint8_t *fz_rest(struct fz *f, size_t *len);

/* A window of a bus the driver reaches: accesses go to base + (offset % span). */
struct fz_window {
	const struct bus *bus;
	uint64_t base, span;
	unsigned max_size; /* 4 for port I/O, 8 for MMIO */
};

/*
 * What fz_run_bus drives. Each operation starts with a byte @op:
 *  op >> 6 = 0 or 1: an access: write when bit 5 is set, 1 << (op & 3) bytes (capped at the
 *            window's max_size), window (op >> 2 & 7) % nr_win; then le32 offset, and for a
 *            write le64 value (its low bytes are written);
 *  op >> 6 = 2: a write into guest RAM (when @mem is set): le32 address (modulo @mem_span),
 *            one byte of length, then that many bytes;
 *  op >> 6 = 3: the target's @hook, which reads its own arguments from the input.
 * At most FZ_MAX_OPS operations are run per input.
 */
struct fz_bus {
	const struct fz_window *win;
	unsigned nr_win;
	const struct guest_memory *mem;
	uint64_t mem_span;
	void (*hook)(void *opaque, struct fz *f);
	void *opaque;
};

#define FZ_OP_READ  0x00
#define FZ_OP_WRITE 0x20
#define FZ_OP_RAM   0x80
#define FZ_OP_HOOK  0xc0
#define FZ_MAX_OPS  4096

void fz_run_bus(const struct fz_bus *b, struct fz *f);

/* Set-up that must work (@ret 0): otherwise prints @what and aborts. */
void fz_must(int ret, const char *what);

/*
 * Sizes guest RAM once per process: one region of @size bytes at @gpa (and, when @gap_size is
 * not 0, a second one of @size bytes @gap_size past its end). Aborts when it cannot.
 */
void fz_memory_init(struct guest_memory *mem, uint64_t gpa, uint64_t size, uint64_t gap_size);

/* A virtio target's one-time set-up: errors only in the log, @size bytes of RAM at 0, a loop. */
void fz_virtio_setup(struct guest_memory *mem, uint64_t size, struct event_loop *loop);

/*
 * What a driver does, under @dev's lock: reset, negotiate @features, place queue q's ring (q
 * below @nr, size @qsize[q]) at @ring_base + q * @ring_stride (descriptor table, avail ring
 * after it, used ring after that 4-aligned), mark it ready, and DRIVER_OK, which the device may
 * refuse (a finding only if it crashes).
 */
void fz_virtio_driver_up(struct virtio_dev *dev, uint64_t features, const uint16_t *qsize,
                         unsigned nr, uint64_t ring_base, uint64_t ring_stride);

/*
 * The event loop's turn for a transport's doorbell: serves the queues whose doorbells reached
 * the bus, as the loop's thread would.
 */
void fz_serve_doorbell(struct virtio_doorbell *db);
/* Zeroes every region (between inputs). */
void fz_memory_clear(const struct guest_memory *mem);

#endif
