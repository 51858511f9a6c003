#include "vmm/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "devices/tap.h"

enum {
	OPT_KERNEL = 'k',
	OPT_HELP = 'h',
	OPT_INITRD = 256,
	OPT_CMDLINE,
	OPT_CMDLINE_VERBATIM,
	OPT_MEM,
	OPT_CPUS,
	OPT_TEST_DEVICE,
	OPT_DEBUG_EXIT,
	OPT_STATS,
	OPT_LOG_LEVEL,
	OPT_TIMEOUT,
	OPT_VERSION,
	OPT_DISK,
	OPT_TRANSPORT,
	OPT_CONSOLE,
	OPT_NO_RNG,
	OPT_NET,
	OPT_RUN,
	OPT_SHARE,
	OPT_MODULES,
	OPT_VIRTIOFSD,
	OPT_CONSOLE_LOG,
	OPT_SAVE_INITRAMFS,
	OPT_SECCOMP,
	OPT_VSOCK,
	OPT_IRQCHIP,
	OPT_PMU,
	OPT_API_SOCKET,
	OPT_RESTORE,
	OPT_SAVE_READY,
};

static const struct option long_options[] = {
        {"kernel", required_argument, NULL, OPT_KERNEL},
        {"initrd", required_argument, NULL, OPT_INITRD},
        {"cmdline", required_argument, NULL, OPT_CMDLINE},
        {"cmdline-verbatim", no_argument, NULL, OPT_CMDLINE_VERBATIM},
        {"mem", required_argument, NULL, OPT_MEM},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"test-device", no_argument, NULL, OPT_TEST_DEVICE},
        {"debug-exit", no_argument, NULL, OPT_DEBUG_EXIT},
        {"stats", no_argument, NULL, OPT_STATS},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {"disk", required_argument, NULL, OPT_DISK},
        {"transport", required_argument, NULL, OPT_TRANSPORT},
        {"console", required_argument, NULL, OPT_CONSOLE},
        {"no-rng", no_argument, NULL, OPT_NO_RNG},
        {"net", required_argument, NULL, OPT_NET},
        {"run", required_argument, NULL, OPT_RUN},
        {"share", required_argument, NULL, OPT_SHARE},
        {"modules", required_argument, NULL, OPT_MODULES},
        {"virtiofsd", required_argument, NULL, OPT_VIRTIOFSD},
        {"console-log", required_argument, NULL, OPT_CONSOLE_LOG},
        {"save-initramfs", required_argument, NULL, OPT_SAVE_INITRAMFS},
        {"seccomp", required_argument, NULL, OPT_SECCOMP},
        {"vsock", required_argument, NULL, OPT_VSOCK},
        {"irqchip", required_argument, NULL, OPT_IRQCHIP},
        {"pmu", no_argument, NULL, OPT_PMU},
        {"api-socket", required_argument, NULL, OPT_API_SOCKET},
        {"restore", required_argument, NULL, OPT_RESTORE},
        {"save-ready", required_argument, NULL, OPT_SAVE_READY},
        {NULL, 0, NULL, 0},
};

void config_usage(FILE *out)
{
	// clang-format off
	fprintf(out,
"Usage: vmm --kernel PATH [options]\n"
ARCH_HELP_INTRO
"\n"
"Options:\n"
"  -k, --kernel PATH     kernel to boot (required)\n"
"      --initrd PATH     initial ramdisk\n"
"      --cmdline STRING  kernel command line; vmm appends\n"
"                        \"" CONFIG_DEFAULT_ARGS ARCH_DEFAULT_ARGS CONFIG_SPEED_ARGS "\"\n"
"                        (console=hvc0 with --console virtio)\n"
"                        for each of those parameters you do not set yourself\n"
"                        (so a panicking guest resets, and a reset ends vmm)\n"
"      --cmdline-verbatim\n"
"                        pass --cmdline exactly as given, nothing appended (for\n"
"                        payloads that read it as their own arguments)\n"
"      --mem SIZE        guest RAM, with K, M, G suffix (default 512M)\n"
"      --cpus N          number of vCPUs, 1 to %d (default 1)\n"
"      --disk PATH[,ro][,cache=none|writeback][,serial=ID][,poll=USEC]\n"
"                        a raw disk image as virtio-blk (/dev/vda, vdb, ...); up to %d.\n"
"                        ro: read-only; cache=none: O_DIRECT; serial: GET_ID string\n"
"                        (at most 20 bytes). Writable images are locked. poll: a busy\n"
"                        queue is polled, guest notifications off, for an adaptive\n"
"                        time of at most USEC us (0 to 1000; 0: never); default 1000\n"
"                        when vmm runs in a VM (x86: nested), else 32 when the host\n"
"                        has more CPUs than vCPUs + 1, else 0\n"
"%s"
"      --console serial|virtio  the console on stdin/stdout: the 16550A on ttyS0\n"
"                        (default) or virtio-console on hvc0 (faster)\n"
"      --no-rng          no virtio-rng (by default the guest gets entropy from getrandom)\n"
"      --net tap=NAME[,mac=MAC][,queues=N][,poll=USEC]\n"
"                        a virtio-net NIC on TAP device NAME (created when missing,\n"
"                        which needs CAP_NET_ADMIN); up to %d NICs. Without mac= a locally\n"
"                        administered MAC derived from NAME and the NIC's index. N queue\n"
"                        pairs (1 to %d; default one per vCPU, up to %d) on a multi-queue\n"
"                        TAP; an existing single-queue TAP gets 1 unless queues= asks for\n"
"                        more (then: ip tuntap add dev NAME mode tap multi_queue).\n"
"                        poll: transmit queues polled as --disk's, for at most USEC us\n"
"                        (0 to 1000, default 0: never); --net user takes it too\n"
"      --net user[,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,mac=MAC]\n"
"                        a virtio-net NIC on a network inside vmm (libslirp; no root, no\n"
"                        TAP), as QEMU's -netdev user: the guest gets 10.0.2.15 by DHCP,\n"
"                        10.0.2.2 is the host (its loopback too), 10.0.2.3 DNS; TCP and UDP\n"
"                        go out through vmm's sockets. hostfwd (up to %d) forwards a host\n"
"                        port into the guest (HOSTADDR default 0.0.0.0, GUESTADDR\n"
"                        10.0.2.15); a taken host port is an error.\n"
"      --vsock PATH[,cid=N]\n"
"                        virtio-vsock (guest CID N, default 3) relayed to Unix sockets:\n"
"                        a host program connects to PATH and writes \"CONNECT <port>\\n\"\n"
"                        to reach a guest listener (vmm answers \"OK <hostport>\\n\"); a\n"
"                        guest connect to CID 2 port P reaches the socket PATH_P\n"
"      --share HOSTDIR[:GUESTDIR][,ro][,tag=TAG]\n"
"                        a host directory over virtio-fs (vmm starts virtiofsd); up to\n"
"                        %d. With --run it is mounted at GUESTDIR (default: HOSTDIR);\n"
"                        without, mount -t virtiofs TAG (default: its basename) DIR.\n"
"                        ro: the guest cannot write to it.\n"
"      --run CMD         test-run mode: boot the kernel with vmm's own initramfs, the\n"
"                        host's / read-only as the guest's root (over virtio-fs;\n"
"                        /tmp, /root, /var, /etc, /home, /run writable, in RAM), run\n"
"                        /bin/sh -c CMD as root in the current directory, power off.\n"
"                        CMD's stdin, stdout and stderr are vmm's; kernel messages\n"
"                        are not shown (see --console-log) unless the run fails.\n"
"      --modules DIR     --run: the kernel's module tree (default: /lib/modules/ and\n"
"                        the release read from the kernel image, when it exists)\n"
"      --virtiofsd PATH  the virtiofsd to run (default: from PATH, /usr/libexec,\n"
"                        /usr/lib/qemu)\n"
"      --console-log FILE  --run: write the kernel's console messages to FILE\n"
"      --save-initramfs FILE  --run: write the initramfs vmm would boot to FILE and\n"
"                        exit (to boot it elsewhere, or look inside)\n"
"      --api-socket PATH a control socket (Unix, mode 0600) taking one JSON request per\n"
"                        line, answered by one line: {\"op\":\"pause\"}, \"resume\",\n"
"                        \"stop\" (as a guest power-off), \"stats\", or \"snapshot\" with\n"
"                        \"dir\":\"DIR\" (pauses and saves the VM there; see README)\n"
"      --restore DIR     continue the VM saved in snapshot DIR where it stopped (its\n"
"                        machine comes from DIR; only --api-socket, --timeout,\n"
"                        --log-level, --stats and --seccomp may be given with it, and\n"
"                        for a --save-ready snapshot --run, --share, --virtiofsd and\n"
"                        --console-log)\n"
"      --save-ready DIR  boot --run's machine (--kernel, --modules, --mem, --cpus) until\n"
"                        its init waits for a command, save a snapshot in DIR there and\n"
"                        exit 0. Then each `vmm --restore DIR --run CMD [--share ...]`\n"
"                        runs CMD from that instant, its shares (and the host's /)\n"
"                        plugged in after the restore; DIR is only read, so runs may\n"
"                        follow one another or run in parallel. Adds init_on_free=1 to\n"
"                        the kernel's parameters (a smaller snapshot)\n"
"      --timeout SECS    stop the guest after SECS seconds (exit status 124)\n"
"      --log-level LEVEL error, warn (default), info or debug (debug lines carry\n"
"                        the milliseconds since vmm started: where a slow start goes)\n"
"      --stats           print the guest's exits to vmm, by kind, when it stops\n"
"      --seccomp on|off  once set-up is done, each thread (vCPU, event loop, output\n"
"                        writers) runs under a seccomp allow-list, and a syscall\n"
"                        outside it ends vmm naming it (default on; off to debug\n"
"                        that). Either way vmm then drops every capability,\n"
"                        keeping none (TAPs are opened before), and sets\n"
"                        no_new_privs\n"
"%s"
"  -h, --help            show this help\n"
"      --version         show the version\n"
"\n"
"Console: when stdin is a terminal it is put in raw mode; Ctrl-A x quits,\n"
"Ctrl-A Ctrl-A sends a literal Ctrl-A. Pipes work too.\n"
"\n"
"Exit status: 0 when the guest reboots or powers off (or on Ctrl-A x), 1 on a vmm\n"
"error, a guest crash or SIGINT/SIGTERM, 2 on a usage error, 124 when --timeout\n"
"expires%s.\n"
"With --run: CMD's own exit status; " STR(EXIT_TIMEOUT) " when --timeout expires; " STR(EXIT_RUN_CANNOT) " when the\n"
"test cannot run (bad kernel, a missing module or virtiofsd; git bisect run\n"
"skips such a commit); " STR(EXIT_RUN_PANIC) " when the guest kernel panics or stops before CMD ends.\n"
"\n"
"Environment: VMM_KVM_DEVICE overrides the KVM device path (default /dev/kvm).\n"
"VMM_ALLOW_PVM=1 lets --run try a PVM host's KVM (kvm_pvm), which runs only\n"
"PVM-aware guest kernels.\n",
		CONFIG_MAX_CPUS, CONFIG_MAX_DISKS,
		!ARCH_HAS_GIC ? "      --transport pci|mmio  virtio transport (default pci)\n"
		              : "      --transport mmio|pci  virtio transport (default mmio; pci: a PCIe\n"
		                "                        host bridge, MSI-X through a GICv3 ITS or GICv2m)\n"
		                "      --irqchip gicv2|gicv2m|gicv3|gicv3-its  the interrupt controller\n"
		                "                        (default: a GICv3 where the host's KVM has one,\n"
		                "                        else a GICv2; with --transport pci plus its ITS,\n"
		                "                        or the GICv2m MSI frame)\n"
		                "      --pmu             a PMUv3 in every vCPU (perf's hardware counters)\n",
		CONFIG_MAX_NETS, CONFIG_NET_MAX_QUEUES, CONFIG_NET_MAX_QUEUES, USER_NET_MAX_FORWARDS,
		CONFIG_MAX_SHARES,
		ARCH_HAS_TEST_DEVICE
		        ? "      --test-device     add the scratch test device (port 0x520, MMIO 0xd0000000)\n"
		          "      --debug-exit      a byte the guest writes to I/O port 0xf4 ends vmm with\n"
		          "                        that byte as exit status (0-255, even 1, 2 or 124; QEMU's\n"
		          "                        isa-debug-exit gives byte*2+1): for test guests. Without\n"
		          "                        it port 0xf4 is not decoded. Not with --run\n"
		        : "",
		ARCH_HAS_TEST_DEVICE
		        ? ", and with --debug-exit the byte the guest wrote to port 0xf4"
		        : "");
	// clang-format on
}

static enum config_result fail(char *err, size_t errlen, const char *fmt, ...) PRINTF(3, 4);

static enum config_result fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return CONFIG_ERROR;
}

int config_parse_size(const char *text, uint64_t *out)
{
	static const char suffixes[] = "KMGT";
	uint64_t value = 0, multiplier = 1;
	const char *p = text;
	const char *unit;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (mul_overflows(value, 10, &value) || add_overflows(value, *p - '0', &value))
			return -ERANGE;
	}
	if (*p) {
		unit = strchr(suffixes, *p & ~0x20);
		if (!unit)
			return -EINVAL;
		multiplier = 1ULL << (10 * (unit - suffixes + 1));
		p++;
		if ((*p | 0x20) == 'i')
			p++;
		if ((*p | 0x20) == 'b')
			p++;
		if (*p)
			return -EINVAL;
	}
	if (mul_overflows(value, multiplier, out))
		return -ERANGE;
	return 0;
}

static int parse_uint(const char *text, unsigned max, unsigned *out)
{
	char *end;
	unsigned long value;

	if (*text < '0' || *text > '9')
		return -EINVAL;
	errno = 0;
	value = strtoul(text, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno || value > max)
		return -ERANGE;
	*out = (unsigned)value;
	return 0;
}

/* --save-ready: --run's machine without a command or shares (each restore brings its own). */
static enum config_result check_save_ready(struct vm_config *cfg, char *err, size_t errlen)
{
	if (cfg->run_cmd)
		return fail(err, errlen,
		            "--save-ready and --run: the command comes with each --restore DIR "
		            "--run CMD");
	if (cfg->nr_shares)
		return fail(err, errlen,
		            "--save-ready and --share: shares come with each --restore DIR --run");
	return CONFIG_OK;
}

/* The options of test-run mode, and the shares' tags (unique, and not the root's). */
static enum config_result check_run_config(struct vm_config *cfg, char *err, size_t errlen)
{
	if (cfg->save_ready && check_save_ready(cfg, err, errlen) != CONFIG_OK)
		return CONFIG_ERROR;
	if (!config_test_run(cfg)) {
		if (cfg->modules_dir)
			return fail(err, errlen, "--modules needs --run");
		if (cfg->console_log)
			return fail(err, errlen, "--console-log needs --run");
		if (cfg->save_initramfs)
			return fail(err, errlen, "--save-initramfs needs --run");
	} else if (cfg->initrd_path) {
		return fail(err, errlen,
		            "--run and --initrd: --run boots its own initramfs (use --share for "
		            "files)");
	} else if (cfg->debug_exit) {
		return fail(err, errlen,
		            "--run and --debug-exit: with --run the exit status is the command's");
	} else if (cfg->cmdline_verbatim) {
		return fail(err, errlen,
		            "--run and --cmdline-verbatim: --run's init needs the parameters vmm "
		            "adds");
	}
	for (unsigned i = 0; i < cfg->nr_shares; i++) {
		struct share_config *sh = &cfg->shares[i];

		if (!cfg->run_cmd && sh->guest[0])
			return fail(
			        err, errlen,
			        "--share %s:%s: GUESTDIR needs --run (without it, mount the tag "
			        "yourself)",
			        sh->host, sh->guest);
		if (!strcmp(sh->tag, CONFIG_ROOT_TAG))
			return fail(err, errlen, "--share: the tag '%s' is vmm's own",
			            CONFIG_ROOT_TAG);
		for (unsigned j = 0; j < i && sh->tag[0]; j++) {
			if (!strcmp(cfg->shares[j].tag, sh->tag))
				return fail(err, errlen, "--share: two shares with the tag '%s'",
				            sh->tag);
		}
	}
	return CONFIG_OK;
}

static enum config_result check_config(struct vm_config *cfg, char *err, size_t errlen)
{
	if (cfg->restore_dir) {
		if (cfg->nr_machine_args)
			return fail(err, errlen,
			            "--%s cannot be given with --restore: the machine comes from "
			            "the snapshot",
			            config_option_name(cfg->machine_args[0].opt));
		if (!cfg->run_cmd && cfg->nr_shares)
			return fail(err, errlen,
			            "--share with --restore needs --run (and a --save-ready "
			            "snapshot)");
		return check_run_config(cfg, err, errlen);
	}
	if (!cfg->kernel_path)
		return fail(err, errlen, "no kernel given: use --kernel PATH (see --help)");
	if (cfg->mem_size < ARCH_MIN_RAM)
		return fail(err, errlen, "--mem: at least %llu MiB are needed",
		            (unsigned long long)(ARCH_MIN_RAM / MIB));
	if (cfg->mem_size % (4 * KIB))
		return fail(err, errlen, "--mem: size must be a multiple of 4 KiB");
	if (cfg->mem_size > ARCH_MAX_RAM)
		return fail(err, errlen, "--mem: at most %llu GiB are supported",
		            (unsigned long long)(ARCH_MAX_RAM / GIB));
	return check_run_config(cfg, err, errlen);
}

/*
 * Options about this run of vmm rather than the machine: a snapshot does not keep them, and
 * --restore takes only these. The test run's own (--run, --share, --virtiofsd, --console-log)
 * are among them: a VM with virtio-fs cannot be snapshotted, and a --save-ready snapshot takes
 * them from each --restore.
 */
static bool is_session_option(int opt)
{
	switch (opt) {
	case OPT_API_SOCKET:
	case OPT_TIMEOUT:
	case OPT_STATS:
	case OPT_LOG_LEVEL:
	case OPT_SECCOMP:
	case OPT_RESTORE:
	case OPT_RUN:
	case OPT_SHARE:
	case OPT_VIRTIOFSD:
	case OPT_CONSOLE_LOG:
		return true;
	default:
		return false;
	}
}

const char *config_option_name(int opt)
{
	for (const struct option *o = long_options; o->name; o++)
		if (o->val == opt)
			return o->name;
	return "?";
}

void config_take_session(struct vm_config *machine, const struct vm_config *session)
{
	machine->api_socket = session->api_socket;
	machine->timeout_sec = session->timeout_sec;
	machine->stats = session->stats;
	machine->log_level = session->log_level;
	machine->seccomp = session->seccomp;
	machine->restore_dir = session->restore_dir;
	machine->run_cmd = session->run_cmd;
	memcpy(machine->shares, session->shares, sizeof(machine->shares));
	machine->nr_shares = session->nr_shares;
	machine->virtiofsd = session->virtiofsd;
	machine->console_log = session->console_log;
}

bool config_test_run(const struct vm_config *cfg)
{
	return cfg->run_cmd || cfg->save_ready;
}

static enum config_result parse_option(int opt, const char *arg, struct vm_config *cfg, char *err,
                                       size_t errlen)
{
	switch (opt) {
	case OPT_KERNEL:
		cfg->kernel_path = arg;
		break;
	case OPT_INITRD:
		cfg->initrd_path = arg;
		break;
	case OPT_CMDLINE:
		cfg->cmdline = arg;
		break;
	case OPT_CMDLINE_VERBATIM:
		cfg->cmdline_verbatim = true;
		break;
	case OPT_MEM:
		if (config_parse_size(arg, &cfg->mem_size))
			return fail(err, errlen, "--mem: invalid size '%s' (examples: 512M, 2G)",
			            arg);
		break;
	case OPT_CPUS:
		if (parse_uint(arg, CONFIG_MAX_CPUS, &cfg->cpus) || cfg->cpus == 0)
			return fail(err, errlen, "--cpus: '%s' is not a number from 1 to %d", arg,
			            CONFIG_MAX_CPUS);
		break;
	case OPT_TEST_DEVICE:
		if (!ARCH_HAS_TEST_DEVICE)
			return fail(err, errlen,
			            "--test-device: vmm on " ARCH_NAME " has no test device (it "
			            "lives on x86 I/O ports)");
		cfg->test_device = true;
		break;
	case OPT_DEBUG_EXIT:
		if (!ARCH_HAS_TEST_DEVICE)
			return fail(err, errlen,
			            "--debug-exit: vmm on " ARCH_NAME
			            " has no debug exit (it is an x86 I/O port)");
		cfg->debug_exit = true;
		break;
	case OPT_STATS:
		cfg->stats = true;
		break;
	case OPT_PMU:
		if (!ARCH_HAS_GIC)
			return fail(err, errlen,
			            "--pmu: an aarch64 option (a PMUv3 per vCPU); vmm on " ARCH_NAME
			            " does not offer one");
		cfg->pmu = true;
		break;
	case OPT_IRQCHIP:
		if (!ARCH_HAS_GIC)
			return fail(err, errlen,
			            "--irqchip: an aarch64 option (the GIC's version); vmm "
			            "on " ARCH_NAME " has one interrupt controller set-up");
		if (config_parse_irqchip(arg, &cfg->irqchip))
			return fail(err, errlen,
			            "--irqchip: '%s' is not gicv2, gicv2m, gicv3 or gicv3-its",
			            arg);
		break;
	case OPT_LOG_LEVEL:
		if (log_parse_level(arg, &cfg->log_level))
			return fail(err, errlen,
			            "--log-level: '%s' is not one of error, warn, info, debug",
			            arg);
		break;
	case OPT_TIMEOUT:
		if (parse_uint(arg, 1000000, &cfg->timeout_sec) || cfg->timeout_sec == 0)
			return fail(err, errlen, "--timeout: '%s' is not a number of seconds", arg);
		break;
	case OPT_DISK:
		if (cfg->nr_disks == CONFIG_MAX_DISKS)
			return fail(err, errlen, "--disk: at most %d disks", CONFIG_MAX_DISKS);
		if (config_parse_disk(arg, &cfg->disks[cfg->nr_disks], err, errlen))
			return CONFIG_ERROR;
		cfg->nr_disks++;
		break;
	case OPT_TRANSPORT:
		if (strcmp(arg, "pci") && strcmp(arg, "mmio"))
			return fail(err, errlen, "--transport: '%s' is not pci or mmio", arg);
		if (!strcmp(arg, "pci") && !ARCH_HAS_PCI) /* not reached: both arches have it */
			return fail(err, errlen,
			            "--transport pci: vmm on " ARCH_NAME " has no PCI; its virtio "
			            "devices are on virtio-mmio");
		cfg->transport = strcmp(arg, "pci") ? TRANSPORT_MMIO : TRANSPORT_PCI;
		break;
	case OPT_CONSOLE:
		if (strcmp(arg, "serial") && strcmp(arg, "virtio"))
			return fail(err, errlen, "--console: '%s' is not serial or virtio", arg);
		cfg->console = strcmp(arg, "serial") ? CONSOLE_VIRTIO : CONSOLE_SERIAL;
		break;
	case OPT_NO_RNG:
		cfg->rng = false;
		break;
	case OPT_NET:
		if (cfg->nr_nets == CONFIG_MAX_NETS)
			return fail(err, errlen, "--net: at most %d NICs", CONFIG_MAX_NETS);
		if (config_parse_net(arg, &cfg->nets[cfg->nr_nets], err, errlen))
			return CONFIG_ERROR;
		cfg->nr_nets++;
		break;
	case OPT_VSOCK:
		if (cfg->vsock.path[0])
			return fail(err, errlen, "--vsock: given twice (one device per VM)");
		if (config_parse_vsock(arg, &cfg->vsock, err, errlen))
			return CONFIG_ERROR;
		break;
	case OPT_RESTORE:
		if (!*arg)
			return fail(err, errlen, "--restore: the directory is empty");
		cfg->restore_dir = arg;
		break;
	case OPT_SAVE_READY:
		if (!*arg)
			return fail(err, errlen, "--save-ready: the directory is empty");
		cfg->save_ready = arg;
		break;
	case OPT_API_SOCKET:
		if (cfg->api_socket)
			return fail(err, errlen, "--api-socket: given twice");
		if (!*arg)
			return fail(err, errlen, "--api-socket: the path is empty");
		cfg->api_socket = arg;
		break;
	case OPT_RUN:
		if (!*arg)
			return fail(err, errlen, "--run: the command is empty");
		cfg->run_cmd = arg;
		break;
	case OPT_SHARE:
		if (cfg->nr_shares == CONFIG_MAX_SHARES)
			return fail(err, errlen, "--share: at most %d shares", CONFIG_MAX_SHARES);
		if (config_parse_share(arg, &cfg->shares[cfg->nr_shares], err, errlen))
			return CONFIG_ERROR;
		cfg->nr_shares++;
		break;
	case OPT_MODULES:
		cfg->modules_dir = arg;
		break;
	case OPT_VIRTIOFSD:
		cfg->virtiofsd = arg;
		break;
	case OPT_CONSOLE_LOG:
		cfg->console_log = arg;
		break;
	case OPT_SAVE_INITRAMFS:
		cfg->save_initramfs = arg;
		break;
	case OPT_SECCOMP:
		if (strcmp(arg, "on") && strcmp(arg, "off"))
			return fail(err, errlen, "--seccomp: '%s' is not on or off", arg);
		cfg->seccomp = !strcmp(arg, "on");
		break;
	case OPT_HELP:
		return CONFIG_HELP;
	case OPT_VERSION:
		return CONFIG_VERSION;
	default:
		return fail(err, errlen, "invalid option (see --help)");
	}
	return CONFIG_OK;
}

static const char *const irqchip_names[] = {
        [IRQCHIP_AUTO] = "auto",   [IRQCHIP_GICV2] = "gicv2",         [IRQCHIP_GICV2M] = "gicv2m",
        [IRQCHIP_GICV3] = "gicv3", [IRQCHIP_GICV3_ITS] = "gicv3-its",
};

int config_parse_irqchip(const char *text, enum irqchip_kind *out)
{
	for (unsigned i = IRQCHIP_GICV2; i < ARRAY_SIZE(irqchip_names); i++) {
		if (!strcmp(text, irqchip_names[i])) {
			*out = (enum irqchip_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *config_irqchip_name(enum irqchip_kind kind)
{
	return (unsigned)kind < ARRAY_SIZE(irqchip_names) ? irqchip_names[kind] : "?";
}

enum config_result config_parse(int argc, char *const argv[], struct vm_config *out, char *err,
                                size_t errlen)
{
	enum config_result result;
	int opt;

	memset(out, 0, sizeof(*out));
	out->mem_size = CONFIG_DEFAULT_MEM;
	out->cpus = 1;
	out->log_level = LOG_WARN;
	out->rng = true;
	out->seccomp = true;
	out->transport = ARCH_DEFAULT_PCI ? TRANSPORT_PCI : TRANSPORT_MMIO;
	optind = 0; /* restart getopt: config_parse may be called more than once */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":k:h", long_options, NULL)) != -1) {
		if (opt == '?')
			return fail(err, errlen, "unknown option '%s' (see --help)",
			            argv[optind - 1]);
		if (opt == ':')
			return fail(err, errlen, "option '%s' needs a value", argv[optind - 1]);
		result = parse_option(opt, optarg, out, err, errlen);
		if (result != CONFIG_OK)
			return result;
		if (!is_session_option(opt)) {
			if (out->nr_machine_args == CONFIG_MAX_MACHINE_ARGS)
				return fail(err, errlen, "more than %d options",
				            CONFIG_MAX_MACHINE_ARGS);
			out->machine_args[out->nr_machine_args++] =
			        (struct config_arg){opt, optarg};
		}
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
	return check_config(out, err, errlen);
}
