/*
 * The host side of a guest network interface: a Linux TAP device opened through /dev/net/tun
 * with a virtio-net header in front of every packet (IFF_VNET_HDR), and the MAC addresses the
 * guest's interfaces get.
 */
#ifndef VMM_DEVICES_TAP_H
#define VMM_DEVICES_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/util.h"

struct virtio_net_backend;

/* The vnet header the TAP reads and writes: struct virtio_net_hdr_mrg_rxbuf (virtio 1.x). */
#define TAP_VNET_HDR_LEN 12

#define NET_MAC_LEN    6
#define NET_MAC_STRLEN 18 /* "aa:bb:cc:dd:ee:ff" and its NUL */

#define TAP_MAX_QUEUES 8 /* as many as virtio-net has queue pairs */

/*
 * Opens @nr_queues (1 to TAP_MAX_QUEUES) fds on the TAP device @name (at most 15 bytes) into
 * @fds[], creating it when it does not exist (that needs CAP_NET_ADMIN; a persistent TAP made
 * with `ip tuntap add ... user $USER` does not): IFF_TAP | IFF_NO_PI | IFF_VNET_HDR with a
 * 12-byte vnet header, and IFF_MULTI_QUEUE for more than one queue, each fd non-blocking and
 * close-on-exec and attached, all offloads off (tap_set_offload turns them on). One queue
 * opens a TAP of either kind. An existing single-queue TAP gives one fd when more were asked
 * for, or an error when @exact ("recreate it with: ... multi_queue"). A TAP this call creates
 * disappears when its fds are closed. Returns the number of fds opened, or -errno with one
 * line in @err such as "cannot create TAP 'tap0': operation not permitted (needs
 * CAP_NET_ADMIN); create it once with: sudo ip tuntap add dev tap0 mode tap user $USER".
 */
int tap_open(const char *name, unsigned nr_queues, bool exact, int fds[], char *err,
             size_t errlen) MUST_CHECK;

/*
 * Attaches (@enabled) or detaches one queue's fd of a multi-queue TAP (TUNSETQUEUE): the host
 * steers no packet to a detached queue (the interface's queue count drops). Detaching a
 * detached queue or attaching an attached one is -EINVAL. Any thread. Returns 0 or -errno.
 */
int tap_set_queue(int fd, bool enabled) MUST_CHECK;

/*
 * Tells the TAP which offloads the reader (the guest) handles in packets the TAP hands us:
 * partial checksums (@csum) and TCP segmentation over IPv4 (@tso4) and IPv6 (@tso6). TSO
 * needs partial checksums, so it is left off without @csum. A setting of the device, made
 * through an attached queue's fd. Any thread. Returns 0 or -errno.
 */
int tap_set_offload(int fd, bool csum, bool tso4, bool tso6) MUST_CHECK;

/*
 * Makes @be the virtio-net packet backend of one queue over the open TAP *@fd: one writev or
 * readv per packet (the fd is non-blocking, so a full TAP gives -EAGAIN), tap_set_offload and,
 * with @multi_queue, tap_set_queue. *@fd is read at each call and must stay open while @be
 * is in use.
 */
void tap_net_backend(struct virtio_net_backend *be, int *fd, bool multi_queue);

/*
 * A locally administered unicast MAC (first byte: bit 1 set, bit 0 clear) derived from @seed
 * (the VM's name) and @index (the interface's number): the same inputs give the same address,
 * so a guest keeps its address across boots.
 */
void net_mac_generate(const char *seed, unsigned index, uint8_t mac[NET_MAC_LEN]);

/*
 * Parses "aa:bb:cc:dd:ee:ff" (hex digits in either case, two per byte). Returns 0, or -EINVAL
 * for anything else, a multicast or broadcast address (bit 0 of the first byte) or all zeros.
 */
int net_mac_parse(const char *text, uint8_t mac[NET_MAC_LEN]) MUST_CHECK;

/* Writes @mac as "aa:bb:cc:dd:ee:ff" into @out. */
void net_mac_format(const uint8_t mac[NET_MAC_LEN], char out[NET_MAC_STRLEN]);

#endif
