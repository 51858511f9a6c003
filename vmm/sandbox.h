/*
 * Least privilege once set-up is done: every capability dropped (libcap-ng), no_new_privs, and
 * a libseccomp allow-list per thread kind, ioctl limited to the requests that thread makes.
 * A syscall outside its thread's list ends vmm with one line naming it (SIGSYS handler).
 *
 * Threads: sandbox_enter runs once on the main thread before any other thread exists (it fills
 * the process-wide state below); sandbox_thread_enter runs on each thread for itself and only
 * reads that state. Filters are per thread and inherited by threads created later, so the main
 * thread installs its own only after it created every other thread.
 */
#ifndef VMM_VMM_SANDBOX_H
#define VMM_VMM_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <termios.h>

#include "vmm/util.h"

/*
 * AddressSanitizer's runtime makes syscalls of its own on any thread (sigaltstack at thread
 * start and exit, LeakSanitizer's clone and ptrace at exit) that no allow-list names: an ASan
 * build runs without the filters (capabilities and no_new_privs still go).
 */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_FILTERS_AVAILABLE false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_FILTERS_AVAILABLE false
#endif
#endif
#ifndef SANDBOX_FILTERS_AVAILABLE
#define SANDBOX_FILTERS_AVAILABLE true
#endif

enum sandbox_thread_kind {
	SANDBOX_MAIN,   /* the event loop, and teardown after it */
	SANDBOX_VCPU,   /* KVM_RUN and the exit handlers (device register writes) */
	SANDBOX_WRITER, /* an out_stream writer: write/poll on its fd */
	SANDBOX_NR_KINDS,
};

/*
 * On the main thread, once every device, TAP, KVM fd and helper process exists and before any
 * other thread is created: drops every capability (effective, permitted, inheritable, ambient,
 * and the bounding set when CAP_SETPCAP allows), sets no_new_privs, and with @seccomp compiles
 * the filters of every thread kind and installs the SIGSYS handler. Call once. Returns 0, or
 * -errno with one line in @err.
 */
int sandbox_enter(bool seccomp, char *err, size_t errlen) MUST_CHECK;

/*
 * Installs the calling thread's filter for @kind when sandbox_enter armed the filters; else
 * does nothing. Returns 0 or -errno (the thread then runs unfiltered: the caller stops).
 */
int sandbox_thread_enter(enum sandbox_thread_kind kind) MUST_CHECK;

/*
 * The event-loop thread may also create (AF_UNIX only), connect, accept and shut down sockets:
 * for --vsock's Unix sockets. Set-up time, before sandbox_enter.
 */
void sandbox_allow_unix_sockets(void);

/*
 * The event-loop thread also runs libslirp (--net user): sockets of any kind, connect, bind,
 * listen, accept, socket options, send and receive, and read-only opens (/etc/resolv.conf).
 * Set-up time, before sandbox_enter.
 */
void sandbox_allow_user_net(void);

/*
 * The event-loop thread may also accept connections (--api-socket's clients) and ask which
 * pages of guest RAM are resident (mincore, for its stats). Set-up time, before sandbox_enter.
 */
void sandbox_allow_api(void);

/*
 * Threads that run devices may also delete KVM memory slots (KVM_SET_USER_MEMORY_REGION): the
 * PCI host unmaps its read-only ECAM copy when a device's config must be read live. Set-up
 * time, before sandbox_enter.
 */
void sandbox_allow_memslot_removal(void);

/*
 * Threads that run devices may also switch coalesced I/O zones on and off
 * (KVM_(UN)REGISTER_COALESCED_MMIO): a UART's register write decides whether its THR writes
 * may be coalesced. Set-up time, before sandbox_enter.
 */
void sandbox_allow_coalesced_zone_changes(void);

/*
 * A terminal in raw mode: on a forbidden syscall, @saved is set back on @fd before vmm ends.
 * Main thread, before the other threads start.
 */
void sandbox_set_terminal(int fd, const struct termios *saved);

/* The kind's name as the SIGSYS message says it ("vcpu", "main", "output writer"). */
const char *sandbox_kind_name(enum sandbox_thread_kind kind);

#endif
