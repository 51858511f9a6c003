/* The hostfwd syntax of --net user (user_net.h), QEMU's; parsed without libslirp. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/user_net.h"

/* Takes the text up to @sep from *@p into @out (at most @outlen - 1 bytes). */
static bool take_field(const char **p, char sep, char *out, size_t outlen)
{
	const char *end = sep ? strchr(*p, sep) : *p + strlen(*p);
	size_t len;

	if (!end)
		return false;
	len = (size_t)(end - *p);
	if (len >= outlen)
		return false;
	memcpy(out, *p, len);
	out[len] = 0;
	*p = *end ? end + 1 : end;
	return true;
}

static bool parse_port(const char *text, uint16_t *out)
{
	unsigned long v;
	char *end;

	if (text[0] < '0' || text[0] > '9')
		return false;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (*end || errno || v == 0 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

static int forward_error(char *err, size_t errlen, const char *text, const char *why)
{
	snprintf(err, errlen,
	         "hostfwd '%s': %s (want [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT)",
	         text, why);
	return -EINVAL;
}

int user_net_parse_forward(const char *text, struct user_net_forward *out, char *err, size_t errlen)
{
	char proto[8], host[16], hport[8], guest[16], gport[8];
	const char *p = text;

	memset(out, 0, sizeof(*out));
	if (!take_field(&p, ':', proto, sizeof(proto)) ||
	    !take_field(&p, ':', host, sizeof(host)) ||
	    !take_field(&p, '-', hport, sizeof(hport)) ||
	    !take_field(&p, ':', guest, sizeof(guest)) || !take_field(&p, 0, gport, sizeof(gport)))
		return forward_error(err, errlen, text, "malformed");
	if (!strcmp(proto, "udp"))
		out->udp = true;
	else if (proto[0] && strcmp(proto, "tcp"))
		return forward_error(err, errlen, text, "the protocol is not tcp or udp");
	out->host_addr.s_addr = htonl(INADDR_ANY);
	if (host[0] && inet_pton(AF_INET, host, &out->host_addr) != 1)
		return forward_error(err, errlen, text,
		                     "the host address is not a dotted IPv4 address");
	out->guest_addr.s_addr = htonl(USER_NET_GUEST);
	if (guest[0] && inet_pton(AF_INET, guest, &out->guest_addr) != 1)
		return forward_error(err, errlen, text,
		                     "the guest address is not a dotted IPv4 address");
	if ((ntohl(out->guest_addr.s_addr) & USER_NET_MASK) != USER_NET_PREFIX)
		return forward_error(err, errlen, text, "the guest address is outside 10.0.2.0/24");
	if (!parse_port(hport, &out->host_port) || !parse_port(gport, &out->guest_port))
		return forward_error(err, errlen, text, "a port is not a number from 1 to 65535");
	return 0;
}

void user_net_format_forward(const struct user_net_forward *f, char *out, size_t outlen)
{
	char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &f->host_addr, host, sizeof(host));
	inet_ntop(AF_INET, &f->guest_addr, guest, sizeof(guest));
	snprintf(out, outlen, "%s:%s:%u-%s:%u", f->udp ? "udp" : "tcp", host, f->host_port, guest,
	         f->guest_port);
}
