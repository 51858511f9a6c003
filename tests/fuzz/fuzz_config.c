/*
 * libFuzzer target: vmm's command-line parser (vmm/config.c): the input, split at NUL bytes,
 * is argv after "vmm" (at most 64 arguments). After a successful parse, the default kernel
 * arguments and the combined command line are built as main() would.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "vmm/config.h"
#include "vmm/log.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *argv[MAX_ARGS + 2];
	struct vm_config cfg;
	char err[256];
	int argc = 0;

	if (!copy)
		abort();
	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[argc++] = "vmm";
	for (char *p = copy; p <= copy + size && argc <= MAX_ARGS; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	err[0] = '\0';
	memset(&cfg, 0, sizeof(cfg));
	switch (config_parse(argc, argv, &cfg, err, sizeof(err))) {
	case CONFIG_OK: {
		const char *defaults = config_default_args(&cfg);
		char *cmdline = config_kernel_cmdline(cfg.cmdline, defaults ? defaults : "");

		free(cmdline);
		break;
	}
	case CONFIG_ERROR:
		if (!err[0])
			abort(); /* every usage error says what is wrong */
		break;
	default:
		break;
	}
	free(copy);
	return 0;
}
