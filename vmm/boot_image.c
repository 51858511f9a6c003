#include "vmm/boot_image.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/log.h"

int boot_image_map(const char *what, const char *path, struct boot_image *out)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int err = 0;

	*out = (struct boot_image){0};
	if (fd < 0 || fstat(fd, &st) < 0)
		err = errno;
	else if (!S_ISREG(st.st_mode))
		err = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
	else if (st.st_size > 0) {
		void *data = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (data == MAP_FAILED)
			err = errno;
		else
			*out = (struct boot_image){data, (size_t)st.st_size};
	}
	if (fd >= 0)
		close(fd);
	if (err) {
		log_error("%s '%s': %s", what, path,
		          err == EINVAL ? "not a regular file" : strerror(err));
		return -err;
	}
	return 0;
}

void boot_image_unmap(struct boot_image *img)
{
	if (img->data)
		munmap((void *)img->data, img->size);
	*img = (struct boot_image){0};
}
