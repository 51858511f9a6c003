/*
 * User-mode networking: a NIC's host side inside vmm, with no TAP and no privilege. libslirp
 * plays the network 10.0.2.0/24 as QEMU's -netdev user does: the guest gets 10.0.2.15 by DHCP,
 * 10.0.2.2 is the gateway and stands for the host's loopback, 10.0.2.3 answers DNS (forwarded
 * to the host's resolver); the guest's TCP and UDP flows become sockets of this process, and
 * host port forwards accept on host sockets and connect into the guest.
 *
 * Threads: everything runs on the event-loop thread: libslirp's sockets and its timer are on
 * the loop (re-synced after every entry into libslirp), and virtio-net's backend calls, which
 * hand guest frames straight to libslirp and take the frames it made for the guest from a queue
 * (at most USER_NET_QUEUE_BYTES; beyond that they are dropped and counted, as a full TAP's
 * would be), come from the loop's thread too. No other thread touches it.
 */
#ifndef VMM_DEVICES_USER_NET_H
#define VMM_DEVICES_USER_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

/* The network QEMU's -netdev user plays, which guests and scripts already expect. */
#define USER_NET_PREFIX 0x0a000200u /* 10.0.2.0/24 */
#define USER_NET_MASK   0xffffff00u
#define USER_NET_HOST   0x0a000202u /* gateway; the host's loopback */
#define USER_NET_DNS    0x0a000203u
#define USER_NET_GUEST  0x0a00020fu /* the first DHCP address */

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
struct event_loop;
struct virtio_net_backend;

/*
 * Sets up the network of @cfg on @loop: the Slirp instance and every port forward's host
 * socket (bound and listening now, so a taken port fails here). Returns the instance, or NULL
 * with one line in @err such as "--net user: cannot forward tcp:0.0.0.0:8022-10.0.2.15:22:
 * Address already in use". Set-up time (main thread).
 */
struct user_net *user_net_open(const struct user_net_config *cfg, struct event_loop *loop,
                               char *err, size_t errlen);

/*
 * virtio-net's packet backend on @u: send hands a frame to libslirp, recv takes the oldest
 * frame for the guest (12-byte zero header, then the frame), be->fd is an eventfd readable
 * while frames wait; no offloads.
 */
void user_net_backend(struct user_net *u, struct virtio_net_backend *be);

/* Frames for the guest dropped because the NIC fell USER_NET_QUEUE_BYTES behind. */
uint64_t user_net_dropped(const struct user_net *u);

/* Closes every socket libslirp opened and frees @u; after the loop stopped. NULL is allowed. */
void user_net_close(struct user_net *u);

#endif
