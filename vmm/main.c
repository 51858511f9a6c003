/* vmm: parse the command line, build the VM, run it, map the outcome to an exit status. */
#include <stdio.h>

#include "vmm/config.h"
#include "vmm/log.h"
#include "vmm/run_initramfs.h"
#include "vmm/sandbox.h"
#include "vmm/snapshot.h"
#include "vmm/vm.h"

/*
 * --restore DIR: @machine is the configuration the snapshot saved, with this run's own
 * options (--api-socket, --timeout, ...) from @session. Returns 0 or an exit status.
 */
static int restore_config(const struct vm_config *session, struct snapshot_config *snap,
                          struct vm_config *machine)
{
	/* With --run, a snapshot that cannot be restored is a test that cannot run. */
	int failed = session->run_cmd ? EXIT_RUN_CANNOT : EXIT_VMM_ERROR;
	char err[600];

	if (snapshot_config_load(session->restore_dir, snap, err, sizeof(err))) {
		fprintf(stderr, "vmm: %s\n", err);
		return failed;
	}
	if (config_parse(snap->argc, snap->argv, machine, err, sizeof(err)) != CONFIG_OK) {
		fprintf(stderr, "vmm: --restore %s: the saved options: %s\n", session->restore_dir,
		        err);
		snapshot_config_free(snap);
		return failed;
	}
	if (!machine->save_ready != !session->run_cmd) {
		fprintf(stderr, "vmm: --restore %s: %s\n", session->restore_dir,
		        session->run_cmd
		                ? "not a --save-ready snapshot: --run needs one"
		                : "a --save-ready snapshot: give the command with --run CMD");
		snapshot_config_free(snap);
		return session->run_cmd ? EXIT_RUN_CANNOT : EXIT_USAGE_ERROR;
	}
	config_take_session(machine, session);
	return 0;
}

int main(int argc, char *argv[])
{
	struct vm_config session, config;
	struct snapshot_config snap = {0};
	struct vm *vm;
	char err[256];
	int status;

	switch (config_parse(argc, argv, &session, err, sizeof(err))) {
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
	if (!session.restore_dir)
		config = session;
	else if ((status = restore_config(&session, &snap, &config)))
		return status;
	log_set_level(config.log_level);
	if (config.save_initramfs)
		return run_save_initramfs(&config, config.save_initramfs) ? EXIT_RUN_CANNOT : 0;
	/* With --run, a test that cannot even start is one git bisect run should skip. */
	if (vm_create(&config, session.restore_dir ? &snap : NULL, &vm)) {
		snapshot_config_free(&snap);
		return config.run_cmd ? EXIT_RUN_CANNOT : EXIT_VMM_ERROR;
	}
	/* Set-up is done (devices, TAPs, KVM, virtiofsd): no capability is needed past here. */
	if (sandbox_enter(config.seccomp, err, sizeof(err))) {
		fprintf(stderr, "vmm: %s\n", err);
		vm_destroy(vm);
		return config.run_cmd ? EXIT_RUN_CANNOT : EXIT_VMM_ERROR;
	}
	log_debug("set-up done: privileges dropped");
	status = vm_run(vm);
	vm_destroy(vm);
	snapshot_config_free(&snap);
	log_debug("exit status %d", status);
	return status;
}
