/*
 * The test-run init's state and the steps that mount the guest's file systems (mounts.c),
 * shared with init.c, which runs the steps in order as the guest's pid 1. One process, one
 * thread: struct init lives on main()'s stack and every step gets it.
 */
#ifndef VMM_GUEST_FIRMWARE_INIT_INIT_H
#define VMM_GUEST_FIRMWARE_INIT_INIT_H

#include <stddef.h>

#include "guest-firmware/init/config.h"

#define INIT_WAIT_MS 10000 /* how long devices (virtio-fs tags, console ports) may take */

enum init_io { INIT_STDIN, INIT_STDOUT, INIT_STDERR, INIT_NR_IO };

struct init {
	int status_fd;         /* the vmm.status port: -1 until open, then open for the run */
	int io_fd[INIT_NR_IO]; /* the vmm.stdin/stdout/stderr ports, -1 until open */
	const char *modules[INIT_MAX_MODULES];
	unsigned nr_modules;
	struct init_mount mounts[INIT_MAX_MOUNTS]; /* [0] is the root */
	unsigned nr_mounts;
	char *cwd, *cmd;  /* NUL-terminated file contents */
	const char *term; /* /vmm/term's, or INIT_DEFAULT_TERM */
	int exit_status;  /* the command's, once it ended */
	char err[512];    /* the message of the step that failed */
};

/* Formats the failure message into @in->err; returns @ret (a -errno). */
int init_errf(struct init *in, int ret, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like init_errf() for a failed system call: appends ": strerror(errno)"; returns -errno. */
int init_syserr(struct init *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Milliseconds on the monotonic clock, and a sleep that tolerates signals. */
long long init_now_ms(void);
void init_sleep_ms(unsigned ms);

/*
 * The mount steps, in the order init.c runs them. Each returns 0 or -errno with @in->err set.
 *   mnt_early:       proc, sysfs and devtmpfs in the initramfs; makes /newroot, /lower, /rw.
 *   mnt_root:        the root share (read-only virtio-fs) on /lower, waiting for the device,
 *                    under an overlay on /newroot whose upper layer is on the /rw tmpfs.
 *   mnt_writable:    tmpfs on /newroot/tmp and /run; a tmpfs over an unreadable /root, /home.
 *   mnt_kernel_fs:   moves /proc, /sys, /dev under /newroot; devpts, /dev/shm, /dev/fd links.
 *   mnt_switch_root: makes /newroot the root (MS_MOVE onto /, chroot).
 *   mnt_shares:      the other shares, at their directories in the new root (made if missing).
 */
int mnt_early(struct init *in);
int mnt_root(struct init *in);
int mnt_writable(struct init *in);
int mnt_kernel_fs(struct init *in);
int mnt_switch_root(struct init *in);
int mnt_shares(struct init *in);

/*
 * With INIT_READY_FILE (vmm --save-ready): says "waiting" on the status port, reads the run's
 * files from it once vmm restored the snapshot taken there, writes them to /vmm/ and rescans
 * PCI for the virtio-fs devices added since (ready.c). Without it, nothing. 0 or -errno.
 */
int ready_wait(struct init *in);

#endif
