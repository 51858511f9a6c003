#!/usr/bin/env python3
"""Linux integration test for the aarch64 build: Debian's arm64 cloud kernel under vmm.

On an x86_64 host (CI) this runs in the nested harness (harness.py, arch aarch64):
qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu max,pauth=off
-accel tcg boots Debian's arm64 kernel as L1, where KVM comes up in VHE mode; the
vmm cross-built by scripts/build-aarch64 boots the same kernel inside L1 as
L2. On an aarch64 host with a usable /dev/kvm it runs vmm (the one meson built)
directly. Scenarios (--scenario):

  disk (the default): L2 gets 2 vCPUs, 512 MiB, mkguest's arm64 initramfs and an 8 MiB raw disk whose
  first bytes hold a token this test wrote. Checks: L1's KVM is in VHE mode (nested),
  the guest init's VMM-GUEST-READY, nproc = 2, --pmu's PMU counts cycles in the guest
  (tests/linux/cycles.c, perf_event_open), /dev/vda has the disk's size and reads
  back the token, 1 MiB the guest writes to /dev/vda (dd conv=fsync) is in the image
  after vmm exits (sha256 in the guest and of the image), and vmm's exit status is 0
  after the guest's poweroff -f.

  gicv2-devices: L1's machine has only a GICv2 (gic-version=2), so vmm falls back to it;
  L2 gets 2 vCPUs, --console virtio, --net tap=tap0 (L1 addresses the TAP), --net user
  with a port forward, --vsock and the default virtio-rng. Checks: the guest runs the GICv2
  driver, nproc = 2, its console is hvc0, /dev/hwrng is virtio_rng and gives bytes, it
  pings L1 over the TAP NIC, gets a DHCP lease on the user NIC, fetches 1 MiB from a server
  on L1's loopback through 10.0.2.2 and answers a connection through the forward, vsock
  both ways, and vmm's exit status is 0 after the guest's reboot -f.

  pci-its: --transport pci in the GICv3 L1, with the default --irqchip, which is then a GICv3
  with its ITS. L2 gets 2 vCPUs, the disk with the token, --console virtio, --net tap=tap0,
  --net user with a port forward and the default virtio-rng, all five on PCI. Checks: the
  GICv3 driver, the five virtio-pci devices, every virtio interrupt in /proc/interrupts an
  ITS-MSI (none on INTx) and the disk's and the NICs' counting, hvc0, virtio-rng's bytes, the
  disk's size, token and 1 MiB written (in the image after vmm exits), a ping to L1 over the
  TAP NIC, DHCP, 1 MiB and the forward over the user NIC, and vmm's status 0 after poweroff -f.
  pci-gicv2m: the same with --irqchip gicv2m in an L1 with only a GICv2: the GICv2 driver, its
  GICv2m frame serving SPIs 96..223 (read from the emulated MSI_TYPER), every virtio interrupt
  an MSI of that frame; and --irqchip gicv3-its there is a one-line refusal naming gicv2 and
  gicv2m (snapshot-pci-its and snapshot-pci-gicv2m save and restore such VMs). pci-intx:
  --irqchip gicv3 (no ITS, so no MSIs): each device's INTx line, a level-triggered GIC SPI
  through the host bridge's interrupt-map, in /proc/interrupts, and the same devices working.

  snapshot: L2 gets 2 vCPUs, 256 MiB, a disk and the default virtio-rng, and --api-socket.
  The guest writes "before" to its disk's first sector (synced), keeps the disk busy and
  counts in the background (T-COUNT=1, 2, ...); once it printed T-COUNT=5, L1 takes a
  snapshot over the control socket and stops vmm. Then the state file re-labelled as an
  x86_64 one must be refused with one line and status 1, and `vmm --restore` runs twice from
  the same snapshot. Checks: each restore counts on from the number after the snapshot's last
  (1..N in order, no restart), sees 2 vCPUs, reads "before" from the disk and bytes from
  virtio-rng, and every vmm exits 0. snapshot-gicv2: the same in an L1 whose machine has
  only a GICv2 (the GIC's other save and restore). snapshot-pci-its: the same with
  --transport pci (MSI-X through the ITS: its registers and tables, the LPIs' pending tables);
  snapshot-pci-gicv2m: with --transport pci --irqchip gicv2m in the GICv2 L1 (MSI-X routes
  through the GICv2m frame). After each restore both devices are on virtio-pci and every
  virtio interrupt is an MSI.

  raw-payload: guest-firmware/aarch64/raw_payload.c, built freestanding and flattened (no
  Image header), as --kernel with --cmdline-verbatim. Checks: it found a device tree at x0,
  its /chosen/bootargs is the command line exactly as given (spaces and "--" included), vmm
  warned that it ran a raw payload at RAM base + 0x80000, and exits 0 after the payload's
  PSCI SYSTEM_OFF.

Prints the time to L1 ready, from there to the guest's init marker, and the whole run.
Exit status: 0 pass, 1 fail, 77 skip (no qemu-system-aarch64 or no cross compiler,
or no apt-get for the guest images).
"""

import argparse
import functools
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from arm64_guest import (DISK_MIB, GUEST_NIC, NET_GUEST_ADDR, NET_HOST_ADDR,  # noqa: E402
                         PHASE_TIMEOUT, RNG_READ, TAP_MAC, USER_BYTES, USER_FWD_ACK,
                         USER_FWD_WORD, USER_MAC, WRITE_OFFSET_MIB, Failure, ask, check,
                         check_guest_disk, check_user_net, expect)
from arm64_pci import PCI_SCENARIOS, check_pci, l1_command_pci  # noqa: E402

SRC_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARCH = harness.ARCHES['aarch64']
CROSS_CC = 'aarch64-linux-gnu-gcc'
NAME = 'linux-arm64'  # the meson test's name; main() appends the scenario's suffix
# Scenarios: L1 command builder, L1 machine arguments (None: the harness's GICv3 virt machine)
# and whether the scenario writes a disk token.
GICV2_MACHINE = ['-M', 'virt,virtualization=on,gic-version=2', '-cpu', 'max,pauth=off',
                 '-accel', 'tcg']


def run_step(what, argv):
    """Runs a set-up command; its output goes to ours; raises Failure if it fails."""
    t = time.monotonic()
    print(f'{what}: {" ".join(shlex.quote(a) for a in argv)}', flush=True)
    try:
        res = subprocess.run(argv)
    except OSError as e:
        raise Failure(f'{what}: cannot run {argv[0]}: {e}')
    if res.returncode != 0:
        raise Failure(f'{what} failed (status {res.returncode}): see its messages above')
    print(f'{what}: done in {time.monotonic() - t:.1f} s', flush=True)


def l1_command(vmm, kernel, initrd, disk, token):
    """Shell text (in L1, or on this host in direct mode): make the disk with the token,
    run vmm, report the image's checksum where the guest wrote, end with vmm's status."""
    q = shlex.quote
    return '\n'.join([
        f'if ! (rm -f {q(disk)} && truncate -s {DISK_MIB}M {q(disk)} && '
        f'printf %s {q(token)} | dd of={q(disk)} conv=notrunc 2>/dev/null); then',
        '\techo "T-SETUP-FAILED: cannot make the disk image"; s=99',
        'else',
        f'\t{q(vmm)} --kernel {q(kernel)} --initrd {q(initrd)} --mem 512M --cpus 2 '
        f'--disk {q(disk)} --cmdline quiet --pmu',
        '\ts=$?',
        f'\techo "T-IMAGE-SHA=$(dd if={q(disk)} bs=1M skip={WRITE_OFFSET_MIB} count=1 '
        "2>/dev/null | sha256sum | cut -d' ' -f1)\"",
        'fi',
        '(exit $s)',
    ])


VSOCK_SOCK = '/tmp/vmm-vsock.sock'
VSOCK_H2G, VSOCK_G2H = 'vsock-h2g-arm64', 'vsock-g2h-arm64'  # the words each way


def l1_command_devices(vmm, kernel, initrd, disk, token, vsockcat):
    """Shell text for the devices scenario: vmm with a virtio console, a NIC on tap0 (its
    host side addressed as soon as vmm has made it), virtio-rng (on by default) and vsock:
    a word to the guest's listener on port 5000 through VSOCK_SOCK (retried until the guest
    listens), and one from the guest taken on VSOCK_SOCK_6000, printed once vmm exited."""
    del disk, token  # this scenario has no disk
    q = shlex.quote
    cat = q(vsockcat)
    return '\n'.join([
        f'({cat} -L {VSOCK_SOCK}_6000 </dev/null >/tmp/vs_g2h) &',
        # --net user: a file for the guest to fetch through 10.0.2.2 (L1's loopback), and a
        # connection through the forward, retried until the guest's listener answers.
        'ip link set lo up',
        f'head -c {USER_BYTES} /dev/urandom >/tmp/uh2g',
        'echo "T-UH2G-SENT=$(sha256sum </tmp/uh2g | cut -d\' \' -f1)"',
        '(nc -l -p 5003 </tmp/uh2g >/dev/null) &',
        f'(until (echo {USER_FWD_WORD}; sleep 3) | nc 127.0.0.1 6001 2>/dev/null | grep -q {USER_FWD_ACK}; do',
        '  sleep 0.5; done; echo ok >/tmp/fwd_ok) &',
        f'(until echo {VSOCK_H2G} | {cat} -U {VSOCK_SOCK} "CONNECT 5000" >/dev/null 2>&1; do',
        '  sleep 0.5; done) &',
        # No x86 test device or boot formats on arm64: --help offers none of them.
        f'echo "T-HELP-X86=$({q(vmm)} --help | grep -c -E \'bzImage|PVH|test-device|0xf4\')"',
        '(until ip link show tap0 >/dev/null 2>&1; do sleep 0.1; done',
        f' ip addr add {NET_HOST_ADDR}/24 dev tap0 && ip link set tap0 up) &',
        f'{q(vmm)} --kernel {q(kernel)} --initrd {q(initrd)} --mem 512M --cpus 2 '
        f'--console virtio --net tap=tap0,mac={TAP_MAC} '
        f'--net user,hostfwd=tcp:127.0.0.1:6001-:5001,mac={USER_MAC} '
        f'--vsock {VSOCK_SOCK} --cmdline quiet',
        # After vmm: a line printed while the guest talks could land inside one of its. The
        # forward's client ends only when its connection does (when vmm exits, if the guest
        # rebooted first): give it 10 s to write its file.
        's=$?; echo "T-VS-G2H=$(cat /tmp/vs_g2h)"',
        'i=0; while [ ! -s /tmp/fwd_ok ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done',
        'echo "T-FWD-OK=$(cat /tmp/fwd_ok)"',
        '(exit $s)',
    ])


SNAP_DIR, SNAP_API = '/tmp/vmm-snap', '/tmp/vmm-api.sock'
# The snapshot scenario's host side, in the background: once the first vmm printed T-COUNT=5,
# a snapshot (which leaves the guest paused) and a stop. Results go to a file printed at the
# end: printed while the guest talks, a line could land inside one of the guest's.
SNAP_HOST = r"""
rm -rf /tmp/host_results /tmp/vmm1.out @SNAP@ @SNAP@-x86
api() { echo "$1" | @CAT@ -U @API@; }
(
	until grep -q 'T-COUNT=5' /tmp/vmm1.out 2>/dev/null; do sleep 0.1; done
	echo "T-SNAP=$(api '{"op":"snapshot","dir":"@SNAP@"}')" >>/tmp/host_results
	echo "T-SNAP-STOP=$(api '{"op":"stop"}')" >>/tmp/host_results
) &
"""


def l1_command_snapshot(vmm, kernel, initrd, disk, vsockcat, snap, api, extra=''):
    """Shell text for the snapshot scenario: the first vmm (its console also into
    /tmp/vmm1.out, which SNAP_HOST watches) with @extra options, the re-labelled state file,
    two restores."""
    q = shlex.quote
    host = SNAP_HOST.replace('@SNAP@', snap).replace('@CAT@', q(vsockcat)).replace('@API@', api)
    x86 = snap + '-x86'
    return '\n'.join([
        host,
        f'rm -f {q(disk)} && truncate -s {DISK_MIB}M {q(disk)}',
        f'{{ {q(vmm)} --kernel {q(kernel)} --initrd {q(initrd)} --mem 256M --cpus 2 '
        f'--disk {q(disk)} --cmdline quiet --api-socket {api}{extra}; '
        'echo "T-FIRST-EXIT=$?" >>/tmp/host_results; } | tee /tmp/vmm1.out',
        # The architecture field (u32 at offset 12) made 62, x86_64's ELF machine.
        f'mkdir -p {x86} && cp {snap}/state {x86}/ && '
        f"printf '\\076' | dd of={x86}/state bs=1 seek=12 conv=notrunc 2>/dev/null",
        f'o=$({q(vmm)} --restore {x86} 2>&1); s=$?',
        'echo "T-XARCH=$s $(echo "$o" | wc -l) $o" >>/tmp/host_results',
        'printf "\\nT-RESTORING\\n"',
        f'{q(vmm)} --restore {snap}; echo "T-RESTORE1-EXIT=$?" >>/tmp/host_results',
        'printf "\\nT-RESTORING-AGAIN\\n"',
        f'{q(vmm)} --restore {snap}; s=$?',
        'echo T-HOST-RESULTS-BEGIN; cat /tmp/host_results; echo T-HOST-RESULTS-END',
        '(exit $s)',
    ])


def scenario(g, checks):
    """Drives one run, @checks(g) once the guest's init is ready; returns the timings
    (seconds) it measured."""
    t0 = time.monotonic()
    g.start(PHASE_TIMEOUT)
    t_l1 = time.monotonic()
    if g.mode == 'nested':
        m = re.search(r'VMM-L1-KVM: ([^\n]*)', g.output)
        kvm = m.group(1).strip() if m else ''
        print(f'L1 KVM: {kvm or "(no message)"}')
        check('VHE mode initialized' in kvm, f'L1 KVM is not in VHE mode: {kvm!r}')
    # An early exit of vmm shows as its status (nested) or the end of its output (direct).
    expect(g, 'VMM-GUEST-READY', "VMM-GUEST-READY from the guest's init")
    t_l2 = time.monotonic()
    print(f'L2 init marker {t_l2 - t_l1:.1f} s after L1 was ready', flush=True)

    checks(g)
    return {'l1': t_l1 - t0, 'l2': t_l2 - t_l1, 'run': time.monotonic() - t0}


def check_devices(g, want_gic):
    """The GIC driver @want_gic (GIC-0: GICv2, as L1 has no GICv3 to offer; None: any), both
    vCPUs, hvc0, virtio-rng, virtio-net to L1, and the guest's reboot ending vmm with 0."""
    gic = ask(g, 'echo "T-GIC=$(grep -o -m 1 -E \'GICv3|GIC-0\' /proc/interrupts)"', 'T-GIC',
              r'[A-Za-z0-9-]*')
    check(gic in ('GIC-0', 'GICv3') and gic == (want_gic or gic),
          f'the guest\'s interrupt controller is {gic!r}, expected {want_gic or "a GIC"} '
          '(GIC-0 is the GICv2 driver; L1 offers no GICv3)')
    m = re.search(r'T-HELP-X86=(\d+)\n', g.output)
    check(m and m.group(1) == '0', f'vmm --help on arm64 has {m and m.group(1)} lines naming '
          'x86-only things (bzImage, PVH, the test device, port 0xf4), expected 0')
    nproc = ask(g, 'echo "T-NPROC=$(nproc)"', 'T-NPROC', r'\d+')
    check(nproc == '2', f'nproc in the guest says {nproc}, vmm has --cpus 2')
    console = ask(g, 'echo "T-CONSOLE=$(head -n 1 /proc/consoles | cut -d\' \' -f1)"',
                  'T-CONSOLE', r'\S*')
    check(console == 'hvc0', f'the guest\'s console is {console!r}, expected hvc0 (--console '
          'virtio)')
    rng = ask(g, 'echo "T-RNG=$(cat /sys/class/misc/hw_random/rng_current) '
              '$(head -c 16 /dev/hwrng | od -An -tx1 | tr -d \' \\n\')"', 'T-RNG', r'[^\n$]*')
    check(re.fullmatch(r'virtio_rng\.\d+ [0-9a-f]{32}', rng) is not None,
          f'the guest\'s hardware RNG: {rng!r}, expected virtio_rng giving 16 bytes')
    ping = ask(g, f'{GUEST_NIC}; T=$(nic {TAP_MAC}); ip link set $T up && '
               f'ip addr add {NET_GUEST_ADDR}/24 dev $T && '
               f'ping -c 2 -W 5 {NET_HOST_ADDR} >/dev/null; echo "T-PING=$?"', 'T-PING', r'\d+')
    check(ping == '0', f'ping from the guest to L1 over virtio-net failed (status {ping})')
    check_user_net(g)
    out = ask(g, '(vsockcat -l 5000 </dev/null >/tmp/vs_in; echo $? >/tmp/vs_in.st) & '
              f'echo {VSOCK_G2H} | vsockcat 2 6000 >/dev/null; echo "T-VS-OUT=$?"', 'T-VS-OUT', r'\d+')
    check(out == '0', f'the guest\'s vsockcat to CID 2 port 6000 failed (status {out})')
    got = ask(g, 'while [ ! -s /tmp/vs_in.st ]; do sleep 0.2; done; '
              'echo "T-VS-IN=$(cat /tmp/vs_in.st) $(cat /tmp/vs_in)"', 'T-VS-IN', r'[^\n$]*')
    check(got == f'0 {VSOCK_H2G}', f'vsock host to guest: the guest listener says {got!r}, '
          f'expected "0 {VSOCK_H2G}"')
    g.send('reboot -f\n')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'vmm exit status {status} after the guest\'s reboot -f, expected 0')
    m = re.search(r'T-VS-G2H=([^\n]*)\n', g.output)
    check(m and m.group(1).strip() == VSOCK_G2H, f'vsock guest to host: L1 got '
          f'{m and m.group(1)!r}, expected {VSOCK_G2H!r}')
    m = re.search(r'T-FWD-OK=([^\n]*)\n', g.output)
    check(m and m.group(1).strip() == 'ok', f'the guest\'s answer through the forward: L1 got '
          f'{m and m.group(1)!r} (ok when it read {USER_FWD_ACK!r})')


# A count's line can land inside the echo of a command typed meanwhile ("dd if=T-COUNT=11/dev/
# vda"): a count is its digits up to the next character that is not one.
COUNT_RE = r'T-COUNT=(\d+)(?=\D)'


def counts(g):
    return [int(n) for n in re.findall(COUNT_RE, g.output)]


def check_restored(g, what, pci=False):
    """After a restore: three more counts, both vCPUs, the disk's "before", virtio-rng; with
    @pci, both devices on virtio-pci and every virtio interrupt an MSI."""
    for i in range(3):
        expect(g, COUNT_RE, f'count {i + 1} after {what}')
    nproc = ask(g, 'echo "T-NPROC=$(nproc)"', 'T-NPROC', r'\d+')
    check(nproc == '2', f'after {what} nproc in the guest says {nproc}, vmm has --cpus 2')
    # A process bound to CPU 1 runs there: the secondary vCPU is back, not only counted.
    cpu = ask(g, "taskset 2 sh -c 'echo T-CPU1=$(cut -d\" \" -f39 /proc/self/stat)'", 'T-CPU1',
              r'\d+')
    check(cpu == '1', f'after {what} a process bound to CPU 1 ran on CPU {cpu}')
    sector = ask(g, 'echo "T-DISK1=$(dd if=/dev/vda bs=6 count=1 2>/dev/null)"', 'T-DISK1',
                 r'[a-z]*')
    check(sector == 'before', f'after {what} sector 0 of the disk reads {sector!r}, expected '
          '"before" (written and synced before the snapshot)')
    rng = ask(g, RNG_READ.replace('@KEY@', 'T-RNG1'), 'T-RNG1', r'[a-z_.0-9]*/\d+')
    check(re.fullmatch(r'virtio_rng\.\d+/64', rng) is not None,
          f'after {what} the guest reads {rng!r} from /dev/hwrng, expected virtio_rng/64')
    if pci:
        got = ask(g, 'echo "T-PCI-MSI=$(ls /sys/bus/pci/drivers/virtio-pci | grep -c :)/'
                  '$(grep virtio /proc/interrupts | grep -c -v -w MSI)"', 'T-PCI-MSI', r'\d+/\d+')
        check(got == '2/0', f'after {what}: {got} (devices on virtio-pci/virtio interrupts that '
              'are not MSIs), expected 2/0')


def check_snapshot(g, want_gic, pci=False):
    """The snapshot scenario's guest side and its checks (see the module's docstring), in a
    guest whose GIC driver is @want_gic (GICv3, GIC-0 for a GICv2, None: any)."""
    gic = ask(g, 'echo "T-GIC=$(grep -o -m 1 -E \'GICv3|GIC-0\' /proc/interrupts)"', 'T-GIC',
              r'[A-Za-z0-9-]*')
    check(gic == (want_gic or gic), f'the guest\'s interrupt controller is {gic!r}, expected '
          f'{want_gic}')
    rng = ask(g, RNG_READ.replace('@KEY@', 'T-RNG0'), 'T-RNG0', r'[a-z_.0-9]*/\d+')
    check(re.fullmatch(r'virtio_rng\.\d+/64', rng) is not None,
          f'before the snapshot the guest reads {rng!r} from /dev/hwrng')
    disk0 = ask(g, 'printf before | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null; '
                'echo "T-DISK0=$?"', 'T-DISK0', r'\d+')
    check(disk0 == '0', 'the guest could not write sector 0 of its disk')
    # Writes further on keep the disk busy: requests are in flight when the snapshot comes.
    g.send('(while :; do dd if=/dev/zero of=/dev/vda bs=64k count=32 seek=1 conv=fsync '
           '2>/dev/null; done) &\n')
    g.send('(i=0; while :; do i=$((i+1)); echo T-COUNT=$i; sleep 0.3; done) &\n')
    expect(g, r'T-RESTORING\r?\n', 'the first vmm stopping after the snapshot')
    before = counts(g)
    check(before and before[-1] >= 5, f'counts before the snapshot: {before}')
    check_restored(g, 'the restore', pci)
    g.send('poweroff -f\n')
    expect(g, r'T-RESTORING-AGAIN\r?\n', 'the restored vmm stopping')
    first = counts(g)
    check_restored(g, 'the second restore', pci)
    g.send('poweroff -f\n')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'the second restored vmm exited with {status} after poweroff -f')
    check_snapshot_results(g, before, first)


def check_snapshot_results(g, before, first):
    m = re.search(r'T-HOST-RESULTS-BEGIN\r?\n(.*?)T-HOST-RESULTS-END', g.output, re.S)
    results = dict(line.strip().split('=', 1) for line in (m.group(1).splitlines() if m else [])
                   if '=' in line)
    for key in ('T-SNAP', 'T-SNAP-STOP'):
        check(results.get(key) == '{"ok":true}', f'{key}: {results.get(key)!r}, expected ok')
    for key in ('T-FIRST-EXIT', 'T-RESTORE1-EXIT'):
        check(results.get(key) == '0', f'{key}: vmm exited with {results.get(key)}, expected 0')
    xarch = results.get('T-XARCH', '')
    check(xarch.startswith('1 1 ') and 'a snapshot of an x86_64 guest; this vmm runs aarch64'
          in xarch, f'--restore of a state file labelled x86_64: {xarch!r}, expected status 1 '
          'and one line saying so')
    again = counts(g)[len(first):]
    for what, seq in (('the first restore', first), ('the second restore', before + again)):
        check(seq == list(range(1, len(seq) + 1)) and len(seq) >= len(before) + 3,
              f'the guest\'s counts across {what} are not 1..N in order (restarted, lost or '
              f'repeated?): {seq}')
    print(f'snapshot: counted to {len(before)} before, to {first[-1]} and {again[-1]} after '
          'each restore')


def check_disk(g, token):
    """Both vCPUs, their PMU (--pmu) counting cycles, the disk read and written, and the
    guest's poweroff ending vmm with 0."""
    nproc = ask(g, 'echo "T-NPROC=$(nproc)"', 'T-NPROC', r'\d+')
    check(nproc == '2', f'nproc in the guest says {nproc}, vmm has --cpus 2')
    g.send('cycles\n')
    cycles = g.expect(r'T-CYCLES=(\d+|error [^\n]*)\r?\n', PHASE_TIMEOUT, what='T-CYCLES').group(1)
    check(cycles.isdigit() and int(cycles) > 0,
          f'perf_event_open in the guest (--pmu) counted cycles: {cycles!r}, expected a count')
    wsha = check_guest_disk(g, token)
    g.send('poweroff -f\n')
    m = g.expect(r'T-IMAGE-SHA=([0-9a-f]{64})\n', PHASE_TIMEOUT,
                 what='the image checksum after vmm exited')
    check(m.group(1) == wsha, f'the image holds {m.group(1)} at {WRITE_OFFSET_MIB} MiB, '
          f'the guest wrote {wsha}')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'vmm exit status {status} after the guest\'s poweroff -f, expected 0')


# raw-payload: guest-firmware/aarch64/raw_payload.c, a file without the Image header, run with
# --cmdline-verbatim and a command line whose spaces and "--" must arrive as typed.
RAW_ARGS = 'alpha  beta -- gamma=1'


def raw_payload_file(tmp):
    """raw_payload.c built freestanding and flattened: the file vmm gets as --kernel."""
    src = os.path.join(SRC_ROOT, 'guest-firmware', 'aarch64')
    elf, flat = os.path.join(tmp, 'raw.elf'), os.path.join(tmp, 'raw.bin')
    run_step('raw payload', [CROSS_CC, '-ffreestanding', '-nostdlib', '-nostartfiles', '-static',
                             '-O2', '-mgeneral-regs-only', '-fno-pic', '-fno-pie', '-no-pie',
                             '-fno-stack-protector', '-fno-asynchronous-unwind-tables',
                             '-Wno-main', '-T', os.path.join(src, 'raw_payload.ld'),
                             '-Wl,--build-id=none', '-o', elf,
                             os.path.join(src, 'raw_payload.c')])
    run_step('raw payload', [CROSS_CC.replace('-gcc', '-objcopy'), '-O', 'binary', elf, flat])
    return flat


def raw_payload_command(vmm, payload, nested):
    """In L1 (a GICv3 machine), first --irqchip gicv2, whose outcome T-GICV2 reports: vmm's
    error, or the payload's RAW-GIC line; then the payload with --irqchip gicv3 (directly on
    an arm64 host, whatever GIC the host has)."""
    run = f'{vmm} --kernel {payload} --mem 256M --cmdline-verbatim --cmdline {shlex.quote(RAW_ARGS)}'
    if not nested:
        return run
    return '\n'.join([
        f'out=$({run} --irqchip gicv2 </dev/null 2>&1); s=$?',
        'echo "T-GICV2=$s $(echo "$out" | grep -m1 -E \'RAW-GIC=|--irqchip\')"',
        f'{run} --irqchip gicv3',
    ])


def raw_payload(g, nested):
    """The payload's report of its x0 device tree, its GIC and /chosen/bootargs, vmm's warning
    that it ran a raw payload, and status 0 after the payload's PSCI SYSTEM_OFF; nested, what
    --irqchip gicv2 gave in a GICv3 L1: vmm's one-line refusal, or a GICv2 for the payload."""
    t0 = time.monotonic()
    g.start(PHASE_TIMEOUT)
    t_l1 = time.monotonic()
    if nested:
        v2 = expect(g, r'T-GICV2=(?P<v2>[^\n]*)\n', 'T-GICV2').group('v2').strip()
        check(v2.startswith('1 vmm: --irqchip gicv2: this host\'s KVM cannot emulate a GICv2') or
              v2 == '0 RAW-GIC=arm,cortex-a15-gic',
              f'--irqchip gicv2 in a GICv3 L1 gave {v2!r}: expected vmm\'s refusal with status 1, '
              'or the payload seeing a GICv2')
    m = expect(g, r'RAW-DTB=ok|RAW-ERROR=(?P<error>[^\n]*)', 'the payload\'s RAW-DTB line')
    check(not m.group('error'), f'the raw payload found: {m.group("error")}')
    gic = expect(g, r'RAW-GIC=(?P<gic>[^\n]*)\n', 'RAW-GIC').group('gic').strip()
    check(not nested or gic == 'arm,gic-v3', f'with --irqchip gicv3 the payload sees {gic!r}')
    args = expect(g, r'RAW-ARGS=\[(?P<args>[^\]\n]*)\]', 'RAW-ARGS').group('args')
    check(args == RAW_ARGS, f'/chosen/bootargs is {args!r}; --cmdline-verbatim gave {RAW_ARGS!r}')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'vmm exit status {status} after the payload\'s SYSTEM_OFF, expected 0')
    check('no arm64 Image header: run as a raw payload at 0x80080000' in g.output,
          'vmm did not say that it ran the file as a raw payload at 0x80080000')
    t_l2 = time.monotonic()
    return {'l1': t_l1 - t0, 'l2': t_l2 - t_l1, 'run': t_l2 - t0}


def guest_tool(tmp, name):
    """tests/linux/NAME.c built for aarch64 (static: the guest has no libc); its path."""
    tool = os.path.join(tmp, name)
    cc = CROSS_CC if shutil.which(CROSS_CC) else 'cc'
    run_step(name, [cc, '-static', '-O2', '-o', tool,
                    os.path.join(SRC_ROOT, 'tests', 'linux', name + '.c')])
    return tool


def vsock_tool(tmp):
    """The tests' vsockcat, for L1 and the guest."""
    return guest_tool(tmp, 'vsockcat')


def vsock_files(tmp, guest_dir):
    """vsock_tool(), and mkguest's arm64 initramfs with it as /bin/vsockcat. Returns their
    paths."""
    tool = vsock_tool(tmp)
    initrd = harness.initrd_with(os.path.join(guest_dir, 'initramfs.cpio.gz'),
                                 [('bin/vsockcat', tool)],
                                 os.path.join(tmp, 'initramfs-vsock.cpio'), tmp)
    return tool, initrd


def run_once(args, mode, vmm):
    log = os.path.join(args.build_dir, 'meson-logs', f'{NAME}-console.log')
    token = 'vmm-arm64-' + secrets.token_hex(11)
    with tempfile.TemporaryDirectory(prefix='vmm-linux-arm64-') as tmp:
        if mode == 'nested':
            paths = (harness.Guest.L1_VMM, '/guest/' + ARCH.kernel, harness.Guest.L1_INITRD,
                     '/tmp/disk.img')
        else:
            gdir = os.path.join(args.build_dir, ARCH.guest_subdir)
            paths = (vmm, os.path.join(gdir, ARCH.kernel),
                     os.path.join(gdir, 'initramfs.cpio.gz'), os.path.join(tmp, 'disk.img'))
        devices = args.scenario == 'gicv2-devices'
        initrd, files = None, []
        run = scenario
        if args.scenario == 'raw-payload':
            flat = raw_payload_file(tmp)
            payload = '/tmp/raw.bin' if mode == 'nested' else flat
            files.append((payload, flat))
            command = raw_payload_command(shlex.quote(paths[0]), payload, mode == 'nested')
            run, checks = (lambda g, _: raw_payload(g, mode == 'nested')), None
        elif args.scenario.startswith('snapshot'):
            tool = vsock_tool(tmp)
            vsockcat = '/usr/local/bin/vsockcat' if mode == 'nested' else tool
            files.append((vsockcat, tool))
            state = ((SNAP_DIR, SNAP_API) if mode == 'nested' else
                     (os.path.join(tmp, 'snap'), os.path.join(tmp, 'api.sock')))
            pci = args.scenario.startswith('snapshot-pci')
            extra = {'snapshot-pci-its': ' --transport pci',
                     'snapshot-pci-gicv2m': ' --transport pci --irqchip gicv2m'}
            command = l1_command_snapshot(*paths, vsockcat, *state,
                                          extra.get(args.scenario, ''))
            want = 'GICv3' if args.scenario in ('snapshot', 'snapshot-pci-its') else 'GIC-0'
            checks = functools.partial(check_snapshot, want_gic=want if mode == 'nested' else None,
                                       pci=pci)
        elif args.scenario in PCI_SCENARIOS:
            irqchip, want_gic, chip_re, refused = PCI_SCENARIOS[args.scenario]
            nested = mode == 'nested'
            command = l1_command_pci(*paths, token, irqchip, refused[0] if nested and refused
                                     else None)
            # Directly on an arm64 host, the guest has whatever GIC the host has.
            checks = functools.partial(check_pci, token=token,
                                       want_gic=want_gic if nested else None, chip_re=chip_re,
                                       refused=refused if nested else None)
        elif devices:
            token = None
            tool, initrd = vsock_files(tmp, os.path.join(args.build_dir, ARCH.guest_subdir))
            vsockcat = '/usr/local/bin/vsockcat' if mode == 'nested' else tool
            files.append((vsockcat, tool))
            if mode == 'direct':
                paths = paths[:2] + (initrd,) + paths[3:]
            command = l1_command_devices(*paths, token, vsockcat)
            # Directly on an arm64 host, the guest has whatever GIC the host has.
            checks = functools.partial(check_devices,
                                       want_gic='GIC-0' if mode == 'nested' else None)
        else:
            # mkguest's initramfs with the PMU check as /bin/cycles
            initrd = harness.initrd_with(
                os.path.join(args.build_dir, ARCH.guest_subdir, 'initramfs.cpio.gz'),
                [('bin/cycles', guest_tool(tmp, 'cycles'))], os.path.join(tmp, 'initramfs-pmu.cpio'),
                tmp)
            if mode == 'direct':
                paths = paths[:2] + (initrd,) + paths[3:]
            command = l1_command(*paths, token)
            checks = functools.partial(check_disk, token=token)
        # Directly on an arm64 host, the host's GIC is what it is.
        gicv2 = devices or args.scenario in ('snapshot-gicv2', 'snapshot-pci-gicv2m', 'pci-gicv2m')
        machine = GICV2_MACHINE if gicv2 and mode == 'nested' else None
        g = harness.Guest(args.build_dir, vmm, arch=ARCH.name, mode=mode, log_path=log,
                          command=command, l1_machine=machine, initrd=initrd,
                          files=[f for f in files if mode == 'nested'])
        try:
            with g:
                t = run(g, checks)
        except harness.L1Lockup:
            # Retried by the caller; the console's end shows what L1 did last.
            print(f'--- last lines of the console before the L1 failure in {NAME} ---')
            print(g.tail(20))
            print('---')
            raise
        except (Failure, harness.GuestError, harness.HarnessError) as e:
            print(f'FAIL {NAME}: {e}')
            print(f'--- last lines of the console ({mode} mode; full log {log}) ---')
            print(g.tail(60))
            print('---')
            raise
    l1 = f'L1 ready after {t["l1"]:.1f} s, ' if mode == 'nested' else ''
    print(f'PASS {NAME}: {l1}L2 init marker after {t["l2"]:.1f} s more, whole run '
          f'{t["run"]:.1f} s ({mode} mode)')


def main():
    # Turn SIGTERM (e.g. meson's timeout) into an exit that kills vmm/QEMU.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit('SIGTERM'))
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--build-dir', required=True)
    ap.add_argument('--vmm', help='the vmm meson built: used when it is an aarch64 binary '
                    '(an aarch64 host); otherwise scripts/build-aarch64 BUILD_DIR/aarch64 '
                    'makes one')
    ap.add_argument('--scenario', default='disk',
                    choices=('disk', 'gicv2-devices', 'pci-its', 'pci-gicv2m', 'pci-intx',
                             'snapshot', 'snapshot-gicv2', 'snapshot-pci-its',
                             'snapshot-pci-gicv2m', 'raw-payload'),
                    help='disk: GICv3, initramfs, a disk, 2 vCPUs, poweroff (default); '
                    'gicv2-devices: L1 with only a GICv2, virtio console, net and rng, reboot; '
                    'pci-its: every device on PCI, MSI-X through the GICv3 ITS; '
                    'pci-gicv2m: the same through a GICv2m frame in an L1 with only a GICv2; '
                    'pci-intx: the same with --irqchip gicv3, no ITS: INTx; '
                    'snapshot: a counting guest snapshotted over --api-socket, restored twice; '
                    'snapshot-gicv2: the same in an L1 with only a GICv2; '
                    'snapshot-pci-its: the same with the devices on PCI, MSI-X through the '
                    'ITS; snapshot-pci-gicv2m: the same through a GICv2m frame in the GICv2 L1; '
                    'raw-payload: a freestanding program without the Image header, '
                    '--cmdline-verbatim')
    args = ap.parse_args()
    global NAME
    if args.scenario != 'disk':
        NAME += '-' + args.scenario
    args.build_dir = os.path.abspath(args.build_dir)
    t0 = time.monotonic()

    native = args.vmm and harness.elf_arch(args.vmm) == ARCH.name
    try:
        mode, reason = harness.detect_mode(ARCH.name)
    except harness.HarnessError as e:
        print(f'FAIL: {e}')
        return 1
    print(f'mode: {mode} ({reason})')
    if mode == 'nested' and not shutil.which(ARCH.qemu):
        print(f'SKIP: nested mode needs {ARCH.qemu} (Debian package qemu-system-arm; '
              'scripts/deps installs it)')
        return 77
    if not native and not shutil.which(CROSS_CC):
        print(f'SKIP: the aarch64 build needs {CROSS_CC} (Debian package gcc-aarch64-linux-gnu; '
              'scripts/deps installs it)')
        return 77
    if not shutil.which('apt-get'):
        print('SKIP: the guest images come from Debian packages and this host has no apt-get')
        return 77

    try:
        if native:
            vmm = os.path.abspath(args.vmm)
        else:
            out = os.path.join(args.build_dir, 'aarch64')
            run_step('build', [os.path.join(SRC_ROOT, 'scripts', 'build-aarch64'), out])
            vmm = os.path.join(out, 'vmm')
            check(harness.elf_arch(vmm) == ARCH.name,
                  f'scripts/build-aarch64 left no aarch64 executable at {vmm}')
        run_step('guest', [os.path.join(SRC_ROOT, 'scripts', 'mkguest'), args.build_dir,
                           ARCH.debian])
    except Failure as e:
        print(f'FAIL {NAME}: {e}')
        return 1

    try:
        if not harness.run_attempts(NAME, lambda: run_once(args, mode, vmm)):
            return 1
    except (Failure, harness.GuestError, harness.HarnessError):
        return 1
    print(f'{NAME}: {time.monotonic() - t0:.1f} s in all (build and guest images included)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
