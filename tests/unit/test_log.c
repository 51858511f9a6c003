/*
 * The log's line formats: errors plain, other levels named, debug lines with the milliseconds
 * since vmm started (where a slow start goes), and nothing past the level set.
 */
#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/unit.h"
#include "vmm/log.h"

/* What @emit writes to stderr, as one string in @out. */
static void capture(void (*emit)(void), char *out, size_t len)
{
	FILE *f = tmpfile();
	int saved = dup(STDERR_FILENO);
	size_t n;

	ck_assert_ptr_nonnull(f);
	fflush(stderr);
	ck_assert_int_ge(dup2(fileno(f), STDERR_FILENO), 0);
	emit();
	fflush(stderr);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	rewind(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

static void emit_all(void)
{
	log_error("e %d", 1);
	log_warn("w %d", 2);
	log_debug("d %d", 3);
}

START_TEST(debug_lines_have_timestamps)
{
	char out[512];
	regex_t re;

	log_set_level(LOG_DEBUG);
	capture(emit_all, out, sizeof(out));
	ck_assert_int_eq(
	        regcomp(&re, "^vmm: e 1\nvmm: warn: w 2\nvmm: debug \\+[0-9]+\\.[0-9] ms: d 3\n$",
	                REG_EXTENDED),
	        0);
	ck_assert_msg(regexec(&re, out, 0, NULL, 0) == 0, "got: %s", out);
	regfree(&re);
}
END_TEST

START_TEST(levels_past_the_setting_are_quiet)
{
	char out[512];

	log_set_level(LOG_WARN);
	capture(emit_all, out, sizeof(out));
	ck_assert_str_eq(out, "vmm: e 1\nvmm: warn: w 2\n");
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, debug_lines_have_timestamps);
	tcase_add_test(tc, levels_past_the_setting_are_quiet);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return unit_run(log_suite());
}
