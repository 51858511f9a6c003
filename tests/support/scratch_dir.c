#include "tests/support/scratch_dir.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

static char dir[64];

const char *scratch_dir_make(const char *prefix)
{
	snprintf(dir, sizeof(dir), "/tmp/%s-XXXXXX", prefix);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	return dir;
}

void scratch_dir_remove(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

const char *scratch_path(const char *name)
{
	static char path[192];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}
