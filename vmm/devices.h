/*
 * The VM's virtio devices, made from the config: the disks, the NICs, the entropy source and the
 * console, each attached to the transport --transport chose, with the windows and interrupt lines
 * the arch set aside (arch.h), and the PCI host bridge when the arch has one (also with --transport
 * mmio, so the guest finds a config space). The arch's firmware tables describe what this module
 * recorded.
 */
#ifndef VMM_VMM_DEVICES_H
#define VMM_VMM_DEVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/pci/pci.h"
#include "devices/user_net.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/console.h"
#include "devices/virtio/fs.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_mmio.h"
#include "devices/virtio/virtio_pci.h"
#include "devices/virtio/vsock.h"
#include "vmm/config.h"
#include "vmm/msi.h"
#include "vmm/shares.h"
#include "vmm/util.h"

/* disks, NICs, shares, rng, console, vsock */
#define DEVICES_MAX (CONFIG_MAX_DISKS + CONFIG_MAX_NETS + SHARES_MAX + 3)

struct vm;

/* One virtio device on the virtio-mmio transport: its window and interrupt line. */
struct mmio_device {
	struct virtio_mmio transport;
	uint64_t base;
	unsigned gsi;
	bool attached;
};

/* One virtio device on PCI, with its INTx line. */
struct pci_virtio_device {
	struct virtio_pci transport;
	unsigned gsi;
};

struct vm_devices {
	bool has_pci; /* the PCI host and the MSI routes exist */
	struct pci_host pci;
	struct msi_router msi;
	struct blk_dev disks[CONFIG_MAX_DISKS];
	unsigned nr_disks; /* opened, to close */
	struct virtio_net nets[CONFIG_MAX_NETS];
	unsigned nr_nets;                            /* opened, to close */
	struct user_net *user_nets[CONFIG_MAX_NETS]; /* the host side of a --net user NIC */
	struct virtio_rng rng;
	bool has_rng;
	struct virtio_fs fs[SHARES_MAX];
	unsigned nr_fs; /* set up, to destroy */
	struct virtio_console console;
	bool has_console;
	struct virtio_vsock vsock;
	bool has_vsock;
	struct mmio_device mmio[DEVICES_MAX];
	unsigned nr_mmio;
	struct pci_virtio_device pci_devices[DEVICES_MAX];
	unsigned nr_pci_devices;
	unsigned nr_gsis_used;
	/* --save-ready on virtio-mmio: mmio[first_spare..] kept for the shares of a restore. */
	unsigned first_spare, nr_spares, nr_spares_used;
};

/*
 * Creates the devices @vm->config asks for on @vm's buses and event loop. Prints one error line
 * and returns -errno on failure (what was made is released by devices_destroy).
 */
int devices_create(struct vm *vm) MUST_CHECK;

/*
 * The virtio-fs device of each share in @vm->shares. devices_create makes them, except for a
 * restore (a --save-ready snapshot has none): vm.c then plugs them in after the snapshot's parts
 * are loaded, in the PCI slots the snapshot left empty. One error line; -errno.
 */
int devices_create_shares(struct vm *vm) MUST_CHECK;

/* Detaches and frees every device; call after the vCPUs and the event loop have stopped. */
void devices_destroy(struct vm *vm);

/* Host console input for the virtio console; returns the bytes it took. */
size_t devices_console_input(struct vm *vm, const uint8_t *buf, size_t len);

#endif
