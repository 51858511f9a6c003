/*
 * cycles: counts the CPU cycles of a busy loop with perf_event_open, so a test can tell that
 * its guest has a working PMU (vmm --pmu on aarch64). Prints "T-CYCLES=N", or
 * "T-CYCLES=error MSG" and exits 1. Static, like vsockcat, for a test guest's initramfs.
 */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	struct perf_event_attr attr;
	long long count = 0;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_HARDWARE;
	attr.size = sizeof(attr);
	attr.config = PERF_COUNT_HW_CPU_CYCLES;
	attr.disabled = 1;
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
	if (fd < 0) {
		printf("T-CYCLES=error %s\n", strerror(errno));
		return 1;
	}
	ioctl(fd, PERF_EVENT_IOC_RESET, 0);
	ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
	for (volatile unsigned i = 0; i < 10000000; i++)
		;
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	if (read(fd, &count, sizeof(count)) != (ssize_t)sizeof(count)) {
		printf("T-CYCLES=error read: %s\n", strerror(errno));
		return 1;
	}
	printf("T-CYCLES=%lld\n", count);
	return 0;
}
