/* The control socket's protocol and connections: see api.h. */
#include "vmm/api.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/log.h"
#include "vmm/unix_listen.h"

/*
 * An error reply; bytes of @msg outside printable ASCII (a parser's quote of the request,
 * which need not be UTF-8) become '?'.
 */
static char *reply_error(const char *msg)
{
	char text[256], *line;
	size_t i;
	json_t *reply;

	for (i = 0; msg[i] && i < sizeof(text) - 1; i++)
		text[i] = msg[i] >= 0x20 && msg[i] < 0x7f ? msg[i] : '?';
	text[i] = 0;
	reply = json_pack("{s:b, s:s}", "ok", 0, "error", text);
	line = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

	json_decref(reply);
	return line;
}

/* Checks @request and carries it out: 0 with @reply filled, or -1 with @err. */
static int dispatch(const struct api_ops *ops, void *opaque, const json_t *request, json_t *reply,
                    char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(request, "op"));

	if (!json_is_object(request)) {
		snprintf(err, errlen, "a request is a JSON object, e.g. {\"op\":\"stats\"}");
		return -1;
	}
	if (!json_object_get(request, "op")) {
		snprintf(err, errlen, "missing field \"op\"");
		return -1;
	}
	if (!name) {
		snprintf(err, errlen, "\"op\" must be a string");
		return -1;
	}
	if (!strcmp(name, "snapshot")) {
		const char *dir = json_string_value(json_object_get(request, "dir"));

		if (json_object_size(request) != 2 || !dir || !*dir) {
			snprintf(err, errlen,
			         "snapshot takes one more field, \"dir\": a directory");
			return -1;
		}
		return ops->snapshot(opaque, dir, err, errlen);
	}
	if (json_object_size(request) != 1) {
		snprintf(err, errlen, "%.60s takes no other fields", name);
		return -1;
	}
	if (!strcmp(name, "stats"))
		return ops->stats(opaque, reply, err, errlen);
	if (!strcmp(name, "pause"))
		return ops->pause(opaque, err, errlen);
	if (!strcmp(name, "resume"))
		return ops->resume(opaque, err, errlen);
	if (!strcmp(name, "stop"))
		return ops->stop(opaque, err, errlen);
	snprintf(err, errlen, "unknown op \"%.60s\" (pause, resume, stop, stats, snapshot)", name);
	return -1;
}

char *api_handle(const struct api_ops *ops, void *opaque, const char *line, size_t len)
{
	json_error_t parse_error;
	json_t *request =
	        json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &parse_error);
	json_t *reply = json_pack("{s:b}", "ok", 1);
	char err[200];
	char *out;

	if (!reply) {
		out = NULL;
	} else if (!request) {
		snprintf(err, sizeof(err), "not JSON: %s", parse_error.text);
		out = reply_error(err);
	} else if (dispatch(ops, opaque, request, reply, err, sizeof(err))) {
		out = reply_error(err);
	} else {
		out = json_dumps(reply, JSON_COMPACT | JSON_REAL_PRECISION(10));
	}
	json_decref(request);
	json_decref(reply);
	return out;
}

struct api_client {
	struct api *api;
	struct event_source src; /* fd -1: a free slot */
	char buf[API_LINE_MAX];
	size_t len;
	bool overlong; /* dropping the rest of a line that did not fit */
};

struct api {
	struct event_loop *loop;
	const struct api_ops *ops;
	void *opaque;
	struct event_source listener;
	struct api_client clients[API_MAX_CLIENTS];
};

/*
 * Writes the whole line and a newline, or gives up: a client that does not read is dropped.
 * read and write, not recv and send: they are what the event-loop thread's filter allows.
 */
static bool send_line(int fd, const char *line)
{
	size_t len = strlen(line);
	char *msg = malloc(len + 1);
	bool sent;

	if (!msg)
		return false;
	memcpy(msg, line, len);
	msg[len] = '\n';
	sent = write(fd, msg, len + 1) == (ssize_t)(len + 1); /* SIGPIPE is ignored */
	free(msg);
	return sent;
}

static void client_close(struct api_client *c)
{
	event_loop_del(c->api->loop, &c->src);
	close(c->src.fd);
	c->src.fd = -1;
}

/* Answers one line; false when the client is gone. */
static bool client_request(struct api_client *c, const char *line, size_t len)
{
	char *reply = api_handle(c->api->ops, c->api->opaque, line, len);
	bool sent = reply && send_line(c->src.fd, reply);

	free(reply);
	return sent;
}

/* Answers every whole line in the buffer; keeps a partial one. False when the client is gone. */
static bool client_lines(struct api_client *c)
{
	size_t start = 0;
	char *nl;

	while ((nl = memchr(c->buf + start, '\n', c->len - start))) {
		size_t end = (size_t)(nl - c->buf);

		if (c->overlong)
			c->overlong = false;
		else if (!client_request(c, c->buf + start, end - start))
			return false;
		start = end + 1;
	}
	memmove(c->buf, c->buf + start, c->len - start);
	c->len -= start;
	if (c->len == API_LINE_MAX) {
		bool sent = true;

		if (!c->overlong) {
			char msg[64], *reply;

			snprintf(msg, sizeof(msg), "a request line is at most %d bytes",
			         API_LINE_MAX);
			reply = reply_error(msg);
			sent = reply && send_line(c->src.fd, reply);
			free(reply);
		}
		c->overlong = true;
		c->len = 0;
		return sent;
	}
	return true;
}

static void on_client(void *opaque, uint32_t events)
{
	struct api_client *c = opaque;
	ssize_t n = read(c->src.fd, c->buf + c->len, API_LINE_MAX - c->len);

	(void)events;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(c);
		return;
	}
	c->len += (size_t)n;
	if (!client_lines(c))
		client_close(c);
}

static void on_listener(void *opaque, uint32_t events)
{
	struct api *api = opaque;
	int fd = accept4(api->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct api_client *c = NULL;

	(void)events;
	if (fd < 0)
		return;
	for (unsigned i = 0; i < API_MAX_CLIENTS && !c; i++)
		if (api->clients[i].src.fd < 0)
			c = &api->clients[i];
	if (!c) {
		send_line(fd, "{\"ok\":false,\"error\":\"too many connections\"}");
		close(fd);
		return;
	}
	c->src = (struct event_source){.fd = fd, .handler = on_client, .opaque = c};
	c->len = 0;
	c->overlong = false;
	if (event_loop_add(api->loop, &c->src, EPOLLIN)) {
		close(fd);
		c->src.fd = -1;
	}
}

struct api *api_open(const char *path, struct event_loop *loop, const struct api_ops *ops,
                     void *opaque, char *err, size_t errlen)
{
	struct api *api = calloc(1, sizeof(*api));
	int fd, r;

	if (!api) {
		snprintf(err, errlen, "--api-socket: out of memory");
		return NULL;
	}
	/*
	 * Jansson seeds its hash tables from /dev/urandom with the first object: now, not after
	 * the sandbox is entered (no opens then).
	 */
	json_object_seed(0);
	*api = (struct api){.loop = loop, .ops = ops, .opaque = opaque};
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		api->clients[i] = (struct api_client){.api = api, .src.fd = -1};
	fd = unix_listen(path, 0, 0600, "--api-socket", err, errlen);
	if (fd < 0) {
		free(api);
		return NULL;
	}
	api->listener = (struct event_source){.fd = fd, .handler = on_listener, .opaque = api};
	r = event_loop_add(loop, &api->listener, EPOLLIN);
	if (r) {
		snprintf(err, errlen, "--api-socket: %s", strerror(-r));
		close(fd);
		free(api);
		return NULL;
	}
	return api;
}

void api_close(struct api *api)
{
	if (!api)
		return;
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		if (api->clients[i].src.fd >= 0)
			client_close(&api->clients[i]);
	event_loop_del(api->loop, &api->listener);
	close(api->listener.fd);
	free(api);
}
