/*
 * TAP devices (Documentation/networking/tuntap.rst) and guest MAC addresses.
 *
 * TUNSETIFF attaches the fd to the interface, creating a non-persistent one when the name is
 * free. Its errors mean: EPERM, no CAP_NET_ADMIN to create (or the persistent TAP belongs to
 * another user); EBUSY, another process holds a single-queue TAP; EINVAL, the name belongs to
 * an interface that is not a TAP, or a TAP whose IFF_MULTI_QUEUE differs from the request.
 * A multi-queue TAP takes one TUNSETIFF per queue, each on its own fd; TUNSETQUEUE detaches
 * and attaches a queue later (the host sends a detached queue nothing).
 */
#include "devices/tap.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/virtio/net.h"

#define TUN_PATH "/dev/net/tun"

/* The kernel's dev_valid_name rules, checked here so the error names the real problem. */
static bool valid_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= IFNAMSIZ || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '/' || name[i] == ':' || isspace((unsigned char)name[i]))
			return false;
	}
	return true;
}

static int open_tun(char *err, size_t errlen)
{
	int fd = open(TUN_PATH, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	int e = errno;

	if (fd >= 0)
		return fd;
	if (e == ENOENT || e == ENODEV || e == ENXIO)
		snprintf(err, errlen, "cannot open %s: %s (load the tun module: sudo modprobe tun)",
		         TUN_PATH, strerror(e));
	else
		snprintf(err, errlen, "cannot open %s: %s", TUN_PATH, strerror(e));
	return -e;
}

static void explain_setiff(const char *name, int e, char *err, size_t errlen)
{
	if (e == EPERM && if_nametoindex(name) == 0)
		snprintf(err, errlen,
		         "cannot create TAP '%s': operation not permitted (needs CAP_NET_ADMIN); "
		         "create it once with: sudo ip tuntap add dev %s mode tap user $USER",
		         name, name);
	else if (e == EPERM)
		snprintf(err, errlen,
		         "cannot open TAP '%s': operation not permitted (it belongs to another "
		         "user; recreate it with: sudo ip tuntap add dev %s mode tap user $USER)",
		         name, name);
	else if (e == EBUSY)
		snprintf(err, errlen, "cannot open TAP '%s': in use by another process", name);
	else if (e == EINVAL)
		snprintf(err, errlen,
		         "cannot open TAP '%s': an interface of that name exists and is not a "
		         "TAP device",
		         name);
	else
		snprintf(err, errlen, "cannot open TAP '%s': %s", name, strerror(e));
}

/* One fd attached to TAP @name with @flags (TUNSETIFF): the fd, or -errno with @err set. */
static int attach(const char *name, short flags, char *err, size_t errlen)
{
	struct ifreq ifr;
	int fd = open_tun(err, errlen), e;

	if (fd < 0)
		return fd;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, name, strlen(name));
	ifr.ifr_flags = flags;
	if (ioctl(fd, TUNSETIFF, &ifr) == 0)
		return fd;
	e = errno;
	close(fd);
	explain_setiff(name, e, err, errlen);
	return -e;
}

/*
 * The first queue: as asked (@mq), else, for an existing TAP of the other kind, as it is
 * (EINVAL: a TAP's IFF_MULTI_QUEUE must match). Sets *@mq to the kind opened.
 */
static int attach_first(const char *name, bool *mq, char *err, size_t errlen)
{
	const short flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	int fd = attach(name, (short)(flags | (*mq ? IFF_MULTI_QUEUE : 0)), err, errlen);

	if (fd != -EINVAL || if_nametoindex(name) == 0)
		return fd;
	fd = attach(name, (short)(flags | (*mq ? 0 : IFF_MULTI_QUEUE)), err, errlen);
	if (fd >= 0)
		*mq = !*mq;
	return fd;
}

/* The vnet header and no offloads on the device (through its first queue's fd). */
static int tap_setup(const char *name, int fd, char *err, size_t errlen)
{
	int r, hdr_len = TAP_VNET_HDR_LEN;

	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		r = -errno;
		snprintf(err, errlen, "TAP '%s': cannot set the vnet header size: %s", name,
		         strerror(-r));
		return r;
	}
	/* A persistent TAP keeps the offloads its last user set; start from none. */
	r = tap_set_offload(fd, false, false, false);
	if (r < 0)
		snprintf(err, errlen, "TAP '%s': cannot set offloads: %s", name, strerror(-r));
	return r;
}

int tap_open(const char *name, unsigned nr_queues, bool exact, int fds[], char *err, size_t errlen)
{
	bool mq = nr_queues > 1;
	unsigned n = 0;
	int r;

	if (!name || !valid_name(name)) {
		snprintf(err, errlen,
		         "invalid TAP name '%s': 1 to %d characters, no '/', ':' or spaces",
		         name ? name : "", IFNAMSIZ - 1);
		return -EINVAL;
	}
	if (nr_queues < 1 || nr_queues > TAP_MAX_QUEUES) {
		snprintf(err, errlen, "TAP '%s': %u queues, 1 to %d", name, nr_queues,
		         TAP_MAX_QUEUES);
		return -EINVAL;
	}
	r = attach_first(name, &mq, err, errlen);
	if (r >= 0 && !mq && nr_queues > 1) {
		if (!exact) {
			nr_queues = 1;
		} else {
			close(r);
			snprintf(err, errlen,
			         "TAP '%s' is single-queue and cannot take %u queues: recreate it "
			         "with: sudo ip tuntap add dev %s mode tap multi_queue user $USER "
			         "(or use queues=1)",
			         name, nr_queues, name);
			return -EINVAL;
		}
	}
	if (r < 0)
		return r;
	fds[n++] = r;
	for (; n < nr_queues; n++) {
		r = attach(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE, err, errlen);
		if (r < 0)
			goto fail;
		fds[n] = r;
	}
	r = tap_setup(name, fds[0], err, errlen);
	if (r < 0)
		goto fail;
	return (int)nr_queues;
fail:
	while (n--)
		close(fds[n]);
	return r;
}

int tap_set_queue(int fd, bool enabled)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	return ioctl(fd, TUNSETQUEUE, &ifr) < 0 ? -errno : 0;
}

int tap_set_offload(int fd, bool csum, bool tso4, bool tso6)
{
	unsigned flags = 0;

	if (csum) {
		flags |= TUN_F_CSUM;
		if (tso4)
			flags |= TUN_F_TSO4;
		if (tso6)
			flags |= TUN_F_TSO6;
	}
	return ioctl(fd, TUNSETOFFLOAD, flags) < 0 ? -errno : 0;
}

static ssize_t tap_send(void *opaque, const struct iovec *iov, int iovcnt)
{
	ssize_t r = writev(*(const int *)opaque, iov, iovcnt);

	return r < 0 ? -errno : r;
}

static ssize_t tap_recv(void *opaque, const struct iovec *iov, int iovcnt)
{
	ssize_t r = readv(*(const int *)opaque, iov, iovcnt);

	return r < 0 ? -errno : r;
}

static int tap_offload(void *opaque, bool csum, bool tso4, bool tso6)
{
	return tap_set_offload(*(const int *)opaque, csum, tso4, tso6);
}

static int tap_queue(void *opaque, bool enabled)
{
	return tap_set_queue(*(const int *)opaque, enabled);
}

static const struct virtio_net_backend_ops tap_net_ops = {
        .send = tap_send,
        .recv = tap_recv,
        .set_offload = tap_offload,
};

static const struct virtio_net_backend_ops tap_mq_net_ops = {
        .send = tap_send,
        .recv = tap_recv,
        .set_offload = tap_offload,
        .set_queue = tap_queue,
};

void tap_net_backend(struct virtio_net_backend *be, int *fd, bool multi_queue)
{
	*be = (struct virtio_net_backend){.ops = multi_queue ? &tap_mq_net_ops : &tap_net_ops,
	                                  .opaque = fd,
	                                  .fd = *fd,
	                                  .offloads = true};
}

/* FNV-1a over @len bytes, continuing from @h. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

void net_mac_generate(const char *seed, unsigned index, uint8_t mac[NET_MAC_LEN])
{
	uint8_t idx[4] = {(uint8_t)index, (uint8_t)(index >> 8), (uint8_t)(index >> 16),
	                  (uint8_t)(index >> 24)};
	uint64_t h = 0xcbf29ce484222325ULL;

	h = fnv1a(h, seed ? seed : "", seed ? strlen(seed) + 1 : 1);
	h = fnv1a(h, idx, sizeof(idx));
	/* splitmix64's finaliser: every input bit reaches every byte we keep. */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	for (unsigned i = 0; i < NET_MAC_LEN; i++)
		mac[i] = (uint8_t)(h >> (8 * i));
	mac[0] = (uint8_t)((mac[0] & ~1u) | 2u); /* unicast, locally administered */
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int net_mac_parse(const char *text, uint8_t mac[NET_MAC_LEN])
{
	uint8_t out[NET_MAC_LEN];
	unsigned nonzero = 0;

	if (!text || strlen(text) != NET_MAC_STRLEN - 1)
		return -EINVAL;
	for (unsigned i = 0; i < NET_MAC_LEN; i++) {
		const char *p = text + 3 * i;
		int hi = hex_digit(p[0]), lo = hex_digit(p[1]);

		if (hi < 0 || lo < 0 || (i + 1 < NET_MAC_LEN && p[2] != ':'))
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
		nonzero |= out[i];
	}
	if ((out[0] & 1) || !nonzero)
		return -EINVAL;
	memcpy(mac, out, NET_MAC_LEN);
	return 0;
}

void net_mac_format(const uint8_t mac[NET_MAC_LEN], char out[NET_MAC_STRLEN])
{
	snprintf(out, NET_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
	         mac[3], mac[4], mac[5]);
}
