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

/*
 * Opens the TAP device @name (at most 15 bytes), creating it when it does not exist (that
 * needs CAP_NET_ADMIN; a persistent TAP made with `ip tuntap add ... user $USER` does not):
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR with a 12-byte vnet header, non-blocking and close-on-exec,
 * all offloads off (tap_set_offload turns them on). A TAP this call creates disappears when
 * its fd is closed. Returns the fd, or -errno with one line in @err such as "cannot create TAP
 * 'tap0': operation not permitted (needs CAP_NET_ADMIN); create it once with: sudo ip tuntap
 * add dev tap0 mode tap user $USER".
 */
int tap_open(const char *name, char *err, size_t errlen) MUST_CHECK;

/*
 * Tells the TAP which offloads the reader (the guest) handles in packets the TAP hands us:
 * partial checksums (@csum) and TCP segmentation over IPv4 (@tso4) and IPv6 (@tso6). TSO
 * needs partial checksums, so it is left off without @csum. Any thread. Returns 0 or -errno.
 */
int tap_set_offload(int fd, bool csum, bool tso4, bool tso6) MUST_CHECK;

/*
 * Makes @be the virtio-net packet backend over the open TAP *@fd: one writev or readv per
 * packet (the fd is non-blocking, so a full TAP gives -EAGAIN) and tap_set_offload. *@fd is
 * read at each call and must stay open while @be is in use.
 */
void tap_net_backend(struct virtio_net_backend *be, int *fd);

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
