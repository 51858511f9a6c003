/*
 * --save-ready and its restores, the part of test-run mode around the init's "waiting"
 * (guest-firmware/init/ready.c):
 *   vmm --save-ready DIR    boots --run's machine with no command and no virtio-fs; when the
 *                           init says "waiting", pauses the VM, saves a snapshot into DIR and
 *                           ends with status 0.
 *   vmm --restore DIR --run CMD [--share ...]
 *                           restores it (the virtio-fs devices of the root and the shares are
 *                           plugged in after the snapshot's parts are loaded, see vm.c) and
 *                           sends the init the run's files on the status port, as records
 *                           (init_parse_records); the run then goes on as a cold --run's.
 *
 * Threads: set up on the main thread (run_create); the snapshot and the sending run as event
 * work on the loop's thread, never inside the console's callbacks, which hold its lock.
 */
#include "vmm/run_ready.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/log.h"
#include "vmm/run.h"
#include "vmm/run_initramfs.h"
#include "vmm/sandbox.h"
#include "vmm/vm.h"
#include "vmm/vm_control.h"

static void put_record(FILE *f, const char *name, const char *data, size_t len)
{
	fprintf(f, "%s %zu\n", name, len);
	fwrite(data, 1, len, f);
}

int run_records(const char *cmd, const char *cwd, const char *term, const char *mounts,
                size_t mounts_len, char **buf, size_t *len)
{
	FILE *f = open_memstream(buf, len);

	if (!f)
		return -ENOMEM;
	put_record(f, "mounts", mounts, mounts_len);
	put_record(f, "cwd", cwd, strlen(cwd));
	put_record(f, "cmd", cmd, strlen(cmd));
	put_record(f, "term", term, strlen(term));
	fputs("end 0\n", f);
	if (fclose(f)) {
		free(*buf);
		*buf = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* The loop's work after "waiting": pause, save, stop (status 0, or a failure's). */
static void save_now(void *opaque)
{
	struct run *run = opaque;
	struct vm *vm = run->vm;
	struct timespec t0, t1;
	char err[600], why[700];

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (vm_pause(vm, err, sizeof(err)) == 0 &&
	    snapshot_save(&vm->snapshot, &vm->mem, vm->config, vm->config->save_ready, err,
	                  sizeof(err)) == 0) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		log_info("--save-ready: snapshot saved in %s in %.1f ms", vm->config->save_ready,
		         (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
		run->ready.saved = true;
		vm_request_stop(vm, 0, NULL);
		return;
	}
	snprintf(why, sizeof(why), "--save-ready %s: %s", vm->config->save_ready, err);
	vm_request_stop(vm, EXIT_VMM_ERROR, why);
}

/* The loop's work: hands the status port what it takes of the records; more on rx_space. */
static void send_more(void *opaque)
{
	struct run *run = opaque;
	struct run_ready *r = &run->ready;

	if (!r->buf || !run->console)
		return;
	r->pos += virtio_console_port_receive(run->console, RUN_PORT_STATUS,
	                                      (const uint8_t *)r->buf + r->pos, r->len - r->pos);
	if (r->pos == r->len) {
		log_debug("--run: sent the init its %zu bytes of files", r->len);
		free(r->buf);
		r->buf = NULL;
	}
}

void run_ready_rx_space(void *opaque)
{
	struct run *run = opaque;

	event_loop_post(&run->vm->loop, &run->ready.send);
}

int run_ready_init(struct run *run)
{
	struct vm *vm = run->vm;
	const struct vm_config *cfg = vm->config;
	struct run_ready *r = &run->ready;
	char cwd[PATH_MAX], *mounts;
	size_t mounts_len;
	int ret;

	event_work_init(&r->save, save_now, run);
	event_work_init(&r->send, send_more, run);
	if (!cfg->save_ready)
		return 0;
	if (!vm->restore) {
		r->saving = true;
		sandbox_allow_api(); /* the loop's thread writes the snapshot */
		return 0;
	}
	/* Restored: the init opened its status port before the snapshot. */
	run->init_connected = true;
	run_cwd(cwd, sizeof(cwd));
	ret = run_mounts_file(&vm->shares, &mounts, &mounts_len);
	if (!ret) {
		ret = run_records(cfg->run_cmd, cwd, run_term(), mounts, mounts_len, &r->buf,
		                  &r->len);
		free(mounts);
	}
	if (ret)
		log_error("--run: cannot build the run's files: %s", strerror(-ret));
	return ret;
}

void run_ready_start(struct run *run)
{
	if (run->ready.buf)
		event_loop_post(&run->vm->loop, &run->ready.send);
}

bool run_ready_waiting(struct run *run)
{
	if (!run->ready.saving || run->ready.waited)
		return false;
	run->ready.waited = true;
	event_loop_post(&run->vm->loop, &run->ready.save);
	return true;
}

void run_ready_destroy(struct run *run)
{
	if (run->vm && run->vm->loop.epoll_fd >= 0) {
		event_loop_cancel(&run->vm->loop, &run->ready.save);
		event_loop_cancel(&run->vm->loop, &run->ready.send);
	}
	free(run->ready.buf);
	run->ready.buf = NULL;
}
