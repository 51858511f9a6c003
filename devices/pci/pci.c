#include "devices/pci/pci.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/pci/ecam_mirror.h"
#include "vmm/log.h"

/* An ID for virtual hardware (Red Hat's range for QEMU devices: "PCIe host bridge"). */
#define HOST_BRIDGE_VENDOR 0x1b36
#define HOST_BRIDGE_DEVICE 0x0008
#define HOST_BRIDGE_CLASS  0x060000

#define CF8_ENABLE       0x80000000u
#define CF8_ADDRESS_BITS 0x0ffffffcu /* register 11:8, bus, device, function, register 7:2 */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

uint16_t pci_config_read16(const struct pci_device *d, unsigned offset)
{
	return (uint16_t)(d->config[offset] | d->config[offset + 1] << 8);
}

uint32_t pci_config_read32(const struct pci_device *d, unsigned offset)
{
	return pci_config_read16(d, offset) | (uint32_t)pci_config_read16(d, offset + 2) << 16;
}

void pci_device_init(struct pci_device *d, uint16_t vendor, uint16_t device, uint32_t class_code,
                     uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id,
                     const struct pci_device_ops *ops, void *opaque)
{
	memset(d, 0, sizeof(*d));
	put16(d->config + PCI_VENDOR_ID, vendor);
	put16(d->config + PCI_DEVICE_ID, device);
	d->config[PCI_REVISION_ID] = revision;
	d->config[PCI_CLASS_PROG] = (uint8_t)class_code;
	put16(d->config + PCI_CLASS_PROG + 1, (uint16_t)(class_code >> 8));
	put16(d->config + PCI_SUBSYS_VENDOR, subsys_vendor);
	put16(d->config + PCI_SUBSYS_ID, subsys_id);
	put16(d->wmask + PCI_COMMAND,
	      PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
	d->next_cap = PCI_CAP_START;
	d->ops = ops;
	d->opaque = opaque;
}

int pci_device_add_bar(struct pci_device *d, unsigned bar, uint64_t size, unsigned flags,
                       const struct bus_ops *ops, void *opaque)
{
	bool is64 = flags & PCI_BAR_64BIT;
	uint64_t mask = ~(size - 1);
	uint32_t low_flags = (is64 ? PCI_BAR_MEM_TYPE_64 : 0) |
	                     (flags & PCI_BAR_PREFETCH ? PCI_BAR_MEM_PREFETCH : 0);
	unsigned at = PCI_BAR0 + 4 * bar;

	if (bar >= PCI_NUM_BARS || (is64 && bar + 1 >= PCI_NUM_BARS) || size < 4096 ||
	    (size & (size - 1)) || (!is64 && size > (1ull << 31)) || d->bars[bar].size ||
	    (is64 && d->bars[bar + 1].size) ||
	    (bar > 0 && (d->bars[bar - 1].flags & PCI_BAR_64BIT)))
		return -EINVAL;
	d->bars[bar] = (struct pci_bar){.size = size, .flags = flags, .ops = ops, .opaque = opaque};
	put32(d->config + at, low_flags);
	/* The address bits the size leaves are writable: all-ones reads back the size mask. */
	put32(d->wmask + at, (uint32_t)mask & ~0xfu);
	if (is64)
		put32(d->wmask + at + 4, (uint32_t)(mask >> 32));
	return 0;
}

int pci_device_add_capability(struct pci_device *d, const void *body, unsigned len,
                              const uint8_t *wmask)
{
	unsigned at = d->next_cap;

	if (len < 2 || at + len > PCI_CONFIG_SIZE)
		return -ENOSPC;
	memcpy(d->config + at, body, len);
	d->config[at + 1] = 0;
	if (wmask)
		memcpy(d->wmask + at, wmask, len);
	d->wmask[at] = d->wmask[at + 1] = 0;
	if (d->last_cap_next)
		d->config[d->last_cap_next] = (uint8_t)at;
	else
		d->config[PCI_CAPABILITY_PTR] = (uint8_t)at;
	d->last_cap_next = (uint8_t)(at + 1);
	put16(d->config + PCI_STATUS, pci_config_read16(d, PCI_STATUS) | PCI_STATUS_CAP_LIST);
	d->next_cap = (uint8_t)MIN(ALIGN_UP(at + len, 4), PCI_CONFIG_SIZE - 1);
	return (int)at;
}

void pci_device_set_intx(struct pci_device *d, uint8_t pin, uint8_t line)
{
	d->config[PCI_INTERRUPT_PIN] = pin;
	d->config[PCI_INTERRUPT_LINE] = line;
	d->intx_pin = pin;
	d->intx_gsi = line;
}

/* The address BAR @bar holds (both halves of a 64-bit one). */
static uint64_t bar_address(const struct pci_device *d, unsigned bar)
{
	uint64_t addr = pci_config_read32(d, PCI_BAR0 + 4 * bar) & ~0xfull;

	if (d->bars[bar].flags & PCI_BAR_64BIT)
		addr |= (uint64_t)pci_config_read32(d, PCI_BAR0 + 4 * bar + 4) << 32;
	return addr;
}

static bool in_window(uint64_t addr, uint64_t size, uint64_t base, uint64_t wsize)
{
	return wsize && addr >= base && size <= wsize && addr - base <= wsize - size;
}

/* Re-derives where each BAR decodes after a config write; tells the device of changes. */
static void update_decoding(struct pci_host *h, struct pci_device *d)
{
	bool mem_on = pci_config_read16(d, PCI_COMMAND) & PCI_COMMAND_MEMORY;

	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bars[i];
		uint64_t addr = 0;

		if (!b->size)
			continue;
		if (mem_on) {
			addr = bar_address(d, i);
			/* Only inside a window does the host see the accesses. */
			if (!in_window(addr, b->size, h->layout.mmio32_base,
			               h->layout.mmio32_size) &&
			    !in_window(addr, b->size, h->layout.mmio64_base, h->layout.mmio64_size))
				addr = 0;
		}
		if (addr == b->decoding)
			continue;
		b->decoding = addr;
		if (d->ops && d->ops->bar_moved)
			d->ops->bar_moved(d, i, addr);
	}
}

static struct pci_device *device_at(struct pci_host *h, unsigned slot)
{
	return slot < PCI_SLOTS ? h->slots[slot] : NULL;
}

void pci_host_config_read(struct pci_host *h, unsigned slot, unsigned offset, void *data,
                          unsigned size)
{
	struct pci_device *d;

	pthread_mutex_lock(&h->lock);
	d = device_at(h, slot);
	if (!d) {
		memset(data, 0xff, size);
	} else {
		/* The part in the first 256 bytes; extended config space has no capabilities. */
		unsigned n = offset < PCI_CONFIG_SIZE ? MIN(size, PCI_CONFIG_SIZE - offset) : 0;

		memset(data, 0, size);
		if (n && d->ops && d->ops->config_read)
			d->ops->config_read(d, offset, n);
		if (n)
			memcpy(data, d->config + offset, n);
		if (offset <= PCI_STATUS && offset + n > PCI_STATUS)
			((uint8_t *)data)[PCI_STATUS - offset] |=
			        __atomic_load_n(&d->interrupt_status, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&h->lock);
}

void pci_host_config_write(struct pci_host *h, unsigned slot, unsigned offset, const void *data,
                           unsigned size)
{
	const uint8_t *src = data;
	struct pci_device *d;

	pthread_mutex_lock(&h->lock);
	d = device_at(h, slot);
	if (d && offset < PCI_CONFIG_SIZE) {
		unsigned n = MIN(size, PCI_CONFIG_SIZE - offset);

		/* Only writable bits change; read-only bytes are not even rewritten. */
		for (unsigned i = 0; i < n; i++) {
			uint8_t m = d->wmask[offset + i];
			if (m)
				d->config[offset + i] =
				        (uint8_t)((d->config[offset + i] & ~m) | (src[i] & m));
		}
		if (d->ops && d->ops->config_written)
			d->ops->config_written(d, offset, n);
		update_decoding(h, d);
		pci_ecam_mirror_update(h, d);
	}
	pthread_mutex_unlock(&h->lock);
}

/* ---- 0xCF8 / 0xCFC ---- */

/*
 * The slot and register CONFIG_ADDRESS names for an access at data port offset @off. Bits
 * 27:24 are register bits 11:8 as on AMD chipsets (Linux sets them when it uses that extension
 * on AMD hosts), so such accesses reach the empty extended space rather than alias the header.
 */
static bool cf8_target(const struct pci_host *h, unsigned off, unsigned size, unsigned *slot,
                       unsigned *reg)
{
	uint32_t a = h->config_address;

	/* Enabled, bus 0, function 0, and the access stays inside the dword. */
	if (!(a & CF8_ENABLE) || (a >> 16 & 0xff) != 0 || (a >> 8 & 7) != 0 || off + size > 4)
		return false;
	*slot = a >> 11 & 0x1f;
	*reg = (a >> 16 & 0xf00) + (a & 0xfc) + off;
	return true;
}

static int cf8_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct pci_host *h = opaque;
	unsigned slot, reg;
	bool ok;

	if (offset < 4) {
		uint32_t v;

		pthread_mutex_lock(&h->lock);
		v = h->config_address;
		pthread_mutex_unlock(&h->lock);
		if (offset == 0 && size == 4)
			memcpy(data, &v, 4);
		else
			memset(data, 0xff, size);
		return 0;
	}
	pthread_mutex_lock(&h->lock);
	ok = cf8_target(h, (unsigned)offset - 4, size, &slot, &reg);
	pthread_mutex_unlock(&h->lock);
	if (ok)
		pci_host_config_read(h, slot, reg, data, size);
	else
		memset(data, 0xff, size);
	return 0;
}

static int cf8_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct pci_host *h = opaque;
	unsigned slot, reg;
	bool ok;

	if (offset < 4) {
		/* Only a whole-dword write sets CONFIG_ADDRESS (byte writes to 0xCF9 are resets).
		 */
		if (offset == 0 && size == 4) {
			pthread_mutex_lock(&h->lock);
			memcpy(&h->config_address, data, 4);
			h->config_address &= CF8_ENABLE | CF8_ADDRESS_BITS;
			pthread_mutex_unlock(&h->lock);
		}
		return 0;
	}
	pthread_mutex_lock(&h->lock);
	ok = cf8_target(h, (unsigned)offset - 4, size, &slot, &reg);
	pthread_mutex_unlock(&h->lock);
	if (ok)
		pci_host_config_write(h, slot, reg, data, size);
	return 0;
}

static const struct bus_ops cf8_ops = {.read = cf8_read, .write = cf8_write};

/* ---- ECAM ---- */

/* ECAM: bus in bits 20-27, device 15-19, function 12-14, register 0-11 of the offset. */
static bool ecam_target(uint64_t offset, unsigned size, unsigned *slot, unsigned *reg)
{
	unsigned r = offset & (PCI_ECAM_FN_SIZE - 1);

	/* Bus 0, function 0, inside the function's 4 KiB. */
	if (offset >> 20 || (offset >> 12 & 7) || r + size > PCI_ECAM_FN_SIZE)
		return false;
	*slot = (unsigned)(offset >> 15) & 0x1f;
	*reg = r;
	return true;
}

static int ecam_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	unsigned slot, reg;

	if (ecam_target(offset, size, &slot, &reg))
		pci_host_config_read(opaque, slot, reg, data, size);
	else
		memset(data, 0xff, size);
	return 0;
}

static int ecam_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	unsigned slot, reg;

	if (ecam_target(offset, size, &slot, &reg))
		pci_host_config_write(opaque, slot, reg, data, size);
	return 0;
}

static const struct bus_ops ecam_ops = {.read = ecam_read, .write = ecam_write};

/* ---- BAR windows ---- */

/* Finds the BAR decoding [addr, addr + size); copies what the access needs. */
static bool find_bar(struct pci_host *h, uint64_t addr, unsigned size, struct pci_bar *out,
                     uint64_t *offset)
{
	bool found = false;

	pthread_mutex_lock(&h->lock);
	for (unsigned s = 0; s < PCI_SLOTS && !found; s++) {
		struct pci_device *d = h->slots[s];

		for (unsigned i = 0; d && i < PCI_NUM_BARS && !found; i++) {
			const struct pci_bar *b = &d->bars[i];

			if (b->decoding && addr >= b->decoding && addr - b->decoding < b->size) {
				found = addr - b->decoding + size <= b->size;
				*out = *b;
				*offset = addr - b->decoding;
			}
		}
	}
	pthread_mutex_unlock(&h->lock);
	return found;
}

static int window_access(struct pci_host *h, uint64_t addr, void *data, unsigned size,
                         bool is_write)
{
	struct pci_bar bar;
	uint64_t offset;

	if (!find_bar(h, addr, size, &bar, &offset)) {
		if (!is_write)
			memset(data, 0xff, size);
		return 0;
	}
	return is_write ? bar.ops->write(bar.opaque, offset, data, size)
	                : bar.ops->read(bar.opaque, offset, data, size);
}

static int win32_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct pci_host *h = opaque;

	return window_access(h, h->layout.mmio32_base + offset, data, size, false);
}

static int win32_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct pci_host *h = opaque;

	return window_access(h, h->layout.mmio32_base + offset, (void *)data, size, true);
}

static int win64_read(void *opaque, uint64_t offset, void *data, unsigned size)
{
	struct pci_host *h = opaque;

	return window_access(h, h->layout.mmio64_base + offset, data, size, false);
}

static int win64_write(void *opaque, uint64_t offset, const void *data, unsigned size)
{
	struct pci_host *h = opaque;

	return window_access(h, h->layout.mmio64_base + offset, (void *)data, size, true);
}

static const struct bus_ops win32_ops = {.read = win32_read, .write = win32_write};
static const struct bus_ops win64_ops = {.read = win64_read, .write = win64_write};

int pci_host_init(struct pci_host *h, const struct pci_layout *l, struct bus *pio, struct bus *mmio)
{
	int ret;

	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	h->layout = *l;
	h->vm_fd = -1;
	h->next32 = l->mmio32_base;
	h->next64 = l->mmio64_base;
	if (l->ecam_size < MIB || l->ecam_size > 256 * MIB || l->ecam_size % MIB || !l->mmio32_size)
		return -EINVAL;
	pci_device_init(&h->bridge, HOST_BRIDGE_VENDOR, HOST_BRIDGE_DEVICE, HOST_BRIDGE_CLASS, 0, 0,
	                0, NULL, NULL);
	h->slots[0] = &h->bridge;
	h->bridge.host = h;
	ret = bus_register(mmio, l->ecam_base, l->ecam_size, &ecam_ops, h, "pci-ecam");
	if (!ret && l->config_port)
		ret = bus_register(pio, l->config_port, 8, &cf8_ops, h, "pci-config");
	if (!ret)
		ret = bus_register(mmio, l->mmio32_base, l->mmio32_size, &win32_ops, h,
		                   "pci-mmio32");
	if (!ret && l->mmio64_size)
		ret = bus_register(mmio, l->mmio64_base, l->mmio64_size, &win64_ops, h,
		                   "pci-mmio64");
	return ret;
}

void pci_host_destroy(struct pci_host *h)
{
	pci_ecam_mirror_destroy(h);
	pthread_mutex_destroy(&h->lock);
}

/* Allocates @size bytes, naturally aligned, from a window cursor. */
static int place(uint64_t *cursor, uint64_t base, uint64_t wsize, uint64_t size, uint64_t *out)
{
	uint64_t at = ALIGN_UP(*cursor, size);

	if (!in_window(at, size, base, wsize))
		return -ENOSPC;
	*out = at;
	*cursor = at + size;
	return 0;
}

int pci_host_add_device(struct pci_host *h, struct pci_device *d)
{
	unsigned slot = 1;
	int ret = 0;

	pthread_mutex_lock(&h->lock);
	while (slot < PCI_SLOTS && h->slots[slot])
		slot++;
	if (slot == PCI_SLOTS)
		ret = -ENOSPC;
	for (unsigned i = 0; i < PCI_NUM_BARS && !ret; i++) {
		const struct pci_bar *b = &d->bars[i];
		bool want64 = b->flags & PCI_BAR_64BIT && h->layout.mmio64_size;
		uint64_t addr;

		if (!b->size)
			continue;
		ret = want64 ? place(&h->next64, h->layout.mmio64_base, h->layout.mmio64_size,
		                     b->size, &addr)
		             : place(&h->next32, h->layout.mmio32_base, h->layout.mmio32_size,
		                     b->size, &addr);
		if (ret)
			break;
		put32(d->config + PCI_BAR0 + 4 * i,
		      (uint32_t)addr | (pci_config_read32(d, PCI_BAR0 + 4 * i) & 0xf));
		if (b->flags & PCI_BAR_64BIT)
			put32(d->config + PCI_BAR0 + 4 * i + 4, (uint32_t)(addr >> 32));
	}
	if (!ret) {
		d->slot = slot;
		d->host = h;
		h->slots[slot] = d;
		pci_ecam_mirror_fill(h, d);
	}
	pthread_mutex_unlock(&h->lock);
	return ret;
}

void pci_device_save(struct pci_host *h, struct pci_device *d, struct snap_writer *w)
{
	pthread_mutex_lock(&h->lock);
	snap_put_bytes(w, d->config, sizeof(d->config));
	pthread_mutex_unlock(&h->lock);
}

int pci_device_load(struct pci_host *h, struct pci_device *d, struct snap_cursor *c, char *err,
                    size_t errlen)
{
	uint8_t config[sizeof(d->config)];

	snap_get_bytes(c, config, sizeof(config));
	if (c->overrun) {
		snprintf(err, errlen, "the config space is cut short");
		return -EINVAL;
	}
	pthread_mutex_lock(&h->lock);
	for (size_t i = 0; i < sizeof(config); i++)
		d->config[i] = (uint8_t)((d->config[i] & ~d->wmask[i]) | (config[i] & d->wmask[i]));
	update_decoding(h, d);
	pci_ecam_mirror_update(h, d);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* The CONFIG_ADDRESS latch and the host bridge's config space (the functions save their own). */
static int host_save(void *opaque, struct snap_writer *w, char *err, size_t errlen)
{
	struct pci_host *h = opaque;

	(void)err;
	(void)errlen;
	pthread_mutex_lock(&h->lock);
	snap_put_u32(w, h->config_address);
	snap_put_bytes(w, h->bridge.config, sizeof(h->bridge.config));
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static int host_load(void *opaque, struct snap_cursor *c, char *err, size_t errlen)
{
	struct pci_host *h = opaque;
	uint32_t address = snap_get_u32(c);
	uint8_t config[sizeof(h->bridge.config)];
	int ret;

	snap_get_bytes(c, config, sizeof(config));
	ret = snap_cursor_finish(c, err, errlen);
	if (ret)
		return ret;
	pthread_mutex_lock(&h->lock);
	h->config_address = address;
	/* Only what the guest may change: the identity stays this vmm's. */
	for (size_t i = 0; i < sizeof(config); i++)
		h->bridge.config[i] = (uint8_t)((h->bridge.config[i] & ~h->bridge.wmask[i]) |
		                                (config[i] & h->bridge.wmask[i]));
	pci_ecam_mirror_update(h, &h->bridge);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

int pci_host_snapshot_add(struct pci_host *h, struct snapshot_parts *parts)
{
	return snapshot_add(parts, "PCIH", 0, host_save, host_load, h);
}
