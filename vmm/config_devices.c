/*
 * The device specs of the command line: --disk, --net and --share values (config.h). Each
 * parser fills one struct and reports the first problem as one line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/tap.h"
#include "devices/user_net.h"
#include "vmm/config.h"

static int spec_error(char *err, size_t errlen, const char *fmt, ...) PRINTF(3, 4);

static int spec_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* The key of the sub-option @opt of @len bytes: "serial" of "serial=ID", "ro" of "ro". */
static size_t key_len(const char *opt, size_t len)
{
	const char *eq = memchr(opt, '=', len);

	return eq ? (size_t)(eq - opt) : len;
}

/*
 * True when the sub-option @opt (@len bytes) repeats the key of one of the comma-separated parts
 * from @first up to @opt. A repeat is an error for every sub-option, whatever its values, so a
 * second value never half-replaces the first. The parsers stop at the first unknown part, so an
 * earlier part with the same key was a valid one.
 */
static bool repeated(const char *first, const char *opt, size_t len)
{
	size_t klen = key_len(opt, len);

	for (const char *p = first; p < opt; p += strcspn(p, ",") + 1) {
		if (key_len(p, strcspn(p, ",")) == klen && !strncmp(p, opt, klen))
			return true;
	}
	return false;
}

/* poll=USEC's value (@len digits at most 4 long, not NUL-terminated) into *@out. */
static int parse_poll(const char *digits, size_t len, int *out)
{
	int us = 0;

	for (size_t i = 0; i < len; i++) {
		if (digits[i] < '0' || digits[i] > '9')
			return -EINVAL;
		us = us * 10 + (digits[i] - '0');
	}
	if (us > POLL_MAX_US)
		return -EINVAL;
	*out = us;
	return 0;
}

/* One part of a --net value (@len bytes at @p) into @out. */
static int net_part(const char *p, size_t len, struct net_config *out, char *err, size_t errlen)
{
	char text[64], *end;

	if (len == 4 && strncmp(p, "user", 4) == 0) {
		out->user = true;
	} else if (len > 4 && strncmp(p, "tap=", 4) == 0 && len - 4 <= CONFIG_TAP_NAME_MAX) {
		memcpy(out->tap, p + 4, len - 4);
	} else if (len > 4 && strncmp(p, "mac=", 4) == 0 && len - 4 < NET_MAC_STRLEN) {
		snprintf(text, sizeof(text), "%.*s", (int)(len - 4), p + 4);
		if (net_mac_parse(text, out->mac))
			return spec_error(err, errlen,
			                  "--net: '%s' is not a unicast MAC like 52:54:00:12:34:56",
			                  text);
		out->has_mac = true;
	} else if (len > 7 && strncmp(p, "queues=", 7) == 0 && len - 7 < 3) {
		snprintf(text, sizeof(text), "%.*s", (int)(len - 7), p + 7);
		out->queues = (unsigned)strtoul(text, &end, 10);
		if (*end || text[0] < '1' || text[0] > '9' || out->queues > CONFIG_NET_MAX_QUEUES)
			return spec_error(err, errlen, "--net: queues=%s: 1 to %d queue pairs",
			                  text, CONFIG_NET_MAX_QUEUES);
	} else if (len > 5 && strncmp(p, "poll=", 5) == 0) {
		if (len > 9 || parse_poll(p + 5, len - 5, &out->poll_us))
			return spec_error(err, errlen, "--net: %.*s: poll=USEC of 0 to %d",
			                  (int)len, p, POLL_MAX_US);
	} else if (len > 8 && strncmp(p, "hostfwd=", 8) == 0 && len - 8 < sizeof(text)) {
		struct user_net_config *u = &out->user_cfg;
		char why[200];

		if (u->nr_forwards == USER_NET_MAX_FORWARDS)
			return spec_error(err, errlen, "--net: at most %d hostfwd= per NIC",
			                  USER_NET_MAX_FORWARDS);
		snprintf(text, sizeof(text), "%.*s", (int)(len - 8), p + 8);
		if (user_net_parse_forward(text, &u->forwards[u->nr_forwards], why, sizeof(why)))
			return spec_error(err, errlen, "--net: %s", why);
		u->nr_forwards++;
	} else {
		return spec_error(err, errlen,
		                  "--net: unknown or invalid part '%.*s' (tap=NAME of at most %d "
		                  "characters, user, hostfwd=..., mac=MAC, queues=N, poll=USEC)",
		                  (int)len, p, CONFIG_TAP_NAME_MAX);
	}
	return 0;
}

int config_parse_net(const char *spec, struct net_config *out, char *err, size_t errlen)
{
	const char *p = spec;

	memset(out, 0, sizeof(*out));
	out->poll_us = POLL_AUTO;
	for (;;) {
		size_t len = strcspn(p, ",");
		int ret;

		/* Several port forwards are the point; any other part once. */
		if (strncmp(p, "hostfwd=", 8) && repeated(spec, p, len))
			return spec_error(err, errlen, "--net: '%.*s' given twice",
			                  (int)key_len(p, len), p);
		ret = net_part(p, len, out, err, errlen);
		if (ret)
			return ret;
		if (!p[len])
			break;
		p += len + 1;
	}
	if (out->user == !!out->tap[0])
		return spec_error(err, errlen,
		                  "--net: expected tap=NAME[,mac=MAC][,queues=N][,poll=USEC] or "
		                  "user[,hostfwd=...]...[,mac=MAC][,poll=USEC]");
	if (out->user_cfg.nr_forwards && !out->user)
		return spec_error(err, errlen,
		                  "--net: hostfwd= needs user networking (--net user,...)");
	if (out->user && out->queues > 1)
		return spec_error(err, errlen,
		                  "--net: user networking has one queue pair (queues=1)");
	return 0;
}

/* An absolute path without empty, "." or ".." components and without a trailing '/'. */
static bool canonical_path(const char *path, size_t len)
{
	size_t i = 0;

	if (len < 2 || path[0] != '/' || path[len - 1] == '/')
		return false;
	while (i < len) {
		size_t part = 0;

		i++; /* the '/' */
		while (i + part < len && path[i + part] != '/')
			part++;
		if (part == 0 || (part == 1 && path[i] == '.') ||
		    (part == 2 && path[i] == '.' && path[i + 1] == '.'))
			return false;
		i += part;
	}
	return true;
}

int config_parse_share(const char *spec, struct share_config *out, char *err, size_t errlen)
{
	size_t path_len = strcspn(spec, ",");
	size_t host_len = strcspn(spec, ":,");
	const char *p = spec + path_len;

	memset(out, 0, sizeof(*out));
	if (host_len == 0 || host_len >= sizeof(out->host)) {
		return spec_error(err, errlen,
		                  "--share: expected HOSTDIR[:GUESTDIR][,ro][,tag=TAG]");
	}
	memcpy(out->host, spec, host_len);
	if (host_len < path_len) {
		size_t guest_len = path_len - host_len - 1;

		if (guest_len >= sizeof(out->guest) ||
		    !canonical_path(spec + host_len + 1, guest_len)) {
			return spec_error(err, errlen,
			                  "--share %s: GUESTDIR must be an absolute path other "
			                  "than / (no '.', "
			                  "'..', '//' or trailing '/')",
			                  spec);
		}
		memcpy(out->guest, spec + host_len + 1, guest_len);
	}
	while (*p == ',') {
		size_t len = strcspn(++p, ",");

		if (repeated(spec + path_len + 1, p, len)) {
			return spec_error(err, errlen, "--share: '%.*s' given twice",
			                  (int)key_len(p, len), p);
		}
		if (len == 2 && strncmp(p, "ro", 2) == 0) {
			out->read_only = true;
		} else if (len > 4 && strncmp(p, "tag=", 4) == 0 && len - 4 <= CONFIG_TAG_MAX) {
			memcpy(out->tag, p + 4, len - 4);
			out->tag[len - 4] = '\0';
		} else {
			return spec_error(
			        err, errlen,
			        "--share: unknown or invalid option '%.*s' (ro, tag=TAG of 1 to %d "
			        "bytes)",
			        (int)len, p, CONFIG_TAG_MAX);
		}
		p += len;
	}
	return 0;
}

static int disk_option(const char *opt, size_t len, struct disk_config *out)
{
	if (len == 2 && strncmp(opt, "ro", 2) == 0)
		out->read_only = true;
	else if (len == 10 && strncmp(opt, "cache=none", 10) == 0)
		out->cache = DISK_CACHE_NONE;
	else if (len == 15 && strncmp(opt, "cache=writeback", 15) == 0)
		out->cache = DISK_CACHE_WRITEBACK;
	else if (len >= 7 && strncmp(opt, "serial=", 7) == 0 && len - 7 <= CONFIG_SERIAL_MAX)
		snprintf(out->serial, sizeof(out->serial), "%.*s", (int)(len - 7), opt + 7);
	else if (len > 5 && len <= 9 && strncmp(opt, "poll=", 5) == 0)
		return parse_poll(opt + 5, len - 5, &out->poll_us);
	else
		return -EINVAL;
	return 0;
}

int config_parse_disk(const char *spec, struct disk_config *out, char *err, size_t errlen)
{
	size_t path_len = strcspn(spec, ",");
	const char *p = spec + path_len;

	memset(out, 0, sizeof(*out));
	out->poll_us = POLL_AUTO;
	if (path_len == 0 || path_len >= sizeof(out->path)) {
		return spec_error(err, errlen,
		                  "--disk: expected "
		                  "PATH[,ro][,cache=none|writeback][,serial=ID][,poll=USEC]");
	}
	memcpy(out->path, spec, path_len);
	while (*p == ',') {
		size_t len = strcspn(++p, ",");

		if (repeated(spec + path_len + 1, p, len)) {
			return spec_error(err, errlen, "--disk: '%.*s' given twice",
			                  (int)key_len(p, len), p);
		}
		if (disk_option(p, len, out)) {
			return spec_error(err, errlen,
			                  "--disk: unknown or invalid option '%.*s' (ro, "
			                  "cache=none|writeback, "
			                  "serial=ID of at most %d bytes, poll=USEC of 0 to %d)",
			                  (int)len, p, CONFIG_SERIAL_MAX, POLL_MAX_US);
		}
		p += len;
	}
	return 0;
}

int config_parse_vsock(const char *spec, struct vsock_config *out, char *err, size_t errlen)
{
	size_t path_len = strcspn(spec, ",");
	const char *opt = spec + path_len;
	/* "_4294967295" goes after PATH for guest-initiated streams. */
	const size_t path_max = sizeof(out->path) - 12;

	memset(out, 0, sizeof(*out));
	out->cid = 3;
	if (path_len == 0 || path_len > path_max)
		return spec_error(err, errlen,
		                  "--vsock: expected PATH[,cid=N] with a PATH of 1 to %zu bytes",
		                  path_max);
	memcpy(out->path, spec, path_len);
	if (*opt) {
		unsigned long long cid;
		char *end;

		errno = 0;
		cid = strncmp(opt, ",cid=", 5) || opt[5] < '0' || opt[5] > '9'
		              ? 0
		              : strtoull(opt + 5, &end, 10);
		if (!cid || errno || *end || cid < 3 || cid > 0xfffffffeULL)
			return spec_error(err, errlen,
			                  "--vsock: '%s' is not cid=N with N from 3 to 4294967294",
			                  opt + 1);
		out->cid = cid;
	}
	return 0;
}
