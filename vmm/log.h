/* Leveled, printf-checked logging to stderr. Never writes to the guest console. */
#ifndef VMM_VMM_LOG_H
#define VMM_VMM_LOG_H

#include "vmm/util.h"

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the most verbose level printed; LOG_WARN by default. */
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info" or "debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *name, enum log_level *out);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) PRINTF(2, 3);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_DEBUG))                                                        \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)

/*
 * For messages a guest can trigger: prints at most a burst of 10, then one every 1000 calls
 * of the same call site, so a hostile guest cannot flood the host's log.
 */
#define log_ratelimited(level, ...)                                                                \
	do {                                                                                       \
		static unsigned long log_rl_count_;                                                \
		unsigned long log_rl_n_ = __atomic_fetch_add(&log_rl_count_, 1, __ATOMIC_RELAXED); \
		if (log_rl_n_ < 10 || log_rl_n_ % 1000 == 0)                                       \
			log_msg(level, __VA_ARGS__);                                               \
	} while (0)

#endif
