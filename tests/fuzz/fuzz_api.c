/*
 * libFuzzer target: vmm/api.c's request handling (api_handle), the text a --api-socket client
 * sends, one line per input, over operations that only count. Checks that every reply is one
 * JSON object with "ok", and that an error reply came with no operation done.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/api.h"
#include "vmm/log.h"

static unsigned done;

static int count(void *opaque, char *err, size_t errlen)
{
	(void)opaque;
	(void)err;
	(void)errlen;
	done++;
	return 0;
}

static int stats(void *opaque, json_t *reply, char *err, size_t errlen)
{
	json_object_set_new(reply, "vcpus", json_integer(1));
	return count(opaque, err, errlen);
}

static int snapshot(void *opaque, const char *dir, char *err, size_t errlen)
{
	if (!dir || !*dir)
		__builtin_trap(); /* the protocol promised a non-empty string */
	return count(opaque, err, errlen);
}

static const struct api_ops ops = {
        .pause = count, .resume = count, .stop = count, .stats = stats, .snapshot = snapshot};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *reply;
	json_t *parsed, *ok;

	if (size > API_LINE_MAX || memchr(data, '\n', size))
		return -1; /* the socket hands api_handle single lines of at most API_LINE_MAX */
	done = 0;
	reply = api_handle(&ops, NULL, (const char *)data, size);
	if (!reply)
		abort();
	parsed = json_loads(reply, 0, NULL);
	ok = json_object_get(parsed, "ok");
	if (!json_is_boolean(ok) || strchr(reply, '\n') || (json_is_false(ok) && done) ||
	    (json_is_true(ok) && done != 1))
		abort();
	json_decref(parsed);
	free(reply);
	return 0;
}
