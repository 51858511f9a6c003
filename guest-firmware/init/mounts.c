/*
 * The test-run init's mounts: the host's / (virtio-fs tag INIT_ROOT_TAG, mounted read-only)
 * becomes the lower layer of the guest's root, an overlay whose upper layer is on one tmpfs at
 * /rw in the initramfs: the guest can write anywhere (in RAM, gone at power-off, never reaching
 * the host) and make the mount point of any share. /tmp and /run get fresh tmpfs; a host
 * directory the daemon cannot read (/root when it runs unprivileged) is hidden by a tmpfs. The
 * kernel's file systems are moved in, the extra shares go on top. Runs in pid 1 only,
 * single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest-firmware/init/init.h"

#define NEWROOT "/newroot"
#define LOWER   "/lower" /* the host's /, read-only */
#define RW      "/rw"    /* the tmpfs holding the root overlay's upper and work directories */

/* mkdir() that accepts an existing entry (a mount on a non-directory fails later anyway). */
static int make_dir(struct init *in, const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	return init_syserr(in, "mkdir %s", path);
}

static int do_mount(struct init *in, const char *src, const char *target, const char *type,
                    unsigned long flags, const char *data)
{
	if (mount(src, target, type, flags, data) == 0)
		return 0;
	if (flags & MS_MOVE)
		return init_syserr(in, "move mount %s to %s", src, target);
	return init_syserr(in, "mount %s on %s", type, target);
}

int mnt_early(struct init *in)
{
	static const struct {
		const char *dir, *type;
		unsigned long flags;
		const char *data;
	} fs[] = {
	        {"/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
	        {"/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL},
	        {"/dev", "devtmpfs", MS_NOSUID, "mode=0755"},
	};
	int ret;

	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
		ret = make_dir(in, fs[i].dir, 0755);
		if (!ret)
			ret = do_mount(in, fs[i].type, fs[i].dir, fs[i].type, fs[i].flags,
			               fs[i].data);
		if (ret)
			return ret;
	}
	ret = make_dir(in, NEWROOT, 0755);
	if (!ret)
		ret = make_dir(in, LOWER, 0755);
	return ret ? ret : make_dir(in, RW, 0700);
}

/* Errors that mean "the device or its driver is not there yet". Tag not found is EINVAL. */
static bool virtiofs_not_ready(int err)
{
	return err == ENODEV || err == ENOENT || err == ENXIO || err == EINVAL;
}

/* Mounts virtio-fs @tag on @dir, retrying for INIT_WAIT_MS while the device may be probing. */
static int mount_virtiofs(struct init *in, const char *tag, const char *dir, bool read_only)
{
	long long deadline = init_now_ms() + INIT_WAIT_MS;
	unsigned long flags = read_only ? MS_RDONLY : 0;

	while (mount(tag, dir, "virtiofs", flags, NULL) < 0) {
		int err = errno;

		if (!virtiofs_not_ready(err) || init_now_ms() >= deadline)
			return init_errf(in, -err, "mount virtio-fs tag '%s' on %s: %s%s", tag, dir,
			                 strerror(err),
			                 err == EINVAL ? " (no virtio-fs device with that tag?)"
			                               : "");
		init_sleep_ms(20);
	}
	return 0;
}

int mnt_root(struct init *in)
{
	int ret = do_mount(in, "tmpfs", RW, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700");

	if (!ret)
		ret = make_dir(in, RW "/upper", 0755);
	if (!ret)
		ret = make_dir(in, RW "/work", 0700);
	if (!ret)
		ret = mount_virtiofs(in, in->mounts[0].tag, LOWER, true);
	if (!ret)
		ret = do_mount(in, "overlay", NEWROOT, "overlay", 0,
		               "lowerdir=" LOWER ",upperdir=" RW "/upper,workdir=" RW "/work");
	return ret;
}

enum place {
	PLACE_NONE,     /* missing, a symlink or not a directory: nothing to mount on */
	PLACE_READABLE, /* a directory the guest can list: overlay it */
	PLACE_LOCKED,   /* a directory the host user cannot read (/root): hide it with a tmpfs */
};

/*
 * What the host's directory @path is. FUSE's access() may not ask the server, so opening the
 * directory is the test.
 */
static enum place host_place(const char *path, struct stat *st)
{
	int fd;

	if (lstat(path, st) < 0 || !S_ISDIR(st->st_mode))
		return PLACE_NONE;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return PLACE_LOCKED;
	close(fd);
	return PLACE_READABLE;
}

/* A tmpfs on @path with the owner and mode of @st. */
static int tmpfs_like(struct init *in, const char *path, const struct stat *st)
{
	char opts[96];

	snprintf(opts, sizeof(opts), "mode=%04o,uid=%u,gid=%u", (unsigned)(st->st_mode & 07777),
	         (unsigned)st->st_uid, (unsigned)st->st_gid);
	return do_mount(in, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

/* A host directory the daemon cannot read (see host_place) is hidden by a tmpfs like it. */
static int hide_locked(struct init *in, const char *name)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), NEWROOT "/%s", name);
	return host_place(path, &st) == PLACE_LOCKED ? tmpfs_like(in, path, &st) : 0;
}

/* A fresh tmpfs with @opts on /newroot/@name, if the host has that directory. */
static int tmpfs_place(struct init *in, const char *name, const char *opts)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), NEWROOT "/%s", name);
	if (host_place(path, &st) == PLACE_NONE)
		return 0;
	return do_mount(in, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts);
}

int mnt_writable(struct init *in)
{
	static const char *const homes[] = {"root", "home"};
	int ret = tmpfs_place(in, "tmp", "mode=1777");

	if (!ret)
		ret = tmpfs_place(in, "run", "mode=0755");
	for (size_t i = 0; !ret && i < sizeof(homes) / sizeof(homes[0]); i++)
		ret = hide_locked(in, homes[i]);
	return ret;
}

/* /dev entries udev would make: the /proc/self/fd links (bash's <(...) needs /dev/fd). */
static int dev_links(struct init *in)
{
	static const char *const links[][2] = {
	        {"/proc/self/fd", NEWROOT "/dev/fd"},
	        {"/proc/self/fd/0", NEWROOT "/dev/stdin"},
	        {"/proc/self/fd/1", NEWROOT "/dev/stdout"},
	        {"/proc/self/fd/2", NEWROOT "/dev/stderr"},
	};

	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			return init_syserr(in, "symlink %s", links[i][1]);
	}
	return 0;
}

int mnt_kernel_fs(struct init *in)
{
	static const char *const moves[][2] = {
	        {"/proc", NEWROOT "/proc"},
	        {"/sys", NEWROOT "/sys"},
	        {"/dev", NEWROOT "/dev"},
	};
	int ret = 0;

	for (size_t i = 0; !ret && i < sizeof(moves) / sizeof(moves[0]); i++)
		ret = do_mount(in, moves[i][0], moves[i][1], NULL, MS_MOVE, NULL);
	if (!ret)
		ret = make_dir(in, NEWROOT "/dev/pts", 0755);
	if (!ret)
		ret = do_mount(in, "devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		               "gid=5,mode=0620,ptmxmode=0666");
	if (!ret)
		ret = make_dir(in, NEWROOT "/dev/shm", 01777);
	if (!ret)
		ret = do_mount(in, "tmpfs", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
		               "mode=1777");
	return ret ? ret : dev_links(in);
}

int mnt_switch_root(struct init *in)
{
	/* The initramfs cannot be pivot_root()ed: move the new root over it and chroot. */
	if (chdir(NEWROOT) < 0)
		return init_syserr(in, "chdir " NEWROOT);
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		return init_syserr(in, "move mount " NEWROOT " to /");
	if (chroot(".") < 0)
		return init_syserr(in, "chroot " NEWROOT);
	if (chdir("/") < 0)
		return init_syserr(in, "chdir / in the new root");
	return 0;
}

/* mkdir -p @dir (absolute and canonical, see config.h), in the root overlay. */
static int make_path(struct init *in, const char *tag, const char *dir)
{
	char path[INIT_PATH_MAX];
	size_t len = strlen(dir);

	if (len >= sizeof(path))
		return init_errf(in, -ENAMETOOLONG, "share '%s': directory too long", tag);
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			int err = errno;

			return init_errf(in, -err, "share '%s': cannot make %s: %s", tag, path,
			                 strerror(err));
		}
		path[i] = dir[i];
	}
	return 0;
}

int mnt_shares(struct init *in)
{
	for (unsigned i = 1; i < in->nr_mounts; i++) {
		const struct init_mount *m = &in->mounts[i];
		int ret = make_path(in, m->tag, m->dir);

		if (!ret)
			ret = mount_virtiofs(in, m->tag, m->dir, m->read_only);
		if (ret)
			return ret;
	}
	return 0;
}
