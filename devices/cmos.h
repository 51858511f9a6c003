/*
 * CMOS/RTC at ports 0x70-0x71: an index register and 128 bytes of NVRAM whose clock registers
 * read the host's UTC time (BCD, 24-hour, as Linux's mc146818 code expects). Linux probes it
 * at boot; answering quietly and correctly avoids timeouts and a year-2000 clock.
 */
#ifndef VMM_DEVICES_CMOS_H
#define VMM_DEVICES_CMOS_H

#include <pthread.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/snapshot.h"

struct cmos {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t nvram[128];
};

void cmos_init(struct cmos *cmos);
void cmos_destroy(struct cmos *cmos);
/* Registers @cmos as snapshot part "CMOS". */
int cmos_snapshot_add(struct cmos *cmos, struct snapshot_parts *parts) MUST_CHECK;

/* Register at port 0x70 with length 2, opaque = struct cmos. */
extern const struct bus_ops cmos_bus_ops;

#endif
