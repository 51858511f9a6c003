#include "vmm/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* The one process-wide setting: the log level is a property of the process, not of a VM. */
static enum log_level current_level = LOG_WARN;

/* When the process started, for the debug lines' timestamps (where a slow start goes). */
static struct timespec process_start;

__attribute__((constructor)) static void note_process_start(void)
{
	clock_gettime(CLOCK_MONOTONIC, &process_start);
}

static double ms_since_start(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - process_start.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - process_start.tv_nsec) / 1e6;
}

void log_set_level(enum log_level level)
{
	current_level = level;
}

int log_parse_level(const char *name, enum log_level *out)
{
	for (unsigned i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int log_enabled(enum log_level level)
{
	return level <= current_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (level == LOG_ERROR)
		fprintf(stderr, "vmm: %s\n", line);
	else if (level == LOG_DEBUG)
		fprintf(stderr, "vmm: debug +%.1f ms: %s\n", ms_since_start(), line);
	else
		fprintf(stderr, "vmm: %s: %s\n", level_names[level], line);
}
