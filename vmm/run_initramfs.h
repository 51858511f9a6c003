/* The initramfs of test-run mode (--run): see run_initramfs.c. */
#ifndef VMM_VMM_RUN_INITRAMFS_H
#define VMM_VMM_RUN_INITRAMFS_H

#include "vmm/config.h"
#include "vmm/initramfs.h"
#include "vmm/shares.h"
#include "vmm/util.h"

/*
 * Builds the initramfs for @cfg (its --run command, the current directory, TERM) and @shares
 * (what the init mounts where) into @c, finished; the caller frees @c either way. One line on
 * failure; -errno.
 */
int run_build_initramfs(struct cpio *c, const struct vm_config *cfg,
                        const struct shares *shares) MUST_CHECK;

/*
 * --save-initramfs: writes the initramfs --run would boot to @path (for another VMM, or to
 * look at), without starting anything. One line on failure; -errno.
 */
int run_save_initramfs(const struct vm_config *cfg, const char *path) MUST_CHECK;

/*
 * The run's files, shared with run_send_files (--restore of a --save-ready snapshot): the
 * /vmm/mounts bytes for @shares (malloc'ed into *@text; -ENOMEM), the TERM the init gets (the
 * host's when it is a plain name, else "linux") and the current directory ("/" when unknown).
 */
int run_mounts_file(const struct shares *shares, char **text, size_t *len) MUST_CHECK;
const char *run_term(void);
void run_cwd(char *buf, size_t len);

#endif
