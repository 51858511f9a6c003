/* Command-line parsing into a plain, validated struct vm_config. No side effects; unit-tested. */
#ifndef VMM_VMM_CONFIG_H
#define VMM_VMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/user_net.h"
#include "vmm/log.h"

#define CONFIG_DEFAULT_MEM  (512 * MIB)
#define CONFIG_MAX_CPUS     255 /* xAPIC IDs are 8 bits */
#define CONFIG_DEFAULT_ARGS "console=ttyS0 panic=-1 reboot=k"
/*
 * Added to every default line (each unless set): the crypto API's self-tests of every algorithm
 * the kernel registers cost 0.25 s of a 2.4 s nested boot of Debian's kernel (crypto_algapi_init
 * under initcall_debug). The flag exists for short-lived VMs (libguestfs' appliance); fips=1
 * runs the tests regardless, and cryptomgr.notests=0 on --cmdline brings them back.
 */
#define CONFIG_SPEED_ARGS       " cryptomgr.notests"
#define CONFIG_MAX_DISKS        8
#define CONFIG_SERIAL_MAX       20 /* virtio-blk GET_ID returns at most 20 bytes */
#define CONFIG_MAX_NETS         4
#define CONFIG_NET_MAX_QUEUES   8  /* queue pairs per NIC (VIRTIO_NET_MAX_PAIRS) */
#define CONFIG_TAP_NAME_MAX     15 /* IFNAMSIZ - 1 */
#define CONFIG_MAX_SHARES       8
#define CONFIG_TAG_MAX          36         /* virtio-fs tag bytes */
#define CONFIG_ROOT_TAG         "vmm-root" /* --run: the host's / */
#define CONFIG_MAX_MACHINE_ARGS 64

/* Exit statuses (vmm's own; with --run the command's status passes through as it is). */
#define EXIT_VMM_ERROR   1
#define EXIT_USAGE_ERROR 2
#define EXIT_RUN_PANIC   120 /* --run: the guest kernel panicked or died before the command ended */
#define EXIT_TIMEOUT     124
#define EXIT_RUN_CANNOT  125 /* --run: the test could not run (git bisect run: skip) */

enum disk_cache { DISK_CACHE_WRITEBACK, DISK_CACHE_NONE };

/* A device queue's polling cap, poll=USEC of --disk and --net. */
#define POLL_AUTO      (-1) /* poll= not given: vmm decides (devices.c, poll_cap_us) */
#define POLL_MAX_US    1000 /* poll=USEC at most */
#define POLL_DEF_US    32   /* the auto cap where the host has CPUs to spare */
#define POLL_NESTED_US 1000 /* a disk's auto cap when vmm's host is itself a VM */

struct disk_config {
	char path[4096];
	bool read_only;
	enum disk_cache cache;
	char serial[CONFIG_SERIAL_MAX + 1];
	int poll_us; /* poll=USEC: a busy queue's polling cap, 0 off; or POLL_AUTO */
};

struct net_config {
	char tap[CONFIG_TAP_NAME_MAX + 1]; /* "" with user networking */
	bool user;                         /* --net user: libslirp (devices/user_net.h) */
	struct user_net_config user_cfg;   /* its port forwards */
	bool has_mac; /* else vmm generates one from the TAP's name ("user") and the NIC's index */
	uint8_t mac[6];
	unsigned queues; /* queues=N: queue pairs on the TAP; 0: one per vCPU, at most 8 */
	int poll_us;     /* poll=USEC: transmit polling cap, or POLL_AUTO (off) */
};

/* --share HOSTDIR[:GUESTDIR][,ro][,tag=TAG]: a host directory over virtio-fs. */
struct share_config {
	char host[4096];
	char guest[4096];             /* "" when not given: the host path (with --run) */
	char tag[CONFIG_TAG_MAX + 1]; /* "" when not given: the host directory's basename */
	bool read_only;
};

/* --vsock PATH[,cid=N]: virtio-vsock relayed to Unix sockets (devices/virtio/vsock.h). */
struct vsock_config {
	char path[108]; /* "" when not given; at most sun_path less room for "_<port>" */
	uint64_t cid;
};

/* One option as given (a pointer into argv): what a snapshot saves to rebuild the machine. */
struct config_arg {
	int opt;
	const char *value; /* NULL for an option without one */
};

enum virtio_transport_kind { TRANSPORT_PCI, TRANSPORT_MMIO };
enum console_kind { CONSOLE_SERIAL, CONSOLE_VIRTIO };
/*
 * aarch64's interrupt controller (--irqchip): the host's best, or the one asked for; the "m"
 * and "-its" kinds add what gives MSIs (a GICv2m frame, a GICv3 ITS).
 */
enum irqchip_kind { IRQCHIP_AUTO, IRQCHIP_GICV2, IRQCHIP_GICV2M, IRQCHIP_GICV3, IRQCHIP_GICV3_ITS };

struct vm_config {
	const char *kernel_path;
	const char *initrd_path; /* NULL: none */
	const char *cmdline;     /* the user's, NULL when not given */
	bool cmdline_verbatim;   /* --cmdline-verbatim: nothing appended to it */
	uint64_t mem_size;
	unsigned cpus;
	bool test_device;
	bool debug_exit; /* --debug-exit: port 0xf4 ends vmm with the byte written (x86) */
	bool stats;      /* print exit counters when the VM stops */
	enum log_level log_level;
	unsigned timeout_sec; /* 0: none */
	struct disk_config disks[CONFIG_MAX_DISKS];
	unsigned nr_disks;
	struct net_config nets[CONFIG_MAX_NETS];
	unsigned nr_nets;
	enum virtio_transport_kind transport;
	enum console_kind console;
	enum irqchip_kind irqchip;
	bool pmu;     /* aarch64: a PMUv3 per vCPU (--pmu) */
	bool rng;     /* virtio-rng, on by default */
	bool seccomp; /* per-thread seccomp filters after set-up, on by default (--seccomp) */
	struct vsock_config vsock;
	const char *api_socket; /* --api-socket PATH (vmm/api.h), or NULL */
	struct share_config shares[CONFIG_MAX_SHARES];
	unsigned nr_shares;
	/* Test-run mode (--run): the command, and where its kernel modules and virtiofsd are. */
	const char *run_cmd;        /* NULL: boot the kernel as usual */
	const char *modules_dir;    /* NULL: /lib/modules/<the kernel's release> if it exists */
	const char *virtiofsd;      /* NULL: search PATH, /usr/libexec, /usr/lib/qemu */
	const char *console_log;    /* NULL: kernel messages are kept in memory only (--run) */
	const char *save_initramfs; /* write --run's initramfs there and exit */
	const char *restore_dir;    /* --restore DIR: the machine and its state from a snapshot */
	/*
	 * --save-ready DIR: test-run mode without a command or shares; snapshot when the init
	 * waits for them. Kept in the snapshot: restored, it marks a machine that takes --run.
	 */
	const char *save_ready;
	/* The options that describe the machine, in order (not --api-socket, --timeout, ...). */
	struct config_arg machine_args[CONFIG_MAX_MACHINE_ARGS];
	unsigned nr_machine_args;
};

enum config_result {
	CONFIG_OK,
	CONFIG_HELP,    /* --help: print config_usage() and exit 0 */
	CONFIG_VERSION, /* --version */
	CONFIG_ERROR,   /* usage error; @err holds one line */
};

/*
 * Parses argv into @out (pointers refer into argv). On CONFIG_ERROR, @err holds a one-line
 * message without the "vmm: " prefix.
 */
enum config_result config_parse(int argc, char *const argv[], struct vm_config *out, char *err,
                                size_t errlen);

/* The long name of option @opt (a struct config_arg's), without the dashes. */
const char *config_option_name(int opt);

/*
 * For --restore: @machine, parsed from a snapshot's options, takes this run's own options
 * (--api-socket, --timeout, --stats, --log-level, --seccomp, --restore, and --run, --share,
 * --virtiofsd, --console-log) from @session.
 */
void config_take_session(struct vm_config *machine, const struct vm_config *session);

/* Test-run mode: --run, or --save-ready (vmm's initramfs and init, the console ports). */
bool config_test_run(const struct vm_config *cfg);

/* Prints the --help text. */
void config_usage(FILE *out);

/*
 * Parses a size: decimal digits with an optional K, M, G or T suffix (binary multiples,
 * case-insensitive, optional trailing "B" or "iB"). Returns 0, or -EINVAL / -ERANGE.
 */
int config_parse_size(const char *text, uint64_t *out);
/* --irqchip's value: gicv2, gicv2m, gicv3 or gicv3-its. Returns 0 or -EINVAL. */
int config_parse_irqchip(const char *text, enum irqchip_kind *out);
/* The name config_parse_irqchip takes for @kind ("auto" for IRQCHIP_AUTO). */
const char *config_irqchip_name(enum irqchip_kind kind);

/*
 * Parses a --disk value: PATH[,ro][,cache=none|writeback][,serial=ID][,poll=USEC], each
 * option at most once (USEC 0 to POLL_MAX_US; POLL_AUTO when not given). Returns 0, or
 * -EINVAL with a one-line message in @err.
 */
int config_parse_disk(const char *spec, struct disk_config *out, char *err, size_t errlen);

/*
 * Parses a --net value: tap=NAME[,mac=MAC][,queues=N] (N 1 to CONFIG_NET_MAX_QUEUES) or
 * user[,hostfwd=RULE]...[,mac=MAC] (RULE as user_net_parse_forward), each part but hostfwd at
 * most once. Returns 0, or -EINVAL with a one-line message in @err.
 */
int config_parse_net(const char *spec, struct net_config *out, char *err, size_t errlen);

/*
 * Parses a --share value: HOSTDIR[:GUESTDIR][,ro][,tag=TAG]. GUESTDIR must be absolute; TAG 1 to
 * 36 bytes; each option at most once. Returns 0, or -EINVAL with a one-line message in @err.
 */
int config_parse_share(const char *spec, struct share_config *out, char *err, size_t errlen);

/*
 * Parses a --vsock value: PATH[,cid=N] (N from 3 to 4294967294, default 3; PATH short enough
 * for a Unix socket with "_<port>" appended). Returns 0, or -EINVAL with a one-line message.
 */
int config_parse_vsock(const char *spec, struct vsock_config *out, char *err, size_t errlen);

/* The default kernel parameters for @cfg (the console follows --console). */
const char *config_default_args(const struct vm_config *cfg);

/*
 * Builds the kernel command line: the user's parameters followed by each of @defaults
 * (space-separated, e.g. config_default_args()) whose key the user did not set, inserted before a
 * "--" separator if the user has one. Returns a malloc'ed string or NULL on allocation failure.
 */
char *config_kernel_cmdline(const char *user, const char *defaults);
/*
 * True when @cmdline (NULL: empty) has a parameter @key=... whose comma-separated values
 * include @value, before any "--" (after it the words are init's).
 */
bool config_cmdline_has_value(const char *cmdline, const char *key, const char *value);

#endif
