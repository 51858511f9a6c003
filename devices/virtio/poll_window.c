/* The adaptive polling window of a virtqueue; see poll_window.h. */
#include "devices/virtio/poll_window.h"

#include <time.h>

#include "vmm/util.h"

uint64_t poll_window_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void poll_window_init(struct poll_window *w, uint32_t max_ns)
{
	*w = (struct poll_window){.max_ns = MIN(max_ns, POLL_WINDOW_MAX_NS)};
}

uint32_t poll_window_idle(struct poll_window *w, uint64_t now)
{
	if (!w->idle_since)
		w->idle_since = now;
	return w->ns;
}

void poll_window_work(struct poll_window *w, uint64_t now)
{
	uint64_t gap;

	if (!w->idle_since)
		return;
	gap = now > w->idle_since ? now - w->idle_since : 0;
	w->idle_since = 0;
	if (gap <= w->ns) {
		w->hits++;
	} else if (gap < w->max_ns) {
		w->ns = w->ns ? MIN(w->ns * 2, w->max_ns) : MIN(POLL_WINDOW_START_NS, w->max_ns);
		w->grows++;
	} else if (w->ns) {
		w->ns = w->ns / 2 < POLL_WINDOW_START_NS ? 0 : w->ns / 2;
		w->shrinks++;
	}
}

bool vq_poll_idle(struct vq_poll *p, struct virtqueue *vq, uint64_t now, bool hold)
{
	uint32_t ns = hold ? 0 : poll_window_idle(&p->win, now);

	if (ns) {
		vq_notify_off(vq);
		p->deadline = now + ns;
		return true;
	}
	return vq->notify_off && vq_notify_on(vq);
}

bool vq_poll_look(struct vq_poll *p, struct virtqueue *vq, bool *again)
{
	*again = false;
	if (vq_has_avail(vq))
		return true;
	if (!vq->notify_off)
		return false;
	if (poll_window_now() < p->deadline) {
		*again = true;
		return false;
	}
	return vq_notify_on(vq);
}
