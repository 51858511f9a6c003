/*
 * Whole-file reads of host files the user names (see boot_image.h). The file is checked by
 * fstat() on the descriptor that is read, so what was checked is what is read; a size that
 * changes after the check is caught as a short read.
 */
#include "vmm/boot_image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/log.h"

/* What a non-regular file is, for the error line. */
static const char *file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a file";
}

/* Reads @size bytes of @fd from offset 0. Sets *@shrank (and fails) when the file ends sooner. */
static int read_all(int fd, uint8_t *buf, size_t size, bool *shrank)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n = pread(fd, buf + got, size - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			*shrank = true;
			return -EIO;
		}
		got += (size_t)n;
	}
	return 0;
}

/*
 * boot_image_read_file, also telling the caller, for its message, the file's type (0 when
 * fstat did not run) and whether it shrank while being read.
 */
static int read_file(const char *path, uint64_t max, uint8_t **out, size_t *len, mode_t *mode,
                     bool *shrank)
{
	/* O_NONBLOCK: opening a FIFO without a writer must not wait for one. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), ret = 0;
	struct stat st = {0};
	uint8_t *buf = NULL;

	*shrank = false;
	if (fd < 0) {
		*mode = 0;
		return -errno;
	}
	if (fstat(fd, &st) < 0)
		ret = -errno;
	else if (!S_ISREG(st.st_mode))
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	else if (st.st_size < 0 || (uint64_t)st.st_size > max)
		ret = -EFBIG;
	else if (fcntl(fd, F_SETFL, 0) < 0) /* a regular file: plain blocking reads */
		ret = -errno;
	else if (!(buf = malloc((size_t)st.st_size + 1)))
		ret = -ENOMEM;
	else
		ret = read_all(fd, buf, (size_t)st.st_size, shrank);
	close(fd);
	*mode = st.st_mode;
	if (ret) {
		free(buf);
		return ret;
	}
	buf[st.st_size] = '\0';
	*out = buf;
	*len = (size_t)st.st_size;
	return 0;
}

int boot_image_read_file(const char *path, uint64_t max, uint8_t **out, size_t *len)
{
	mode_t mode;
	bool shrank;

	return read_file(path, max, out, len, &mode, &shrank);
}

int boot_image_map(const char *what, const char *path, struct boot_image *out)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	mode_t mode;
	bool shrank;
	int ret = read_file(path, BOOT_IMAGE_MAX, &buf, &len, &mode, &shrank);

	*out = (struct boot_image){0};
	if (!ret && len == 0) {
		free(buf);
		ret = -ENODATA;
	}
	switch (ret) {
	case 0:
		*out = (struct boot_image){buf, len};
		break;
	case -ENODATA:
		log_error("%s '%s': the file is empty", what, path);
		break;
	case -EISDIR:
	case -EINVAL:
		log_error("%s '%s': not a regular file (%s)", what, path, file_kind(mode));
		break;
	case -EFBIG:
		log_error("%s '%s': larger than %llu GiB", what, path,
		          (unsigned long long)(BOOT_IMAGE_MAX / GIB));
		break;
	default:
		if (shrank)
			log_error("%s '%s': the file shrank while it was read", what, path);
		else
			log_error("%s '%s': %s", what, path, strerror(-ret));
	}
	return ret;
}

void boot_image_unmap(struct boot_image *img)
{
	free((void *)img->data);
	*img = (struct boot_image){0};
}
