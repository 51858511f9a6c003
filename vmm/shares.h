/*
 * Host directories shared with the guest over virtio-fs: one virtiofsd per share, started by vmm
 * on a socket in a private directory only vmm can reach, connected before the guest runs, and
 * stopped when vmm stops. With --run, the host's / is the first share (tag CONFIG_ROOT_TAG,
 * read-only). A read-only share is enforced below the daemon: it runs in a mount namespace
 * where the directory is mounted read-only (Debian 12's virtiofsd has no read-only option).
 *
 * Threads: the set-up thread starts the daemons; their exit watches run on the event loop; stop
 * runs on the main thread after the event loop ended.
 */
#ifndef VMM_VMM_SHARES_H
#define VMM_VMM_SHARES_H

#include <limits.h>
#include <stdbool.h>

#include "vmm/child.h"
#include "vmm/config.h"
#include "vmm/event_loop.h"

#define SHARES_MAX (CONFIG_MAX_SHARES + 1) /* the --share ones and --run's root */

struct share {
	char host[PATH_MAX];  /* absolute, resolved */
	char guest[PATH_MAX]; /* where --run mounts it */
	char tag[CONFIG_TAG_MAX + 1];
	bool read_only;
	struct child daemon;
	int sock; /* connected to the daemon until a device takes it; -1 after */
};

struct shares {
	struct share items[SHARES_MAX];
	unsigned nr;
	char sock_dir[64]; /* "" when not made */
	void (*on_exit)(void *opaque, struct share *share);
	void *opaque;
};

/*
 * Resolves the shares @cfg asks for (the root first with --run): host paths, guest paths and
 * tags, checked; starts nothing. Returns 0 or -errno with one line in @err.
 */
int shares_resolve(struct shares *s, const struct vm_config *cfg, char *err,
                   size_t errlen) MUST_CHECK;

/*
 * Resolves the shares (shares_resolve) and starts a virtiofsd for each. Returns 0 or -errno with
 * one line in @err (a missing directory or daemon, a daemon that failed to start, with its own last
 * words). @s is then ready for shares_stop in every case.
 */
int shares_start(struct shares *s, const struct vm_config *cfg, char *err,
                 size_t errlen) MUST_CHECK;

/* Watches every daemon: @on_exit(opaque, share) runs on the loop's thread if one ends. */
int shares_watch(struct shares *s, struct event_loop *loop,
                 void (*on_exit)(void *opaque, struct share *share), void *opaque) MUST_CHECK;

/* Stops every daemon and removes the socket directory. Safe on a zeroed struct. */
void shares_stop(struct shares *s, struct event_loop *loop);

/* The virtiofsd vmm would run for @cfg: --virtiofsd, else PATH, /usr/libexec, /usr/lib/qemu. */
int shares_find_daemon(const struct vm_config *cfg, char *path, size_t len);

#endif
