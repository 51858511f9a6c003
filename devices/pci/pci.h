/*
 * A PCI host bridge with one bus (bus 0, function 0 of each of 32 slots) and type-0 config
 * spaces. Config space is reached through ECAM (4 KiB per function; offsets past the first 256
 * bytes read as zeros) and, where the arch has it, the 0xCF8/0xCFC mechanism (the first 256
 * bytes, or all 4 KiB with AMD's register bits 27:24 in CONFIG_ADDRESS). Memory BARs are
 * placed by the host in its 32-bit or 64-bit window; the guest may size them (write all-ones,
 * read the mask) and move them. The host claims each window on the MMIO bus and forwards an
 * access to the BAR that decodes it (memory space enabled in the command register).
 *
 * Everything the guest writes is checked: config accesses must stay inside one register dword
 * (CF8) or one function's 4 KiB (ECAM); bits outside a register's write mask are kept. Only
 * bus 0 and function 0 exist: every other function reads as all-ones, writes are dropped.
 *
 * Locking: the host's lock guards every config space and CONFIG_ADDRESS; it is not held while
 * a BAR's bus ops run (the device takes its own lock). Device hooks run under it. The one
 * exception is the Interrupt Status bit (pci_device_set_interrupt_status): atomic, lock-free.
 */
#ifndef VMM_DEVICES_PCI_PCI_H
#define VMM_DEVICES_PCI_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/snapshot.h"
#include "vmm/util.h"

#define PCI_SLOTS        32
#define PCI_CONFIG_SIZE  256  /* what a type-0 header and capabilities use */
#define PCI_ECAM_FN_SIZE 4096 /* per function in ECAM */
#define PCI_NUM_BARS     6

/* Config space registers. */
#define PCI_VENDOR_ID      0x00
#define PCI_DEVICE_ID      0x02
#define PCI_COMMAND        0x04
#define PCI_STATUS         0x06
#define PCI_REVISION_ID    0x08
#define PCI_CLASS_PROG     0x09
#define PCI_HEADER_TYPE    0x0e
#define PCI_BAR0           0x10
#define PCI_SUBSYS_VENDOR  0x2c
#define PCI_SUBSYS_ID      0x2e
#define PCI_CAPABILITY_PTR 0x34
#define PCI_INTERRUPT_LINE 0x3c
#define PCI_INTERRUPT_PIN  0x3d
#define PCI_CAP_START      0x40

#define PCI_COMMAND_IO           0x1
#define PCI_COMMAND_MEMORY       0x2
#define PCI_COMMAND_MASTER       0x4
#define PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS_INTERRUPT     0x8
#define PCI_STATUS_CAP_LIST      0x10
#define PCI_BAR_MEM_TYPE_64      0x4
#define PCI_BAR_MEM_PREFETCH     0x8

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

/* pci_device_add_bar flags. */
#define PCI_BAR_64BIT    (1u << 0)
#define PCI_BAR_PREFETCH (1u << 1)

struct pci_device;

struct pci_device_ops {
	/*
	 * The guest is about to read @size bytes at @offset: refresh live bytes (host lock held).
	 * While the host mirrors its ECAM in memory (pci_host_map_ecam) reads do not exit: a
	 * device whose config bytes change when read calls pci_device_trap_config_reads first.
	 */
	void (*config_read)(struct pci_device *d, unsigned offset, unsigned size);
	/* The guest wrote @size bytes at @offset of the config space (host lock held). */
	void (*config_written)(struct pci_device *d, unsigned offset, unsigned size);
	/*
	 * BAR @bar now decodes at @addr, or stopped decoding (@addr 0): memory space was
	 * switched, or the BAR moved. Host lock held.
	 */
	void (*bar_moved)(struct pci_device *d, unsigned bar, uint64_t addr);
};

struct pci_bar {
	uint64_t size; /* 0: not implemented */
	unsigned flags;
	const struct bus_ops *ops;
	void *opaque;
	uint64_t decoding; /* the address it answers at, 0 when it does not */
};

struct pci_device {
	uint8_t config[PCI_CONFIG_SIZE];
	uint8_t wmask[PCI_CONFIG_SIZE]; /* bits the guest may change */
	struct pci_bar bars[PCI_NUM_BARS];
	uint8_t next_cap;      /* where the next capability goes */
	uint8_t last_cap_next; /* offset of the last capability's next pointer, 0 if none */
	const struct pci_device_ops *ops;
	void *opaque;
	unsigned slot; /* set by pci_host_add_device */
	/* The INTx routing the host chose (pci_device_set_intx); the guest cannot change these,
	 * unlike the Interrupt Line register. Pin 0: no INTx. */
	uint8_t intx_pin, intx_gsi;
	struct pci_host *host; /* set by pci_host_add_device */
	/* PCI_STATUS_INTERRUPT or 0 (pci_device_set_interrupt_status); atomic. */
	uint8_t interrupt_status;
};

struct pci_layout {
	uint64_t ecam_base, ecam_size; /* 1 MiB per bus, 1 to 256 buses; only bus 0 is populated */
	uint16_t config_port;          /* 0: no 0xCF8/0xCFC mechanism */
	uint64_t mmio32_base, mmio32_size;
	uint64_t mmio64_base, mmio64_size; /* size 0: no 64-bit window */
};

/*
 * What the firmware tables describe: the windows in @layout, and for each non-NULL slots[s]
 * with intx_pin != 0 one routing entry (slot s, pin intx_pin) -> GSI intx_gsi. Slot 0 is the
 * host bridge. Both are fixed once set-up is over.
 */
struct pci_host {
	pthread_mutex_t lock;
	struct pci_layout layout;
	struct pci_device bridge; /* slot 0 */
	struct pci_device *slots[PCI_SLOTS];
	uint32_t config_address; /* 0xCF8 */
	uint64_t next32, next64; /* BAR allocation cursors */
	/*
	 * pci_host_map_ecam: function 0 of each slot as ECAM reads see it, one page per slot
	 * (NULL when not mirrored), and whether KVM serves the guest's reads from it. Set up
	 * before the guest runs; the pages change under the lock (the Status register's
	 * Interrupt Status bit: atomically).
	 */
	uint8_t *ecam_mirror;
	bool ecam_mapped;
	int vm_fd;
	uint32_t ecam_first_memslot;
};

/*
 * Claims the config mechanisms (ECAM over the whole of l->ecam_size, 0xCF8-0xCFF on @pio when
 * l->config_port) and the BAR windows on @mmio. Set-up time only. Returns 0, -EINVAL (bad
 * layout: ECAM not a whole number of 1 MiB buses up to 256, no 32-bit window), -EEXIST (a
 * range overlaps a registered one) or -ENOMEM. Call pci_host_destroy even on failure.
 */
int pci_host_init(struct pci_host *h, const struct pci_layout *l, struct bus *pio,
                  struct bus *mmio) MUST_CHECK;
void pci_host_destroy(struct pci_host *h);
/*
 * Lets the guest read bus 0's config space without exits, as Linux does for every register
 * once ECAM is its only config mechanism: each slot's function 0 becomes a read-only KVM
 * memory slot (@first_memslot + slot number) over a copy the host keeps current; writes still
 * exit. With @vm_fd < 0 only the copy is kept (tests). Set-up time, after pci_host_init and
 * before the guest runs. Returns 0, -EOPNOTSUPP (no read-only memory slots), -ENOSPC (too few
 * memory slots) or -errno; on failure reads exit as before.
 */
int pci_host_map_ecam(struct pci_host *h, int vm_fd, uint32_t first_memslot) MUST_CHECK;
/* True when the guest's ECAM reads reach the host (never mirrored, or no longer). */
bool pci_host_ecam_reads_exit(struct pci_host *h);
/*
 * @d's config space now has bytes that change when read (e.g. a window onto a BAR the guest
 * opened): the host stops serving ECAM reads from memory, for good. Host lock held (a hook).
 */
void pci_device_trap_config_reads(struct pci_device *d);
/*
 * The Status register's Interrupt Status bit: the device's INTx is pending (masked or not).
 * Any thread, no lock; calls for one device must not race (the device's INTx lock).
 */
void pci_device_set_interrupt_status(struct pci_device *d, bool pending);
/*
 * Snapshot of function @d's config space. Load takes only the bits the guest may change
 * (wmask), then lets the BARs decode where they now say (ops->bar_moved), without
 * ops->config_written: the device loads its own state. Reads the config space from @c (the
 * caller finishes the cursor).
 */
void pci_device_save(struct pci_host *h, struct pci_device *d, struct snap_writer *w);
int pci_device_load(struct pci_host *h, struct pci_device *d, struct snap_cursor *c, char *err,
                    size_t errlen) MUST_CHECK;
/* Registers the host bridge as snapshot part "PCIH" (the latch and the bridge's registers). */
int pci_host_snapshot_add(struct pci_host *h, struct snapshot_parts *parts) MUST_CHECK;

/*
 * A device's identity; class_code is 0xCCSSPP (class, subclass, programming interface). The
 * command register starts at 0 (nothing decodes); @ops (optional) observe the guest's config
 * accesses and BAR moves, @opaque is the device's.
 */
void pci_device_init(struct pci_device *d, uint16_t vendor, uint16_t device, uint32_t class_code,
                     uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id,
                     const struct pci_device_ops *ops, void *opaque);
/*
 * A memory BAR of @size bytes (a power of two, at least 4 KiB); a 64-bit one also takes BAR
 * @bar + 1. Accesses go to @ops with offsets from the BAR's start. Returns 0 or -EINVAL.
 */
int pci_device_add_bar(struct pci_device *d, unsigned bar, uint64_t size, unsigned flags,
                       const struct bus_ops *ops, void *opaque) MUST_CHECK;
/*
 * Appends a capability: @len bytes of @body (its first byte is the ID; the next pointer is
 * filled in), with @wmask (NULL: read-only) saying which bits the guest may write. Returns the
 * capability's config offset, or -ENOSPC.
 */
int pci_device_add_capability(struct pci_device *d, const void *body, unsigned len,
                              const uint8_t *wmask);
/*
 * INTx pin (1 = INTA) and the GSI it is routed to, as firmware would report it: fills the
 * Interrupt Pin and Line registers and d->intx_pin/intx_gsi.
 */
void pci_device_set_intx(struct pci_device *d, uint8_t pin, uint8_t line);
/*
 * Places the BARs (each naturally aligned; 64-bit ones in the 64-bit window when there is one)
 * and plugs @d into the first free slot, stored in d->slot. @d must stay valid until the host
 * is destroyed. Set-up time only. Returns 0 or -ENOSPC (no slot, or a window is full).
 */
int pci_host_add_device(struct pci_host *h, struct pci_device *d) MUST_CHECK;

/* @d's requester ID, as MSIs carry it: bus 0, device d->slot, function 0. */
static inline uint16_t pci_device_requester_id(const struct pci_device *d)
{
	return (uint16_t)(d->slot << 3);
}

/* Config space accessors for the owning device (host lock held, e.g. in hooks, or set-up). */
uint16_t pci_config_read16(const struct pci_device *d, unsigned offset);
uint32_t pci_config_read32(const struct pci_device *d, unsigned offset);

/*
 * Config access by (slot, offset) as the two mechanisms do, @offset + @size within 4 KiB
 * (callers check): an empty slot reads all-ones; bytes past the first 256 read as zeros and
 * ignore writes. Takes the host lock; runs the device's hooks.
 */
void pci_host_config_read(struct pci_host *h, unsigned slot, unsigned offset, void *data,
                          unsigned size);
void pci_host_config_write(struct pci_host *h, unsigned slot, unsigned offset, const void *data,
                           unsigned size);

#endif
