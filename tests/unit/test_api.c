/*
 * --api-socket: the protocol (api_handle) with stand-in operations, the socket's clients
 * (several requests in one write, a line split across writes, an over-long line, too many
 * connections, a client's end), its path (mode 0600, stale and live sockets, a regular file),
 * and pausing: two threads standing in for vCPUs park while the event-loop thread pauses,
 * and a stop frees them (threaded suite (TSan)); and the real operations (vm_control.c) served
 * by a thread under the event-loop thread's seccomp filter, as vmm runs them.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/support/loop_harness.h"
#include "tests/unit/unit.h"
#include "vmm/api.h"
#include "vmm/sandbox.h"
#include "vmm/vm.h"

struct fake {
	unsigned pauses, resumes, stops, stats, snapshots;
	bool pause_fails;
	char snapshot_dir[64];
};

static int fake_pause(void *opaque, char *err, size_t errlen)
{
	struct fake *f = opaque;

	if (f->pause_fails) {
		snprintf(err, errlen, "the vCPUs did not stop");
		return -1;
	}
	f->pauses++;
	return 0;
}

static int fake_resume(void *opaque, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	((struct fake *)opaque)->resumes++;
	return 0;
}

static int fake_stop(void *opaque, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	((struct fake *)opaque)->stops++;
	return 0;
}

static int fake_stats(void *opaque, json_t *reply, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	((struct fake *)opaque)->stats++;
	json_object_set_new(reply, "state", json_string("running"));
	return 0;
}

static int fake_snapshot(void *opaque, const char *dir, char *err, size_t errlen)
{
	struct fake *f = opaque;

	(void)err;
	(void)errlen;
	f->snapshots++;
	snprintf(f->snapshot_dir, sizeof(f->snapshot_dir), "%s", dir);
	return 0;
}

static const struct api_ops fake_ops = {.pause = fake_pause,
                                        .resume = fake_resume,
                                        .stop = fake_stop,
                                        .stats = fake_stats,
                                        .snapshot = fake_snapshot};

static char *handle(struct fake *f, const char *line)
{
	char *reply = api_handle(&fake_ops, f, line, strlen(line));

	ck_assert_ptr_nonnull(reply);
	return reply;
}

static void expect_reply(struct fake *f, const char *line, const char *want)
{
	char *reply = handle(f, line);

	ck_assert_msg(!strcmp(reply, want), "%s -> %s, expected %s", line, reply, want);
	free(reply);
}

static void expect_error(struct fake *f, const char *line, const char *part)
{
	char *reply = handle(f, line);

	ck_assert_msg(!strncmp(reply, "{\"ok\":false,\"error\":\"", 21) && strstr(reply, part),
	              "%s -> %s, expected an error with \"%s\"", line, reply, part);
	free(reply);
}

START_TEST(requests_reach_their_operation)
{
	struct fake f = {0};

	expect_reply(&f, "{\"op\":\"pause\"}", "{\"ok\":true}");
	expect_reply(&f, " {\"op\": \"resume\"} \r", "{\"ok\":true}");
	expect_reply(&f, "{\"op\":\"stop\"}", "{\"ok\":true}");
	expect_reply(&f, "{\"op\":\"stats\"}", "{\"ok\":true,\"state\":\"running\"}");
	ck_assert_uint_eq(f.pauses, 1);
	ck_assert_uint_eq(f.resumes, 1);
	ck_assert_uint_eq(f.stops, 1);
	ck_assert_uint_eq(f.stats, 1);
	expect_reply(&f, "{\"dir\":\"/tmp/s1\",\"op\":\"snapshot\"}", "{\"ok\":true}");
	ck_assert_uint_eq(f.snapshots, 1);
	ck_assert_str_eq(f.snapshot_dir, "/tmp/s1");
	f.pause_fails = true;
	expect_error(&f, "{\"op\":\"pause\"}", "the vCPUs did not stop");
}
END_TEST

START_TEST(bad_requests_get_an_error_and_do_nothing)
{
	struct fake f = {0};

	expect_error(&f, "", "not JSON");
	expect_error(&f, "pause", "not JSON");
	expect_error(&f, "{\"op\":\"pause\"", "not JSON");
	expect_error(&f, "{\"op\":\"pause\"} {}", "not JSON");
	expect_error(&f, "[\"pause\"]", "a request is a JSON object");
	expect_error(&f, "\"pause\"", "a request is a JSON object");
	expect_error(&f, "{}", "missing field \\\"op\\\"");
	expect_error(&f, "{\"Op\":\"pause\"}", "missing field");
	expect_error(&f, "{\"op\":7}", "\\\"op\\\" must be a string");
	expect_error(&f, "{\"op\":null}", "must be a string");
	expect_error(&f, "{\"op\":\"pause\",\"op\":\"stop\"}", "not JSON");
	expect_error(&f, "{\"op\":\"pause\",\"now\":true}", "pause takes no other fields");
	expect_error(&f, "{\"op\":\"reboot\"}", "unknown op \\\"reboot\\\"");
	expect_error(&f, "{\"op\":\"\"}", "unknown op");
	expect_error(&f, "{\"op\":\"snapshot\"}", "snapshot takes one more field, \\\"dir\\\"");
	expect_error(&f, "{\"op\":\"snapshot\",\"dir\":\"\"}", "\\\"dir\\\": a directory");
	expect_error(&f, "{\"op\":\"snapshot\",\"dir\":7}", "\\\"dir\\\": a directory");
	expect_error(&f, "{\"op\":\"snapshot\",\"dir\":\"d\",\"x\":1}", "one more field");
	/* Not UTF-8: the parser's message quotes the bytes; the reply must still be JSON. */
	expect_error(&f,
	             "{\"o\\\xdb\x8b"
	             "s\"}",
	             "not JSON");
	expect_error(&f, "{\"op\":\"\xff\"}", "not JSON");
	expect_error(&f,
	             "{\"op\":\"r\xc3\xa9"
	             "boot\"}",
	             "unknown op \\\"r??boot\\\"");
	ck_assert_uint_eq(f.pauses + f.resumes + f.stops + f.stats + f.snapshots, 0);
}
END_TEST

/* A listening api on a fresh path, its loop, and connections to it. */
struct fixture {
	char dir[64], path[128];
	struct event_loop loop;
	struct api *api;
	struct fake fake;
	bool in_loop;
};

static void fixture_init(struct fixture *fx)
{
	char err[200];

	memset(fx, 0, sizeof(*fx));
	strcpy(fx->dir, "/tmp/vmm-api-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/api.sock", fx->dir);
	ck_assert_int_eq(event_loop_init(&fx->loop), 0);
	fx->api = api_open(fx->path, &fx->loop, &fake_ops, &fx->fake, err, sizeof(err));
	ck_assert_msg(fx->api, "api_open: %s", err);
}

static void fixture_free(struct fixture *fx)
{
	api_close(fx->api);
	event_loop_free(&fx->loop);
	unlink(fx->path);
	rmdir(fx->dir);
}

static int client(const char *path)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	strcpy(addr.sun_path, path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	return fd;
}

static void send_text(int fd, const char *text)
{
	ck_assert_int_eq(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

/* Serves the loop, then reads what the client has (waiting up to 2 s for the first byte). */
static char *receive(struct fixture *fx, int fd, char *buf, size_t size)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t len = 0;
	ssize_t n;

	test_loop_serve(&fx->loop, &fx->in_loop);
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	while ((n = recv(fd, buf + len, size - 1 - len, MSG_DONTWAIT)) > 0)
		len += (size_t)n;
	buf[len] = 0;
	return buf;
}

START_TEST(socket_answers_each_line)
{
	struct fixture fx;
	struct stat st;
	char buf[4096];
	int fd;

	fixture_init(&fx);
	ck_assert_int_eq(stat(fx.path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	fd = client(fx.path);
	test_loop_serve(&fx.loop, &fx.in_loop);
	send_text(fd, "{\"op\":\"pause\"}\n{\"op\":\"resume\"}\n{\"op\":");
	ck_assert_str_eq(receive(&fx, fd, buf, sizeof(buf)), "{\"ok\":true}\n{\"ok\":true}\n");
	send_text(fd, "\"stop\"}\n");
	ck_assert_str_eq(receive(&fx, fd, buf, sizeof(buf)), "{\"ok\":true}\n");
	send_text(fd, "nonsense\n");
	ck_assert_ptr_nonnull(strstr(receive(&fx, fd, buf, sizeof(buf)), "not JSON"));
	ck_assert_uint_eq(fx.fake.pauses + fx.fake.resumes + fx.fake.stops, 3);
	close(fd);
	test_loop_serve(&fx.loop, &fx.in_loop);

	/* The next client, after the first hung up. */
	fd = client(fx.path);
	test_loop_serve(&fx.loop, &fx.in_loop);
	send_text(fd, "{\"op\":\"stats\"}\n");
	ck_assert_str_eq(receive(&fx, fd, buf, sizeof(buf)),
	                 "{\"ok\":true,\"state\":\"running\"}\n");
	close(fd);
	fixture_free(&fx);
}
END_TEST

START_TEST(overlong_line_is_one_error)
{
	struct fixture fx;
	char buf[4096], *line = malloc(3 * API_LINE_MAX);
	int fd;

	fixture_init(&fx);
	fd = client(fx.path);
	test_loop_serve(&fx.loop, &fx.in_loop);
	/* A long line that would parse (spaces), sent in pieces, then a good request. */
	memset(line, ' ', 3 * API_LINE_MAX);
	memcpy(line, "{\"op\":\"pause\"}", 14);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(send(fd, line, API_LINE_MAX, 0), API_LINE_MAX);
		test_loop_serve(&fx.loop, &fx.in_loop);
	}
	send_text(fd, "\n{\"op\":\"resume\"}\n");
	ck_assert_str_eq(receive(&fx, fd, buf, sizeof(buf)),
	                 "{\"ok\":false,\"error\":\"a request line is at most 4096 bytes\"}\n"
	                 "{\"ok\":true}\n");
	ck_assert_uint_eq(fx.fake.pauses, 0);
	ck_assert_uint_eq(fx.fake.resumes, 1);
	close(fd);
	free(line);
	fixture_free(&fx);
}
END_TEST

START_TEST(too_many_clients_are_told_so)
{
	struct fixture fx;
	int fds[API_MAX_CLIENTS], extra;
	char buf[256];

	fixture_init(&fx);
	for (int i = 0; i < API_MAX_CLIENTS; i++) {
		fds[i] = client(fx.path);
		test_loop_serve(&fx.loop, &fx.in_loop);
	}
	extra = client(fx.path);
	ck_assert_str_eq(receive(&fx, extra, buf, sizeof(buf)),
	                 "{\"ok\":false,\"error\":\"too many connections\"}\n");
	ck_assert_int_eq(recv(extra, buf, sizeof(buf), 0), 0); /* closed */
	close(extra);
	/* One leaves: a new client gets its slot. */
	close(fds[0]);
	test_loop_serve(&fx.loop, &fx.in_loop);
	fds[0] = client(fx.path);
	test_loop_serve(&fx.loop, &fx.in_loop);
	send_text(fds[0], "{\"op\":\"stop\"}\n");
	ck_assert_str_eq(receive(&fx, fds[0], buf, sizeof(buf)), "{\"ok\":true}\n");
	for (int i = 0; i < API_MAX_CLIENTS; i++)
		close(fds[i]);
	fixture_free(&fx);
}
END_TEST

START_TEST(socket_path_checks)
{
	struct fixture fx;
	struct event_loop loop;
	struct fake fake = {0};
	char err[300], file[160];
	struct api *api;
	int fd;

	fixture_init(&fx);
	ck_assert_int_eq(event_loop_init(&loop), 0);
	/* Live: the fixture's api listens there. */
	api = api_open(fx.path, &loop, &fake_ops, &fake, err, sizeof(err));
	ck_assert_ptr_null(api);
	ck_assert_msg(strstr(err, "--api-socket: ") == err && strstr(err, "is in use"), "%s", err);
	/* Stale: nobody listens any more. */
	api_close(fx.api);
	fx.api = api_open(fx.path, &fx.loop, &fake_ops, &fx.fake, err, sizeof(err));
	ck_assert_msg(fx.api, "a stale socket was not replaced: %s", err);
	/* A regular file is never replaced. */
	snprintf(file, sizeof(file), "%s/file", fx.dir);
	fd = open(file, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_ptr_null(api_open(file, &loop, &fake_ops, &fake, err, sizeof(err)));
	ck_assert_msg(strstr(err, "exists and is not a socket"), "%s", err);
	ck_assert_int_eq(access(file, F_OK), 0);
	unlink(file);
	ck_assert_ptr_null(
	        api_open("/nonexistent-dir/api.sock", &loop, &fake_ops, &fake, err, sizeof(err)));
	ck_assert_msg(strstr(err, "cannot listen on"), "%s", err);
	event_loop_free(&loop);
	fixture_free(&fx);
}
END_TEST

/* Two threads standing in for vCPUs: they run (count) until paused, as vcpu_thread does. */
struct fake_vcpu {
	struct vm *vm;
	pthread_t thread;
	unsigned long runs; /* atomic */
};

static void *fake_vcpu_thread(void *opaque)
{
	struct fake_vcpu *v = opaque;

	while (!__atomic_load_n(&v->vm->stopping, __ATOMIC_ACQUIRE)) {
		if (vm_paused(v->vm)) {
			vm_park_vcpu(v->vm);
			continue;
		}
		__atomic_fetch_add(&v->runs, 1, __ATOMIC_RELAXED);
		sched_yield();
	}
	return NULL;
}

static unsigned long total_runs(struct fake_vcpu *v)
{
	return __atomic_load_n(&v[0].runs, __ATOMIC_RELAXED) +
	       __atomic_load_n(&v[1].runs, __ATOMIC_RELAXED);
}

START_TEST(pause_parks_every_vcpu_until_resume_or_stop)
{
	struct vcpu vcpus[2] = {{.fd = -1}, {.fd = -1}}; /* no thread_started: kicks do nothing */
	struct vm vm = {.vcpus = vcpus, .nr_vcpus = 2};
	struct fake_vcpu v[2] = {{.vm = &vm}, {.vm = &vm}};
	unsigned long before;
	char err[100];

	ck_assert_int_eq(vm_pause_init(&vm.pause), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&v[i].thread, NULL, fake_vcpu_thread, &v[i]), 0);
	for (int round = 0; round < 50; round++) {
		ck_assert_int_eq(vm_pause(&vm, err, sizeof(err)), 0);
		ck_assert(vm_paused(&vm));
		ck_assert_int_eq(vm_pause(&vm, err, sizeof(err)), 0); /* again: nothing to do */
		before = total_runs(v);
		usleep(1000);
		ck_assert_uint_eq(total_runs(v), before);
		vm_resume(&vm);
		while (total_runs(v) < before + 2)
			sched_yield();
	}
	/* A stop frees parked vCPUs, and a pause then fails. */
	ck_assert_int_eq(vm_pause(&vm, err, sizeof(err)), 0);
	__atomic_store_n(&vm.stopping, true, __ATOMIC_RELEASE);
	vm_pause_wake(&vm.pause);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(v[i].thread, NULL), 0);
	vm_resume(&vm);
	ck_assert_int_eq(vm_pause(&vm, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "the VM is stopping");
	ck_assert(!vm_paused(&vm));
	vm_pause_destroy(&vm.pause);
}
END_TEST

struct sandboxed {
	struct vm vm;
	struct vm_config cfg;
	struct event_work stop_work;
	int enter_ret;
};

static void do_stop(void *opaque)
{
	event_loop_stop(opaque);
}

static void *sandboxed_loop(void *opaque)
{
	struct sandboxed *s = opaque;

	s->enter_ret = sandbox_thread_enter(SANDBOX_MAIN);
	if (!s->enter_ret)
		event_loop_run(&s->vm.loop);
	return NULL;
}

/* One request on a new connection; the reply without its newline, in @buf. */
static char *ask(const char *path, const char *request, char *buf, size_t size)
{
	struct pollfd p;
	size_t len = 0;
	ssize_t n;
	int fd = client(path);

	send_text(fd, request);
	shutdown(fd, SHUT_WR);
	p = (struct pollfd){.fd = fd, .events = POLLIN};
	while (len < size - 1 && poll(&p, 1, 5000) == 1 &&
	       (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = 0;
	ck_assert_msg(len > 0 && buf[len - 1] == '\n', "%s: no reply line: '%s'", request, buf);
	buf[len - 1] = 0;
	return buf;
}

START_TEST(vm_operations_under_the_event_loop_filter)
{
	const char *fork_mode = getenv("CK_FORK");
	struct sandboxed s = {0};
	char dir[] = "/tmp/vmm-api-XXXXXX", path[64], err[256], buf[2048];
	json_t *stats;
	pthread_t thread;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/api.sock", dir);
	s.cfg.api_socket = path;
	s.vm.config = &s.cfg;
	s.vm.statm_fd = s.vm.stop_event.fd = -1;
	ck_assert_int_eq(vm_pause_init(&s.vm.pause), 0);
	pthread_mutex_init(&s.vm.stop_lock, NULL);
	ck_assert_int_eq(event_loop_init(&s.vm.loop), 0);
	ck_assert_int_eq(guest_memory_add(&s.vm.mem, 0, 4 << 20), 0);
	memset(s.vm.mem.regions[0].host, 1, 1 << 20); /* 1 MiB of it resident */
	clock_gettime(CLOCK_MONOTONIC, &s.vm.started);
	ck_assert_int_eq(vm_control_open(&s.vm), 0);
	event_work_init(&s.stop_work, do_stop, &s.vm.loop);
	if (!fork_mode || strcmp(fork_mode, "no"))
		ck_assert_msg(sandbox_enter(true, err, sizeof(err)) == 0, "sandbox_enter: %s", err);
	ck_assert_int_eq(pthread_create(&thread, NULL, sandboxed_loop, &s), 0);

	stats = json_loads(ask(path, "{\"op\":\"stats\"}\n", buf, sizeof(buf)), 0, NULL);
	ck_assert_msg(stats, "stats: %s", buf);
	ck_assert(json_is_true(json_object_get(stats, "ok")));
	ck_assert_str_eq(json_string_value(json_object_get(stats, "state")), "running");
	ck_assert_int_eq(json_integer_value(json_object_get(stats, "guest_ram_bytes")), 4 << 20);
	ck_assert_int_ge(json_integer_value(json_object_get(stats, "guest_ram_resident_bytes")),
	                 1 << 20);
	ck_assert_int_gt(json_integer_value(json_object_get(stats, "rss_beyond_guest_ram_bytes")),
	                 0);
	ck_assert_int_eq(
	        json_integer_value(json_object_get(json_object_get(stats, "exits"), "total")), 0);
	json_decref(stats);
	ck_assert_str_eq(ask(path, "{\"op\":\"pause\"}\n", buf, sizeof(buf)), "{\"ok\":true}");
	ck_assert_ptr_nonnull(strstr(ask(path, "{\"op\":\"stats\"}\n", buf, sizeof(buf)),
	                             "\"state\":\"paused\""));
	ck_assert_ptr_nonnull(strstr(ask(path, "{op}\n", buf, sizeof(buf)), "not JSON"));
	ck_assert_str_eq(ask(path, "{\"op\":\"resume\"}\n", buf, sizeof(buf)), "{\"ok\":true}");
	ck_assert_str_eq(ask(path, "{\"op\":\"stop\"}\n", buf, sizeof(buf)), "{\"ok\":true}");
	event_loop_post(&s.vm.loop, &s.stop_work);
	ck_assert_int_eq(pthread_join(thread, NULL), 0);
	ck_assert_int_eq(s.enter_ret, 0);
	ck_assert(s.vm.stopping);
	ck_assert_int_eq(s.vm.exit_status, 0);
	vm_control_close(&s.vm);
	guest_memory_free(&s.vm.mem);
	event_loop_free(&s.vm.loop);
	vm_pause_destroy(&s.vm.pause);
	unlink(path);
	rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("api");

	signal(SIGPIPE, SIG_IGN); /* as vmm: a client gone is an error from write */
	TCase *tc = tcase_create("api");

	tcase_add_test(tc, requests_reach_their_operation);
	tcase_add_test(tc, bad_requests_get_an_error_and_do_nothing);
	tcase_add_test(tc, socket_answers_each_line);
	tcase_add_test(tc, overlong_line_is_one_error);
	tcase_add_test(tc, too_many_clients_are_told_so);
	tcase_add_test(tc, socket_path_checks);
	tcase_add_test(tc, pause_parks_every_vcpu_until_resume_or_stop);
	tcase_add_test(tc, vm_operations_under_the_event_loop_filter);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
