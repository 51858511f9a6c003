/*
 * libFuzzer target: the vhost-user front-end (devices/vhost_user/vhost_user.c) reading a
 * hostile back-end's replies. The input (at most 64 KiB) is everything the back-end sends: it
 * is written to the back-end's end of a socketpair, which is then shut for writing, so a
 * missing reply is EOF rather than a wait. The front-end runs a whole session: negotiate,
 * GET_QUEUE_NUM, SET_FEATURES, SET_MEM_TABLE (shared guest RAM), and the ring set-up requests
 * with their acks. Every failure must come with a message.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/vhost_user/vhost_user.h"
#include "tests/fuzz/fuzz.h"
#include "vmm/log.h"

#define MAX_INPUT (64 * KIB)

static struct guest_memory mem;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	memset(&mem, 0, sizeof(mem));
	mem.shared = true;
	fz_must(guest_memory_add(&mem, 0, 64 * KIB), "guest RAM");
	return 0;
}

/* The session the virtio-fs device runs, stopping at the first failure. */
static int session(struct vhost_user *vu)
{
	uint8_t *ram = mem.regions[0].host;
	unsigned base;
	uint64_t num;
	int r;

	r = vhost_user_negotiate(vu, VHOST_USER_PROTOCOL_SUPPORTED);
	if (!r && (vu->protocol_features & 1ULL << VHOST_USER_PROTOCOL_F_MQ))
		r = vhost_user_get_queue_num(vu, &num);
	if (!r)
		r = vhost_user_set_features(vu, 1ULL << 32 | (vu->protocol ? 1ULL << 30 : 0));
	if (!r)
		r = vhost_user_set_mem_table(vu, &mem);
	for (unsigned q = 0; q < 2 && !r; q++) {
		r = vhost_user_set_vring_num(vu, q, 64);
		if (!r)
			r = vhost_user_set_vring_addr(vu, q, ram, ram + 0x1000, ram + 0x2000);
		if (!r)
			r = vhost_user_set_vring_base(vu, q, 0);
		if (!r)
			r = vhost_user_set_vring_call(vu, q, -1);
		if (!r)
			r = vhost_user_set_vring_kick(vu, q, -1);
		if (!r && vu->protocol)
			r = vhost_user_set_vring_enable(vu, q, true);
	}
	if (!r)
		r = vhost_user_get_vring_base(vu, 0, &base);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhost_user vu;
	int sv[2], r;

	if (size > MAX_INPUT)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	/* The back-end's whole output, then EOF; our requests stay unread in its buffer. */
	if (size && write(sv[1], data, size) != (ssize_t)size)
		abort();
	shutdown(sv[1], SHUT_WR);
	fz_must(vhost_user_init(&vu, sv[0], 1000), "vhost_user_init");
	r = session(&vu);
	if (r && !vhost_user_error(&vu)[0])
		abort(); /* every failure is reported */
	vhost_user_close(&vu);
	close(sv[1]);
	return 0;
}
