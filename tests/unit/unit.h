/* Shared main() body for the Check suites. */
#ifndef VMM_TESTS_UNIT_UNIT_H
#define VMM_TESTS_UNIT_UNIT_H

#include <check.h>
#include <stdlib.h>

/* Runs every test of @s and returns the process exit status. */
static inline int unit_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
