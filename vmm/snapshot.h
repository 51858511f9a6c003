/*
 * Snapshots: one mechanism for every part of the VM. Whatever has state (a vCPU, the
 * in-kernel irqchip, a device) registers a part at creation: a 4-character tag, an instance
 * number, and a save and a load function that write and read one section of the state file
 * (vmm/snapshot_file.h). A snapshot is a directory:
 *
 *   state   the state file: the command line that built the machine ("CONF"), then every part
 *   ram     guest RAM, each region at its offset in order; pages of zeros are holes
 *
 * snapshot_save quiesces the parts that have work in flight, then saves every part in
 * registration order, while the vCPUs are parked; a restore
 * builds the machine from the saved command line, maps `ram` MAP_PRIVATE (untouched pages are
 * never copied) and loads every part in the same order. A part that cannot be saved yet is
 * registered as unsupported, and a snapshot of a VM with one is refused, naming it.
 *
 * Threads: the parts are registered while the VM is built (main thread), saved by the thread
 * that takes the snapshot (the event loop, with every vCPU parked) and loaded before any vCPU
 * thread starts.
 */
#ifndef VMM_VMM_SNAPSHOT_H
#define VMM_VMM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/memory.h"
#include "vmm/snapshot_file.h"
#include "vmm/util.h"

struct vm_config;

typedef int (*snapshot_save_fn)(void *opaque, struct snap_writer *w, char *err, size_t errlen);
/* Reads the part's section through @c, checks it (snap_cursor_finish) and applies it. */
typedef int (*snapshot_load_fn)(void *opaque, struct snap_cursor *c, char *err, size_t errlen);

struct snapshot_part {
	char tag[5];
	uint32_t instance;
	/* Optional: finishes work in flight; every part's runs before any part is saved. */
	void (*quiesce)(void *opaque);
	snapshot_save_fn save;
	snapshot_load_fn load;
	void *opaque;
};

struct snapshot_parts {
	struct snapshot_part *parts;
	unsigned count, capacity;
	const char *unsupported; /* the first part that cannot be saved, or NULL */
};

/* Registers a part (@tag: 4 characters). Returns 0 or -ENOMEM. */
int snapshot_add(struct snapshot_parts *p, const char *tag, uint32_t instance,
                 snapshot_save_fn save, snapshot_load_fn load, void *opaque) MUST_CHECK;
/*
 * The same for a part with work in flight (a device's requests at a back-end): @quiesce
 * finishes it, completing it as usual, before anything is saved, so that what its completion
 * changes (the used ring, an interrupt in a local APIC) is in the snapshot.
 */
int snapshot_add_quiescing(struct snapshot_parts *p, const char *tag, uint32_t instance,
                           void (*quiesce)(void *opaque), snapshot_save_fn save,
                           snapshot_load_fn load, void *opaque) MUST_CHECK;
/* Notes a part with state that is not saved yet (@what names it in the refusal). */
void snapshot_unsupported(struct snapshot_parts *p, const char *what);
void snapshot_parts_free(struct snapshot_parts *p);

/*
 * Writes a snapshot of the VM built from @config, with @parts and guest memory @mem, whose
 * vCPUs are parked (vm_pause), into directory @dir (created 0700 if missing; an existing
 * snapshot there is replaced). Returns 0, or -errno with one line in @err.
 */
int snapshot_save(const struct snapshot_parts *parts, const struct guest_memory *mem,
                  const struct vm_config *config, const char *dir, char *err,
                  size_t errlen) MUST_CHECK;

/* The saved command line of the snapshot in @dir, for config_parse: argv[0] is "vmm". */
struct snapshot_config {
	struct snap_reader reader;
	char **argv;
	int argc;
};
int snapshot_config_load(const char *dir, struct snapshot_config *out, char *err,
                         size_t errlen) MUST_CHECK;
void snapshot_config_free(struct snapshot_config *sc);
/*
 * The part of snapshot_config_load after the file is read: @sc->reader's CONF section into
 * argv ("vmm --name [value]..."). Returns 0, or -errno with one line in @err.
 */
int snapshot_config_parse(struct snapshot_config *sc, char *err, size_t errlen) MUST_CHECK;

/*
 * For a VM built from the snapshot's command line: maps its `ram` over guest memory @mem
 * (before the memory slots exist), or copies it in when @mem is shared (memfd-backed, for
 * virtio-fs: a private mapping of the file could not be shared with the daemon) ...
 */
int snapshot_map_ram(struct guest_memory *mem, const char *dir, char *err,
                     size_t errlen) MUST_CHECK;
/* ... and, once every part is registered, loads all of @parts from @sc. */
int snapshot_load_parts(const struct snapshot_parts *parts, const struct snapshot_config *sc,
                        char *err, size_t errlen) MUST_CHECK;

#endif
