/*
 * A minimal i8042 keyboard controller: enough for Linux to probe it quickly (self-test,
 * command byte, interface tests answered; no keyboard or mouse attached) and to reset the
 * machine with the 0xFE pulse command. Ports 0x60 (data) and 0x64 (command/status).
 */
#ifndef VMM_DEVICES_I8042_H
#define VMM_DEVICES_I8042_H

#include <pthread.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/snapshot.h"

struct i8042 {
	pthread_mutex_t lock;
	void (*reset)(void *opaque); /* the guest asked for a machine reset */
	void *opaque;
	uint8_t command_byte;
	uint8_t pending_cmd; /* command awaiting a data byte on port 0x60, or 0 */
	uint8_t out[4];      /* output buffer queue */
	unsigned out_count;
	uint8_t output_port; /* bit 0: reset line (0 resets), bit 1: A20 gate */
	uint8_t last_out;    /* what port 0x60 reads when the queue is empty */
};

void i8042_init(struct i8042 *kbc, void (*reset)(void *opaque), void *opaque);
void i8042_destroy(struct i8042 *kbc);
/* Registers @kbc as snapshot part "KBC ". */
int i8042_snapshot_add(struct i8042 *kbc, struct snapshot_parts *parts) MUST_CHECK;

/* Register at port 0x60 with length 1 and at port 0x64 with length 1, opaque = struct i8042. */
extern const struct bus_ops i8042_data_ops;
extern const struct bus_ops i8042_cmd_ops;

#endif
