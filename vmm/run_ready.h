/* --save-ready and the restores of its snapshots with --run: see run_ready.c. */
#ifndef VMM_VMM_RUN_READY_H
#define VMM_VMM_RUN_READY_H

#include <stdbool.h>
#include <stddef.h>

#include "vmm/event_loop.h"
#include "vmm/util.h"

struct run;

struct run_ready {
	bool saving;            /* --save-ready: snapshot at "waiting" */
	bool waited;            /* the init said "waiting" (once) */
	bool saved;             /* the snapshot is written: status 0 */
	struct event_work save; /* the snapshot, on the loop */
	struct event_work send; /* the records to the status port, on the loop */
	char *buf;              /* restored: the records not yet taken, or NULL */
	size_t len, pos;
};

/*
 * Builds the records the init of a --save-ready snapshot reads (guest-firmware/init/config.h):
 * mounts (@mounts_len bytes), cwd, cmd and term, then the end line, into a malloc'ed *@buf.
 * Returns 0 or -ENOMEM.
 */
int run_records(const char *cmd, const char *cwd, const char *term, const char *mounts,
                size_t mounts_len, char **buf, size_t *len) MUST_CHECK;

/*
 * From run_create: for --save-ready, allows the loop's thread to write the snapshot; for a
 * restore of one, builds the records for this run (its command, shares, cwd, TERM). One line
 * on failure; -errno.
 */
int run_ready_init(struct run *run) MUST_CHECK;
/* From run_start: a restored run starts sending its records. */
void run_ready_start(struct run *run);
/*
 * The init said "waiting": true when this is --save-ready's boot (the snapshot is posted to
 * the loop), false when the line is out of place. Under the console's lock.
 */
bool run_ready_waiting(struct run *run);
/* The status port's rx_space: the records go on (posts, as rx_space must). */
void run_ready_rx_space(void *opaque);
void run_ready_destroy(struct run *run);

#endif
