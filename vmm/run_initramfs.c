/*
 * The initramfs of test-run mode, built in memory: vmm's init (guest-firmware/init/, embedded),
 * the files it reads (/vmm/cmd, cwd, term, mounts, modules) and the kernel modules it loads,
 * resolved from the kernel image's release and the module tree's modules.dep. The file formats
 * are the init's (guest-firmware/init/config.h). Main thread, before the VM runs.
 */
#include "vmm/run_initramfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-firmware/init/init_blob.h"
#include "vmm/boot_image.h"
#include "vmm/kmod.h"
#include "vmm/log.h"

static bool has_modules_dep(const char *dir)
{
	char path[PATH_MAX];

	return (size_t)snprintf(path, sizeof(path), "%s/modules.dep", dir) < sizeof(path) &&
	       access(path, R_OK) == 0;
}

/*
 * The module tree to take modules from: --modules (itself, or a modules_install output holding
 * lib/modules/RELEASE), else /lib/modules/RELEASE; "" when there is none (the kernel must then
 * have what it needs built in).
 */
static int find_module_dir(const struct vm_config *cfg, const char *release, char *dir, size_t len)
{
	dir[0] = '\0';
	if (cfg->modules_dir) {
		if (has_modules_dep(cfg->modules_dir)) {
			snprintf(dir, len, "%s", cfg->modules_dir);
			return 0;
		}
		if (release[0]) {
			snprintf(dir, len, "%s/lib/modules/%s", cfg->modules_dir, release);
			if (has_modules_dep(dir))
				return 0;
		}
		log_error("--modules %s: no modules.dep there%s%s (run depmod, or give the "
		          "kernel's module tree)",
		          cfg->modules_dir, release[0] ? " nor in lib/modules/" : "", release);
		return -ENOENT;
	}
	if (release[0]) {
		snprintf(dir, len, "/lib/modules/%s", release);
		if (has_modules_dep(dir))
			return 0;
		log_info("--run: no /lib/modules/%s: the kernel must have its virtio drivers, "
		         "virtiofs and overlay built in (or give --modules DIR)",
		         release);
	} else {
		log_info("--run: the kernel image names no release: no modules are added");
	}
	dir[0] = '\0';
	return 0;
}

/* Adds the modules the init needs, and /vmm/modules listing them in load order. */
static int add_modules(struct cpio *c, const struct vm_config *cfg, const struct boot_image *kernel)
{
	const char *names[] = {cfg->transport == TRANSPORT_PCI ? "virtio_pci" : "virtio_mmio",
	                       "virtio_console", "virtiofs", "overlay"};
	char release[256], dir[PATH_MAX], err[512], path[PATH_MAX + 64];
	struct kmod_list list = {0};
	char *listing = NULL;
	size_t listing_len = 0;
	FILE *listing_f;
	int ret;

	if (kmod_kernel_release(kernel->data, kernel->size, release, sizeof(release)))
		release[0] = '\0';
	ret = find_module_dir(cfg, release, dir, sizeof(dir));
	if (ret)
		return ret;
	if (dir[0]) {
		ret = kmod_resolve(dir, names, ARRAY_SIZE(names), &list, err, sizeof(err));
		if (ret) {
			log_error("--run: %s", err);
			return ret;
		}
	}
	listing_f = open_memstream(&listing, &listing_len);
	if (!listing_f)
		ret = -ENOMEM;
	for (unsigned i = 0; !ret && i < list.nr; i++) {
		const char *base = strrchr(list.paths[i], '/');
		uint8_t *data;
		size_t len;

		base = base ? base + 1 : list.paths[i];
		snprintf(path, sizeof(path), "%s/%s", dir, list.paths[i]);
		ret = kmod_read_file(path, &data, &len);
		if (ret) {
			log_error("--run: module %s: %s", path, strerror(-ret));
			break;
		}
		snprintf(path, sizeof(path), "vmm/ko/%s", base);
		cpio_add_file(c, path, 0644, data, len);
		fprintf(listing_f, "/%s\n", path);
		free(data);
	}
	if (listing_f && fclose(listing_f) && !ret)
		ret = -ENOMEM;
	if (!ret)
		cpio_add_file(c, "vmm/modules", 0644, listing, listing_len);
	free(listing);
	kmod_list_free(&list);
	return ret;
}

int run_mounts_file(const struct shares *shares, char **text, size_t *len)
{
	FILE *f;

	*text = NULL;
	*len = 0;
	f = open_memstream(text, len);
	if (!f)
		return -ENOMEM;
	for (unsigned i = 0; i < shares->nr; i++) {
		const struct share *sh = &shares->items[i];

		fprintf(f, "%s%c%s%c%s%c", sh->tag, 0, sh->guest, 0, sh->read_only ? "ro" : "rw",
		        0);
	}
	if (fclose(f)) {
		free(*text);
		*text = NULL;
		return -ENOMEM;
	}
	return 0;
}

const char *run_term(void)
{
	const char *term = getenv("TERM");

	if (!term || !*term || strlen(term) > 64 ||
	    strspn(term, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-") !=
	            strlen(term))
		return "linux"; /* the init takes only a plain terminal name */
	return term;
}

void run_cwd(char *buf, size_t len)
{
	if (!getcwd(buf, len))
		snprintf(buf, len, "/");
}

/* /vmm/mounts: TAG, GUESTDIR, ro|rw, NUL-terminated, for each share (the root first). */
static int add_mounts(struct cpio *c, const struct shares *shares)
{
	char *text;
	size_t len;
	int ret = run_mounts_file(shares, &text, &len);

	if (ret)
		return ret;
	cpio_add_file(c, "vmm/mounts", 0644, text, len);
	free(text);
	return 0;
}

int run_build_initramfs(struct cpio *c, const struct vm_config *cfg, const struct shares *shares)
{
	static const char *const dirs[] = {"dev", "proc", "sys", "vmm", "vmm/ko"};
	const char *term = run_term();
	struct boot_image kernel;
	char cwd[PATH_MAX];
	int ret;

	run_cwd(cwd, sizeof(cwd));
	ret = boot_image_map("kernel", cfg->kernel_path, &kernel);
	if (ret)
		return ret;
	cpio_init(c);
	for (unsigned i = 0; i < ARRAY_SIZE(dirs); i++)
		cpio_add_dir(c, dirs[i], 0755);
	cpio_add_chardev(c, "dev/console", 0600, 5, 1);
	cpio_add_file(c, "init", 0755, vmm_init_binary, vmm_init_binary_size);
	if (cfg->save_ready) {
		/* The run's files come later, on the status port (run_send_files). */
		cpio_add_file(c, "vmm/save-ready", 0644, "", 0);
		ret = 0;
	} else {
		cpio_add_file(c, "vmm/cmd", 0644, cfg->run_cmd, strlen(cfg->run_cmd));
		cpio_add_file(c, "vmm/cwd", 0644, cwd, strlen(cwd));
		cpio_add_file(c, "vmm/term", 0644, term, strlen(term));
		ret = add_mounts(c, shares);
	}
	if (!ret)
		ret = add_modules(c, cfg, &kernel);
	if (!ret)
		ret = cpio_finish(c);
	boot_image_unmap(&kernel);
	if (ret == -ENOMEM || ret == -EINVAL)
		log_error("--run: cannot build the initramfs: %s", strerror(-ret));
	else if (!ret)
		log_debug("--run: the initramfs is built");
	return ret;
}

int run_save_initramfs(const struct vm_config *cfg, const char *path)
{
	struct shares shares;
	struct cpio c;
	char err[600];
	int fd, ret = shares_resolve(&shares, cfg, err, sizeof(err));

	if (ret) {
		log_error("%s", err);
		return ret;
	}
	ret = run_build_initramfs(&c, cfg, &shares);
	if (ret) {
		cpio_free(&c);
		return ret;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, c.buf, c.len) != (ssize_t)c.len) {
		ret = -errno;
		log_error("--save-initramfs %s: %s", path, strerror(errno));
	}
	if (fd >= 0 && close(fd) && !ret) {
		ret = -errno;
		log_error("--save-initramfs %s: %s", path, strerror(errno));
	}
	cpio_free(&c);
	return ret;
}
