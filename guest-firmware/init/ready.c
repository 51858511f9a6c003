/*
 * The --save-ready wait: in the initramfs of vmm --save-ready (INIT_READY_FILE present) the run's
 * files are not there yet. The init says "waiting" on the status port, where vmm takes the
 * snapshot; a `vmm --restore DIR --run CMD` then sends the run's files on the same port
 * (config.h: init_parse_records), which the init writes to /vmm/ for read_run_config, and has
 * the kernel rescan PCI for the virtio-fs devices vmm added after the restore (or, on
 * virtio-mmio, bind the windows vmm kept for them). Runs in pid 1 only, single-threaded.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest-firmware/init/init.h"

#define PCI_RESCAN       "/sys/bus/pci/rescan"
#define PLATFORM_DEVICES "/sys/bus/platform/devices"
#define VIRTIO_MMIO_BIND "/sys/bus/platform/drivers/virtio-mmio/bind"
#define WINDOW_NAME_MAX  64
/* vmm reserves one window per share it may add (its SHARES_MAX); more still work, by a scan. */
#define MAX_SPARE_WINDOWS 64

struct spare_windows {
	char name[MAX_SPARE_WINDOWS][WINDOW_NAME_MAX + 1];
	unsigned nr;
	bool overflow; /* there were more: bind_spare_windows binds every unbound one */
};

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads the status port until the records are whole; they stay in *@buf (heap, kept). */
static int read_records(struct init *in, char **buf, struct init_record *rec, unsigned *count)
{
	size_t len = 0;
	int ret = -EAGAIN;

	*buf = malloc(INIT_RECORDS_MAX);
	if (!*buf)
		return init_errf(in, -ENOMEM, "records: out of memory");
	while (ret == -EAGAIN) {
		ssize_t n;

		if (len == INIT_RECORDS_MAX)
			return init_errf(in, -EINVAL, "records: more than %d bytes",
			                 INIT_RECORDS_MAX);
		n = read(in->status_fd, *buf + len, INIT_RECORDS_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return init_syserr(in, "read the run's files from the status port");
		if (n == 0)
			return init_errf(in, -EIO, "the status port closed before the run's files");
		len += (size_t)n;
		ret = init_parse_records(*buf, len, rec, count, in->err, sizeof(in->err));
	}
	return ret;
}

static int write_file(struct init *in, const struct init_record *r)
{
	char path[32];
	int fd, ret;

	snprintf(path, sizeof(path), "/vmm/%s", r->name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return init_syserr(in, "create %s", path);
	ret = write_all(fd, r->data, r->len);
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (ret) {
		errno = -ret;
		return init_syserr(in, "write %s", path);
	}
	return 0;
}

/* The virtio-fs devices vmm plugged in after the restore: found now, bound synchronously. */
static int rescan_pci(struct init *in)
{
	int fd = open(PCI_RESCAN, O_WRONLY | O_CLOEXEC);
	int ret;

	if (fd < 0 && errno == ENOENT)
		return 0; /* no PCI: the mounts will say the tags are missing */
	if (fd < 0)
		return init_syserr(in, "open " PCI_RESCAN);
	ret = write_all(fd, "1\n", 2);
	close(fd);
	if (ret) {
		errno = -ret;
		return init_syserr(in, "write " PCI_RESCAN);
	}
	return 0;
}

/* True when the platform device @name is a virtio-mmio window (device tree or ACPI). */
static bool is_virtio_mmio(const char *name)
{
	char path[PATH_MAX], alias[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), PLATFORM_DEVICES "/%s/modalias", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, alias, sizeof(alias) - 1);
	close(fd);
	if (n <= 0)
		return false;
	alias[n] = '\0';
	return strstr(alias, "virtio,mmio") || strstr(alias, "LNRO0005");
}

/* True when the platform device @name is a virtio-mmio window no driver took. */
static bool unbound_virtio_mmio(const char *name)
{
	char path[PATH_MAX];

	if (name[0] == '.' || strlen(name) > WINDOW_NAME_MAX)
		return false;
	snprintf(path, sizeof(path), PLATFORM_DEVICES "/%s/driver", name);
	return access(path, F_OK) < 0 && is_virtio_mmio(name);
}

/* A window still without a device refuses (ENODEV), which is fine. */
static void bind_window(const char *name)
{
	int fd = open(VIRTIO_MMIO_BIND, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	/* A failure shows later, as a tag the mount does not find. */
	(void)write_all(fd, name, strlen(name));
	close(fd);
}

/*
 * Before the snapshot: the virtio-mmio windows the driver left unbound at boot, when they read
 * as placeholders (vmm's spare windows for the shares, which cannot be hot-plugged). Platform
 * devices come from the firmware tables at boot only, so the restored guest has the same ones;
 * finding them here spares each restore the walk over sysfs (tens of ms nested), none on PCI.
 */
static void find_spare_windows(struct spare_windows *sw)
{
	DIR *dir = opendir(PLATFORM_DEVICES);
	struct dirent *e;

	sw->nr = 0;
	sw->overflow = false;
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		if (!unbound_virtio_mmio(e->d_name))
			continue;
		if (sw->nr == MAX_SPARE_WINDOWS) {
			sw->overflow = true;
			break;
		}
		snprintf(sw->name[sw->nr++], sizeof(sw->name[0]), "%s", e->d_name);
	}
	closedir(dir);
}

/*
 * After the restore: binds the spare windows, in which vmm has put the run's virtio-fs devices
 * by now; when there were more than fit in @sw, every window still unbound.
 */
static void bind_spare_windows(const struct spare_windows *sw)
{
	DIR *dir;
	struct dirent *e;

	for (unsigned i = 0; i < sw->nr; i++)
		bind_window(sw->name[i]);
	if (!sw->overflow || !(dir = opendir(PLATFORM_DEVICES)))
		return;
	while ((e = readdir(dir)))
		if (unbound_virtio_mmio(e->d_name))
			bind_window(e->d_name);
	closedir(dir);
}

int ready_wait(struct init *in)
{
	struct init_record rec[INIT_MAX_RECORDS];
	struct spare_windows spares; /* found before the snapshot, used after the restore */
	unsigned count = 0;
	char *buf = NULL;
	int ret;

	if (access(INIT_READY_FILE, F_OK) < 0)
		return 0;
	find_spare_windows(&spares);
	ret = write_all(in->status_fd, "waiting\n", 8);
	if (ret)
		return init_errf(in, ret, "write to the status port: %s", strerror(-ret));
	ret = read_records(in, &buf, rec, &count);
	for (unsigned i = 0; !ret && i < count; i++)
		ret = write_file(in, &rec[i]);
	free(buf);
	if (ret)
		return ret;
	bind_spare_windows(&spares);
	return rescan_pci(in);
}
