/*
 * Inside virtio-vsock: the host half of its streams (vsock_stream.c), which the device half
 * (vsock.c) drives. Every call is on the event-loop thread with the device lock held.
 */
#ifndef VMM_DEVICES_VIRTIO_VSOCK_STREAM_H
#define VMM_DEVICES_VIRTIO_VSOCK_STREAM_H

#include <stdint.h>

#include "devices/virtio/vsock.h"

#define VSOCK_HDR_LEN ((uint32_t)sizeof(struct virtio_vsock_hdr))

/* Bytes the guest has room for: its buffer less what we sent and it did not consume yet. */
static inline uint32_t stream_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* The stream joining @guest_port and @host_port (past its CONNECT line), or NULL. */
struct vsock_conn *stream_find(struct virtio_vsock *v, uint32_t guest_port, uint32_t host_port);
/* A free slot for a stream on the open socket @fd, not yet watched; NULL when all are taken. */
struct vsock_conn *stream_new(struct virtio_vsock *v, int fd);
/* Closes the socket and frees the slot. */
void stream_free(struct vsock_conn *c);
/* Ends the stream: the socket closes now, the guest gets a RST (then the slot is free). */
void stream_reset(struct vsock_conn *c);
/* A RST owed for a packet that matches no stream (dropped when too many are owed). */
void stream_stray_rst(struct virtio_vsock *v, uint32_t guest_port, uint32_t host_port);
/* Sets what the socket wakes the loop for, from the stream's state (off the loop: none). */
void stream_update_watch(struct vsock_conn *c);

/* The guest accepted a host-initiated stream: "OK <hostport>\n" to the host, then data. */
void stream_host_connected(struct vsock_conn *c);
/* Writes what waits for the host while its socket takes it; then the guest's shutdowns. */
void stream_flush(struct vsock_conn *c);
/* An RW packet's @len payload bytes (after the header in @chain) toward the host socket. */
void stream_guest_data(struct vsock_conn *c, const struct vq_chain *chain, uint32_t len);
/* The guest's SHUTDOWN flags take effect once its data reached the host socket. */
void stream_apply_shutdown(struct vsock_conn *c);

/* A host-initiated stream's CONNECT line, taken as it arrives; on a bad one, the slot frees. */
void stream_read_line(struct vsock_conn *c);
/* A connected socket to PATH_<port>, or -errno (nobody listens there). */
int stream_connect_host(struct virtio_vsock *v, uint32_t port);
/* Listens on v->path (a stale socket there is replaced). Returns 0 or -errno with @err. */
int vsock_listen(struct virtio_vsock *v, char *err, size_t errlen);

#endif
