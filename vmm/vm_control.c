#include "vmm/vm_control.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmm/api.h"
#include "vmm/log.h"
#include "vmm/sandbox.h"
#include "vmm/vm.h"

/* How long a pause waits for the vCPUs to leave the guest: a kicked vCPU takes microseconds. */
#define PAUSE_TIMEOUT_SEC 5

int vm_pause_init(struct vm_pause *p)
{
	pthread_condattr_t attr;
	int ret = pthread_condattr_init(&attr);

	*p = (struct vm_pause){0};
	if (!ret)
		ret = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (!ret)
		ret = pthread_cond_init(&p->changed, &attr);
	pthread_condattr_destroy(&attr);
	if (!ret)
		ret = pthread_mutex_init(&p->lock, NULL);
	return -ret;
}

void vm_pause_destroy(struct vm_pause *p)
{
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
}

void vm_pause_wake(struct vm_pause *p)
{
	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

static bool stopping(struct vm *vm)
{
	return __atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE);
}

void vm_park_vcpu(struct vm *vm)
{
	struct vm_pause *p = &vm->pause;

	pthread_mutex_lock(&p->lock);
	p->parked++;
	pthread_cond_broadcast(&p->changed);
	while (p->wanted && !stopping(vm))
		pthread_cond_wait(&p->changed, &p->lock);
	p->parked--;
	pthread_mutex_unlock(&p->lock);
}

static void set_wanted(struct vm_pause *p, bool wanted)
{
	__atomic_store_n(&p->wanted, wanted, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&p->changed);
}

int vm_pause(struct vm *vm, char *err, size_t errlen)
{
	struct vm_pause *p = &vm->pause;
	struct timespec deadline;
	bool all;

	pthread_mutex_lock(&p->lock);
	if (p->wanted) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	set_wanted(p, true);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += PAUSE_TIMEOUT_SEC;
	pthread_mutex_lock(&p->lock);
	while (p->parked < vm->nr_vcpus && !stopping(vm))
		if (pthread_cond_timedwait(&p->changed, &p->lock, &deadline) == ETIMEDOUT)
			break;
	all = p->parked == vm->nr_vcpus;
	if (!all)
		set_wanted(p, false);
	pthread_mutex_unlock(&p->lock);
	/* Writes KVM queued belong to the state a snapshot takes (a latch, console output). */
	if (all)
		coalesced_io_flush(&vm->coalesced);
	if (!all && stopping(vm))
		snprintf(err, errlen, "the VM is stopping");
	else if (!all)
		snprintf(err, errlen, "the vCPUs did not stop within %d s", PAUSE_TIMEOUT_SEC);
	return all ? 0 : -1;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause.lock);
	set_wanted(&vm->pause, false);
	pthread_mutex_unlock(&vm->pause.lock);
}

bool vm_paused(struct vm *vm)
{
	return __atomic_load_n(&vm->pause.wanted, __ATOMIC_ACQUIRE);
}

/* Bytes of [host, host + size) in RAM, by mincore in bounded steps; 0 if it fails. */
static uint64_t resident_bytes(uint8_t *host, uint64_t size)
{
	enum { STEP_PAGES = 16384 };
	unsigned char vec[STEP_PAGES];
	long page = sysconf(_SC_PAGESIZE);
	uint64_t resident = 0;

	for (uint64_t off = 0; off < size; off += (uint64_t)STEP_PAGES * page) {
		uint64_t len = MIN(size - off, (uint64_t)STEP_PAGES * page);

		if (mincore(host + off, len, vec) < 0)
			return 0;
		for (uint64_t i = 0; i < (len + page - 1) / page; i++)
			resident += (vec[i] & 1) * (uint64_t)page;
	}
	return resident;
}

/* vmm's resident set from /proc/self/statm, opened before the sandbox; 0 if unknown. */
static uint64_t rss_bytes(struct vm *vm)
{
	char buf[128];
	unsigned long long size, resident;
	ssize_t n = vm->statm_fd < 0 ? -1 : pread(vm->statm_fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = 0;
	if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return 0;
	return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int api_stats(void *opaque, json_t *reply, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	json_t *exits = json_object();
	uint64_t total = 0, ram = 0, ram_resident = 0, rss = rss_bytes(vm);
	struct timespec now;

	if (!exits) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++) {
		uint64_t n = 0;

		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			n += vcpu_exit_count(&vm->vcpus[i], r);
		total += n;
		/* Reasons without a name share "other". */
		n += (uint64_t)json_integer_value(json_object_get(exits, vcpu_exit_name(r)));
		if (n)
			json_object_set_new(exits, vcpu_exit_name(r), json_integer((json_int_t)n));
	}
	json_object_set_new(exits, "total", json_integer((json_int_t)total));
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		ram += vm->mem.regions[i].size;
		ram_resident += resident_bytes(vm->mem.regions[i].host, vm->mem.regions[i].size);
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	json_object_set_new(reply, "state", json_string(vm_paused(vm) ? "paused" : "running"));
	json_object_set_new(reply, "uptime_s",
	                    json_real((double)(now.tv_sec - vm->started.tv_sec) +
	                              (double)(now.tv_nsec - vm->started.tv_nsec) / 1e9));
	json_object_set_new(reply, "vcpus", json_integer(vm->nr_vcpus));
	json_object_set_new(reply, "exits", exits);
	json_object_set_new(reply, "guest_ram_bytes", json_integer((json_int_t)ram));
	json_object_set_new(reply, "guest_ram_resident_bytes",
	                    json_integer((json_int_t)ram_resident));
	json_object_set_new(reply, "rss_bytes", json_integer((json_int_t)rss));
	json_object_set_new(
	        reply, "rss_beyond_guest_ram_bytes",
	        json_integer((json_int_t)(rss > ram_resident ? rss - ram_resident : 0)));
	return 0;
}

static int api_pause(void *opaque, char *err, size_t errlen)
{
	return vm_pause(opaque, err, errlen);
}

static int api_resume(void *opaque, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	vm_resume(opaque);
	return 0;
}

static int api_stop(void *opaque, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	vm_request_stop(opaque, 0, NULL);
	return 0;
}

/* Pauses (if running) and saves; the VM stays paused, for a resume or a stop. */
static int api_snapshot(void *opaque, const char *dir, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	struct timespec t0, t1;
	int ret;

	if (vm_pause(vm, err, errlen))
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = snapshot_save(&vm->snapshot, &vm->mem, vm->config, dir, err, errlen);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!ret)
		log_info("snapshot saved in %s in %.1f ms", dir,
		         (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
		                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	return ret ? -1 : 0;
}

static const struct api_ops vm_api_ops = {
        .pause = api_pause,
        .resume = api_resume,
        .stop = api_stop,
        .stats = api_stats,
        .snapshot = api_snapshot,
};

int vm_control_open(struct vm *vm)
{
	char err[600];

	vm->statm_fd = -1;
	if (!vm->config->api_socket)
		return 0;
	vm->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	vm->api = api_open(vm->config->api_socket, &vm->loop, &vm_api_ops, vm, err, sizeof(err));
	if (!vm->api) {
		log_error("%s", err);
		return -EINVAL;
	}
	sandbox_allow_api();
	return 0;
}

void vm_control_close(struct vm *vm)
{
	api_close(vm->api);
	vm->api = NULL;
	if (vm->statm_fd >= 0)
		close(vm->statm_fd);
	vm->statm_fd = -1;
}
