#!/usr/bin/env python3
"""Runs vmm with a real Linux guest, on this host or nested inside QEMU.

Modes (VMM_TEST_MODE=direct|nested forces one):
  direct  the host KVM is hardware-backed (kvm_intel/kvm_amd) and /dev/kvm is
          usable: vmm runs here as a subprocess.
  nested  otherwise (e.g. a PVM host, which cannot run stock kernels): an "L1"
          Linux boots under QEMU TCG, which emulates AMD SVM; its initramfs
          loads kvm-amd and runs vmm there with the console on L1's serial
          line. vmm's exit status comes back as a VMM-L1-EXIT=<status> line.

Architectures (Guest(arch=...), CLI --arch): x86_64 (guest images from
scripts/mkguest BUILD_DIR, in BUILD_DIR/guest) and aarch64 (scripts/mkguest
BUILD_DIR arm64, in BUILD_DIR/guest-arm64). An aarch64 vmm runs directly on an
aarch64 host with a usable /dev/kvm, else nested: L1 is qemu-system-aarch64
TCG with emulated EL2 (-M virt,virtualization=on), whose kernel brings KVM up
in VHE mode with no module to load; L1's console is its PL011 (ttyAMA0).

Library use (the same in both modes):
    with Guest(build_dir, vmm, cmdline='quiet') as g:
        g.start()
        g.expect(r'VMM-GUEST-READY', timeout=300)
        g.send('echo hi\\n')
        status = g.wait_exit(timeout=300)
Every wait has a timeout; close() (or leaving the with block) kills what is
still running. g.output holds the whole console output for diagnostics.

CLI: harness.py mode | harness.py run BUILD_DIR [options] [-- vmm args]
(see --help). Guest images come from scripts/mkguest BUILD_DIR [arm64].
"""

import argparse
import codecs
import fcntl
import hashlib
import os
import platform
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time


class Arch:
    """What differs between architectures in the nested harness (see ARCHES)."""

    def __init__(self, name, debian, qemu, machine, console, kernel, l1_modules,
                 l1_kvm, status_dev, status_qemu, elf_machine, triplet, l1_cpus):
        self.name = name            # as uname -m says it
        self.debian = debian        # Debian's name (scripts/mkguest BUILD_DIR DEBIAN)
        self.qemu = qemu            # L1's emulator
        self.machine = machine      # its machine, CPU and accelerator arguments
        self.console = console      # L1's console device (QEMU's stdio)
        self.kernel = kernel        # the kernel's file name in the guest directory
        self.l1_modules = l1_modules  # module paths (in the module tree) L1 insmods in order
        self.l1_kvm = l1_kvm        # L1 init text that checks (and reports) KVM
        self.status_dev = status_dev  # L1's device for vmm's status in interactive runs
        self.status_qemu = status_qemu  # QEMU arguments that make it; {path} is the file
        self.elf_machine = elf_machine  # e_machine of its ELF executables
        self.triplet = triplet      # its Debian multiarch library directory name
        self.l1_cpus = l1_cpus      # L1's CPUs (-smp), unless VMM_L1_CPUS says otherwise
        self.guest_subdir = 'guest' if debian == 'amd64' else 'guest-' + debian
        self.mkguest_args = '' if debian == 'amd64' else ' ' + debian


# x86_64 L1: when an L2 guest triple-faults, L1's KVM re-initialises the vCPU (the VMCB is
# undefined after a shutdown intercept), so vmm can no longer read where it stopped; only the
# kvm_exit trace of that shutdown (SVM exit code 0x7f) still has the L2 RIP. The scenario
# prints the trace's lines (VMM-L1-TRACE) after vmm ends.
L1_SHUTDOWN_TRACE = r'''mount -t tracefs none /sys/kernel/tracing 2>/dev/null
t=/sys/kernel/tracing/events/kvm/kvm_exit
[ -d $t ] && echo 'exit_reason == 127' >$t/filter && echo 1 >$t/enable
'''

# arm64 L1: KVM is built in; it comes up at boot when the kernel starts at EL2.
L1_KVM_ARM64 = r'''[ -c /dev/kvm ] ||
    fail "no /dev/kvm: KVM did not come up ($(dmesg | grep -i -m 3 kvm | tr '\n' ' '))"
echo "VMM-L1-KVM: $(dmesg | grep -m 1 'mode initialized successfully' | sed 's/^\[[^]]*\] *//')"
'''

ARCHES = {a.name: a for a in (
    Arch('x86_64', 'amd64', 'qemu-system-x86_64', ['-M', 'q35', '-accel', 'tcg', '-cpu', 'max'],
         'ttyS0', 'bzImage',
         # KVM for vmm, and tun for the TAP devices of the network tests.
         ('kernel/virt/lib/irqbypass.ko', 'kernel/arch/x86/kvm/kvm.ko',
          'kernel/arch/x86/kvm/kvm-amd.ko', 'kernel/drivers/net/tun.ko'),
         '[ -c /dev/kvm ] || fail "/dev/kvm did not appear after loading kvm-amd"\n' +
         L1_SHUTDOWN_TRACE,
         # a second serial port (L1's ttyS1) carries vmm's status
         '/dev/ttyS1', ['-chardev', 'file,id=status,path={path}', '-serial', 'chardev:status'],
         62, 'x86_64-linux-gnu',
         # One: with two, QEMU 7.2's TCG loses L1's cross-CPU wake-ups (L1 deadlocks with
         # interrupts off, hung-task reports) and its L2s die under load (issue 16's A/B).
         1),
    # TCG's emulated EL2: L1's kernel starts there and brings KVM up in VHE mode (KVM is
    # built into Debian's arm64 kernel). pauth=off: emulating pointer authentication is slow.
    Arch('aarch64', 'arm64', 'qemu-system-aarch64',
         ['-M', 'virt,virtualization=on,gic-version=3', '-cpu', 'max,pauth=off', '-accel', 'tcg'],
         'ttyAMA0', 'Image',
         # virtio-mmio and virtio_console for the status channel of interactive runs (the
         # virt machine has one PL011), and tun for the TAP devices of network tests.
         ('kernel/drivers/virtio/virtio_ring.ko', 'kernel/drivers/virtio/virtio.ko',
          'kernel/drivers/virtio/virtio_mmio.ko', 'kernel/drivers/char/virtio_console.ko',
          'kernel/drivers/net/tun.ko'),
         L1_KVM_ARM64,
         '/dev/hvc0', ['-device', 'virtio-serial-device', '-chardev', 'file,id=status,path={path}',
                       '-device', 'virtconsole,chardev=status'],
         183, 'aarch64-linux-gnu', 2),
)}
HOST_ARCH = platform.machine()
QEMU = ARCHES['x86_64'].qemu
L1_MODULES = ARCHES['x86_64'].l1_modules
L1_READY = 'VMM-L1-READY'
L1_EXIT_RE = re.compile(r'VMM-L1-EXIT=(\d+)\n')  # whole line: output may arrive in pieces
L1_ERROR_RE = re.compile(r'VMM-L1-ERROR: ([^\n]*)')
L1_CACHE_KEEP = 4  # cached L1 base archives kept per build dir

# Debian's qemu-system-data, and the firmware QEMU's microvm machine loads from it, for a QEMU
# run inside L1 (bench/boot's peer, tests/soak's net-qemu).
QEMU_DATA = '/usr/share/qemu'
QEMU_MICROVM_FIRMWARE = ('bios-microvm.bin', 'linuxboot_dma.bin', 'kvmvapic.bin')


def guest_dhcp(iface):
    """Shell text for the test guest (busybox): a DHCP lease on iface through udhcpc with a
    script that applies it (address, default route; the DNS server goes to /tmp/dns), then
    T-DHCP=udhcpc's status."""
    return ("printf '#!/bin/sh\\n[ \"$1\" = bound ] || exit 0\\nip addr add $ip/$mask dev "
            "$interface\\nip route add default via $router\\necho $dns >/tmp/dns\\n' "
            f">/tmp/dhcp.sh; chmod +x /tmp/dhcp.sh; ip link set {iface} up; "
            f"udhcpc -i {iface} -n -q -s /tmp/dhcp.sh >/dev/null 2>&1; echo T-DHCP=$?")


def initrd_with(base, extra, out, tmp):
    """Writes to @out the initramfs @base followed by a second cpio archive of @extra, a list
    of (path in the guest, host file) (the kernel unpacks both archives, the second over the
    first). @tmp is a scratch directory. Returns @out."""
    tree = os.path.join(tmp, 'initrd-extra')
    names = []
    for guest_path, host in extra:
        guest_path = guest_path.lstrip('/')
        parts = guest_path.split('/')
        for i in range(1, len(parts)):
            d = '/'.join(parts[:i])
            if d not in names:
                names.append(d)
        os.makedirs(os.path.join(tree, os.path.dirname(guest_path)), exist_ok=True)
        shutil.copy(host, os.path.join(tree, guest_path))
        names.append(guest_path)
    archive = subprocess.run(['cpio', '-o', '-H', 'newc', '-R', '0:0', '--quiet'], cwd=tree,
                             input=''.join(n + '\n' for n in names).encode(),
                             capture_output=True, check=True).stdout
    with open(base, 'rb') as f, open(out, 'wb') as o:
        first = f.read()
        o.write(first)
        # The kernel looks for the next archive's header at a multiple of 4 bytes (zeros
        # between archives are skipped).
        o.write(b'\0' * (-len(first) % 4))
        o.write(archive)
    return out


def qemu_microvm_files():
    """(path in L1, host path) of that firmware: the same path on both sides."""
    return [(os.path.join(QEMU_DATA, fw),) * 2 for fw in QEMU_MICROVM_FIRMWARE]

# L1's /init (for an architecture: see l1_init). The per-run /scenario.sh
# (appended as a second cpio archive) prints VMM-L1-READY, runs the command and
# reports its status.
L1_INIT_TEMPLATE = r'''#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp && mount -t devpts devpts /dev/pts
# Keep L1's kernel messages (bar emergencies) off the console the guest uses,
dmesg -n 1
# except L1's reports of its own lockups and stalls, stack traces included, marked as L1's.
(awk '/soft lockup|self-detected stall|blocked for more than|Call Trace/ { n = 100 }
      n && n-- { sub(/^[^;]*;/, ""); print "VMM-L1-KMSG: " $0 }' </dev/kmsg >/dev/console) &
# Shared guest RAM (vmm --run and --share use memfds) may get 2 MiB pages too.
echo advise >/sys/kernel/mm/transparent_hugepage/shmem_enabled
fail() { echo "VMM-L1-ERROR: $*"; poweroff -f; }
for m in @MODULES@; do
    insmod /lib/modules/l1/$m.ko || fail "insmod $m.ko failed"
done
@KVM@[ -f /scenario.sh ] || fail "no /scenario.sh in the initramfs"
# The console becomes the scenario's controlling terminal, so a vmm in the
# foreground gets a tty (raw mode, Ctrl-C and Ctrl-A pass to the guest).
setsid cttyhack sh /scenario.sh
poweroff -f
'''


# A stall watchdog in L1 for non-interactive runs: a vmm process alive for L1_STALL_SECONDS
# (longer than any vmm run in the tests, shorter than their waits) gets its threads' states,
# kernel stacks and L1's KVM exit counters (sampled twice, 2 s apart: moving means the guest
# runs) printed once, so that a silent hang says whether vmm is blocked or its guest spins.
# As long without any vmm, it says so once: L1 runs, so a test's own script is stuck, which
# is never an L1 failure to retry.
L1_STALL_SECONDS = 200
L1_STALL_WATCH = r'''(
    last= n=0 idle=0
    while sleep 10; do
        pid=$(pidof vmm | cut -d' ' -f1)
        if [ -z "$pid" ]; then
            idle=$((idle + 10)); last= n=0
            [ $idle -eq @STALL@ ] && echo "VMM-L1-STALL: no vmm process for $idle s: L1 runs, its script waits"
            continue
        fi
        idle=0
        if [ "$pid" != "$last" ]; then last=$pid n=0; continue; fi
        n=$((n + 10)); [ $n -eq @STALL@ ] || continue
        echo "VMM-L1-STALL: vmm (pid $pid) still running after $n s"
        for t in /proc/$pid/task/*; do
            echo "thread $(cat $t/comm) state $(cut -d' ' -f3 $t/stat) wchan $(cat $t/wchan)"
            cat $t/stack 2>/dev/null | head -8
        done
        mount -t debugfs none /sys/kernel/debug 2>/dev/null
        for i in 1 2; do
            echo "L1 kvm: $(cd /sys/kernel/debug/kvm 2>/dev/null && for c in exits io_exits mmio_exits halt_exits irq_injections; do printf '%s=%s ' $c "$(cat $c)"; done)"
            sleep 2
        done
    done
) &'''


# Where L1's kernel text and modules are (KASLR): lets a CPU state read from QEMU's monitor
# say whether a RIP is L1's own (and where) or the L2 guest's.
L1_TEXT_REPORT = (r'''echo "VMM-L1-TEXT: $(awk '$3 == "_stext" || $3 == "_etext" '''
                  r'''{ printf "%s=%s ", $3, $1 }' /proc/kallsyms)'''
                  r'''$(awk '{ printf "%s=%s+%s ", $1, $6, $2 }' /proc/modules)"''')
L1_TEXT_RE = re.compile(r'VMM-L1-TEXT: ([^\n]*)\n')


def l1_where(rip, report):
    """Names the L1 code at rip (hex string) from an L1_TEXT_REPORT line, or says it is
    outside L1's kernel text and modules (the L2 guest's, when L1 runs it)."""
    fields = dict(f.split('=', 1) for f in report.split() if '=' in f)
    try:
        addr = int(rip, 16)
        start, end = int(fields.pop('_stext'), 16), int(fields.pop('_etext'), 16)
    except (KeyError, ValueError):
        return '?'
    if start <= addr < end:
        return f'L1 _stext+{addr - start:#x}'
    for name, span in fields.items():
        base, _, size = span.partition('+')
        try:
            base, size = int(base, 16), int(size)
        except ValueError:
            continue
        if base <= addr < base + size:
            return f'L1 {name}+{addr - base:#x}'
    return 'not L1 text'


def l1_init(arch):
    """The text of L1's /init for an Arch."""
    mods = ' '.join(os.path.basename(m)[:-len('.ko')] for m in arch.l1_modules)
    return L1_INIT_TEMPLATE.replace('@MODULES@', mods).replace('@KVM@', arch.l1_kvm)


L1_INIT = l1_init(ARCHES['x86_64'])


class HarnessError(Exception):
    """The harness could not run the guest (setup problem, not a guest result)."""


# L1's watchdog: a CPU of the emulated L1 stopped scheduling (seen rarely under TCG,
# with vmm and with QEMU alike as the L2 VMM). Waiting on is pointless once it shows.
# L1 runs with printk.time=0, so its messages start a line with no "[  12.345678] " stamp and
# an L2 kernel's (stamped, and passing through vmm to the same console) cannot match: an L2
# stuck for a while under a slow VMM is the test's business, not an L1 failure. L1 does not
# panic on a soft lockup, so that its report (every CPU's stack: softlockup_all_cpu_backtrace)
# reaches the console through L1_KMSG_REPORT, prefixed VMM-L1-KMSG.
L1_LOCKUP_RE = re.compile(r'(?m)^watchdog: BUG: soft lockup - CPU#\d+ stuck for \d+s! '
                          r'\[([^\]]*)\]')
# L1's hung-task report of one of its own tasks (a kernel thread or L1's init, not vmm, whose
# threads may wait on what vmm does): L1's kernel waited 120 s for work that never ran, as when
# a cross-CPU wake-up is lost. It comes through L1_KMSG_REPORT's prefix (it is not an
# emergency); an L2's own report arrives stamped and unprefixed.
L1_HUNG_RE = re.compile(r'(?m)^VMM-L1-KMSG: INFO: task (?!vmm:\d+ )([^\n]+?):\d+ blocked for '
                        r'more than \d+ seconds')
# L1's own panic (unstamped, as above; an L2 kernel's panic line carries its time stamp).
L1_PANIC_RE = re.compile(r'(?m)^Kernel panic - not syncing: ([^\n]*)')
# What QEMU logs (-d cpu_reset) when the emulated L1 CPU triple-faults outside a guest.
L1_TRIPLE_FAULT = 'Triple fault'
# Symptoms of the L2 side: an error line of vmm (its warnings and info lines excepted), a
# guest crash vmm reports, or an L2 kernel's panic. A retry is only for an L1 failure that
# shows before any of these.
L2_SYMPTOM_RE = re.compile(r'(?m)^vmm: (?!(?:warning|info|debug): )[^\n]*|'
                           r'^\[ *\d+\.\d+\] Kernel panic[^\n]*')


class GuestError(Exception):
    """The guest did not do what was expected (timeout, early exit, ...)."""


class GuestTimeout(GuestError):
    """What was awaited did not come in time."""


def kvm_usable(path='/dev/kvm'):
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        return True
    except OSError:
        return False


def get_arch(name):
    try:
        return ARCHES[name]
    except KeyError:
        raise HarnessError(f'unknown architecture {name!r} (known: {", ".join(ARCHES)})')


def detect_mode(arch='x86_64'):
    """Returns (mode, reason) for a vmm built for arch: mode is 'direct' or 'nested'."""
    forced = os.environ.get('VMM_TEST_MODE', '')
    if forced:
        if forced not in ('direct', 'nested'):
            raise HarnessError(f'VMM_TEST_MODE={forced!r}: expected direct or nested')
        if forced == 'direct' and arch != HOST_ARCH:
            raise HarnessError(f'VMM_TEST_MODE=direct: an {arch} vmm cannot run on this '
                               f'{HOST_ARCH} host')
        return forced, f'VMM_TEST_MODE={forced}'
    if arch != HOST_ARCH:
        return 'nested', f'vmm is built for {arch} and this host is {HOST_ARCH}'
    if arch == 'aarch64':
        # KVM on arm64 has no vendor modules and no PVM: usable /dev/kvm is enough.
        if kvm_usable():
            return 'direct', "this host's /dev/kvm is usable"
        return 'nested', ('this host has no /dev/kvm' if not os.path.exists('/dev/kvm')
                          else '/dev/kvm is not usable by this user')
    hw = [m for m in ('kvm_intel', 'kvm_amd') if os.path.isdir('/sys/module/' + m)]
    if hw and kvm_usable():
        return 'direct', f"this host's KVM is hardware-backed ({hw[0]})"
    if os.path.isdir('/sys/module/kvm_pvm'):
        why = "this host's KVM is PVM, which cannot run stock kernels"
    elif not os.path.exists('/dev/kvm'):
        why = 'this host has no /dev/kvm'
    elif not kvm_usable():
        why = '/dev/kvm is not usable by this user'
    else:
        why = "this host's KVM is not hardware-backed"
    return 'nested', why


def is_elf_executable(path):
    try:
        with open(path, 'rb') as f:
            return os.access(path, os.X_OK) and f.read(4) == b'\x7fELF'
    except OSError:
        return False


def elf_info(path):
    """(e_machine, dynamically linked) of a little-endian ELF64 file; None if it is not one."""
    try:
        with open(path, 'rb') as f:
            hdr = f.read(64)
            if len(hdr) < 64 or hdr[:4] != b'\x7fELF' or hdr[4] != 2 or hdr[5] != 1:
                return None
            machine = int.from_bytes(hdr[18:20], 'little')
            phoff = int.from_bytes(hdr[32:40], 'little')
            phentsize = int.from_bytes(hdr[54:56], 'little')
            phnum = int.from_bytes(hdr[56:58], 'little')
            f.seek(phoff)
            phdrs = f.read(phentsize * phnum)
    except OSError:
        return None
    dynamic = any(int.from_bytes(phdrs[i:i + 4], 'little') == 3  # PT_INTERP
                  for i in range(0, len(phdrs) - 3, phentsize or 1))
    return machine, dynamic


def elf_arch(path):
    """The Arch name of an ELF executable, or None."""
    info = elf_info(path)
    return next((a.name for a in ARCHES.values() if info and info[0] == a.elf_machine), None)


def elf_dynamic(path):
    """(PT_INTERP path or None, DT_NEEDED names) of a little-endian ELF64 file."""
    with open(path, 'rb') as f:
        data = f.read()

    def u(off, size):
        return int.from_bytes(data[off:off + size], 'little')

    if data[:4] != b'\x7fELF' or data[4] != 2 or data[5] != 1:
        raise HarnessError(f'{path}: not a little-endian ELF64 file')
    phoff, phentsize, phnum = u(32, 8), u(54, 2), u(56, 2)
    interp, dynamic, loads = None, None, []
    for i in range(phnum):
        ph = phoff + i * phentsize
        p_type, offset, vaddr, filesz = u(ph, 4), u(ph + 8, 8), u(ph + 16, 8), u(ph + 32, 8)
        if p_type == 3:  # PT_INTERP
            interp = data[offset:offset + filesz].split(b'\0')[0].decode()
        elif p_type == 2:  # PT_DYNAMIC
            dynamic = (offset, filesz)
        elif p_type == 1:  # PT_LOAD
            loads.append((vaddr, offset, filesz))
    if dynamic is None:
        return interp, []
    needed, strtab = [], None
    for o in range(dynamic[0], dynamic[0] + dynamic[1] - 15, 16):
        tag, val = u(o, 8), u(o + 8, 8)
        if tag == 0:
            break
        if tag == 1:  # DT_NEEDED
            needed.append(val)
        elif tag == 5:  # DT_STRTAB (an address)
            strtab = next((val - v + off for v, off, n in loads if v <= val < v + n), None)
    if needed and strtab is None:
        raise HarnessError(f'{path}: DT_STRTAB outside its loaded segments')
    return interp, [data[strtab + n:data.index(b'\0', strtab + n)].decode() for n in needed]


def sysroot_libs(binary, sysroots, triplet):
    """(path at run time, file in a sysroot) of the loader and every shared library that a
    dynamically linked binary of another architecture needs, found in the first of sysroots
    that has it (e.g. Debian packages of that architecture unpacked with dpkg-deb -x, or /
    for those multiarch installed). Libraries go to /lib/TRIPLET/ at run time, where that
    architecture's loader looks by default."""
    for sysroot in sysroots:
        try:
            return _sysroot_libs(binary, sysroot, triplet)
        except HarnessError as e:
            missing = e
    raise missing


def _sysroot_libs(binary, sysroot, triplet):
    dirs = [os.path.join(sysroot, d, triplet) for d in ('lib', 'usr/lib')]

    def inside(path):
        """path in sysroot with its symbolic links resolved inside sysroot."""
        for _ in range(40):
            if not os.path.islink(path):
                return path
            target = os.readlink(path)
            path = (os.path.join(sysroot, target.lstrip('/')) if target.startswith('/')
                    else os.path.join(os.path.dirname(path), target))
        raise HarnessError(f'{path}: too many symbolic links')

    interp, todo = elf_dynamic(binary)
    out = []
    if interp:
        host = inside(os.path.join(sysroot, interp.lstrip('/')))
        if not os.path.isfile(host):
            raise HarnessError(f'{binary}: its loader {interp} is not in {sysroot}')
        out.append((interp, host))
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        host = next((inside(os.path.join(d, name)) for d in dirs
                     if os.path.lexists(os.path.join(d, name))), None)
        if not host or not os.path.isfile(host):
            raise HarnessError(f'{binary} needs {name}, which is not in {sysroot}')
        out.append((f'/lib/{triplet}/{name}', host))
        todo += elf_dynamic(host)[1]
    return out


def apt_arm64_deps(pkgs):
    """The arm64 library packages (lib*, zlib1g) that pkgs depend on, by apt-cache."""
    res = subprocess.run(['apt-cache', 'depends', '--no-recommends', '--no-suggests',
                          '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances']
                         + [p + ':arm64' for p in pkgs], capture_output=True, text=True)
    deps = set()
    for line in res.stdout.splitlines():
        m = re.match(r'\s+(?:Pre)?Depends: (\S+):arm64$', line)
        if m and (m.group(1).startswith('lib') or m.group(1) == 'zlib1g'):
            deps.add(m.group(1))
    return deps


def arm64_binary(base, package, binary, log=print):
    """An arm64 program for an arm64 L1: Debian's arm64 package and the library packages it
    needs (found by following apt-cache depends until every DT_NEEDED resolves), downloaded
    with apt-get download and unpacked into BASE/root. Returns (the binary's path, that
    sysroot, for Guest(sysroot=...)); reuses them when complete."""
    root, debs = os.path.join(base, 'root'), os.path.join(base, 'debs')
    path = os.path.join(root, binary)
    triplet = ARCHES['aarch64'].triplet
    os.makedirs(debs, exist_ok=True)
    done, todo, missing = set(), {package}, f'{binary} not unpacked'
    while True:
        if os.path.isfile(path):
            try:
                sysroot_libs(path, [root], triplet)
                return path, root
            except HarnessError as e:
                missing = str(e)
        if not todo:
            raise HarnessError(f'{missing}, and no more packages to try')
        log(f'arm64 {package}: downloading {len(todo)} package(s)')
        res = subprocess.run(['apt-get', 'download', '-q'] + [p + ':arm64' for p in sorted(todo)],
                             cwd=debs, capture_output=True, text=True)
        if res.returncode != 0:
            raise HarnessError('apt-get download of arm64 packages failed (is arm64 a dpkg '
                               f'foreign architecture? scripts/deps adds it): '
                               f'{res.stderr.strip()}')
        for p in todo:
            for deb in os.listdir(debs):
                if deb.startswith(p + '_') and deb.endswith('_arm64.deb'):
                    subprocess.run(['dpkg-deb', '-x', os.path.join(debs, deb), root], check=True)
        done |= todo
        todo = apt_arm64_deps(done) - done


def shared_libs(binary):
    """Absolute paths of the shared libraries (and loader) that ldd lists."""
    res = subprocess.run(['ldd', binary], capture_output=True, text=True)
    if 'not a dynamic executable' in res.stdout + res.stderr:
        return []
    if res.returncode != 0:
        raise HarnessError(f'ldd {binary} failed: {res.stderr.strip()}')
    libs = []
    for line in res.stdout.splitlines():
        if 'not found' in line:
            raise HarnessError(f'ldd {binary}: {line.strip()}')
        words = line.split()
        path = words[words.index('=>') + 1] if '=>' in words else words[0]
        if path.startswith('/'):
            libs.append(path)
    return libs



class L1Lockup(GuestError):
    """The emulated L1 failed (a soft lockup, or it reset without reporting vmm's exit
    status): an infrastructure failure, not vmm's."""


NESTED_ATTEMPTS = 3


def run_attempts(name, run_once, retry_on=(L1Lockup,)):
    """
    Runs run_once() up to NESTED_ATTEMPTS times while it raises one of retry_on: failures of
    the emulated nested set-up, each one printed as RETRY. Other exceptions propagate. CI saw
    two L1 failures in a row in one test (a soft lockup, then a silent L1 reset), so one
    retry is not enough. Returns True once a run passes, False if every attempt failed.
    """
    for attempt in range(1, NESTED_ATTEMPTS + 1):
        try:
            run_once()
            return True
        except retry_on as e:
            print(f'RETRY {name} (attempt {attempt} of {NESTED_ATTEMPTS}): '
                  f'nested-mode failure: {e}')
    print(f'FAIL {name}: the nested run failed in all {NESTED_ATTEMPTS} attempts')
    return False

class Cpio:
    """Writes a newc cpio archive (what the kernel's initramfs unpacker reads)."""

    def __init__(self, f):
        self.f = f
        self.ino = 0
        self.dirs = set()

    def _pad(self):
        self.f.write(b'\0' * (-self.f.tell() % 4))

    def _entry(self, name, mode, data=b'', rdev=(0, 0)):
        self.ino += 1
        bname = name.encode() + b'\0'
        fields = (self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
                  0, 0, rdev[0], rdev[1], len(bname), 0)
        self.f.write(b'070701' + b''.join(b'%08X' % v for v in fields) + bname)
        self._pad()
        self.f.write(data)
        self._pad()

    def _parents(self, name):
        parts = name.split('/')[:-1]
        for i in range(1, len(parts) + 1):
            d = '/'.join(parts[:i])
            if d not in self.dirs:
                self.dirs.add(d)
                self._entry(d, stat.S_IFDIR | 0o755)

    def add_dir(self, name):
        self._parents(name.strip('/') + '/x')

    def add_file(self, name, data, mode=0o644):
        name = name.strip('/')
        self._parents(name)
        if isinstance(data, str):
            data = data.encode()
        self._entry(name, stat.S_IFREG | mode, data)

    def add_host_file(self, name, path, mode=None):
        with open(path, 'rb') as f:
            data = f.read()
        self.add_file(name, data, mode if mode is not None else (os.stat(path).st_mode & 0o777))

    def add_symlink(self, name, target):
        name = name.strip('/')
        self._parents(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_chardev(self, name, major, minor, mode=0o600):
        name = name.strip('/')
        self._parents(name)
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self):
        self._entry('TRAILER!!!', 0)


class Guest:
    """One run of vmm with a Linux guest; see the module docstring.

    kernel/initrd default to the images from scripts/mkguest (initrd='' for
    none). command, if given, replaces the vmm command line (a list of
    arguments, or a string of shell text); in nested mode it runs inside L1,
    where the kernel is /guest/bzImage and the initrd /guest/initrd.
    files: more (path in L1, host path) pairs to copy into L1 (nested mode;
    ELF executables bring the libraries ldd lists).
    disks: vmm --disk values (HOSTPATH[,options]); in nested mode the image is
    copied into L1 (as /disks/N.img), so the guest's writes stay there.
    arch: what vmm is built for, 'x86_64' or 'aarch64' (default: vmm's ELF
    machine, else x86_64); it picks the guest images (BUILD_DIR/guest or
    guest-arm64), L1's emulator and L1's kernel file name (L1_KERNEL).
    sysroot: where dynamically linked executables of another architecture than
    this host's find their loader and libraries (see sysroot_libs), tried before
    this host's own multiarch libraries (/lib/TRIPLET, where scripts/deps puts
    those the aarch64 vmm needs).
    prelude: shell text L1 runs before the command (nested mode only).
    """

    L1_VMM = '/usr/local/bin/vmm'
    L1_KERNEL = '/guest/bzImage'  # x86_64; an instance has its arch's (/guest/Image)
    L1_INITRD = '/guest/initrd'

    def __init__(self, build_dir, vmm=None, kernel=None, initrd=None, cmdline=None,
                 mem=None, cpus=None, extra_args=(), command=None, files=(), mode=None,
                 log_path=None, echo=None, qemu=None, disks=(), arch=None, sysroot=None,
                 l1_machine=None, prelude=''):
        self.build_dir = os.path.abspath(build_dir)
        self.vmm = os.path.abspath(vmm) if vmm else None
        self.arch = get_arch(arch or (self.vmm and elf_arch(self.vmm)) or 'x86_64')
        self.guest_dir = os.path.join(self.build_dir, self.arch.guest_subdir)
        self.L1_KERNEL = '/guest/' + self.arch.kernel
        self.kernel = os.path.abspath(kernel or os.path.join(self.guest_dir, self.arch.kernel))
        if initrd is None:
            initrd = os.path.join(self.guest_dir, 'initramfs.cpio.gz')
        self.initrd = os.path.abspath(initrd) if initrd else None
        self.cmdline, self.mem, self.cpus = cmdline, mem, cpus
        self.extra_args = list(extra_args)
        self.command = command
        self.files = list(files)
        self.disks = list(disks)
        self.sysroot = sysroot
        self.prelude = prelude
        if mode is None:
            mode, self.mode_reason = detect_mode(self.arch.name)
        else:
            self.mode_reason = 'chosen by the caller'
        self.mode = mode
        self.qemu = qemu or self.arch.qemu
        self.l1_machine = list(l1_machine or self.arch.machine)  # L1's -M/-cpu/-accel
        if os.environ.get('VMM_L1_ACCEL'):  # e.g. tcg,thread=single for an A/B of the emulator
            self.l1_machine[self.l1_machine.index('-accel') + 1] = os.environ['VMM_L1_ACCEL']
        self.log_path = log_path
        self.echo = echo  # a binary stream that gets the output as it arrives
        self.proc = None
        self.status = None
        self.timings = {}
        self._run_cpio = None
        self._diag_dir = None
        self._log = None
        self._reader = None
        self._cond = threading.Condition()
        self._decoder = codecs.getincrementaldecoder('utf-8')(errors='replace')
        self._text = ''
        self._last_output = time.monotonic()
        self._pos = 0
        self._eof = False
        if self.command is None and not self.vmm:
            raise HarnessError('Guest needs vmm (the binary) or command')

    # ---- command lines -------------------------------------------------

    def _vmm_argv(self, vmm, kernel, initrd):
        argv = [vmm, '--kernel', kernel]
        if initrd:
            argv += ['--initrd', initrd]
        if self.cmdline is not None:
            argv += ['--cmdline', self.cmdline]
        if self.mem is not None:
            argv += ['--mem', str(self.mem)]
        if self.cpus is not None:
            argv += ['--cpus', str(self.cpus)]
        for i, spec in enumerate(self.disks):
            path, sep, opts = spec.partition(',')
            if vmm == self.L1_VMM:
                path = f'/disks/{i}.img'
            argv += ['--disk', path + sep + opts]
        return argv + self.extra_args

    def _host_argv(self):
        if isinstance(self.command, str):
            return ['sh', '-c', self.command]
        if self.command is not None:
            return list(self.command)
        return self._vmm_argv(self.vmm, self.kernel, self.initrd)

    def _l1_shell_command(self):
        if isinstance(self.command, str):
            return self.command
        argv = self.command
        if argv is None:
            argv = self._vmm_argv(self.L1_VMM, self.L1_KERNEL,
                                  self.L1_INITRD if self.initrd else None)
        return ' '.join(shlex.quote(str(a)) for a in argv)

    def l1_cpus(self):
        """L1's CPU count (-smp): the architecture's, or VMM_L1_CPUS."""
        return os.environ.get('VMM_L1_CPUS', str(self.arch.l1_cpus))

    def _qemu_argv(self, initrd, status_file=None, diag_dir=None):
        """L1's command line. diag_dir: where QEMU logs L1's CPU resets (a triple fault says
        so there) and listens with its monitor (read when L1 freezes)."""
        a = self.arch
        diag = ['-D', os.path.join(diag_dir, 'qemu.log'), '-d', 'cpu_reset',
                '-monitor', f'unix:{os.path.join(diag_dir, "monitor")},server=on,wait=off'
                ] if diag_dir else []
        return [self.qemu] + self.l1_machine + diag + ['-smp', self.l1_cpus(),
                '-m', '2048', '-nodefaults', '-no-user-config', '-display', 'none',
                '-chardev', 'stdio,id=con,signal=off', '-serial', 'chardev:con',
                '-kernel', os.path.join(self.guest_dir, a.kernel), '-initrd', initrd,
                '-append', f'console={a.console} quiet panic=-1 printk.time=0 softlockup_all_cpu_backtrace=1',
                '-no-reboot'] + (
                    # a second console device carries vmm's status
                    [arg.format(path=status_file) for arg in a.status_qemu]
                    if status_file else [])

    # ---- the L1 initramfs ----------------------------------------------

    def _l1_base_inputs(self):
        """(path in L1, host path) of every file of the unchanging L1 part."""
        release_file = os.path.join(self.guest_dir, 'kernel-release')
        try:
            with open(release_file) as f:
                release = f.read().strip()
        except OSError:
            raise HarnessError(f'{release_file} missing: run scripts/mkguest {self.build_dir}'
                               f'{self.arch.mkguest_args}')
        files = [('bin/busybox', os.path.join(self.guest_dir, 'busybox'))]
        for ko in self.arch.l1_modules:
            files.append(('lib/modules/l1/' + os.path.basename(ko),
                          os.path.join(self.guest_dir, 'modules', release, ko)))
        if self.vmm:
            files.append((self.L1_VMM, self.vmm))
        files.append((self.L1_KERNEL, self.kernel))
        if self.initrd:
            files.append((self.L1_INITRD, self.initrd))
        files += self.files
        files += [(f'/disks/{i}.img', spec.partition(',')[0]) for i, spec in enumerate(self.disks)]
        for _, host in files:
            if not os.path.isfile(host):
                raise HarnessError(f'{host} missing (run scripts/mkguest {self.build_dir}'
                                   f'{self.arch.mkguest_args}?)')
        for _, host in list(files):
            if is_elf_executable(host):
                files += [lib for lib in self._l1_libs(host) if lib not in files]
        return files

    def _l1_libs(self, path):
        """(path in L1, host path) of the shared libraries an executable for L1 needs: those
        ldd lists when L1 has this host's architecture, else those in the sysroot."""
        if self.arch.name == HOST_ARCH:
            return [(lib, lib) for lib in shared_libs(path)]
        info = elf_info(path)
        if not info or info[0] != self.arch.elf_machine:
            raise HarnessError(f'{path} is not an {self.arch.name} executable, and L1 is '
                               f'{self.arch.name}')
        if not info[1]:
            return []
        return sysroot_libs(path, [self.sysroot, '/'] if self.sysroot else ['/'],
                            self.arch.triplet)

    def _l1_base(self, files):
        """Path of the cached L1 base archive, (re)built when an input changed."""
        key = hashlib.sha256(l1_init(self.arch).encode())
        with open(os.path.abspath(__file__), 'rb') as f:
            key.update(f.read())
        for name, host in files:
            st = os.stat(host)
            key.update(f'{name} {os.path.realpath(host)} {st.st_size} {st.st_mtime_ns}\n'.encode())
        cache_dir = os.path.join(self.guest_dir, 'l1')
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(cache_dir, f'base-{key.hexdigest()[:16]}.cpio')
        with open(os.path.join(cache_dir, '.lock'), 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.exists(path):
                os.utime(path)
                return path
            with tempfile.NamedTemporaryFile(dir=cache_dir, suffix='.tmp', delete=False) as f:
                try:
                    c = Cpio(f)
                    for d in ('dev', 'proc', 'sys', 'tmp', 'root', 'etc', 'bin', 'sbin',
                              'usr/bin', 'usr/sbin', 'usr/local/bin'):
                        c.add_dir(d)
                    c.add_chardev('dev/console', 5, 1)
                    c.add_file('init', l1_init(self.arch), 0o755)
                    for name, host in files:
                        c.add_host_file(name, host)
                    c.finish()
                except BaseException:
                    os.unlink(f.name)
                    raise
            os.replace(f.name, path)
            old = sorted((p for p in os.listdir(cache_dir) if p.startswith('base-')),
                         key=lambda p: os.stat(os.path.join(cache_dir, p)).st_mtime)
            for p in old[:-L1_CACHE_KEEP]:
                os.unlink(os.path.join(cache_dir, p))
        return path

    def _l1_initrd(self, interactive):
        """The base archive plus a small archive with this run's /scenario.sh."""
        files = self._l1_base_inputs()
        base = self._l1_base(files)
        libdirs = sorted({os.path.dirname(n) for n, _ in files if '.so' in n})
        lines = ['cd /']
        if libdirs:
            lines.append('export LD_LIBRARY_PATH=' + ':'.join(libdirs))
        if not interactive:
            lines.append(L1_STALL_WATCH.replace('@STALL@', str(L1_STALL_SECONDS)))
            lines.append(L1_TEXT_REPORT)
            lines.append(f'echo {L1_READY}')
        if self.prelude:
            lines.append(self.prelude)
        lines += [self._l1_shell_command(), 'status=$?',
                  "grep -v '^#' /sys/kernel/tracing/trace 2>/dev/null | tail -4 | "
                  "sed 's/^/VMM-L1-TRACE: /'"]
        if interactive:
            lines += ['[ $status -eq 0 ] || echo "vmm exited with status $status"',
                      f'echo "VMM-L1-EXIT=$status" >{self.arch.status_dev}']
        else:
            lines.append('printf "\\nVMM-L1-EXIT=%d\\n" $status')
        lines.append('poweroff -f')
        fd, path = tempfile.mkstemp(dir=os.path.dirname(base), prefix='run-', suffix='.cpio')
        with os.fdopen(fd, 'wb') as out, open(base, 'rb') as b:
            while chunk := b.read(1 << 20):
                out.write(chunk)
            c = Cpio(out)
            c.add_file('scenario.sh', '\n'.join(lines) + '\n', 0o755)
            c.finish()
        return path

    # ---- running ---------------------------------------------------------

    def start(self, boot_timeout=300):
        """Starts vmm (direct) or L1 (nested; waits until L1 is ready to run vmm)."""
        self.timings['start'] = time.monotonic()
        if self.log_path:
            os.makedirs(os.path.dirname(os.path.abspath(self.log_path)), exist_ok=True)
            self._log = open(self.log_path, 'wb')
        if self.mode == 'direct':
            argv = self._host_argv()
        else:
            self._run_cpio = self._l1_initrd(interactive=False)
            self._diag_dir = tempfile.mkdtemp(prefix='vmm-l1-')
            argv = self._qemu_argv(self._run_cpio, diag_dir=self._diag_dir)
        try:
            # Same process group as ours, so whoever kills the test (e.g. meson's
            # timeout) kills vmm or QEMU too.
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT)
        except OSError as e:
            raise HarnessError(f'cannot run {argv[0]}: {e}')
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if self.mode == 'nested':
            m = self.expect(f'{L1_READY}|{L1_ERROR_RE.pattern}', boot_timeout,
                            what='L1 (QEMU TCG) boot')
            if m.group(0) != L1_READY:
                raise GuestError(f'L1 failed: {m.group(1)}')
            self.timings['l1_ready'] = time.monotonic()
        return self

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b''
            for f in (self._log, self.echo):
                if f:
                    f.write(data)
                    f.flush()
            with self._cond:
                if data:
                    self._text += self._decoder.decode(data).replace('\r', '')
                    self._last_output = time.monotonic()
                else:
                    self._text += self._decoder.decode(b'', final=True)
                    self._eof = True
                self._cond.notify_all()
            if not data:
                return

    @property
    def output(self):
        """All console output so far (carriage returns removed)."""
        with self._cond:
            return self._text

    def tail(self, lines=40):
        return '\n'.join(self.output.splitlines()[-lines:])

    def expect(self, pattern, timeout, what=None):
        """Waits for pattern (regex) in output not matched before; returns the match."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        what = what or f'output matching {rx.pattern!r}'
        with self._cond:
            while True:
                m = rx.search(self._text, self._pos)
                if m:
                    self._pos = m.end()
                    return m
                if self.mode == 'nested':
                    lockup = L1_LOCKUP_RE.search(self._text, self._pos)
                    if lockup:
                        self._await_l1_report()
                        self._raise_l1_failure(what, f'the L1 kernel reported a soft lockup in '
                                                     f'{lockup.group(1)}', lockup.start())
                    hung = L1_HUNG_RE.search(self._text, self._pos)
                    if hung:
                        self._await_l1_report()
                        self._raise_l1_failure(what, f'the L1 kernel reported its task '
                                                     f'{hung.group(1)} hung', hung.start())
                if self._eof:
                    if (self.mode == 'nested' and not L1_EXIT_RE.search(self._text) and
                            not L1_ERROR_RE.search(self._text)):
                        # L1 ends by reporting vmm's status (VMM-L1-EXIT), even when vmm
                        # crashes; ending without it means L1 itself panicked or reset.
                        self._l1_ended(what)
                    raise GuestError(f'waiting for {what}: output ended '
                                     f'({self._who()} exited, status {self._rc()})')
                left = deadline - time.monotonic()
                if left > 0 and self._l1_froze():
                    self._raise_l1_failure(
                        what, f'L1 froze: no output for {L1_STALL_SECONDS + 40} s, not even '
                        f'from L1\'s own stall watchdog, which speaks once a vmm has run '
                        f'{L1_STALL_SECONDS} s: L1\'s kernel scheduled none of its processes. '
                        f'{self._l1_cpu_state()}', len(self._text))
                if left <= 0:
                    if self._l1_froze():
                        self._raise_l1_failure(
                            what, f'L1 froze: vmm never ended (no VMM-L1-EXIT), yet L1\'s own '
                            f'stall watchdog, a shell loop that speaks once vmm has run '
                            f'{L1_STALL_SECONDS} s, never ran: L1\'s kernel scheduled none of its '
                            f'processes for minutes. {self._l1_cpu_state()}', len(self._text))
                    where = f'; {self._l1_cpu_state(samples=3, gap=1.0)}' if (
                        self.mode == 'nested' and self._diag_dir) else ''
                    raise GuestTimeout(f'timed out after {timeout:g} s waiting for {what}{where}')
                # Wake now and then to look for a frozen L1 before the deadline.
                self._cond.wait(min(left, 10) if self.mode == 'nested' else left)

    def _await_l1_report(self, quiet=3.0, limit=20.0):
        """Lets L1's own report of a lockup (VMM-L1-KMSG lines) reach the console and its
        log: returns once the output has been still for quiet s, or after limit s. Caller
        holds _cond."""
        end = time.monotonic() + limit
        while not self._eof and time.monotonic() < end:
            size = len(self._text)
            self._cond.wait(quiet)
            if len(self._text) == size:
                return

    def _l1_froze(self):
        """True when L1's userspace has provably not run for a while (nested mode): since
        its last output (and since it was ready) longer has passed than the stall watchdog
        (L1_STALL_WATCH) takes to speak about a vmm that lives that long, yet the console
        stayed silent, and vmm did not end. Measured from the last output, not from L1
        being ready: one L1 may run many short vmm processes (linux-run) for longer than
        that. Caller holds _cond."""
        ready = self.timings.get('l1_ready')
        now = time.monotonic()
        return (self.mode == 'nested' and ready is not None and
                now - max(ready, self._last_output) > L1_STALL_SECONDS + 40 and
                # A watchdog report means L1 ran and vmm hung: vmm's failure, never L1's.
                'VMM-L1-STALL' not in self._text and
                not L1_EXIT_RE.search(self._text))

    def _raise_l1_failure(self, what, failure, where):
        """Raises L1Lockup for an L1 failure seen at offset where of the output, or
        GuestError when an L2 symptom (L2_SYMPTOM_RE) came first: then the L1 failure may be
        a consequence, and the run is not retried. Caller holds _cond."""
        symptom = L2_SYMPTOM_RE.search(self._text, 0, where)
        if symptom:
            raise GuestError(f'waiting for {what}: {symptom.group(0).strip()!r} on the L2 side, '
                             f'then {failure}')
        raise L1Lockup(f'waiting for {what}: {failure} (TCG L1 problem)')

    def _l1_ended(self, what):
        """QEMU (L1) ended without vmm's status: raises L1Lockup when L1's own panic message
        or QEMU's triple-fault log says why, GuestError otherwise. Caller holds _cond."""
        panic = L1_PANIC_RE.search(self._text)
        if panic:
            self._raise_l1_failure(what, f'the L1 kernel panicked ({panic.group(1).strip()})',
                                   panic.start())
        try:
            with open(os.path.join(self._diag_dir, 'qemu.log'), errors='replace') as f:
                triple = L1_TRIPLE_FAULT in f.read()
        except (OSError, TypeError):
            triple = False
        if triple:
            self._raise_l1_failure(what, f'QEMU logged an L1 triple fault', len(self._text))
        raise GuestError(f'waiting for {what}: QEMU (L1) exited (status {self._rc()}) without '
                         'vmm\'s exit status, and neither an L1 panic nor an L1 triple fault '
                         'says why')

    def _l1_cpu_state(self, samples=2, gap=3.0):
        """Where L1's CPUs are, from QEMU's monitor: RIP, CR3, halted, interrupt flag, in
        samples a few seconds apart (moving RIPs: spinning; HLT=1: waiting for an interrupt
        that does not come). A CPU running the L2 guest shows the L2's registers (TCG runs it
        itself), so a hung L2 says where it spins."""
        lines = []
        for i in range(samples):
            if i:
                time.sleep(gap)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(5)
                    sock.connect(os.path.join(self._diag_dir, 'monitor'))
                    sock.sendall(b'info registers -a\n')
                    data, t_end = b'', time.monotonic() + 5
                    while time.monotonic() < t_end:
                        try:
                            chunk = sock.recv(65536)
                        except socket.timeout:
                            break
                        if not chunk:
                            break
                        data += chunk
                        if data.count(b'EFER=') >= int(self.l1_cpus()):
                            break
            except (OSError, TypeError) as e:
                return f'(QEMU monitor unavailable: {e})'
            text = data.decode(errors='replace')
            cpus = re.findall(r'[ER]IP=([0-9a-f]+) [ER]FL=([0-9a-f]+).*?HLT=(\d).*?CR3=([0-9a-f]+)',
                              text, re.S)
            text_report = L1_TEXT_RE.search(self._text)
            lines.append(f'sample {i + 1}: ' + '; '.join(
                f'CPU{n} RIP={rip}'
                f'{f" ({l1_where(rip, text_report.group(1))})" if text_report else ""}'
                f' IF={int(rfl, 16) >> 9 & 1} HLT={hlt} CR3={cr3}'
                for n, (rip, rfl, hlt, cr3) in enumerate(cpus)))
        return 'L1 CPUs (QEMU monitor): ' + ' | '.join(lines)

    def send(self, text):
        """Types text on the guest console."""
        try:
            self.proc.stdin.write(text.encode() if isinstance(text, str) else text)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise GuestError(f'cannot send {text!r}: {self._who()} is gone')

    def wait_exit(self, timeout):
        """Waits for vmm to end; returns its exit status (128+N for signal N)."""
        if self.mode == 'direct':
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise GuestTimeout(f'timed out after {timeout:g} s waiting for vmm to exit')
            self._reader.join(30)
            self.status = 128 - rc if rc < 0 else rc
        else:
            m = self.expect(L1_EXIT_RE, timeout, what='vmm to exit (VMM-L1-EXIT)')
            self.status = int(m.group(1))
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()  # L1 did not power off; the status is known anyway
        self.timings['exit'] = time.monotonic()
        return self.status

    def _rc(self):
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            return 'unknown'

    def _who(self):
        return 'vmm' if self.mode == 'direct' else 'QEMU (L1)'

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        if self._reader:
            self._reader.join(10)
        if self.proc:
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
        if self._log:
            self._log.close()
            self._log = None
        if self._run_cpio:
            try:
                os.unlink(self._run_cpio)
            except OSError:
                pass
            self._run_cpio = None
        if self._diag_dir:
            shutil.rmtree(self._diag_dir, ignore_errors=True)
            self._diag_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def run_interactive(self):
        """Runs with the terminal attached (stdio inherited); returns vmm's status."""
        if self.mode == 'direct':
            argv = self._host_argv()
            try:
                rc = subprocess.run(argv).returncode
            except OSError as e:
                raise HarnessError(f'cannot run {argv[0]}: {e}')
            return 128 - rc if rc < 0 else rc
        self._run_cpio = self._l1_initrd(interactive=True)
        status_file = self._run_cpio + '.status'
        try:
            rc = subprocess.run(self._qemu_argv(self._run_cpio, status_file)).returncode
        except OSError as e:
            raise HarnessError(f'cannot run {self.qemu}: {e}')
        finally:
            self.close()
        try:
            with open(status_file, errors='replace') as f:
                m = L1_EXIT_RE.search(f.read())
            os.unlink(status_file)
        except OSError:
            m = None
        if m:
            return int(m.group(1))
        print(f'harness: vmm did not report an exit status ({self.qemu} exited with '
              f'status {rc})', file=sys.stderr)
        return 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    m = sub.add_parser('mode', help='print the mode this host gets, and why')
    m.add_argument('--arch', choices=sorted(ARCHES),
                   help="vmm's architecture (default: this host's)")
    r = sub.add_parser('run', help='boot a guest under vmm (direct or nested)')
    r.add_argument('build_dir')
    r.add_argument('--vmm', help='vmm binary (default BUILD_DIR/vmm; with --arch aarch64 '
                   'BUILD_DIR/aarch64/vmm, where scripts/build-aarch64 BUILD_DIR/aarch64 puts it)')
    r.add_argument('--arch', choices=sorted(ARCHES),
                   help="vmm's architecture (default: the vmm binary's, else x86_64); "
                   'aarch64 takes its guest from scripts/mkguest BUILD_DIR arm64')
    r.add_argument('--kernel')
    r.add_argument('--initrd', help="initrd ('' for none)")
    r.add_argument('--cmdline')
    r.add_argument('--mem')
    r.add_argument('--cpus')
    r.add_argument('--command', help='shell command to run instead of vmm '
                   '(nested: inside L1; kernel at /guest/bzImage or /guest/Image, initrd at '
                   '/guest/initrd)')
    r.add_argument('--file', action='append', default=[], metavar='L1PATH=HOSTPATH',
                   help='copy a file into L1 (nested mode)')
    r.add_argument('--disk', action='append', default=[], metavar='PATH[,OPTIONS]',
                   help='vmm --disk (nested mode: a copy in L1; writes stay there)')
    r.add_argument('--sysroot', help='where dynamically linked --file executables of another '
                   'architecture find their libraries (see sysroot_libs)')
    r.add_argument('--interactive', action='store_true', help='attach the terminal')
    r.add_argument('--timeout', type=float, default=600, help='seconds (non-interactive)')
    r.add_argument('extra', nargs='*', help='more vmm arguments (after --)')
    args = ap.parse_args(argv)
    try:
        if args.cmd == 'mode':
            mode, reason = detect_mode(args.arch or (HOST_ARCH if HOST_ARCH in ARCHES
                                                     else 'x86_64'))
            print(f'{mode}: {reason}')
            return 0
        if args.vmm:
            vmm = args.vmm
        elif args.arch == 'aarch64':
            vmm = os.path.join(args.build_dir, 'aarch64', 'vmm')
        else:
            vmm = os.path.join(args.build_dir, 'vmm')
        if args.command is None and not os.path.isfile(vmm):
            raise HarnessError(f'{vmm} not found (build with: ' + (
                f'scripts/build-aarch64 {os.path.dirname(vmm)})' if args.arch == 'aarch64'
                else f'ninja -C {args.build_dir})'))
        arch = args.arch or (os.path.isfile(vmm) and elf_arch(vmm)) or 'x86_64'
        mode, reason = detect_mode(arch)
        g = Guest(args.build_dir, vmm if os.path.isfile(vmm) else None, args.kernel,
                  args.initrd, args.cmdline, args.mem, args.cpus, args.extra,
                  command=args.command, mode=mode, arch=arch, sysroot=args.sysroot,
                  files=[tuple(f.split('=', 1)) for f in args.file], disks=args.disk)
        if args.interactive:
            if mode == 'nested':
                print(f'vmm: {reason}; booting the guest inside the nested harness (QEMU TCG L1)',
                      file=sys.stderr)
            return g.run_interactive()
        g.echo = sys.stdout.buffer
        with g:
            g.start(boot_timeout=args.timeout)
            status = g.wait_exit(args.timeout)
            print(f'harness: vmm exit status {status} ({mode} mode, '
                  f'{g.timings["exit"] - g.timings["start"]:.1f} s)', file=sys.stderr)
            return status
    except (HarnessError, GuestError) as e:
        print(f'harness: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
