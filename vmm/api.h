/*
 * --api-socket PATH: a Unix socket (mode 0600) that takes one JSON object per line and
 * answers each with one line, {"ok":true,...} or {"ok":false,"error":"..."}. Requests:
 * {"op":"pause"}, {"op":"resume"}, {"op":"stop"} (as a guest power-off: status 0) and
 * {"op":"stats"} and {"op":"snapshot","dir":"DIR"} (vmm/snapshot.h). A line that is not a JSON
 * object, an unknown op, a missing field or a line over API_LINE_MAX bytes gets an error reply and
 * changes nothing. Up to API_MAX_CLIENTS connections at once; more are told so and closed.
 *
 * Threads: the listener and the clients are event-loop sources; everything here runs on the
 * event-loop thread. What a request does to the VM is up to struct api_ops.
 */
#ifndef VMM_VMM_API_H
#define VMM_VMM_API_H

#include <jansson.h>
#include <stddef.h>

#include "vmm/event_loop.h"
#include "vmm/util.h"

#define API_LINE_MAX    4096
#define API_MAX_CLIENTS 8

/*
 * What the requests do. Each returns 0, or -1 with one line in @err (the reply's error). On
 * success stats adds its fields to @reply, an object that already holds "ok".
 */
struct api_ops {
	int (*pause)(void *opaque, char *err, size_t errlen);
	int (*resume)(void *opaque, char *err, size_t errlen);
	int (*stop)(void *opaque, char *err, size_t errlen);
	int (*stats)(void *opaque, json_t *reply, char *err, size_t errlen);
	/* {"op":"snapshot","dir":DIR}: @dir is a non-empty string. */
	int (*snapshot)(void *opaque, const char *dir, char *err, size_t errlen);
};

/* The reply line (malloc'd, no newline; NULL when out of memory) to one request line. */
char *api_handle(const struct api_ops *ops, void *opaque, const char *line, size_t len);

struct api;

/* Listens on @path; requests act through @ops. NULL with one line in @err on failure. */
struct api *api_open(const char *path, struct event_loop *loop, const struct api_ops *ops,
                     void *opaque, char *err, size_t errlen);
void api_close(struct api *api);

#endif
