/*
 * Helper processes vmm starts and owns (virtiofsd): spawned with one inherited fd, in a private
 * mount namespace where a directory can be made read-only, their output kept in a memfd so that
 * a failure can be reported with the helper's own last words, watched through a pidfd on the
 * event loop, and stopped when vmm stops. They die with vmm (PR_SET_PDEATHSIG).
 *
 * Threads: spawn and stop run on the set-up/main thread; the exit watch runs on the event loop,
 * which is the main thread too, so a struct child needs no lock.
 */
#ifndef VMM_VMM_CHILD_H
#define VMM_VMM_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vmm/event_loop.h"
#include "vmm/util.h"

#define CHILD_PASSED_FD 3 /* where child_spec.pass_fd lands in the child */

struct child_spec {
	const char *path;
	char *const *argv;
	int pass_fd; /* becomes CHILD_PASSED_FD in the child; -1: none */
	/*
	 * Non-NULL: the child gets a private mount namespace in which this directory and every
	 * mount below it are read-only, whatever the child does (it cannot undo that without
	 * CAP_SYS_ADMIN, which vmm's helpers do not need once running).
	 */
	const char *read_only_dir;
	/* Run the child as root of a new user namespace (vmm is not root): uid/gid mapped 1:1. */
	bool user_namespace;
};

/* A zeroed struct child is a child never started: child_stop and child_exited accept it. */
struct child {
	char name[64]; /* for messages: "virtiofsd (TAG)" */
	bool spawned;  /* child_spawn ran: pidfd and log_fd below are ours (open or -1) */
	pid_t pid;     /* 0: not running (never started, or reaped) */
	int pidfd, log_fd;
	int status;                /* wait status, valid once reaped */
	struct event_source watch; /* fd -1: not watched */
	struct event_loop *loop;   /* the one watching, set by child_watch */
	void (*on_exit)(void *opaque, struct child *c);
	void *opaque;
};

/*
 * Starts @spec->path. Returns 0 once the program has been exec'ed, or -errno with one line in
 * @err (the program could not be found or executed, or the namespace set-up failed: the
 * errno and the reason are the child's own, e.g. -ENOENT for a missing program); @c is then
 * stopped (child_stop is a no-op). Set-up time, before other threads exist.
 */
int child_spawn(struct child *c, const char *name, const struct child_spec *spec, char *err,
                size_t errlen) MUST_CHECK;
/*
 * Calls @on_exit once, on the event loop's thread, if the child ends before child_stop; the
 * child is reaped and no longer watched by then.
 */
int child_watch(struct child *c, struct event_loop *loop, void (*on_exit)(void *, struct child *),
                void *opaque) MUST_CHECK;
/* True when the child has ended (reaps it if so). */
bool child_exited(struct child *c);
/*
 * One line on how the child ended ("exited with status 1", "killed by signal 9") or "is
 * running", followed by its last output line if any.
 */
void child_describe(struct child *c, char *buf, size_t len);
/*
 * SIGTERM, up to @grace_ms for it to end, then SIGKILL (at once when @grace_ms is 0); reaps it,
 * unwatches it from @loop (may be NULL when not watched) and closes its fds. Safe on a child not
 * running, never started, or already stopped.
 */
void child_stop(struct child *c, struct event_loop *loop, unsigned grace_ms);

#endif
