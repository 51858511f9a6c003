/*
 * User-mode networking: a NIC's host side inside vmm, with no TAP and no privilege. libslirp
 * plays the network 10.0.2.0/24 as QEMU's -netdev user does: the guest gets 10.0.2.15 by DHCP,
 * 10.0.2.2 is the gateway and stands for the host's loopback, 10.0.2.3 answers DNS (forwarded
 * to the host's resolver); the guest's TCP and UDP flows become sockets of this process, and
 * host port forwards accept on host sockets and connect into the guest.
 *
 * Threads: the Slirp instance and every socket it opens belong to the user-net thread
 * (user_net_start), which polls them. The NIC reaches it only through a SOCK_SEQPACKET socket
 * pair, one message per packet each way (the 12-byte virtio-net header, then the frame), so
 * virtio-net reads and writes its end like a TAP without offloads (packet_socket_backend).
 * Frames for the guest that do not fit the socket wait in a queue of the thread's (at most
 * USER_NET_QUEUE_BYTES; beyond that they are dropped and counted, as a full TAP would).
 */
#ifndef VMM_DEVICES_USER_NET_H
#define VMM_DEVICES_USER_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

#define USER_NET_MAX_FORWARDS 8
#define USER_NET_QUEUE_BYTES  (4u << 20)

/* One host port forward: connections to host_addr:host_port go to guest_addr:guest_port. */
struct user_net_forward {
	bool udp;
	struct in_addr host_addr;  /* INADDR_ANY when not given, as QEMU */
	struct in_addr guest_addr; /* 10.0.2.15 when not given */
	uint16_t host_port, guest_port;
};

struct user_net_config {
	struct user_net_forward forwards[USER_NET_MAX_FORWARDS];
	unsigned nr_forwards;
};

/*
 * Parses QEMU's hostfwd syntax, [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (dotted
 * IPv4 addresses, ports 1 to 65535, a guest address inside 10.0.2.0/24). Returns 0, or -EINVAL
 * with a one-line reason in @err.
 */
int user_net_parse_forward(const char *text, struct user_net_forward *out, char *err,
                           size_t errlen) MUST_CHECK;

/* "tcp:0.0.0.0:8022-10.0.2.15:22", for messages. */
void user_net_format_forward(const struct user_net_forward *f, char *out, size_t outlen);

struct user_net;

/*
 * Sets up the network of @cfg: the Slirp instance, its socket pair and every port forward's
 * host socket (bound and listening now, so a taken port fails here). The thread starts with
 * user_net_start. Returns the instance, or NULL with one line in @err such as "--net user:
 * cannot forward tcp:0.0.0.0:8022-10.0.2.15:22: Address already in use". A vmm built without
 * libslirp (the static aarch64 cross build: Debian ships no static libslirp) fails here, saying so.
 */
struct user_net *user_net_open(const struct user_net_config *cfg, char *err, size_t errlen);

/* The NIC's end of the socket pair (virtio-net's backend fd): non-blocking, close-on-exec. */
int *user_net_guest_fd(struct user_net *u);

/*
 * Starts the user-net thread (it installs its own seccomp filter first: call after
 * sandbox_enter). Returns 0 or -errno.
 */
int user_net_start(struct user_net *u) MUST_CHECK;

/* Frames for the guest dropped because the NIC fell USER_NET_QUEUE_BYTES behind. */
uint64_t user_net_dropped(const struct user_net *u);

/* Stops the thread, closes every socket and frees @u. NULL is allowed. */
void user_net_close(struct user_net *u);

#endif
