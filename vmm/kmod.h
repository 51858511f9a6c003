/*
 * Which kernel modules a guest kernel needs: its release string from the kernel image, and a
 * list of module names resolved against a module tree's modules.dep and modules.builtin into
 * files in load order. Host-side files only; no state, so any thread may call these.
 */
#ifndef VMM_VMM_KMOD_H
#define VMM_VMM_KMOD_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

/*
 * Copies the kernel release of the kernel image @image[0..len) into @out: for an x86 bzImage,
 * the string the setup header's kernel_version field points at ("6.1.0-28-cloud-amd64 (...)"),
 * otherwise (an uncompressed arm64 Image, an ELF vmlinux) the word after "Linux version ". The
 * release ends at a space or NUL and is printable ASCII; every offset is checked against @len.
 * Returns 0, -ENOENT (no release found, or it runs off the end of @image) or -ERANGE (@outlen
 * too small).
 */
int kmod_kernel_release(const uint8_t *image, size_t len, char *out, size_t outlen) MUST_CHECK;

struct kmod_list {
	unsigned nr;
	char **paths; /* relative to the module dir, in load order (dependencies first) */
};

/*
 * Resolves the module names @names[0..nr_names) against @dir/modules.dep and
 * @dir/modules.builtin (a missing modules.builtin means none is built in). '-' and '_' are the
 * same in names, and a name may carry a .ko, .ko.xz, .ko.zst or .ko.gz suffix. A built-in
 * module needs no file; a loadable one adds its dependencies in the reverse of their
 * modules.dep order (as modprobe loads them), then itself, each path once over the whole list.
 * Paths in modules.dep may be relative to @dir or absolute under @dir; one with a ".."
 * component or outside @dir makes the file malformed.
 * Returns 0 with @out filled (free it with kmod_list_free()), or -errno with one line in @err:
 * -ENOENT for a name neither built in nor in modules.dep, -errno for an unreadable
 * modules.dep, -EINVAL for a malformed line (with its line number), -ENOMEM.
 */
int kmod_resolve(const char *dir, const char *const *names, unsigned nr_names,
                 struct kmod_list *out, char *err, size_t errlen) MUST_CHECK;
/*
 * Reads the regular file @path (a module, modules.dep, ...) whole into a heap buffer with a
 * NUL after its @len bytes; the caller frees it: boot_image_read_file() with a 64 MiB bound.
 * Returns 0 or -errno: -EISDIR, -EINVAL (not a regular file; a FIFO does not block), -EFBIG
 * (over 64 MiB), -EIO (it shrank while read).
 */
int kmod_read_file(const char *path, uint8_t **out, size_t *len) MUST_CHECK;

/* Frees @l's paths; safe on a zeroed or already freed list. */
void kmod_list_free(struct kmod_list *l);

#endif
