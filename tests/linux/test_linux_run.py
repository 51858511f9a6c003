#!/usr/bin/env python3
"""Linux integration test of test-run mode: `vmm --kernel K --run CMD`.

Each case runs vmm with Debian's cloud kernel and --run, with the host's / as the
guest's root over virtio-fs (virtiofsd started by vmm), and checks what a caller of
vmm sees: the command's stdout and stderr (byte-exact, compared by sha256), vmm's
exit status, and files on the host. All cases run in one L1 boot in nested mode
(L1's / is the "host" the guest sees; its kernel modules are at L1's
/lib/modules/RELEASE, found by default), or directly on a hardware-backed host
(with --modules).

Cases: basics (stdout, stderr, status 7), env (HOME, TERM, PATH, cwd), host-files
(a --share file and a file of the host's /), write-back (a file the guest writes
into a --share is on the host), read-only (a ro share refuses writes, also once the
guest remounts it read-write: the daemon's side is read-only; writes to the root
and /tmp stay in the guest), blob (16 MiB of binary output, sha256-exact), stdin
(piped in, EOF ends cat), mmio (--transport mmio, 2 vCPUs), panic (status 120 and
the panic on stderr), timeout (124), no-module (125 naming virtiofs, no guest
started), no-daemon (125 naming the missing virtiofsd), share-plain (no --run: a
guest initramfs of the test's own mounts the share by its default tag), sandbox (while
the guest runs, every thread of vmm shows Seccomp: 2 and CapEff 0 in /proc), and
--save-ready: save-ready (a snapshot where the init waits), restore-0..9 (each restore
its own command, stdout and exit status), restore-share (two shares, one ro at a
GUESTDIR, plugged in after the restore; a file written back; the cwd), restore-timeout
(124), restore-panic (120, the panic on stderr), restore-stdin, restore-hotplug (the
plugged-in devices are bound to virtiofs; the kernel's lines about them), restore-parallel
(two restores at once; then the snapshot's files are as saved, size and times),
save-ready-mmio and restore-mmio (--transport mmio and 2 vCPUs: the shares in spare
virtio-mmio windows), restore-bad-state, restore-bad-ram, restore-empty (125).
--scenario aarch64 runs a subset (ARM64_CASES) with the cross-built vmm in an arm64
L1. VMM_RUN_CASES=a,b runs only those cases.

Exit status: 0 pass, 1 fail, 77 skip.
"""

import argparse
import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SRC_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = float(os.environ.get('VMM_TEST_TIMEOUT', 900))
VIRTIOFSD = '/usr/lib/qemu/virtiofsd'
# What the init loads (vmm/run.c); the test copies them and their dependencies into L1.
RUN_MODULES = ('virtio_pci', 'virtio_mmio', 'virtio_console', 'virtiofs', 'overlay')
PANIC_STATUS = 120
# The arm64 run (slower: an arm64 L1 under TCG) takes the basics.
ARM64_CASES = ('basics', 'host-files', 'write-back', 'stdin', 'panic', 'no-module',
               'share-plain', 'sandbox', 'save-ready', 'restore-0', 'restore-1', 'restore-2',
               'restore-share', 'restore-parallel', 'restore-bad-state')
# The least threads of a --run vmm with 2 vCPUs: main (event loop), 2 vCPUs, 2 output writers.
SANDBOX_MIN_THREADS = 5


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Case:
    """One vmm --run (or, with cmd None, a plain boot with args): its arguments, stdin, and
    what must come out (stdout exactly, or lines it must hold)."""

    def __init__(self, name, cmd, status, stdout=None, args='', stdin=None, stderr_has=(),
                 setup='', after='', stdout_has=(), line=None):
        self.name, self.cmd, self.status, self.stdout = name, cmd, status, stdout
        self.args, self.stdin, self.stderr_has = args, stdin, stderr_has
        self.setup, self.after, self.stdout_has = setup, after, stdout_has
        # A shell command line of its own in place of `vmm --kernel K ARGS --run CMD`: @VMM@,
        # @KERNEL@ and @EXTRA@ stand for vmm, the kernel and the harness's extra options.
        self.line = line


def sandbox_watch(w):
    """Shell that, once the guest says it is up, writes a line per thread of the running vmm:
    its name, Seccomp and CapEff from /proc/PID/task/TID/status."""
    return (f'i=0; while [ ! -e {w}/data/sandbox-up ] && [ $i -lt 300 ]; do sleep 1; '
            'i=$((i+1)); done; pid=$(grep -lE \'^Name:[[:space:]]+vmm$\' /proc/[0-9]*/status '
            '2>/dev/null | head -n1 | cut -d/ -f3); '
            '[ -n "$pid" ] || echo "no running vmm"; '
            'for t in /proc/$pid/task/*; do [ -n "$pid" ] || break; '
            'echo "$(cat $t/comm) $(grep -E '
            '\'^(Seccomp|CapEff):\' $t/status | tr -s \'\\t \' \' \' | tr \'\\n\' \' \')"; '
            f'done >{w}/sandbox-status.tmp; mv {w}/sandbox-status.tmp {w}/sandbox-status')


def sandbox_check(w):
    """Shell that prints RUN-CHECK sandbox: ok and the thread count, or bad and the lines."""
    return (f'f={w}/sandbox-status; if [ -s $f ] && ! grep -v '
            '\'CapEff: 0000000000000000 Seccomp: 2 \' $f >/dev/null; then '
            'echo "RUN-CHECK sandbox ok $(wc -l <$f)"; else '
            'echo "RUN-CHECK sandbox bad: $(tr \'\\n\' \';\' <$f 2>/dev/null)"; fi')


def cases(w):
    """The cases, with @w the host work directory (shares live there)."""
    return [
        Case('basics', 'echo out; echo err >&2; exit 7', 7, b'out\n', stderr_has=('err',)),
        Case('env', 'echo "$HOME $TERM $PATH"; pwd', 0,
             b'/root dumb /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'
             + f'{w}/data\n'.encode(),
             setup=f'cd {w}/data && export TERM=dumb'),
        Case('host-files', f'cat {w}/data/in.txt /etc/vmm-test-marker', 0,
             b'host wrote this\nmarker of the host root\n', args=f'--share {w}/data'),
        Case('write-back', f'echo guest wrote this >{w}/data/out.txt', 0, b'',
             args=f'--share {w}/data',
             after=f'echo "RUN-CHECK write-back $(cat {w}/data/out.txt)"'),
        # The guest mounts a ro share read-only; remounted read-write (the guest is root),
        # the daemon still refuses. Writes to the root stay in the guest's overlay.
        Case('read-only',
             'cat /mnt/ro/f.txt; echo x >/mnt/ro/new.txt || echo refused-share; '
             'mount -o remount,rw /mnt/ro; grep " /mnt/ro " /proc/mounts | cut -d" " -f4 | '
             'cut -d, -f1; echo y >/mnt/ro/new2.txt || echo refused-daemon; '
             f'echo r >{w}/root-write && cat {w}/root-write; '
             'echo t >/tmp/t && cat /tmp/t; echo e >/etc/e && cat /etc/e', 0,
             b'ro file\nrefused-share\nrw\nrefused-daemon\nr\nt\ne\n',
             args=f'--share {w}/ro:/mnt/ro,ro',
             after=f'[ -e {w}/ro/new.txt ] || [ -e {w}/ro/new2.txt ] || [ -e {w}/root-write ] '
                   '&& echo "RUN-CHECK read-only leaked" || echo "RUN-CHECK read-only kept"'),
        Case('blob', f'cat {w}/data/blob', 0, None, args=f'--share {w}/data,ro',
             after=f'echo "RUN-CHECK blob $(sha256sum <{w}/data/blob | cut -c1-64)"'),
        Case('stdin', 'cat; echo done', 0, b'line one\nline two\ndone\n',
             stdin=b'line one\nline two\n'),
        Case('mmio', 'nproc', 0, b'2\n', args='--transport mmio --cpus 2'),
        Case('panic', 'echo c >/proc/sysrq-trigger; sleep 5', PANIC_STATUS, b'',
             stderr_has=('Kernel panic',)),
        Case('timeout', 'echo started; sleep 1000', 124, b'started\n', args='--timeout 60'),
        Case('no-module', 'true', 125, b'', args=f'--modules {w}/fakemods',
             stderr_has=("module 'virtiofs'",)),
        Case('no-daemon', 'true', 125, b'', args='--virtiofsd /nonexistent/virtiofsd',
             stderr_has=('/nonexistent/virtiofsd',)),
        # Without --run: the guest's own init mounts the share by its default tag (the
        # directory's name, "data"); its console is vmm's stdout.
        Case('share-plain', None, 0, args=f'--initrd {w}/plain.cpio --share {w}/data',
             stdout_has=('PLAIN: host wrote this',)),
        # Least privilege (on by default): L1, as vmm's host, reads every thread's status
        # while the guest sleeps; each must be filtered (Seccomp: 2) and hold no capability.
        Case('sandbox', f'echo up >{w}/data/sandbox-up; sleep 6; echo done', 0, b'done\n',
             args=f'--share {w}/data --cpus 2',
             setup=f'rm -f {w}/data/sandbox-up {w}/sandbox-status; ( {sandbox_watch(w)} ) & true',
             after=sandbox_check(w)),
    ] + save_ready_cases(w)


# --save-ready, then restores of its snapshot with --run: each with its own command, exit
# status and shares (the root and the shares are plugged in after the restore), two at once,
# and snapshots that cannot be restored (status 125 with --run).
SAVE_READY_RUNS = 10
SAVE_READY_CASES = (('save-ready',) + tuple(f'restore-{i}' for i in range(SAVE_READY_RUNS)) +
                    ('restore-share', 'restore-timeout', 'restore-panic', 'restore-stdin',
                     'restore-hotplug', 'restore-parallel', 'save-ready-mmio', 'restore-mmio',
                     'restore-bad-state', 'restore-bad-ram', 'restore-empty'))


HOTPLUG_CMD = ('ls /sys/bus/virtio/drivers/virtiofs | grep -c virtio; '
               'dmesg | grep -iE "pci 0000:00:|GSI|PCI INT|virtio" | tail -40 >&2')


def save_ready_cases(w):
    snap = f'{w}/snap'
    restore = f'@VMM@ --restore {snap}'
    # The snapshot's files as they were saved: size, modification and change times.
    stamp = f'stat -c "%n %s %Y %Z" {snap}/ram {snap}/state'
    out = [Case('save-ready', None, 0, b'',
                line=f'rm -rf {snap}; @VMM@ --kernel @KERNEL@ @EXTRA@ --save-ready {snap}',
                after=f'echo "RUN-CHECK save-ready $(ls {snap} | tr \'\\n\' \' \')"; '
                      f'{stamp} >{w}/snap.stamp')]
    for i in range(SAVE_READY_RUNS):
        cmd = f'echo run {i} $(({i} * 3)); exit {i * 11}'
        out.append(Case(f'restore-{i}', None, i * 11, f'run {i} {i * 3}\n'.encode(),
                        line=f'{restore} --run {shlex.quote(cmd)}'))
    share_cmd = (f'cat {w}/data/in.txt /mnt/ro/f.txt; echo restored >{w}/data/restored.txt; '
                 'pwd')
    out += [
        Case('restore-share', None, 0, f'host wrote this\nro file\n{w}/data\n'.encode(),
             setup=f'rm -f {w}/data/restored.txt; cd {w}/data',
             line=f'{restore} --share {w}/data --share {w}/ro:/mnt/ro,ro '
                  f'--run {shlex.quote(share_cmd)}',
             after=f'echo "RUN-CHECK restore-share $(cat {w}/data/restored.txt)"'),
        Case('restore-timeout', None, 124, b'started\n',
             line=f'{restore} --timeout 20 --run "echo started; sleep 1000"'),
        Case('restore-panic', None, PANIC_STATUS, b'', stderr_has=('Kernel panic',),
             line=f'{restore} --run "echo c >/proc/sysrq-trigger; sleep 5"'),
        Case('restore-stdin', None, 0, b'line one\nline two\ndone\n',
             stdin=b'line one\nline two\n', line=f'{restore} --run "cat; echo done"'),
        # The devices plugged in after the restore: bound to virtiofs (the root and one share);
        # the kernel's messages about them go to stderr, for the log.
        Case('restore-hotplug', None, 0, b'2\n',
             line=f'{restore} --share {w}/data --run {shlex.quote(HOTPLUG_CMD)}'),
        Case('restore-parallel', None, 34, b'p1\np2\n',
             line=f'{restore} --run "echo p1; exit 3" >{w}/p1 & a=$!; '
                  f'{restore} --run "echo p2; exit 4" >{w}/p2 & b=$!; '
                  f'wait $a; sa=$?; wait $b; sb=$?; cat {w}/p1 {w}/p2; exit $((sa * 10 + sb))',
             after=f'{stamp} | cmp -s - {w}/snap.stamp && echo "RUN-CHECK snap-kept yes" || '
                   'echo "RUN-CHECK snap-kept no"'),
        # On virtio-mmio (x86_64's --transport mmio; aarch64's only transport) the shares take
        # windows the snapshot kept spare, bound by the init after the restore.
        # ... with 2 vCPUs, both back after the restore.
        Case('save-ready-mmio', None, 0, b'',
             line=f'rm -rf {snap}-mmio; @VMM@ --kernel @KERNEL@ @EXTRA@ --transport mmio '
                  f'--cpus 2 --save-ready {snap}-mmio'),
        Case('restore-mmio', None, 3, b'host wrote this\nro file\n2\n',
             line=f'@VMM@ --restore {snap}-mmio --share {w}/data --share {w}/ro:/mnt/ro,ro '
                  f'--run "cat {w}/data/in.txt /mnt/ro/f.txt; nproc; exit 3"'),
        Case('restore-bad-state', None, 125, b'', stderr_has=('snapbad',),
             setup=f'rm -rf {w}/snapbad && cp -r {snap} {w}/snapbad && '
                   f'truncate -s 100 {w}/snapbad/state',
             line=f'@VMM@ --restore {w}/snapbad --run true'),
        Case('restore-bad-ram', None, 125, b'', stderr_has=('ram',),
             setup=f'rm -rf {w}/snapbad && cp -r {snap} {w}/snapbad && '
                   f'truncate -s 4096 {w}/snapbad/ram',
             line=f'@VMM@ --restore {w}/snapbad --run true'),
        Case('restore-empty', None, 125, b'', stderr_has=('snapbad/state',),
             setup=f'rm -rf {w}/snapbad && mkdir {w}/snapbad',
             line=f'@VMM@ --restore {w}/snapbad --run true'),
    ]
    return out


def case_script(c, vmm, kernel, w, extra):
    q = shlex.quote
    stdin = f'{w}/stdin.{c.name}' if c.stdin is not None else '/dev/null'
    lines = [f'echo "RUN-CASE {c.name}"']
    run = f'{extra} --run {q(c.cmd)}' if c.cmd is not None else '--cmdline quiet'
    start = f'{q(vmm)} --kernel {q(kernel)} {c.args} {run} <{stdin} >{w}/out 2>{w}/err'
    if c.line:
        line = c.line.replace('@VMM@', q(vmm)).replace('@KERNEL@', q(kernel))
        start = f'{{ {line.replace("@EXTRA@", extra)}; }} <{stdin} >{w}/out 2>{w}/err'
    lines.append(f'( {c.setup + " && " if c.setup else ""}{start} ); st=$?')
    lines.append(f'echo "RUN-RESULT {c.name} status=$st out=$(sha256sum <{w}/out | cut -c1-64) '
                 f'bytes=$(wc -c <{w}/out)"')
    lines.append(f'echo RUN-STDOUT-BEGIN; head -c 2048 {w}/out; echo; echo RUN-STDOUT-END')
    lines.append(f'echo RUN-STDERR-BEGIN; tail -c 6000 {w}/err; echo; echo RUN-STDERR-END')
    if c.after:
        lines.append(c.after)
    return '\n'.join(lines)


def script(all_cases, vmm, kernel, w, extra):
    """The shell script that runs every case (in L1, or here in direct mode)."""
    prep = [
        f'mkdir -p {w}/data {w}/ro {w}/fakemods',
        f'printf "host wrote this\\n" >{w}/data/in.txt',
        f'printf "ro file\\n" >{w}/ro/f.txt',
        f'dd if=/dev/urandom of={w}/data/blob bs=1M count=16 2>/dev/null',
        # a module tree with everything --run needs but virtiofs
        f'printf "%s:\\n" kernel/virtio_pci.ko kernel/virtio_mmio.ko kernel/virtio_console.ko '
        f'kernel/overlay.ko >{w}/fakemods/modules.dep',
        f': >{w}/fakemods/modules.builtin',
        'echo RUN-BEGIN',
    ]
    for c in all_cases:
        if c.stdin is not None:
            prep.append(f'printf %s {shlex.quote(c.stdin.decode())} >{w}/stdin.{c.name}')
    body = [case_script(c, vmm, kernel, w, extra) for c in all_cases]
    return '\n'.join(prep + body + ['echo RUN-END'])


def parse(output):
    """{case: (status, stdout sha, bytes, stdout text, stderr text)}, {check: value}."""
    results, checks = {}, {}
    for m in re.finditer(r'RUN-RESULT (\S+) status=(\d+) out=([0-9a-f]{64}) bytes=\s*(\d+)\n'
                         r'RUN-STDOUT-BEGIN\n(.*?)\nRUN-STDOUT-END\n'
                         r'RUN-STDERR-BEGIN\n(.*?)\nRUN-STDERR-END', output, re.S):
        results[m.group(1)] = (int(m.group(2)), m.group(3), int(m.group(4)), m.group(5),
                               m.group(6))
    for m in re.finditer(r'RUN-CHECK (\S+) ([^\n]*)', output):
        checks[m.group(1)] = m.group(2).strip()
    return results, checks


def judge(c, results, checks):
    """None when case c passed, else why not."""
    if c.name not in results:
        return 'no result (the script did not get there)'
    status, out_sha, nbytes, out, err = results[c.name]
    if status != c.status:
        return f'vmm exit status {status}, expected {c.status}'
    if c.name == 'blob':
        if checks.get('blob') != out_sha or nbytes != 16 << 20:
            return f'stdout has {nbytes} bytes, sha256 {out_sha}; the file: {checks.get("blob")}'
    elif c.stdout is not None and out_sha != sha(c.stdout):
        return f'stdout is {out!r}, expected {c.stdout.decode()!r}'
    for want in c.stderr_has:
        if want not in err:
            return f'stderr lacks {want!r}'
    for want in c.stdout_has:
        if want not in out:
            return f'stdout lacks {want!r}'
    if c.name == 'basics' and err.strip() != 'err':
        return f'stderr is {err!r}, expected only "err"'
    if c.name == 'save-ready' and checks.get('save-ready') != 'ram state':
        return f'the snapshot directory holds {checks.get("save-ready")!r}, expected ram state'
    if c.name == 'restore-parallel' and checks.get('snap-kept') != 'yes':
        return 'the snapshot\'s files changed (size or times) across the restores'
    if c.name == 'restore-share' and checks.get('restore-share') != 'restored':
        return f'the file written into the share holds {checks.get("restore-share")!r}'
    if c.name == 'write-back' and checks.get('write-back') != 'guest wrote this':
        return f'the host file holds {checks.get("write-back")!r}'
    if c.name == 'read-only' and checks.get('read-only') != 'kept':
        return 'the guest created a file in the read-only share'
    if c.name == 'sandbox':
        m = re.fullmatch(r'ok (\d+)', checks.get('sandbox', ''))
        if not m or int(m.group(1)) < SANDBOX_MIN_THREADS:
            return f'vmm\'s threads while the guest ran: {checks.get("sandbox")!r}'
    return None


def module_closure(moddir, names):
    """Paths (relative to moddir) of the modules names and their dependencies."""
    deps = {}
    with open(os.path.join(moddir, 'modules.dep')) as f:
        for line in f:
            path, _, rest = line.partition(':')
            deps[os.path.basename(path).split('.ko')[0].replace('-', '_')] = (path, rest.split())
    out = set()
    for n in names:
        if n in deps:
            out.add(deps[n][0])
            out.update(deps[n][1])
    return sorted(out)


def l1_files(guest_dir, release, virtiofsd):
    moddir = os.path.join(guest_dir, 'modules', release)
    files = [(f'/lib/modules/{release}/{p}', os.path.join(moddir, p))
             for p in module_closure(moddir, RUN_MODULES)]
    files += [(f'/lib/modules/{release}/{n}', os.path.join(moddir, n))
              for n in ('modules.dep', 'modules.builtin')]
    files.append((VIRTIOFSD, virtiofsd))
    return files


PLAIN_INIT = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev
for pass in 1 2 3; do for m in /ko/*.ko; do insmod $m 2>/dev/null; done; done
mkdir -p /mnt
mount -t virtiofs data /mnt && echo "PLAIN: $(cat /mnt/in.txt)"
poweroff -f
'''


def plain_initramfs(path, guest_dir, release):
    """A guest initramfs of our own (busybox, the virtio-fs modules, an init that mounts the
    tag "data"), for the case without --run."""
    moddir = os.path.join(guest_dir, 'modules', release)
    with open(path, 'wb') as f:
        c = harness.Cpio(f)
        for d in ('bin', 'dev', 'proc', 'sys', 'ko'):
            c.add_dir(d)
        c.add_chardev('dev/console', 5, 1)
        c.add_host_file('bin/busybox', os.path.join(guest_dir, 'busybox'), 0o755)
        c.add_file('init', PLAIN_INIT, 0o755)
        for p in module_closure(moddir, ('virtio_pci', 'virtio_mmio', 'virtiofs')):
            c.add_host_file('ko/' + os.path.basename(p), os.path.join(moddir, p))
        c.finish()


def prepare_arm64(args):
    """The cross-built aarch64 vmm, the arm64 guest images and Debian's arm64 virtiofsd
    with its libraries: (vmm, virtiofsd, sysroot)."""
    out = os.path.join(args.build_dir, 'aarch64')
    for argv in ([os.path.join(SRC_ROOT, 'scripts', 'build-aarch64'), out],
                 [os.path.join(SRC_ROOT, 'scripts', 'mkguest'), args.build_dir, 'arm64']):
        res = subprocess.run(argv, capture_output=True, text=True)
        if res.returncode != 0:
            raise harness.HarnessError(f'{" ".join(argv)} failed: {res.stderr.strip()[-800:]}')
    virtiofsd, sysroot = harness.arm64_binary(
        os.path.join(args.build_dir, 'guest-arm64', 'virtiofsd'), 'qemu-system-common',
        VIRTIOFSD.lstrip('/'))
    return os.path.join(out, 'vmm'), virtiofsd, sysroot


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('SIGTERM'))
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--vmm', required=True)
    ap.add_argument('--build-dir', required=True)
    ap.add_argument('--scenario', choices=('x86_64', 'aarch64'), default='x86_64',
                    help="the guest's architecture (aarch64: the cross-built vmm in an arm64 "
                    "L1, a subset of the cases)")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    arch = harness.ARCHES[args.scenario]
    name = 'linux-run' if arch.name == 'x86_64' else 'linux-arm64-run'
    try:
        mode, reason = harness.detect_mode(arch.name)
    except harness.HarnessError as e:
        print(f'FAIL: {e}')
        return 1
    print(f'mode: {mode} ({reason})')
    if mode == 'nested' and not shutil.which(arch.qemu):
        print(f'SKIP: nested mode needs {arch.qemu} (scripts/deps installs it)')
        return 77
    if not os.access(VIRTIOFSD, os.X_OK):
        print(f'SKIP: {VIRTIOFSD} missing (Debian package qemu-system-common)')
        return 77
    if arch.name == 'aarch64' and harness.HOST_ARCH != 'aarch64' and \
            not shutil.which('aarch64-linux-gnu-gcc'):
        print('SKIP: the aarch64 build needs aarch64-linux-gnu-gcc (scripts/deps installs it)')
        return 77
    vmm_host, virtiofsd, sysroot = os.path.abspath(args.vmm), VIRTIOFSD, None
    try:
        if arch.name == 'aarch64' and harness.HOST_ARCH != 'aarch64':
            vmm_host, virtiofsd, sysroot = prepare_arm64(args)
        else:
            res = subprocess.run([os.path.join(SRC_ROOT, 'scripts', 'mkguest'), args.build_dir]
                                 + ([arch.debian] if arch.name == 'aarch64' else []))
            if res.returncode != 0:
                raise harness.HarnessError(f'scripts/mkguest failed (status {res.returncode})')
    except harness.HarnessError as e:
        print(f'FAIL {name}: {e}')
        return 1
    guest_dir = os.path.join(args.build_dir, arch.guest_subdir)
    with open(os.path.join(guest_dir, 'kernel-release')) as f:
        release = f.read().strip()

    with tempfile.TemporaryDirectory(prefix='vmm-linux-run-') as tmp:
        if mode == 'direct':
            w, vmm, kernel = tmp, vmm_host, os.path.join(guest_dir, arch.kernel)
            extra = f'--modules {shlex.quote(os.path.join(guest_dir, "modules", release))}'
            files = []
        else:
            w, vmm, kernel, extra = '/srv', harness.Guest.L1_VMM, '/guest/' + arch.kernel, ''
            marker = os.path.join(tmp, 'marker')
            with open(marker, 'w') as f:
                f.write('marker of the host root\n')
            files = l1_files(guest_dir, release, virtiofsd) + [('/etc/vmm-test-marker', marker)]
        plain = os.path.join(tmp, 'plain.cpio')
        plain_initramfs(plain, guest_dir, release)
        if mode == 'direct':
            shutil.copy(plain, os.path.join(w, 'plain.cpio'))
        else:
            files.append((f'{w}/plain.cpio', plain))
        all_cases = cases(w)
        if arch.name == 'aarch64':
            all_cases = [c for c in all_cases if c.name in ARM64_CASES]
        if mode == 'direct' and not os.path.exists('/etc/vmm-test-marker'):
            all_cases = [c for c in all_cases if c.name != 'host-files']
            print('note: host-files skipped in direct mode (it reads /etc/vmm-test-marker)')
        only = os.environ.get('VMM_RUN_CASES')  # e.g. "blob,stdin": run just those
        if only:
            all_cases = [c for c in all_cases if c.name in only.split(',')]
        text = script(all_cases, vmm, kernel, w, extra)
        log = os.path.join(args.build_dir, 'meson-logs', f'{name}-console.log')

        def attempt():
            g = harness.Guest(args.build_dir, vmm_host, initrd='', command=text, files=files,
                              mode=mode, log_path=log, arch=arch.name, sysroot=sysroot)
            with g:
                t0 = time.monotonic()
                g.start(TIMEOUT)
                g.expect('RUN-END', TIMEOUT, what='the end of the cases')
                print(f'cases ran in {time.monotonic() - t0:.1f} s')
                attempt.output = g.output

        try:
            if not harness.run_attempts(name, attempt):
                return 1
        except (harness.GuestError, harness.HarnessError) as e:
            print(f'FAIL {name}: {e}')
            return 1
    results, checks = parse(attempt.output)
    failed = 0
    for c in all_cases:
        why = judge(c, results, checks)
        if why:
            failed += 1
            print(f'FAIL {c.name}: {why}')
            r = results.get(c.name)
            if r:
                print(f'--- stdout ---\n{r[3][:1500]}\n--- stderr ---\n{r[4]}\n---')
        else:
            print(f'PASS {c.name}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
