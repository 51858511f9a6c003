#!/usr/bin/env python3
"""The bad-input table: each row runs vmm with one kind of bad input and expects one line on
stderr starting with "vmm: ", matching the row's regex, an exact exit status (2 for usage
errors, 1 for everything found later), no signal death and an end within 10 s.

Usage: test_bad_input.py --vmm PATH --payload PATH/fw_hello [--bzimage PATH]
Exit status 0 pass, 1 fail, 77 skip (only when nothing could be checked)."""

import fcntl
import glob
import os
import random
import re
import struct
import sys
import tempfile
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fwlib  # noqa: E402

ROW_TIMEOUT = 10.0

KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_MAX_VCPUS = 66
CONFIG_MAX_CPUS = 255  # vmm's own limit (xAPIC IDs), checked as a usage error


class Row:
    """One bad input.
    argv: vmm arguments; "{tmp}" is the scratch directory, "{hello}" the hello payload.
    files: name -> bytes, or a callable(path) that creates the file.
    status: the exact exit status, or a tuple of accepted ones (see the row's note).
    regex: searched for in the single stderr line.
    needs_kvm: the error is only found after /dev/kvm is opened.
    skip: None, or the reason the row cannot run here."""

    def __init__(self, desc, argv, status, regex, files=None, env=None, needs_kvm=True,
                 skip=None):
        self.desc = desc
        self.argv = argv
        self.status = status
        self.regex = regex
        self.files = files or {}
        self.env = env or {}
        self.needs_kvm = needs_kvm
        self.skip = skip


# ---- inputs --------------------------------------------------------------------------------


def read(path):
    with open(path, "rb") as f:
        return f.read()


def first_load(elf):
    """(offset of the phdr, p_offset, p_filesz) of the first PT_LOAD of an ELF64 image."""
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for i in range(phnum):
        at = phoff + i * phentsize
        p_type, = struct.unpack_from("<I", elf, at)
        if p_type == 1:
            p_offset, = struct.unpack_from("<Q", elf, at + 8)
            p_filesz, = struct.unpack_from("<Q", elf, at + 32)
            return at, p_offset, p_filesz
    raise ValueError("no PT_LOAD in the hello payload")


def truncated_elf(hello):
    _, p_offset, p_filesz = first_load(hello)
    return hello[:p_offset + p_filesz // 2]


def elf_load_at(hello, addr):
    """hello with its first PT_LOAD moved to @addr (p_paddr and p_vaddr)."""
    elf = bytearray(hello)
    at, _, _ = first_load(elf)
    struct.pack_into("<QQ", elf, at + 16, addr, addr)
    return bytes(elf)


def elf32(hello):
    elf = bytearray(hello)
    elf[4] = 1  # EI_CLASS = ELFCLASS32
    return bytes(elf)


def garbage():
    rng = random.Random(20240601)
    data = bytearray(rng.getrandbits(8) for _ in range(65536))
    data[0:4] = b"GARB"   # surely not "\x7fELF"
    data[0x202:0x206] = b"JUNK"   # surely not "HdrS"
    return bytes(data)


def synthetic_bzimage_head():
    """The first 4 KiB of a bzImage as Linux 6.1 builds it: boot sector with the setup header
    (boot protocol 2.15, 64-bit entry, relocatable), claiming 27 setup sectors and an 8 MiB
    protected-mode part, so 4 KiB is far short of the whole."""
    h = bytearray(4096)
    h[0x1F1] = 27                                      # setup_sects
    struct.pack_into("<H", h, 0x1F2, 1)                # root_flags
    struct.pack_into("<I", h, 0x1F4, (8 << 20) // 16)  # syssize (16-byte units)
    struct.pack_into("<H", h, 0x1FE, 0xAA55)           # boot_flag
    h[0x200:0x202] = b"\xeb\x6a"                       # jump over the header
    h[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", h, 0x206, 0x020F)           # version 2.15
    h[0x211] = 0x01                                    # loadflags: LOADED_HIGH
    struct.pack_into("<I", h, 0x214, 0x100000)         # code32_start
    struct.pack_into("<I", h, 0x22C, 0x7FFFFFFF)       # initrd_addr_max
    struct.pack_into("<I", h, 0x230, 0x200000)         # kernel_alignment
    h[0x234] = 1                                       # relocatable_kernel
    h[0x235] = 21                                      # min_alignment
    struct.pack_into("<H", h, 0x236, 0x7F)             # xloadflags: XLF_KERNEL_64 | ...
    struct.pack_into("<I", h, 0x238, 2047)             # cmdline_size
    struct.pack_into("<I", h, 0x248, 0x3C0)            # payload_offset
    struct.pack_into("<I", h, 0x24C, (8 << 20) - 0x1000)  # payload_length
    struct.pack_into("<Q", h, 0x258, 0x1000000)        # pref_address
    struct.pack_into("<I", h, 0x260, 0x2000000)        # init_size
    return bytes(h)


def bzimage_head(hint):
    """4 KiB from a real bzImage when one is around, else a synthesized one. Returns (bytes,
    where it came from)."""
    candidates = ([hint] if hint else []) + sorted(glob.glob("/boot/vmlinuz-*"))
    for path in candidates:
        try:
            data = read(path)
        except OSError:
            continue
        if len(data) > 8192 and data[0x202:0x206] == b"HdrS":
            return data[:4096], path
    return synthetic_bzimage_head(), "a synthesized setup header (no bzImage found at " + \
        ", ".join(candidates or ["build/guest/bzImage"]) + ")"


def sparse_file(size):
    def create(path):
        with open(path, "wb") as f:
            f.truncate(size)
    return create


def snapshot_state(version=1, arch=62, conf=True, cut=0, flip=None,
                   options=((b"kernel", b"/nonexistent"),)):
    """A function making directory PATH with a snapshot state file (vmm/snapshot_file.h) in
    it: a CONF section (vmm's saved options, @options: (name, value) pairs) unless @conf is
    false, END with its crc32; then @cut bytes cut off the end, or the byte at @flip
    inverted."""
    def section(tag, instance, payload):
        pad = b"\0" * (-len(payload) % 8)
        return tag + struct.pack("<III", instance, len(payload), 0) + payload + pad

    def make(path):
        payload = struct.pack("<I", len(options))
        for name, value in options:
            payload += (struct.pack("<I", len(name)) + name + b"\1" +
                        struct.pack("<I", len(value)) + value)
        body = section(b"CONF", 0, payload) if conf else b""
        data = b"VMMSTATE" + struct.pack("<IIQ", version, arch, len(body) + 24) + body
        data += section(b"END ", 0, struct.pack("<I", zlib.crc32(data)))
        if cut:
            data = data[:-cut]
        if flip is not None:
            data = data[:flip] + bytes([data[flip] ^ 0xFF]) + data[flip + 1:]
        os.mkdir(path)
        with open(os.path.join(path, "state"), "wb") as f:
            f.write(data)
    return make


def fifo(path):
    os.mkfifo(path)


# A regular file whose size (4096, from stat) promises more than a read gives: what a file
# truncated while vmm reads it looks like, every time.
SYSFS_SHORT = "/sys/kernel/mm/transparent_hugepage/enabled"


def sysfs_short_missing():
    try:
        st = os.stat(SYSFS_SHORT)
    except OSError:
        return f"no {SYSFS_SHORT} here"
    if not (st.st_mode & 0o170000 == 0o100000 and st.st_size > 64):
        return f"{SYSFS_SHORT} is not a short regular sysfs file here"
    return None


def kvm_max_vcpus():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS)
    except OSError:
        return None
    finally:
        os.close(fd)


# ---- the table -----------------------------------------------------------------------------


def table(hello, bz_head):
    host = fwlib.host_memory_bytes()
    beyond_host_gib = (host >> 30) * 2 + 2 if host else 0
    max_vcpus = kvm_max_vcpus()
    k = ["--kernel", "{hello}"]
    return [
        Row("no --kernel", [], 2, r"kernel", needs_kvm=False),
        Row("no --kernel, other options given", ["--mem", "64M"], 2, r"--kernel",
            needs_kvm=False),
        Row("unknown option", k + ["--frobnicate"], 2, r"--frobnicate", needs_kvm=False),
        Row("option without its value", ["--kernel"], 2, r"--kernel", needs_kvm=False),
        Row("stray positional argument", k + ["stray"], 2, r"stray", needs_kvm=False),
        Row("--kernel names a missing file", ["--kernel", "{tmp}/nonexistent"], 1,
            r"nonexistent.*No such file or directory"),
        Row("--kernel names a directory", ["--kernel", "{tmp}"], 1,
            r"(?i)is a directory|not a regular file"),
        Row("--kernel unreadable (mode 000)", ["--kernel", "{tmp}/secret"], 1,
            r"secret.*Permission denied", files={"secret": hello},
            skip="running as root, which can read a mode-000 file (the directory row covers "
                 "an unopenable kernel)" if os.geteuid() == 0 else None),
        # Host input that is no regular file: refused at once (a FIFO's open does not wait for
        # a writer), never read or mapped.
        Row("--kernel is a FIFO (nobody writes it)", ["--kernel", "{tmp}/kernel.fifo"], 1,
            r"kernel\.fifo.*not a regular file \(a FIFO\)", files={"kernel.fifo": fifo}),
        Row("--initrd is a FIFO (nobody writes it)", k + ["--initrd", "{tmp}/initrd.fifo"], 1,
            r"initrd\.fifo.*not a regular file \(a FIFO\)", files={"initrd.fifo": fifo}),
        Row("--kernel is a character device (/dev/null)", ["--kernel", "/dev/null"], 1,
            r"kernel '/dev/null'.*not a regular file \(a character device\)"),
        Row("--initrd is a character device without end (/dev/zero)",
            k + ["--initrd", "/dev/zero"], 1,
            r"initrd '/dev/zero'.*not a regular file \(a character device\)"),
        Row("--initrd names a directory", k + ["--initrd", "{tmp}"], 1,
            r"initrd.*not a regular file \(a directory\)"),
        Row("--initrd file is empty", k + ["--initrd", "{tmp}/empty.img"], 1,
            r"initrd.*empty\.img.*(?i:empty)", files={"empty.img": b""}),
        Row("--kernel shrinks while read (a sysfs file: 4096 bytes by stat, fewer by read)",
            ["--kernel", SYSFS_SHORT], 1, r"(?i)kernel.*shrank", skip=sysfs_short_missing()),
        Row("--initrd shrinks while read (the same sysfs file)", k + ["--initrd", SYSFS_SHORT],
            1, r"(?i)initrd.*shrank", skip=sysfs_short_missing()),
        Row("kernel is garbage", ["--kernel", "{tmp}/garbage.bin"], 1,
            r"garbage\.bin.*(?i:not a|unknown|unrecogni[sz]ed|unsupported|invalid|format)",
            files={"garbage.bin": garbage()}),
        Row("kernel file is empty", ["--kernel", "{tmp}/empty.bin"], 1, r"empty\.bin.*(?i:empty)",
            files={"empty.bin": b""}),
        Row("truncated bzImage (its first 4 KiB)", ["--kernel", "{tmp}/bzImage.4k"],
            1, r"bzImage\.4k.*(?i:truncated|too short|too small|short|beyond the end)",
            files={"bzImage.4k": bz_head}),
        Row("truncated ELF (hello cut inside its first segment)", ["--kernel", "{tmp}/cut.elf"],
            1, r"cut\.elf.*(?i:truncated|too short|beyond|past the end|outside the file)",
            files={"cut.elf": truncated_elf(hello)}),
        Row("32-bit ELF", ["--kernel", "{tmp}/elf32.elf"], 1,
            r"elf32\.elf.*(?i:ELF|32-bit|class|not a|unsupported)",
            files={"elf32.elf": elf32(hello)}),
        Row("ELF segment outside RAM (p_paddr 0x7fff0000, --mem 64M)",
            ["--kernel", "{tmp}/high.elf", "--mem", "64M"], 1,
            r"high\.elf.*(?i:segment|outside|RAM|does not fit)",
            files={"high.elf": elf_load_at(hello, 0x7FFF0000)}),
        Row("ELF segment below 1 MiB (p_paddr 0x1000)", ["--kernel", "{tmp}/low.elf"], 1,
            r"low\.elf.*(?i:segment|1 MiB|0x100000|below|outside)",
            files={"low.elf": elf_load_at(hello, 0x1000)}),
        Row("--initrd names a missing file", k + ["--initrd", "{tmp}/no-initrd"], 1,
            r"no-initrd.*No such file or directory"),
        Row("--initrd larger than --mem (sparse 128 MiB, --mem 64M)",
            k + ["--mem", "64M", "--initrd", "{tmp}/huge.img"], 1,
            r"(?i)initrd.*(fit|too (big|large)|space)", files={"huge.img": sparse_file(128 << 20)}),
        Row("--mem 0", k + ["--mem", "0"], 2, r"--mem", needs_kvm=False),
        Row("--mem 1K (too small)", k + ["--mem", "1K"], 2, r"--mem", needs_kvm=False),
        Row("--mem abc", k + ["--mem", "abc"], 2, r"--mem.*abc", needs_kvm=False),
        Row("--mem 64X (bad suffix)", k + ["--mem", "64X"], 2, r"--mem.*64X", needs_kvm=False),
        Row("--mem 100T (above the largest supported size)", k + ["--mem", "100T"], 2, r"--mem",
            needs_kvm=False),
        Row(f"--mem {beyond_host_gib}G (more than this host's RAM and swap can back)",
            k + ["--mem", f"{beyond_host_gib}G"], 1, r"--mem.*(?i:host)",
            skip=None if host and beyond_host_gib <= 1024 else
            "cannot tell this host's memory from /proc/meminfo, or it is above vmm's 1 TiB limit"),
        Row("--cpus 0", k + ["--cpus", "0"], 2, r"--cpus", needs_kvm=False),
        Row("--cpus -1", k + ["--cpus", "-1"], 2, r"--cpus", needs_kvm=False),
        Row("--cpus 100000", k + ["--cpus", "100000"], 2, r"--cpus", needs_kvm=False),
        Row("--cpus abc", k + ["--cpus", "abc"], 2, r"--cpus.*abc", needs_kvm=False),
        Row("--cpus above KVM's limit", k + ["--cpus", str((max_vcpus or 0) + 1)], 1,
            r"--cpus.*(?i:KVM|at most)",
            skip=None if max_vcpus and max_vcpus < CONFIG_MAX_CPUS else
            f"KVM allows {max_vcpus} vCPUs here, more than vmm's own limit of {CONFIG_MAX_CPUS} "
            "(which the --cpus 100000 row covers)"),
        Row("--log-level bogus", k + ["--log-level", "bogus"], 2, r"--log-level.*bogus",
            needs_kvm=False),
        Row("VMM_KVM_DEVICE=/nonexistent (message says how to fix it)", k, 1,
            r"/nonexistent.*(?i:modprobe|load the kvm module|enable virtuali[sz]ation)",
            env={"VMM_KVM_DEVICE": "/nonexistent"}, needs_kvm=False),
        Row("VMM_KVM_DEVICE=/dev/null (opens, but is no KVM device)", k, 1,
            r"/dev/null.*(?i:not a KVM device)", env={"VMM_KVM_DEVICE": "/dev/null"},
            needs_kvm=False),
        Row("--disk names a missing file", k + ["--disk", "{tmp}/no-disk.img"], 1,
            r"no-disk\.img.*No such file or directory"),
        Row("--disk names a directory", k + ["--disk", "{tmp}"], 1,
            r"(?i)disk.*(directory|not a regular file|block device)"),
        Row("--disk image smaller than a sector (100 bytes)", k + ["--disk", "{tmp}/tiny.img"], 1,
            r"tiny\.img.*(?i:512|sector|too small|empty)", files={"tiny.img": b"x" * 100}),
        Row("--disk with an unknown option", k + ["--disk", "{tmp}/d.img,frob"], 2,
            r"--disk.*frob", needs_kvm=False),
        Row("--disk serial longer than 20 bytes", k + ["--disk", "{tmp}/d.img,serial=" + "s" * 21],
            2, r"--disk.*serial", needs_kvm=False),
        Row("--disk with serial= twice (no half-replaced value)",
            k + ["--disk", "{tmp}/d.img,serial=ABCDEF,serial=XY"], 2,
            r"--disk: 'serial' given twice", needs_kvm=False),
        Row("--disk with cache= twice", k + ["--disk", "{tmp}/d.img,cache=none,cache=writeback"],
            2, r"--disk: 'cache' given twice", needs_kvm=False),
        Row("--disk given 9 times (at most 8)", k + ["--disk", "{tmp}/d.img"] * 9, 2,
            r"--disk.*(?i:at most)", needs_kvm=False),
        Row("--net without tap=", k + ["--net", "mac=52:54:00:12:34:56"], 2, r"--net.*tap=NAME",
            needs_kvm=False),
        Row("--net with a multicast MAC", k + ["--net", "tap=t0,mac=01:00:5e:00:00:01"], 2,
            r"--net.*01:00:5e:00:00:01", needs_kvm=False),
        Row("--net with a TAP name over 15 characters", k + ["--net", "tap=" + "t" * 16], 2,
            r"--net.*tap=", needs_kvm=False),
        Row("--net with tap= twice", k + ["--net", "tap=t0,tap=t1"], 2,
            r"--net: 'tap' given twice", needs_kvm=False),
        Row("--net user with a TAP too", k + ["--net", "user,tap=t0"], 2,
            r"--net: expected tap=NAME.* or user", needs_kvm=False),
        Row("--net user with host port 0", k + ["--net", "user,hostfwd=tcp::0-:22"], 2,
            r"--net: hostfwd 'tcp::0-:22': a port is not a number from 1 to 65535",
            needs_kvm=False),
        Row("--vsock with cid 2 (the host's)", k + ["--vsock", "/tmp/v.sock,cid=2"], 2,
            r"--vsock: 'cid=2' is not cid=N with N from 3 to 4294967294", needs_kvm=False),
        Row("--vsock given twice", k + ["--vsock", "/tmp/a.sock", "--vsock", "/tmp/b.sock"], 2,
            r"--vsock: given twice", needs_kvm=False),
        Row("--net user forwarding outside 10.0.2.0/24", k + ["--net", "user,hostfwd=tcp::8022-10.0.3.15:22"],
            2, r"--net: hostfwd .*outside 10\.0\.2\.0/24", needs_kvm=False),
        Row("--api-socket given twice", k + ["--api-socket", "/tmp/a.sock", "--api-socket",
                                            "/tmp/b.sock"], 2, r"--api-socket: given twice",
            needs_kvm=False),
        Row("--api-socket with an empty path", k + ["--api-socket", ""], 2,
            r"--api-socket: the path is empty", needs_kvm=False),
        Row("--api-socket on a regular file (never replaced)", k + ["--api-socket", "{tmp}/api.txt"],
            1, r"--api-socket: '.*api\.txt' exists and is not a socket", files={"api.txt": b"x"}),
        Row("--api-socket path too long for a Unix socket", k + ["--api-socket", "/tmp/" + "s" * 120],
            1, r"--api-socket: '/tmp/s+' is too long for a Unix socket path"),
        Row("--restore of a missing directory", ["--restore", "{tmp}/nosnap"], 1,
            r"--restore .*nosnap: .*state.*(?i:no such file)", needs_kvm=False),
        Row("--restore with an empty path", ["--restore", ""], 2,
            r"--restore: the directory is empty", needs_kvm=False),
        Row("--restore with a machine option", ["--restore", "{tmp}", "--mem", "1G"], 2,
            r"--mem cannot be given with --restore", needs_kvm=False),
        Row("--restore: state is not a snapshot state file", ["--restore", "{tmp}/snap"], 1,
            r"--restore .*snap: .*not a vmm snapshot state file",
            files={"snap": lambda p: (os.mkdir(p), open(p + "/state", "wb").write(b"x" * 64))},
            needs_kvm=False),
        Row("--restore: state is a FIFO", ["--restore", "{tmp}/snap"], 1,
            r"--restore .*snap: .*(?i:regular file)",
            files={"snap": lambda p: (os.mkdir(p), os.mkfifo(p + "/state"))}, needs_kvm=False),
        Row("--restore: a newer state file format", ["--restore", "{tmp}/snap"], 1,
            r"--restore .*snap: .*format 2", files={"snap": snapshot_state(version=2)},
            needs_kvm=False),
        Row("--restore: another architecture's snapshot", ["--restore", "{tmp}/snap"], 1,
            r"--restore .*snap: .*aarch64", files={"snap": snapshot_state(arch=183)},
            needs_kvm=False),
        Row("--restore: truncated state file", ["--restore", "{tmp}/snap"], 1,
            r"--restore .*snap: .*(?i:truncated|length|short)", files={"snap": snapshot_state(cut=5)},
            needs_kvm=False),
        Row("--restore: a corrupt byte in the state file", ["--restore", "{tmp}/snap"], 1,
            r"--restore .*snap: .*(?i:checksum)", files={"snap": snapshot_state(flip=45)},
            needs_kvm=False),
        Row("--restore: no machine configuration", ["--restore", "{tmp}/snap"], 1,
            r"--restore .*snap: the state file has no machine configuration",
            files={"snap": snapshot_state(conf=False)}, needs_kvm=False),
        Row("--restore: the ram file is missing", ["--restore", "{tmp}/snap"], 1,
            r"--restore .*snap: .*ram: (?i:no such file)", files={"snap": snapshot_state()}),
        # --save-ready, and --restore with --run (a snapshot that cannot run the test: 125).
        Row("--save-ready with --run", k + ["--save-ready", "{tmp}/s", "--run", "true"], 2,
            r"--save-ready and --run", needs_kvm=False),
        Row("--save-ready with --share", k + ["--save-ready", "{tmp}/s", "--share", "{tmp}"], 2,
            r"--save-ready and --share", needs_kvm=False),
        Row("--save-ready with an empty path", k + ["--save-ready", ""], 2,
            r"--save-ready: the directory is empty", needs_kvm=False),
        Row("--restore with --share but no --run", ["--restore", "{tmp}", "--share", "{tmp}"], 2,
            r"--share with --restore needs --run", needs_kvm=False),
        Row("--restore --run of a missing directory", ["--restore", "{tmp}/nosnap", "--run",
                                                       "true"], 125,
            r"--restore .*nosnap: .*state.*(?i:no such file)", needs_kvm=False),
        Row("--restore --run: a truncated state file", ["--restore", "{tmp}/snap", "--run",
                                                       "true"], 125,
            r"--restore .*snap: .*(?i:truncated|length|short)",
            files={"snap": snapshot_state(cut=5)}, needs_kvm=False),
        Row("--restore --run: another architecture's snapshot",
            ["--restore", "{tmp}/snap", "--run", "true"], 125, r"--restore .*snap: .*aarch64",
            files={"snap": snapshot_state(arch=183)}, needs_kvm=False),
        Row("--restore --run: a snapshot not made by --save-ready",
            ["--restore", "{tmp}/snap", "--run", "true"], 125,
            r"--restore .*snap: not a --save-ready snapshot", files={"snap": snapshot_state()},
            needs_kvm=False),
        Row("--restore of a --save-ready snapshot without --run", ["--restore", "{tmp}/snap"], 2,
            r"--restore .*snap: a --save-ready snapshot: give the command with --run",
            files={"snap": snapshot_state(options=((b"kernel", b"/nonexistent"),
                                                   (b"save-ready", b"/x")))},
            needs_kvm=False),
        Row("--restore --run: the ram file is missing", ["--restore", "{tmp}/snap", "--run",
                                                        "true"], 125,
            r"--restore .*snap: .*ram: (?i:no such file)",
            files={"snap": snapshot_state(options=((b"kernel", b"/nonexistent"),
                                                   (b"save-ready", b"/x")))},
            env={"VMM_ALLOW_PVM": "1"}),
        Row("--share with tag= twice", k + ["--share", "{tmp},tag=a,tag=b"], 2,
            r"--share: 'tag' given twice", needs_kvm=False),
        Row("--net given 5 times (at most 4)", k + ["--net", "tap=t0"] * 5, 2,
            r"--net.*(?i:at most)", needs_kvm=False),
        Row("--debug-exit with --run (the status is the command's)",
            k + ["--debug-exit", "--run", "true"], 2, r"--run and --debug-exit",
            needs_kvm=False),
        Row("--transport bogus", k + ["--transport", "bogus"], 2, r"--transport.*bogus",
            needs_kvm=False),
        Row("--console bogus", k + ["--console", "bogus"], 2, r"--console.*bogus",
            needs_kvm=False),
        # The limit is X86_CMDLINE_MAX (64 KiB with the NUL, arch/x86_64/layout.h), enforced by
        # the kernel loader, so this is a set-up failure (1), not a usage error.
        Row("--cmdline longer than the limit (70000 characters)", k + ["--cmdline", "x" * 70000],
            1, r"(?i)command line|cmdline"),
    ]


# ---- running -------------------------------------------------------------------------------


def run_row(args, tmp, row, kvm_problem):
    print(f"-- {row.desc}")
    if row.skip:
        print(f"  SKIP: {row.skip}")
        return None
    if row.needs_kvm and kvm_problem:
        print(f"  SKIP: the error comes after /dev/kvm is opened, and /dev/kvm is not usable "
              f"({kvm_problem})")
        return None
    rowdir = tempfile.mkdtemp(dir=tmp)
    for name, content in row.files.items():
        path = os.path.join(rowdir, name)
        if callable(content):
            content(path)
        else:
            with open(path, "wb") as f:
                f.write(content)
        if name == "secret":
            os.chmod(path, 0)
    argv = [args.vmm] + [a.replace("{tmp}", rowdir).replace("{hello}", args.hello)
                         for a in row.argv]
    env = {k: v for k, v in os.environ.items() if k != "VMM_KVM_DEVICE"}
    env.update(row.env)
    run = fwlib.run_vmm(argv, timeout=ROW_TIMEOUT, env=env)
    run.show()

    c = fwlib.Checker(row.desc, quiet=True)
    accepted = row.status if isinstance(row.status, tuple) else (row.status,)
    c.check(not run.timed_out, f"ended within {ROW_TIMEOUT:.0f} s ({run.elapsed:.2f} s)")
    c.check(run.status is not None and 0 <= run.status < 128,
            f"no signal death or core dump ({fwlib.describe_status(run.status)})")
    c.check(run.status in accepted, "exit status " + " or ".join(map(str, accepted)))
    err_lines = run.err.split("\n")
    if err_lines and err_lines[-1] == "":
        err_lines.pop()
    one = len(err_lines) == 1 and err_lines[0].strip() != ""
    c.check(one, f"exactly one non-empty line on stderr (got {len(err_lines)})")
    line = err_lines[0] if err_lines else ""
    c.check(line.startswith("vmm: "), "the line starts with 'vmm: '")
    c.check(re.search(row.regex, line) is not None, f"the line matches /{row.regex}/")
    c.check(run.out == "", "nothing on stdout (no guest ran)")
    return c.failures == 0


def main():
    args = fwlib.parse_args(lambda p: p.add_argument("--bzimage", default=None))
    fwlib.require_file(args.vmm, "vmm")
    args.hello = fwlib.require_file(args.payloads.get("hello"), "payload hello")
    kvm_problem = fwlib.kvm_problem()
    hello = read(args.hello)
    bz_head, bz_source = bzimage_head(args.bzimage)
    print(f"truncated-bzImage row uses {bz_source}")

    results = {}
    with tempfile.TemporaryDirectory(prefix="vmm-badinput-") as tmp:
        for row in table(hello, bz_head):
            results[row.desc] = run_row(args, tmp, row, kvm_problem)

    failed = [d for d, ok in results.items() if ok is False]
    skipped = [d for d, ok in results.items() if ok is None]
    passed = [d for d, ok in results.items() if ok]
    print(f"\nbad-input table: {len(passed)} rows passed, {len(failed)} failed, "
          f"{len(skipped)} skipped")
    for d in failed:
        print(f"  FAILED: {d}")
    for d in skipped:
        print(f"  skipped: {d}")
    if failed:
        return fwlib.EXIT_FAIL
    if not passed:
        fwlib.skip("no row could run here")
    return fwlib.EXIT_PASS


if __name__ == "__main__":
    sys.exit(main())
