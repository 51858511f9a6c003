/* vmm: parse the command line, build the VM, run it, map the outcome to an exit status. */
#include <stdio.h>

#include "vmm/config.h"
#include "vmm/log.h"
#include "vmm/run_initramfs.h"
#include "vmm/sandbox.h"
#include "vmm/vm.h"

int main(int argc, char *argv[])
{
	struct vm_config config;
	struct vm *vm;
	char err[256];
	int status;

	switch (config_parse(argc, argv, &config, err, sizeof(err))) {
	case CONFIG_HELP:
		config_usage(stdout);
		return 0;
	case CONFIG_VERSION:
		printf("vmm %s\n", VMM_VERSION);
		return 0;
	case CONFIG_ERROR:
		fprintf(stderr, "vmm: %s\n", err);
		return EXIT_USAGE_ERROR;
	case CONFIG_OK:
		break;
	}
	log_set_level(config.log_level);
	if (config.save_initramfs)
		return run_save_initramfs(&config, config.save_initramfs) ? EXIT_RUN_CANNOT : 0;
	/* With --run, a test that cannot even start is one git bisect run should skip. */
	if (vm_create(&config, &vm))
		return config.run_cmd ? EXIT_RUN_CANNOT : EXIT_VMM_ERROR;
	/* Set-up is done (devices, TAPs, KVM, virtiofsd): no capability is needed past here. */
	if (sandbox_enter(config.seccomp, err, sizeof(err))) {
		fprintf(stderr, "vmm: %s\n", err);
		vm_destroy(vm);
		return config.run_cmd ? EXIT_RUN_CANNOT : EXIT_VMM_ERROR;
	}
	status = vm_run(vm);
	vm_destroy(vm);
	return status;
}
