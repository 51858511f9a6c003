#!/usr/bin/env python3
"""Linux integration test: Debian's cloud kernel under vmm.

  boot   boots the default guest (scripts/mkguest) with a unique token on the
         command line, checks uname -r and /proc/cmdline (the token and the
         defaults vmm adds) through the serial console, then `reboot -f` must
         end vmm with status 0.
  smp    --cpus 2 must not break boot: the guest reaches its shell and
         `reboot -f` ends vmm with 0. (Secondary CPUs come online once vmm
         describes them in an ACPI MADT; until then the guest sees one.)
  panic  a guest whose kernel panics (no init: rdinit=/nonexistent-init, no
         root fs) must end vmm, since vmm adds panic=-1 and a reset ends it.

Runs directly on a hardware-backed KVM host, else nested under QEMU TCG (see
harness.py). Exit status: 0 pass, 1 fail, 77 skip.
"""

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SRC_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# seconds per wait (CI machines may be slow, and TCG is); VMM_TEST_TIMEOUT overrides
PHASE_TIMEOUT = float(os.environ.get("VMM_TEST_TIMEOUT", 300))


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def scenario_boot(g, release):
    token = g.cmdline.split('vmmtest.token=')[1].split()[0]
    g.start(PHASE_TIMEOUT)
    g.expect(r'VMM-GUEST-READY', PHASE_TIMEOUT, what='VMM-GUEST-READY from the guest init')
    g.send('echo "@@$(uname -r)@@"\n')
    m = g.expect(r'@@([^@$\s]+)@@', PHASE_TIMEOUT, what='the output of uname -r')
    check(m.group(1) == release, f'uname -r says {m.group(1)!r}, expected {release!r}')
    g.send('echo "##$(cat /proc/cmdline)##"\n')
    m = g.expect(r'##([^#$\n]*)##', PHASE_TIMEOUT, what='the guest /proc/cmdline')
    params = m.group(1).split()
    print(f'guest /proc/cmdline: {m.group(1)}')
    for p in (f'vmmtest.token={token}', 'console=ttyS0', 'panic=-1'):
        check(p in params, f'{p} missing from the guest command line {params}')
    g.send('reboot -f\n')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'vmm exit status {status} after guest reboot -f, expected 0')


def scenario_panic(g, release):
    g.start(PHASE_TIMEOUT)
    g.expect(r'Kernel panic', PHASE_TIMEOUT, what='"Kernel panic" from the guest')
    status = g.wait_exit(PHASE_TIMEOUT)
    print(f'vmm ended with status {status} after the guest panicked')


def scenario_smp(g, release):
    g.start(PHASE_TIMEOUT)
    g.expect(r'VMM-GUEST-READY', PHASE_TIMEOUT, what='VMM-GUEST-READY from the guest init')
    g.send('echo "%%$(nproc)%%"\n')
    m = g.expect(r'%%(\d+)%%', PHASE_TIMEOUT, what='the output of nproc')
    print(f'guest nproc with --cpus {g.cpus}: {m.group(1)}')
    g.send('reboot -f\n')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'vmm exit status {status} after guest reboot -f, expected 0')


# name -> (run, command line, vCPUs)
SCENARIOS = {
    'boot': (scenario_boot, lambda: f'vmmtest.token={secrets.token_hex(8)}', 1),
    'panic': (scenario_panic, lambda: 'rdinit=/nonexistent-init', 1),
    'smp': (scenario_smp, lambda: 'quiet', 2),
}


def run_scenario(args, mode, name, release):
    """Runs one scenario; prints PASS or FAIL with diagnostics; raises on failure."""
    run, cmdline, cpus = SCENARIOS[name]
    log = os.path.join(args.build_dir, 'meson-logs', f'linux-{name}-console.log')
    g = harness.Guest(args.build_dir, args.vmm, cmdline=cmdline(), cpus=cpus, mode=mode,
                      log_path=log)
    t0 = time.monotonic()
    try:
        with g:
            run(g, release)
    except harness.L1Lockup:
        raise
    except (Failure, harness.GuestError, harness.HarnessError) as e:
        print(f'FAIL {name}: {e}')
        print(f'--- last lines of the console ({mode} mode; full log {log}) ---')
        print(g.tail(60))
        print('---')
        raise
    l1 = g.timings.get('l1_ready')
    l1 = f', L1 ready after {l1 - t0:.1f} s' if l1 else ''
    print(f'PASS {name}: {time.monotonic() - t0:.1f} s{l1}')


def main():
    # Turn SIGTERM (e.g. meson's timeout) into an exit that kills vmm/QEMU.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('SIGTERM'))
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--vmm', required=True, help='the vmm binary')
    ap.add_argument('--build-dir', required=True)
    ap.add_argument('--scenario', choices=sorted(SCENARIOS) + ['all'], default='all')
    args = ap.parse_args()

    try:
        mode, reason = harness.detect_mode()
    except harness.HarnessError as e:
        print(f'FAIL: {e}')
        return 1
    print(f'mode: {mode} ({reason})')
    if mode == 'nested' and not shutil.which(harness.QEMU):
        print(f'SKIP: nested mode needs {harness.QEMU} (Debian package qemu-system-x86; '
              'scripts/deps installs it)')
        return 77
    if not shutil.which('apt-get'):
        print('SKIP: the guest images come from Debian packages and this host has no apt-get')
        return 77

    res = subprocess.run([os.path.join(SRC_ROOT, 'scripts', 'mkguest'), args.build_dir])
    if res.returncode != 0:
        print(f'FAIL: scripts/mkguest {args.build_dir} failed (status {res.returncode})')
        return 1
    with open(os.path.join(args.build_dir, 'guest', 'kernel-release')) as f:
        release = f.read().strip()

    names = sorted(SCENARIOS) if args.scenario == 'all' else [args.scenario]
    failed = 0
    for name in names:
        for attempt in (1, 2):
            try:
                run_scenario(args, mode, name, release)
                break
            except harness.L1Lockup as e:
                # Rare, and seen with QEMU as the L2 VMM too: retry once, and say so.
                print(f'RETRY {name}: {e}')
                if attempt == 2:
                    failed += 1
            except (Failure, harness.GuestError, harness.HarnessError):
                failed += 1
                break
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
