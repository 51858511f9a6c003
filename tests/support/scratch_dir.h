/*
 * One scratch directory per test, for suites that put files on disk: made under /tmp, its
 * files named by scratch_path, removed with everything in it. Failures are Check assertions.
 * Threads: the test's own.
 */
#ifndef VMM_TESTS_SUPPORT_SCRATCH_DIR_H
#define VMM_TESTS_SUPPORT_SCRATCH_DIR_H

/* Makes a fresh directory /tmp/@prefix-XXXXXX; returns its path (valid until the next one). */
const char *scratch_dir_make(const char *prefix);
/* Removes the directory and everything in it. */
void scratch_dir_remove(void);
/* "DIR/@name" in the scratch directory (a static buffer: valid until the next call). */
const char *scratch_path(const char *name);

#endif
