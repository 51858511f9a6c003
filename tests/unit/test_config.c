#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "tests/unit/unit.h"
#include "vmm/config.h"

static enum config_result parse(struct vm_config *cfg, char *err, const char *a0, ...)
{
	char *argv[32] = {"vmm"};
	int argc = 1;
	va_list ap;

	va_start(ap, a0);
	for (const char *a = a0; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	return config_parse(argc, argv, cfg, err, 256);
}

START_TEST(sizes)
{
	static const struct {
		const char *text;
		int ret;
		uint64_t value;
	} cases[] = {
	        {"0", 0, 0},
	        {"4096", 0, 4096},
	        {"1K", 0, 1024},
	        {"1k", 0, 1024},
	        {"512M", 0, 512ULL << 20},
	        {"512MiB", 0, 512ULL << 20},
	        {"512MB", 0, 512ULL << 20},
	        {"2G", 0, 2ULL << 30},
	        {"3t", 0, 3ULL << 40},
	        {"", -EINVAL, 0},
	        {"M", -EINVAL, 0},
	        {"-1", -EINVAL, 0},
	        {" 1", -EINVAL, 0},
	        {"12Q", -EINVAL, 0},
	        {"1MM", -EINVAL, 0},
	        {"1.5G", -EINVAL, 0},
	        {"18446744073709551615", 0, UINT64_MAX},
	        {"18446744073709551616", -ERANGE, 0},
	        {"17179869184G", -ERANGE, 0},
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;
		int ret = config_parse_size(cases[i].text, &v);
		ck_assert_msg(ret == cases[i].ret, "'%s': %d", cases[i].text, ret);
		if (ret == 0)
			ck_assert_msg(v == cases[i].value, "'%s'", cases[i].text);
	}
}
END_TEST

START_TEST(defaults_and_options)
{
	struct vm_config cfg;
	char err[256];

	ck_assert_int_eq(parse(&cfg, err, "--kernel", "k", NULL), CONFIG_OK);
	ck_assert_str_eq(cfg.kernel_path, "k");
	ck_assert(cfg.mem_size == 512 * MIB);
	ck_assert_uint_eq(cfg.cpus, 1);
	ck_assert_ptr_null(cfg.initrd_path);
	ck_assert_ptr_null(cfg.cmdline);
	ck_assert(cfg.seccomp);
	ck_assert_ptr_null(cfg.api_socket);

	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--api-socket", "/tmp/api.sock", NULL),
	                 CONFIG_OK);
	ck_assert_str_eq(cfg.api_socket, "/tmp/api.sock");

	ck_assert_int_eq(parse(&cfg, err, "-k", "bz", "--initrd", "i", "--cmdline", "a b", "--mem",
	                       "1G", "--cpus", "4", "--test-device", "--log-level", "debug",
	                       "--timeout", "30", NULL),
	                 CONFIG_OK);
	ck_assert_str_eq(cfg.kernel_path, "bz");
	ck_assert_str_eq(cfg.initrd_path, "i");
	ck_assert_str_eq(cfg.cmdline, "a b");
	ck_assert(cfg.mem_size == GIB);
	ck_assert_uint_eq(cfg.cpus, 4);
	ck_assert(cfg.test_device);
	ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
	ck_assert_uint_eq(cfg.timeout_sec, 30);

	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--seccomp", "off", NULL), CONFIG_OK);
	ck_assert(!cfg.seccomp);
	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--seccomp", "on", NULL), CONFIG_OK);
	ck_assert(cfg.seccomp);

	ck_assert_int_eq(parse(&cfg, err, "--help", NULL), CONFIG_HELP);
	ck_assert_int_eq(parse(&cfg, err, "--version", NULL), CONFIG_VERSION);
}
END_TEST

START_TEST(usage_errors)
{
	static const struct {
		const char *args[4];
		const char *message;
	} cases[] = {
	        {{NULL}, "no kernel given"},
	        {{"-k", "k", "--bogus"}, "unknown option '--bogus'"},
	        {{"-k", "k", "extra"}, "unexpected argument 'extra'"},
	        {{"-k"}, "needs a value"},
	        {{"-k", "k", "--mem", "abc"}, "--mem: invalid size 'abc'"},
	        {{"-k", "k", "--mem", "0"}, "--mem: at least"},
	        {{"-k", "k", "--mem", "1K"}, "--mem: at least"},
	        {{"-k", "k", "--mem", "100000001K"}, "multiple of 4 KiB"},
	        {{"-k", "k", "--mem", "2000G"}, "--mem: at most"},
	        {{"-k", "k", "--cpus", "0"}, "--cpus: '0'"},
	        {{"-k", "k", "--cpus", "-1"}, "--cpus: '-1'"},
	        {{"-k", "k", "--cpus", "256"}, "--cpus: '256'"},
	        {{"-k", "k", "--cpus", "99999999999999999999"}, "--cpus"},
	        {{"-k", "k", "--cpus", "2x"}, "--cpus: '2x'"},
	        {{"-k", "k", "--log-level", "loud"}, "--log-level"},
	        {{"-k", "k", "--timeout", "0"}, "--timeout"},
	        {{"-k", "k", "--seccomp", "yes"}, "--seccomp: 'yes' is not on or off"},
	        {{"-k", "k", "--api-socket", ""}, "--api-socket: the path is empty"},
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vm_config cfg;
		char err[256] = "";
		const char *const *a = cases[i].args;
		enum config_result r =
		        parse(&cfg, err, a[0], a[0] ? a[1] : NULL, a[0] && a[1] ? a[2] : NULL,
		              a[0] && a[1] && a[2] ? a[3] : NULL, NULL);
		ck_assert_msg(r == CONFIG_ERROR, "case %u", i);
		ck_assert_msg(strstr(err, cases[i].message), "case %u: '%s'", i, err);
		ck_assert_msg(!strchr(err, '\n'), "case %u: one line", i);
	}
}
END_TEST

static void check_cmdline(const char *user, const char *expected)
{
	char *got = config_kernel_cmdline(user, CONFIG_DEFAULT_ARGS);

	ck_assert_ptr_nonnull(got);
	ck_assert_msg(strcmp(got, expected) == 0, "'%s' -> '%s', want '%s'", user ? user : "NULL",
	              got, expected);
	free(got);
}

START_TEST(kernel_cmdline_defaults)
{
	check_cmdline(NULL, "console=ttyS0 panic=-1 reboot=k");
	check_cmdline("", "console=ttyS0 panic=-1 reboot=k");
	check_cmdline("quiet", "quiet console=ttyS0 panic=-1 reboot=k");
	check_cmdline("console=hvc0", "console=hvc0 panic=-1 reboot=k");
	check_cmdline("panic=5 quiet", "panic=5 quiet console=ttyS0 reboot=k");
	check_cmdline("reboot=t console=tty0 panic=0", "reboot=t console=tty0 panic=0");
	check_cmdline("nopanic=1", "nopanic=1 console=ttyS0 panic=-1 reboot=k");
	check_cmdline("root=/dev/vda -- init arg",
	              "root=/dev/vda console=ttyS0 panic=-1 reboot=k -- init arg");
	check_cmdline("quiet -- panic=1", "quiet console=ttyS0 panic=-1 reboot=k -- panic=1");
	check_cmdline("  quiet  ", "  quiet console=ttyS0 panic=-1 reboot=k");
}
END_TEST

/* A parameter's comma-separated values, as x86_64 reads acpi=off and pci=nommconf. */
START_TEST(cmdline_has_value)
{
	ck_assert(config_cmdline_has_value("acpi=off", "acpi", "off"));
	ck_assert(config_cmdline_has_value("quiet  acpi=off ", "acpi", "off"));
	ck_assert(config_cmdline_has_value("pci=noaer,nommconf", "pci", "nommconf"));
	ck_assert(config_cmdline_has_value("pci=nommconf,noaer", "pci", "nommconf"));
	ck_assert(!config_cmdline_has_value(NULL, "acpi", "off"));
	ck_assert(!config_cmdline_has_value("", "acpi", "off"));
	ck_assert(!config_cmdline_has_value("acpi=offx", "acpi", "off"));
	ck_assert(!config_cmdline_has_value("xacpi=off", "acpi", "off"));
	ck_assert(!config_cmdline_has_value("acpi", "acpi", "off"));
	ck_assert(!config_cmdline_has_value("acpi=", "acpi", "off"));
	ck_assert(!config_cmdline_has_value("pci=nommconfx,a", "pci", "nommconf"));
	ck_assert(!config_cmdline_has_value("pci=a,b -- acpi=off", "acpi", "off"));
	ck_assert(!config_cmdline_has_value("pci=,,", "pci", "nommconf"));
}
END_TEST

/* --cmdline-verbatim: vmm adds nothing, and the line keeps its spaces and "--" as typed. */
START_TEST(cmdline_verbatim)
{
	static const char *const lines[] = {"", "a  b -- c", "  arg1 --  arg2 ", "console=ttyS0"};
	struct vm_config cfg;
	char err[256] = "";

	ck_assert_int_eq(
	        parse(&cfg, err, "-k", "k", "--cmdline", "x y", "--cmdline-verbatim", NULL),
	        CONFIG_OK);
	ck_assert(cfg.cmdline_verbatim);
	ck_assert_str_eq(config_default_args(&cfg), "");
	for (unsigned i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		char *got = config_kernel_cmdline(lines[i], config_default_args(&cfg));

		ck_assert_ptr_nonnull(got);
		ck_assert_str_eq(got, lines[i]);
		free(got);
	}
	ck_assert_int_eq(parse(&cfg, err, "-k", "k", NULL), CONFIG_OK);
	ck_assert(!cfg.cmdline_verbatim);
	ck_assert_str_ne(config_default_args(&cfg), "");
}
END_TEST

/* Every default line skips the crypto self-tests, unless the user's line says otherwise. */
START_TEST(cmdline_crypto_self_tests)
{
	static const char *const extra[][2] = {{NULL, NULL},
	                                       {"--console", "virtio"},
	                                       {"--run", "true"},
	                                       {"--save-ready", "/tmp/x"}};
	struct vm_config cfg;
	char err[256] = "";

	for (unsigned i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		char *got;

		ck_assert_int_eq(parse(&cfg, err, "-k", "k", extra[i][0], extra[i][1], NULL),
		                 CONFIG_OK);
		got = config_kernel_cmdline("quiet", config_default_args(&cfg));
		ck_assert_ptr_nonnull(strstr(got, " cryptomgr.notests"));
		free(got);
		got = config_kernel_cmdline("cryptomgr.notests=0", config_default_args(&cfg));
		ck_assert_ptr_null(strstr(got, "cryptomgr.notests "));
		ck_assert_ptr_null(strstr(got + 1, "cryptomgr.notests"));
		free(got);
	}
}
END_TEST

/* --irqchip and --pmu: aarch64 choices; elsewhere usage errors that say so. */
START_TEST(irqchip_option)
{
	static const struct {
		const char *arg;
		const char *message; /* NULL: accepted */
		enum irqchip_kind kind;
	} cases[] = {
	        {"gicv2", NULL, IRQCHIP_GICV2},
	        {"gicv3", NULL, IRQCHIP_GICV3},
	        {"gicv3-its", NULL, IRQCHIP_GICV3_ITS},
	        {"gicv2m", NULL, IRQCHIP_GICV2M},
	        {"gic", "--irqchip: 'gic' is not gicv2, gicv2m, gicv3 or gicv3-its", 0},
	        {"", "--irqchip: '' is not gicv2, gicv2m, gicv3 or gicv3-its", 0},
	        {"auto", "--irqchip: 'auto' is not gicv2", 0},
	        {"GICV3", "--irqchip: 'GICV3' is not gicv2", 0},
	        {"gicv3-its ", "--irqchip: 'gicv3-its ' is not gicv2", 0},
	};
	struct vm_config cfg;
	char err[256];

	ck_assert_int_eq(parse(&cfg, err, "-k", "k", NULL), CONFIG_OK);
	ck_assert_int_eq(cfg.irqchip, IRQCHIP_AUTO);
	ck_assert(!cfg.pmu);
	err[0] = '\0';
	if (ARCH_HAS_GIC) {
		ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--pmu", NULL), CONFIG_OK);
		ck_assert(cfg.pmu);
	} else {
		ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--pmu", NULL), CONFIG_ERROR);
		ck_assert_msg(strstr(err, "--pmu: an aarch64 option"), "'%s'", err);
	}
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum irqchip_kind kind = IRQCHIP_AUTO;
		enum config_result r;

		/* The value's parser is arch-neutral: every row runs on every host. */
		ck_assert_int_eq(config_parse_irqchip(cases[i].arg, &kind),
		                 cases[i].message ? -EINVAL : 0);
		ck_assert_int_eq(kind, cases[i].message ? IRQCHIP_AUTO : cases[i].kind);
		if (!cases[i].message)
			ck_assert_str_eq(config_irqchip_name(kind), cases[i].arg);
		err[0] = '\0';
		r = parse(&cfg, err, "-k", "k", "--irqchip", cases[i].arg, NULL);
		if (!ARCH_HAS_GIC) {
			ck_assert_int_eq(r, CONFIG_ERROR);
			ck_assert_msg(strstr(err, "--irqchip: an aarch64 option"), "'%s'", err);
		} else if (cases[i].message) {
			ck_assert_int_eq(r, CONFIG_ERROR);
			ck_assert_msg(strstr(err, cases[i].message), "case %u: '%s'", i, err);
		} else {
			ck_assert_int_eq(r, CONFIG_OK);
			ck_assert_int_eq(cfg.irqchip, cases[i].kind);
		}
	}
}
END_TEST

START_TEST(disks_and_devices)
{
	struct vm_config cfg;
	char err[256];

	ck_assert_int_eq(parse(&cfg, err, "-k", "k", NULL), CONFIG_OK);
	ck_assert_uint_eq(cfg.nr_disks, 0);
	/* PCI by default on x86_64, virtio-mmio on aarch64; --transport pci offered on both */
	ck_assert_int_eq(cfg.transport, ARCH_DEFAULT_PCI ? TRANSPORT_PCI : TRANSPORT_MMIO);
	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--transport", "pci", NULL), CONFIG_OK);
	ck_assert_int_eq(cfg.transport, TRANSPORT_PCI);
	ck_assert_int_eq(
	        parse(&cfg, err, "-k", "k", "--transport", "pci", "--irqchip", "gicv2m", NULL),
	        ARCH_HAS_GIC ? CONFIG_OK : CONFIG_ERROR);
	ck_assert_int_eq(cfg.console, CONSOLE_SERIAL);
	ck_assert(cfg.rng);
	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--disk", "a.img", "--disk",
	                       "b,c.img,ro,cache=none,serial=ABC-123", "--transport", "mmio",
	                       "--console", "virtio", "--no-rng", NULL),
	                 CONFIG_ERROR); /* "b" then unknown option "c.img" */
	ck_assert(strstr(err, "'c.img'"));
	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--disk", "a.img", "--disk",
	                       "/x/b.img,ro,cache=none,serial=ABC-123", "--transport", "mmio",
	                       "--console", "virtio", "--no-rng", NULL),
	                 CONFIG_OK);
	ck_assert_uint_eq(cfg.nr_disks, 2);
	ck_assert_str_eq(cfg.disks[0].path, "a.img");
	ck_assert(!cfg.disks[0].read_only);
	ck_assert_int_eq(cfg.disks[0].cache, DISK_CACHE_WRITEBACK);
	ck_assert_str_eq(cfg.disks[0].serial, "");
	ck_assert_str_eq(cfg.disks[1].path, "/x/b.img");
	ck_assert(cfg.disks[1].read_only);
	ck_assert_int_eq(cfg.disks[1].cache, DISK_CACHE_NONE);
	ck_assert_str_eq(cfg.disks[1].serial, "ABC-123");
	ck_assert_int_eq(cfg.transport, TRANSPORT_MMIO);
	ck_assert_int_eq(cfg.console, CONSOLE_VIRTIO);
	ck_assert(!cfg.rng);
	ck_assert_str_eq(config_default_args(&cfg),
	                 "console=hvc0 panic=-1 reboot=k" ARCH_DEFAULT_ARGS CONFIG_SPEED_ARGS);
}
END_TEST

START_TEST(disk_errors)
{
	static const char *const bad[] = {
	        "",
	        ",ro",
	        "a.img,",
	        "a.img,rw",
	        "a.img,cache=fast",
	        "a.img,serial=123456789012345678901",
	        "a.img,ro,,",
	        "a.img,poll=",
	        "a.img,poll=1001",
	        "a.img,poll=-1",
	        "a.img,poll=10us",
	        "a.img,poll=00050",
	};
	struct disk_config d;
	char err[256];

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		ck_assert_msg(config_parse_disk(bad[i], &d, err, sizeof(err)) == -EINVAL, "'%s'",
		              bad[i]);
		ck_assert_msg(strncmp(err, "--disk: ", 8) == 0, "'%s': '%s'", bad[i], err);
	}
	ck_assert_int_eq(config_parse_disk("a,serial=12345678901234567890", &d, err, sizeof(err)),
	                 0);
	ck_assert_str_eq(d.serial, "12345678901234567890");
	ck_assert_int_eq(d.poll_us, POLL_AUTO); /* not given: vmm decides */
	ck_assert_int_eq(config_parse_disk("a,poll=0", &d, err, sizeof(err)), 0);
	ck_assert_int_eq(d.poll_us, 0);
	ck_assert_int_eq(config_parse_disk("a,ro,poll=1000", &d, err, sizeof(err)), 0);
	ck_assert_int_eq(d.poll_us, 1000);
	ck_assert_int_eq(config_parse_disk("a,poll=5,poll=6", &d, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "--disk: 'poll' given twice");
}
END_TEST

START_TEST(nets)
{
	static const char *const bad[] = {
	        "",
	        "tap=",
	        "mac=52:54:00:12:34:56",
	        "tap=a,tap=b",
	        "tap=0123456789abcdef",
	        "tap=a,mac=01:00:5e:00:00:01",
	        "tap=a,mac=52:54:00",
	        "tap=a,frob",
	        "tap=a,",
	        "user,tap=a",
	        "user,user",
	        "tap=a,hostfwd=tcp::1-:2",
	        "tap=a,queues=0",
	        "tap=a,queues=9",
	        "tap=a,queues=",
	        "tap=a,queues=x",
	        "tap=a,queues=02",
	        "tap=a,queues=100",
	        "tap=a,queues=2,queues=2",
	        "user,queues=2",
	        "tap=a,poll=",
	        "tap=a,poll=1001",
	        "tap=a,poll=-1",
	        "tap=a,poll=10000",
	        "tap=a,poll=1,poll=2",
	        "user,hostfwd=tcp::0-:22",
	        "user,hostfwd=tcp::22-10.0.3.15:22",
	        "user,hostfwd=sctp::1-:2",
	        "user,hostfwd=tcp::1-:1,hostfwd=tcp::2-:2,hostfwd=tcp::3-:3,"
	        "hostfwd=tcp::4-:4,hostfwd=tcp::5-:5,hostfwd=tcp::6-:6,"
	        "hostfwd=tcp::7-:7,hostfwd=tcp::8-:8,hostfwd=tcp::9-:9"};
	struct net_config n;
	char err[256];

	ck_assert_int_eq(config_parse_net("tap=tap0", &n, err, sizeof(err)), 0);
	ck_assert_str_eq(n.tap, "tap0");
	ck_assert(!n.has_mac);
	ck_assert_uint_eq(n.queues, 0); /* one per vCPU */
	ck_assert_int_eq(n.poll_us, POLL_AUTO);
	ck_assert_int_eq(config_parse_net("tap=tap0,queues=8", &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n.queues, 8);
	ck_assert_int_eq(config_parse_net("tap=tap0,poll=1000", &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n.poll_us, 1000);
	ck_assert_int_eq(config_parse_net("user,poll=0", &n, err, sizeof(err)), 0);
	ck_assert_int_eq(n.poll_us, 0);
	ck_assert_int_eq(config_parse_net("user,queues=1", &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n.queues, 1);
	ck_assert_int_eq(config_parse_net("tap=t1,mac=52:54:00:12:34:56", &n, err, sizeof(err)), 0);
	ck_assert(n.has_mac);
	ck_assert_uint_eq(n.mac[0], 0x52);
	ck_assert_uint_eq(n.mac[5], 0x56);
	ck_assert_int_eq(config_parse_net("user", &n, err, sizeof(err)), 0);
	ck_assert(n.user && !n.tap[0] && !n.user_cfg.nr_forwards);
	ck_assert_int_eq(config_parse_net("user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:53-"
	                                  "10.0.2.20:5353,mac=52:54:00:12:34:57",
	                                  &n, err, sizeof(err)),
	                 0);
	ck_assert_uint_eq(n.user_cfg.nr_forwards, 2);
	ck_assert(!n.user_cfg.forwards[0].udp && n.user_cfg.forwards[1].udp);
	ck_assert_uint_eq(n.user_cfg.forwards[0].host_port, 2222);
	ck_assert_uint_eq(n.user_cfg.forwards[1].guest_port, 5353);
	ck_assert_uint_eq(n.mac[5], 0x57);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(config_parse_net(bad[i], &n, err, sizeof(err)) == -EINVAL, "'%s'",
		              bad[i]);
		ck_assert_msg(strncmp(err, "--net: ", 7) == 0, "'%s': '%s'", bad[i], err);
	}
}
END_TEST

START_TEST(vsock)
{
	static const char *const bad[] = {
	        "",
	        ",cid=3",
	        "/tmp/v.sock,cid=2",
	        "/tmp/v.sock,cid=4294967295",
	        "/tmp/v.sock,cid=",
	        "/tmp/v.sock,cid=x",
	        "/tmp/v.sock,cid=3,cid=4",
	        "/tmp/v.sock,ro",
	        "/tmp/0123456789012345678901234567890123456789012345678901234567890"
	        "1234567890123456789012345678901234567890.sock"};
	struct vsock_config v;
	char err[256];

	ck_assert_int_eq(config_parse_vsock("/tmp/v.sock", &v, err, sizeof(err)), 0);
	ck_assert_str_eq(v.path, "/tmp/v.sock");
	ck_assert_uint_eq(v.cid, 3);
	ck_assert_int_eq(config_parse_vsock("v.sock,cid=4294967294", &v, err, sizeof(err)), 0);
	ck_assert_uint_eq(v.cid, 4294967294u);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(config_parse_vsock(bad[i], &v, err, sizeof(err)) == -EINVAL, "'%s'",
		              bad[i]);
		ck_assert_msg(strncmp(err, "--vsock: ", 9) == 0, "'%s': '%s'", bad[i], err);
	}
}
END_TEST

START_TEST(shares)
{
	static const char *const bad[] = {
	        "",        ":/x",   "d:",      "d:rel",
	        "d:/",     "d:/a/", "d:/a//b", "d:/a/./b",
	        "d:/a/..", "d,rw",  "d,tag=",  "d,tag=0123456789012345678901234567890123456",
	        "d,"};
	struct share_config sh;
	char err[256];

	ck_assert_int_eq(config_parse_share("/srv/data", &sh, err, sizeof(err)), 0);
	ck_assert_str_eq(sh.host, "/srv/data");
	ck_assert_str_eq(sh.guest, "");
	ck_assert_str_eq(sh.tag, "");
	ck_assert(!sh.read_only);
	ck_assert_int_eq(config_parse_share("rel/dir:/mnt/x,ro,tag=t1", &sh, err, sizeof(err)), 0);
	ck_assert_str_eq(sh.host, "rel/dir");
	ck_assert_str_eq(sh.guest, "/mnt/x");
	ck_assert_str_eq(sh.tag, "t1");
	ck_assert(sh.read_only);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(config_parse_share(bad[i], &sh, err, sizeof(err)) == -EINVAL, "'%s'",
		              bad[i]);
		ck_assert_msg(strncmp(err, "--share", 7) == 0, "'%s': '%s'", bad[i], err);
	}
}
END_TEST

/* --run's options: what needs --run, what conflicts with it, and the shares' tags. */
START_TEST(run_mode)
{
	static const struct {
		const char *args[6];
		const char *message;
	} cases[] = {
	        {{"-k", "k", "--run", ""}, "--run: the command is empty"},
	        {{"-k", "k", "--modules", "m"}, "--modules needs --run"},
	        {{"-k", "k", "--console-log", "f"}, "--console-log needs --run"},
	        {{"-k", "k", "--run", "x", "--initrd", "i"}, "--run and --initrd"},
	        {{"-k", "k", "--share", "d:/x"}, "GUESTDIR needs --run"},
	        {{"-k", "k", "--share", "d,tag=vmm-root"}, "vmm's own"},
	        {{"-k", "k", "--share", "a,tag=t", "--share", "b,tag=t"}, "two shares"},
	        {{"-k", "k", "--run", "x", "--cmdline-verbatim"}, "--run and --cmdline-verbatim"},
	};
	struct vm_config cfg;
	char err[256];

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *a = cases[i].args;

		err[0] = '\0';
		ck_assert_msg(parse(&cfg, err, a[0], a[1], a[2], a[3], a[4], a[5], NULL) ==
		                      CONFIG_ERROR,
		              "case %u", i);
		ck_assert_msg(strstr(err, cases[i].message), "case %u: '%s'", i, err);
	}
	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--run", "echo hi", "--share", "/d:/mnt/d",
	                       "--modules", "m", "--console-log", "l", "--virtiofsd", "v", NULL),
	                 CONFIG_OK);
	ck_assert_str_eq(cfg.run_cmd, "echo hi");
	ck_assert_uint_eq(cfg.nr_shares, 1);
	ck_assert_str_eq(cfg.shares[0].guest, "/mnt/d");
	ck_assert_str_eq(cfg.modules_dir, "m");
	ck_assert_str_eq(cfg.console_log, "l");
	ck_assert_str_eq(cfg.virtiofsd, "v");
	ck_assert(strstr(config_default_args(&cfg), "quiet"));
}
END_TEST

/*
 * A sub-option given twice is an error naming it, whatever the values: "serial=ABCDEF,serial=XY"
 * once gave "XYCDEF".
 */
START_TEST(repeated_sub_options)
{
	static const struct {
		const char *spec, *message;
	} disk_specs[] =
	        {
	                {"x,serial=ABCDEF,serial=XY", "--disk: 'serial' given twice"},
	                {"x,serial=XY,serial=ABCDEF", "--disk: 'serial' given twice"},
	                {"x,serial=A,ro,serial=A", "--disk: 'serial' given twice"},
	                {"x,ro,ro", "--disk: 'ro' given twice"},
	                {"x,cache=none,cache=writeback", "--disk: 'cache' given twice"},
	                {"x,cache=none,ro,cache=none", "--disk: 'cache' given twice"},
	        },
	  net_specs[] =
	          {
	                  {"tap=a,tap=b", "--net: 'tap' given twice"},
	                  {"tap=a,mac=52:54:00:12:34:56,mac=52:54:00:12:34:57",
	                   "--net: 'mac' given twice"},
	          },
	  share_specs[] = {
	          {"d,tag=a,tag=b", "--share: 'tag' given twice"},
	          {"d:/mnt,ro,tag=a,ro", "--share: 'ro' given twice"},
	  };
	struct disk_config d;
	struct net_config n;
	struct share_config sh;
	char err[256];

	for (unsigned i = 0; i < sizeof(disk_specs) / sizeof(disk_specs[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(config_parse_disk(disk_specs[i].spec, &d, err, sizeof(err)),
		                 -EINVAL);
		ck_assert_msg(!strcmp(err, disk_specs[i].message), "'%s': '%s'", disk_specs[i].spec,
		              err);
	}
	for (unsigned i = 0; i < sizeof(net_specs) / sizeof(net_specs[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(config_parse_net(net_specs[i].spec, &n, err, sizeof(err)),
		                 -EINVAL);
		ck_assert_msg(!strcmp(err, net_specs[i].message), "'%s': '%s'", net_specs[i].spec,
		              err);
	}
	for (unsigned i = 0; i < sizeof(share_specs) / sizeof(share_specs[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(config_parse_share(share_specs[i].spec, &sh, err, sizeof(err)),
		                 -EINVAL);
		ck_assert_msg(!strcmp(err, share_specs[i].message), "'%s': '%s'",
		              share_specs[i].spec, err);
	}
	/* An unknown part is reported as unknown, also when it repeats. */
	ck_assert_int_eq(config_parse_disk("x,frob,frob", &d, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "unknown or invalid option 'frob'"));
	/* Different options, and options that only look alike, are fine. */
	ck_assert_int_eq(config_parse_disk("x,ro,cache=none,serial=XY", &d, err, sizeof(err)), 0);
	ck_assert_str_eq(d.serial, "XY");
	ck_assert(d.read_only && d.cache == DISK_CACHE_NONE);
	ck_assert_int_eq(config_parse_disk("ro,ro", &d, err, sizeof(err)), 0); /* a path "ro" */
	ck_assert_str_eq(d.path, "ro");
	ck_assert(d.read_only);
	/* The same through the command line: a usage error. */
	{
		struct vm_config cfg;

		ck_assert_int_eq(
		        parse(&cfg, err, "-k", "k", "--disk", "x,serial=ABCDEF,serial=XY", NULL),
		        CONFIG_ERROR);
		ck_assert_str_eq(err, "--disk: 'serial' given twice");
	}
}
END_TEST

/* --debug-exit: opt-in, x86 only, and never with --run (whose status is the command's). */
/* A snapshot keeps the machine's options, in order; --restore takes only this run's own. */
START_TEST(restore_and_machine_options)
{
	static struct vm_config cfg, machine;
	char err[256];

	ck_assert_int_eq(parse(&cfg, err, "--kernel", "k", "--api-socket", "/tmp/a", "--mem", "1G",
	                       "--timeout", "9", "--disk", "d.img,ro", "--no-rng", "--stats", NULL),
	                 CONFIG_OK);
	ck_assert_uint_eq(cfg.nr_machine_args, 4);
	ck_assert_str_eq(config_option_name(cfg.machine_args[0].opt), "kernel");
	ck_assert_str_eq(cfg.machine_args[0].value, "k");
	ck_assert_str_eq(config_option_name(cfg.machine_args[1].opt), "mem");
	ck_assert_str_eq(config_option_name(cfg.machine_args[2].opt), "disk");
	ck_assert_str_eq(cfg.machine_args[2].value, "d.img,ro");
	ck_assert_str_eq(config_option_name(cfg.machine_args[3].opt), "no-rng");
	ck_assert_ptr_null(cfg.machine_args[3].value);

	ck_assert_int_eq(parse(&cfg, err, "--restore", "/s", "--api-socket", "/tmp/b", "--timeout",
	                       "5", "--log-level", "debug", NULL),
	                 CONFIG_OK);
	ck_assert_str_eq(cfg.restore_dir, "/s");
	ck_assert_uint_eq(cfg.nr_machine_args, 0);
	ck_assert_int_eq(parse(&machine, err, "--kernel", "k", "--api-socket", "/tmp/old", NULL),
	                 CONFIG_OK);
	config_take_session(&machine, &cfg);
	ck_assert_str_eq(machine.api_socket, "/tmp/b");
	ck_assert_uint_eq(machine.timeout_sec, 5);
	ck_assert_int_eq(machine.log_level, LOG_DEBUG);
	ck_assert_str_eq(machine.restore_dir, "/s");
	ck_assert_str_eq(machine.kernel_path, "k");

	ck_assert_int_eq(parse(&cfg, err, "--restore", "/s", "--kernel", "k", NULL), CONFIG_ERROR);
	ck_assert_str_eq(err, "--kernel cannot be given with --restore: the machine comes from the "
	                      "snapshot");
	ck_assert_int_eq(parse(&cfg, err, "--restore", "/s", "--cpus", "2", NULL), CONFIG_ERROR);
	ck_assert_int_eq(parse(&cfg, err, "--restore", "", NULL), CONFIG_ERROR);
}
END_TEST

/*
 * --save-ready: a machine option (the snapshot keeps it, and a restore knows the machine takes
 * --run); the test run's own options go with each --restore of it.
 */
START_TEST(save_ready_and_restore_run)
{
	static struct vm_config cfg, machine;
	char err[256];

	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--cpus", "2", "--save-ready", "/s",
	                       "--modules", "/m", NULL),
	                 CONFIG_OK);
	ck_assert_str_eq(cfg.save_ready, "/s");
	ck_assert(config_test_run(&cfg));
	ck_assert_ptr_null(cfg.run_cmd);
	ck_assert_uint_eq(cfg.nr_machine_args, 4);
	ck_assert_str_eq(config_option_name(cfg.machine_args[2].opt), "save-ready");
	ck_assert_ptr_nonnull(strstr(config_default_args(&cfg), "quiet init_on_free=1"));
	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--save-ready", "/s", "--run", "x", NULL),
	                 CONFIG_ERROR);
	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--save-ready", "/s", "--share", "/d", NULL),
	                 CONFIG_ERROR);
	/* Not hot-pluggable: spare virtio-mmio windows wait for the shares (vmm/devices.c). */
	ck_assert_int_eq(
	        parse(&cfg, err, "-k", "k", "--save-ready", "/s", "--transport", "mmio", NULL),
	        CONFIG_OK);
	ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--save-ready", "", NULL), CONFIG_ERROR);

	/* The restore: --run and its shares are this run's, not the machine's. */
	ck_assert_int_eq(parse(&cfg, err, "--restore", "/s", "--run", "make check", "--share",
	                       "/d:/data,ro", "--console-log", "/tmp/log", NULL),
	                 CONFIG_OK);
	ck_assert_uint_eq(cfg.nr_machine_args, 0);
	ck_assert_int_eq(parse(&machine, err, "--kernel", "k", "--save-ready", "/old", NULL),
	                 CONFIG_OK);
	config_take_session(&machine, &cfg);
	ck_assert_str_eq(machine.run_cmd, "make check");
	ck_assert_uint_eq(machine.nr_shares, 1);
	ck_assert_str_eq(machine.shares[0].guest, "/data");
	ck_assert(machine.shares[0].read_only);
	ck_assert_str_eq(machine.console_log, "/tmp/log");
	ck_assert_str_eq(machine.save_ready, "/old");
	ck_assert_int_eq(parse(&cfg, err, "--restore", "/s", "--share", "/d", NULL), CONFIG_ERROR);
	ck_assert_str_eq(err, "--share with --restore needs --run (and a --save-ready snapshot)");
	ck_assert_int_eq(parse(&cfg, err, "--restore", "/s", "--console-log", "/l", NULL),
	                 CONFIG_ERROR);
}
END_TEST

START_TEST(debug_exit_option)
{
	struct vm_config cfg;
	char err[256] = "";

	ck_assert_int_eq(parse(&cfg, err, "-k", "k", NULL), CONFIG_OK);
	ck_assert(!cfg.debug_exit);
	if (ARCH_HAS_TEST_DEVICE) {
		ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--debug-exit", NULL), CONFIG_OK);
		ck_assert(cfg.debug_exit);
		ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--debug-exit", "--run", "true", NULL),
		                 CONFIG_ERROR);
		ck_assert_ptr_nonnull(strstr(err, "--run and --debug-exit"));
	} else {
		ck_assert_int_eq(parse(&cfg, err, "-k", "k", "--debug-exit", NULL), CONFIG_ERROR);
		ck_assert_ptr_nonnull(strstr(err, "--debug-exit: vmm on " ARCH_NAME));
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, sizes);
	tcase_add_test(tc, defaults_and_options);
	tcase_add_test(tc, usage_errors);
	tcase_add_test(tc, kernel_cmdline_defaults);
	tcase_add_test(tc, cmdline_verbatim);
	tcase_add_test(tc, cmdline_crypto_self_tests);
	tcase_add_test(tc, cmdline_has_value);
	tcase_add_test(tc, irqchip_option);
	tcase_add_test(tc, disks_and_devices);
	tcase_add_test(tc, disk_errors);
	tcase_add_test(tc, nets);
	tcase_add_test(tc, vsock);
	tcase_add_test(tc, shares);
	tcase_add_test(tc, run_mode);
	tcase_add_test(tc, repeated_sub_options);
	tcase_add_test(tc, debug_exit_option);
	tcase_add_test(tc, restore_and_machine_options);
	tcase_add_test(tc, save_ready_and_restore_run);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
