#include "vmm/devices.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "arch/arch.h"
#include "devices/tap.h"
#include "vmm/log.h"
#include "vmm/run.h"
#include "vmm/sandbox.h"
#include "vmm/vm.h"

static const unsigned device_gsis[] = ARCH_DEVICE_GSIS;

static int next_gsi(struct vm_devices *d, unsigned *gsi)
{
	if (d->nr_gsis_used >= ARRAY_SIZE(device_gsis))
		return -ENOSPC;
	*gsi = device_gsis[d->nr_gsis_used++];
	return 0;
}

/* Attaches @vdev to window @m, placed already. */
static int attach_window(struct vm *vm, struct mmio_device *m, struct virtio_dev *vdev,
                         const char *what)
{
	int ret = virtio_mmio_attach(&m->transport, vdev, &vm->mmio, m->base, vm->vm_fd, m->gsi,
	                             &vm->loop);

	if (ret) {
		log_error("%s: cannot attach to virtio-mmio at %#llx: %s", what,
		          (unsigned long long)m->base, strerror(-ret));
		return ret;
	}
	m->attached = true;
	return 0;
}

static int attach_mmio(struct vm *vm, struct virtio_dev *vdev, const char *what)
{
	struct vm_devices *d = &vm->devices;
	struct mmio_device *m;
	int ret;

	if (d->nr_mmio >= ARCH_VIRTIO_MMIO_MAX || d->nr_mmio >= DEVICES_MAX) {
		log_error("%s: no virtio-mmio window left (at most %d devices)", what,
		          ARCH_VIRTIO_MMIO_MAX);
		return -ENOSPC;
	}
	m = &d->mmio[d->nr_mmio];
	m->base = ARCH_VIRTIO_MMIO_BASE + d->nr_mmio * ARCH_VIRTIO_MMIO_STRIDE;
	ret = next_gsi(d, &m->gsi);
	if (ret) {
		log_error("%s: no interrupt line left", what);
		return ret;
	}
	ret = attach_window(vm, m, vdev, what);
	if (ret)
		return ret;
	d->nr_mmio++;
	return virtio_mmio_snapshot_add(&m->transport, &vm->snapshot, d->nr_mmio - 1);
}

static int attach_pci(struct vm *vm, struct virtio_dev *vdev, const char *what)
{
	struct vm_devices *d = &vm->devices;
	struct pci_virtio_device *p = &d->pci_devices[d->nr_pci_devices];
	int ret;

	if (d->nr_pci_devices >= DEVICES_MAX || next_gsi(d, &p->gsi)) {
		log_error("%s: no PCI slot or interrupt line left", what);
		return -ENOSPC;
	}
	ret = virtio_pci_attach(&p->transport, vdev, &d->pci, vm->vm_fd, &d->msi, p->gsi,
	                        &vm->loop);
	if (ret) {
		log_error("%s: cannot attach to PCI: %s", what, strerror(-ret));
		return ret;
	}
	d->nr_pci_devices++;
	return virtio_pci_snapshot_add(&p->transport, &vm->snapshot, d->nr_pci_devices - 1);
}

/*
 * A --save-ready machine on virtio-mmio, which cannot be hot-plugged: a window and a line for
 * each share a restore may bring (SHARES_MAX), described with the others. Until a device takes
 * it, a window reads as a placeholder the guest's driver leaves unbound. Restored, the windows
 * of this run's shares stay unclaimed for attach_spare, after the snapshot's parts.
 */
static int reserve_spares(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;
	int ret = 0;

	if (!vm->config->save_ready || (vm->config->transport == TRANSPORT_PCI && d->has_pci))
		return 0;
	d->first_spare = d->nr_mmio;
	for (unsigned i = 0; i < SHARES_MAX && !ret; i++) {
		struct mmio_device *m = &d->mmio[d->nr_mmio];

		if (d->nr_mmio >= ARCH_VIRTIO_MMIO_MAX || d->nr_mmio >= DEVICES_MAX ||
		    next_gsi(d, &m->gsi)) {
			log_error(
			        "--save-ready: no virtio-mmio window or line left for the shares");
			return -ENOSPC;
		}
		m->base = ARCH_VIRTIO_MMIO_BASE + d->nr_mmio * ARCH_VIRTIO_MMIO_STRIDE;
		if (!vm->restore || i >= vm->shares.nr)
			ret = virtio_mmio_add_placeholder(&vm->mmio, m->base);
		d->nr_mmio++;
		d->nr_spares++;
	}
	if (ret)
		log_error("--save-ready: cannot claim the shares' windows: %s", strerror(-ret));
	return ret;
}

/* A restored --save-ready machine's share, in the next spare window (reserve_spares). */
static int attach_spare(struct vm *vm, struct virtio_dev *vdev, const char *what)
{
	struct vm_devices *d = &vm->devices;
	unsigned index = d->first_spare + d->nr_spares_used;
	int ret;

	if (d->nr_spares_used == d->nr_spares)
		return -ENOSPC;
	ret = attach_window(vm, &d->mmio[index], vdev, what);
	if (ret)
		return ret;
	d->nr_spares_used++;
	return virtio_mmio_snapshot_add(&d->mmio[index].transport, &vm->snapshot, index);
}

/* Attaches @vdev to the transport the config chose; @what names it in errors. */
static int attach(struct vm *vm, struct virtio_dev *vdev, const char *what)
{
	if (vm->devices.nr_spares)
		return attach_spare(vm, vdev, what);
	if (vm->config->transport == TRANSPORT_PCI && vm->devices.has_pci)
		return attach_pci(vm, vdev, what);
	return attach_mmio(vm, vdev, what);
}

/*
 * Config reads from memory (no exits): Linux reads every register through ECAM when it has no
 * 0xCF8 ports. Without read-only memory slots reads exit, as they always did.
 */
static void map_ecam(struct pci_host *pci, int vm_fd)
{
	int ret = pci_host_map_ecam(pci, vm_fd, MEM_SLOT_PCI_ECAM);

	if (ret)
		log_debug("PCI config reads exit: cannot map ECAM read-only: %s", strerror(-ret));
	else
		sandbox_allow_memslot_removal();
}

/* The PCI host bridge and the MSI routing table, where the arch has PCI. */
static int create_pci_host(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;
	struct msi_translation translation;
	struct pci_layout layout;
	int ret;

	if (!arch_pci_layout(vm, &layout))
		return 0;
	ret = msi_router_init(&d->msi, vm->vm_fd);
	arch_msi_translation(vm, &translation);
	msi_router_set_translation(&d->msi, &translation);
	if (ret) {
		log_error("cannot set up the MSI routing table (KVM_SET_GSI_ROUTING): %s",
		          strerror(-ret));
		msi_router_destroy(&d->msi);
		return ret;
	}
	ret = pci_host_init(&d->pci, &layout, &vm->pio, &vm->mmio);
	d->has_pci = true;
	if (!ret)
		map_ecam(&d->pci, vm->vm_fd);
	/* CONFIG_ADDRESS only latches; the CONFIG_DATA access after it exits and replays it. */
	if (!ret && layout.config_port)
		ret = coalesced_io_add_pio(&vm->coalesced, layout.config_port, 4);
	if (!ret)
		ret = pci_host_snapshot_add(&d->pci, &vm->snapshot);
	if (ret)
		log_error("cannot set up the PCI host bridge: %s", strerror(-ret));
	return ret;
}

/*
 * A disk's polling cap in us: poll=USEC (@configured), or by default
 * - POLL_NESTED_US when vmm runs in a VM: the guest's notifications are nested exits, each
 *   costing more than polling does even where polling takes the vCPUs' own CPU (bench/blk
 *   nested, one L1 CPU for two vCPUs and the loop: 4 KiB random reads 1.6x as fast, a
 *   quarter of the notifications);
 * - POLL_DEF_US where the CPUs vmm may run on outnumber the vCPUs and the event-loop
 *   thread (polling takes a CPU while it lasts);
 * - 0 otherwise, where a polling loop would take the time of the vCPUs whose requests it awaits
 *   and saves only a cheap exit.
 */
static unsigned disk_poll_us(const struct vm *vm, int configured)
{
	cpu_set_t set;
	long cpus;

	if (configured != POLL_AUTO)
		return (unsigned)configured;
	if (arch_host_is_virtual())
		return POLL_NESTED_US;
	cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set)
	                                                    : sysconf(_SC_NPROCESSORS_ONLN);
	return cpus > (long)vm->config->cpus + 1 ? POLL_DEF_US : 0;
}

static int create_disks(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;
	char err[256], what[32];
	int ret;

	for (unsigned i = 0; i < vm->config->nr_disks; i++) {
		const struct disk_config *dc = &vm->config->disks[i];
		const struct blk_options opts = {
		        .path = dc->path,
		        .read_only = dc->read_only,
		        .cache =
		                dc->cache == DISK_CACHE_NONE ? BLK_CACHE_NONE : BLK_CACHE_WRITEBACK,
		        .serial = dc->serial,
		        /* A queue per vCPU: each submits without meeting the others in the guest.
		         */
		        .num_queues = MIN(vm->config->cpus, BLK_MAX_QUEUES),
		        .poll_ns = disk_poll_us(vm, dc->poll_us) * 1000,
		};

		ret = blk_open(&d->disks[i], &opts, &vm->mem, &vm->loop, err, sizeof(err));
		if (ret) {
			log_error("%s", err);
			return ret;
		}
		d->nr_disks++;
		log_debug("disk %u: polling %s (cap %u us)", i, opts.poll_ns ? "on" : "off",
		          opts.poll_ns / 1000);
		snprintf(what, sizeof(what), "disk %u", i);
		ret = attach(vm, &d->disks[i].vdev, what);
		if (ret)
			return ret;
	}
	return 0;
}

/* NIC @i's device, on its TAP or on a user network. */
static int open_net(struct vm *vm, unsigned i, const uint8_t mac[NET_MAC_LEN], char *err,
                    size_t errlen)
{
	const struct net_config *nc = &vm->config->nets[i];
	struct vm_devices *d = &vm->devices;
	struct virtio_net_backend be;
	int ret;

	/* A queue pair per vCPU, as for disks, unless queues= says how many. */
	if (!nc->user)
		return virtio_net_open(&d->nets[i], nc->tap,
		                       nc->queues ? nc->queues
		                                  : MIN(vm->config->cpus, VIRTIO_NET_MAX_PAIRS),
		                       nc->queues != 0, mac, &vm->mem, &vm->loop, err, errlen);
	d->user_nets[i] = user_net_open(&nc->user_cfg, &vm->loop, err, errlen);
	if (!d->user_nets[i])
		return -EINVAL;
	sandbox_allow_user_net();
	user_net_backend(d->user_nets[i], &be);
	ret = virtio_net_init(&d->nets[i], "user", mac, &vm->mem, &vm->loop, &be, 1);
	if (ret)
		snprintf(err, errlen, "--net user: %s", strerror(-ret));
	return ret;
}

static int create_nets(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;
	char err[256], what[48];
	uint8_t mac[NET_MAC_LEN];
	unsigned poll_us;
	int ret;

	for (unsigned i = 0; i < vm->config->nr_nets; i++) {
		const struct net_config *nc = &vm->config->nets[i];
		const char *name = nc->user ? "user" : nc->tap;

		if (nc->has_mac)
			memcpy(mac, nc->mac, sizeof(mac));
		else
			net_mac_generate(name, i, mac);
		ret = open_net(vm, i, mac, err, sizeof(err));
		if (ret) {
			log_error("%s", err);
			return ret;
		}
		d->nr_nets++;
		/*
		 * Off unless asked: in the one place it was measured (bench/net nested, one L1
		 * CPU) the window was never earned, doorbells per MB and throughput the same with
		 * poll=1000 as with 0: the guest's next packet waits for the host's ACK, which
		 * waits for the CPU the loop polls on.
		 */
		poll_us = nc->poll_us == POLL_AUTO ? 0 : (unsigned)nc->poll_us;
		ret = virtio_net_set_poll(&d->nets[i], poll_us * 1000);
		if (ret)
			return ret;
		log_debug("net %u: transmit polling %s (cap %u us)", i, poll_us ? "on" : "off",
		          poll_us);
		if (nc->user)
			snprintf(what, sizeof(what), "NIC %u (user network)", i);
		else
			snprintf(what, sizeof(what), "NIC %u (TAP %s)", i, nc->tap);
		ret = attach(vm, &d->nets[i].vdev, what);
		if (ret)
			return ret;
	}
	return 0;
}

/* A virtio-fs device for each share, on the socket of its virtiofsd. */
int devices_create_shares(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;
	char err[256], what[64];
	int ret;

	for (unsigned i = 0; i < vm->shares.nr; i++) {
		struct share *sh = &vm->shares.items[i];

		ret = virtio_fs_init(&d->fs[i], sh->tag, sh->sock, &vm->mem, &vm->loop, err,
		                     sizeof(err));
		sh->sock = -1; /* the device owns it now */
		d->nr_fs++;
		if (ret) {
			char daemon[400];

			/* A daemon that died says why better than the connection it dropped. */
			child_describe(&sh->daemon, daemon, sizeof(daemon));
			log_error("--share %s: %s (%s)", sh->host, err, daemon);
			return ret;
		}
		snprintf(what, sizeof(what), "virtio-fs %s", sh->tag);
		ret = attach(vm, &d->fs[i].vdev, what);
		if (ret)
			return ret;
	}
	return 0;
}

/* vmm's stdout has room again, or the chardev flushes at exit: the console goes on. */
static void console_output_space(void *opaque)
{
	struct vm_devices *d = opaque;

	virtio_console_port_writable(&d->console, 0);
}

/* --console virtio's hvc0, or --run's ports to the init. */
static int create_console(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;

	if (vm->run) {
		struct virtio_console_port_config ports[RUN_NR_PORTS];

		run_console_ports(vm->run, &d->console, ports);
		virtio_console_init_multiport(&d->console, &vm->mem, ports, RUN_NR_PORTS);
	} else if (vm->config->console == CONSOLE_VIRTIO) {
		const struct virtio_console_backend backend = {
		        .write = chardev_try_write_cb,
		        .rx_space = chardev_input_space_cb,
		        .opaque = &vm->console,
		};

		virtio_console_init(&d->console, &vm->mem, &backend);
	} else {
		return 0;
	}
	d->has_console = true;
	virtio_console_set_loop(&d->console, &vm->loop);
	if (!vm->run) { /* hvc0 to vmm's stdout: the chardev takes what it has room for */
		int ret = chardev_add_output_waiter(&vm->console, console_output_space, d);

		if (ret) {
			log_error("virtio-console: cannot wait for output room: %s",
			          strerror(-ret));
			return ret;
		}
	}
	return attach(vm, &d->console.vdev, "virtio-console");
}

/* virtio-vsock on its Unix socket, when --vsock asked for it. */
static int create_vsock(struct vm *vm)
{
	const struct vsock_config *vc = &vm->config->vsock;
	struct vm_devices *d = &vm->devices;
	char err[256];
	int ret;

	if (!vc->path[0])
		return 0;
	ret = virtio_vsock_init(&d->vsock, vc->path, vc->cid, &vm->mem, &vm->loop, err,
	                        sizeof(err));
	if (ret) {
		log_error("%s", err);
		return ret;
	}
	d->has_vsock = true;
	sandbox_allow_unix_sockets();
	return attach(vm, &d->vsock.vdev, "virtio-vsock");
}

int devices_create(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;
	int ret = create_pci_host(vm);

	if (!ret)
		ret = create_disks(vm);
	if (!ret)
		ret = create_nets(vm);
	if (!ret && !vm->restore) /* restored, they come after the snapshot's parts */
		ret = devices_create_shares(vm);
	if (!ret)
		ret = create_vsock(vm);
	if (ret)
		return ret;
	if (vm->config->rng) {
		virtio_rng_init(&d->rng, &vm->mem);
		virtio_rng_set_loop(&d->rng, &vm->loop);
		d->has_rng = true;
		ret = attach(vm, &d->rng.vdev, "virtio-rng");
		if (ret)
			return ret;
	}
	ret = create_console(vm);
	return ret ? ret : reserve_spares(vm);
}

void devices_destroy(struct vm *vm)
{
	struct vm_devices *d = &vm->devices;

	for (unsigned i = 0; i < d->nr_mmio; i++)
		if (d->mmio[i].attached) /* not a spare window without its device */
			virtio_mmio_detach(&d->mmio[i].transport);
	for (unsigned i = 0; i < d->nr_pci_devices; i++)
		virtio_pci_detach(&d->pci_devices[i].transport);
	for (unsigned i = 0; i < d->nr_disks; i++)
		blk_close(&d->disks[i]);
	for (unsigned i = 0; i < d->nr_nets; i++)
		virtio_net_close(&d->nets[i]);
	for (unsigned i = 0; i < CONFIG_MAX_NETS; i++)
		user_net_close(d->user_nets[i]);
	for (unsigned i = 0; i < d->nr_fs; i++)
		virtio_fs_destroy(&d->fs[i]);
	if (d->has_rng)
		virtio_rng_destroy(&d->rng);
	if (d->has_vsock)
		virtio_vsock_destroy(&d->vsock);
	if (d->has_console)
		virtio_console_destroy(&d->console);
	if (d->has_pci) {
		pci_host_destroy(&d->pci);
		msi_router_destroy(&d->msi);
	}
	memset(d, 0, sizeof(*d));
}

size_t devices_console_input(struct vm *vm, const uint8_t *buf, size_t len)
{
	return vm->devices.has_console ? virtio_console_receive(&vm->devices.console, buf, len) : 0;
}
