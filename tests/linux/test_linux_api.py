#!/usr/bin/env python3
"""Linux integration test of --api-socket: pause, stats, a bad request, resume and stop.

The guest counts (T-COUNT=1, 2, ...) in the background and tells the host over vsock that it
started. The host side (L1, or this host in direct mode) then, with vsockcat on the control
socket, one connection per request: pauses, takes stats twice 2 s apart (state paused, the
exit count unchanged: no vCPU ran), sends a line that is not JSON (an error reply), resumes,
waits for the guest's second word over vsock, takes stats again (running, more exits) and
stops the VM. Checks: every reply, the guest's counting going on after the resume (three new
numbers) without a restart or a gap (1..N in order), and vmm's exit status 0 (the stop is a
power-off). Runs like test_linux_boot.py (same harness, modes and retries):

  test_linux_api.py --vmm VMM --build-dir BUILD_DIR [--scenario api]
"""

import json
import os
import re
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_linux_boot as boot  # noqa: E402
from test_linux_boot import PHASE_TIMEOUT, check  # noqa: E402

# The host side, in the background: waits for the guest's word on vsock port 7000, then
# drives the control socket. Lines printed while the guest is paused cannot land inside one
# of its lines; the rest go to the results file printed after vmm exits.
API_HOST = r"""
API=@API@ CAT=@CAT@ VS=@VSOCK@
rm -f /tmp/host_results
api() { echo "$1" | $CAT -U $API; }
(
	$CAT -L ${VS}_7000 </dev/null >/dev/null
	printf '\nT-API-PAUSE=%s\n' "$(api '{"op":"pause"}')"
	printf '\nT-API-STATS1=%s\n' "$(api '{"op":"stats"}')"
	sleep 2
	printf '\nT-API-STATS2=%s\n' "$(api '{"op":"stats"}')"
	printf '\nT-API-BAD=%s\n' "$(api 'pause please')"
	printf '\nT-API-RESUMING\n'
	echo "T-API-RESUME=$(api '{"op":"resume"}')" >>/tmp/host_results
	$CAT -L ${VS}_7001 </dev/null >/dev/null
	echo "T-API-STATS3=$(api '{"op":"stats"}')" >>/tmp/host_results
	echo "T-API-STOP=$(api '{"op":"stop"}')" >>/tmp/host_results
) &
"""

# A count as the console shows it. The tty writes each line's text in one piece but its newline
# apart (ONLCR), and the echo of a command typed meanwhile can land in between: so a count
# ends at the first non-digit, not at a newline.
COUNT_RE = r'T-COUNT=(\d+)(?=\D)'
COUNT_LOOP = ('(i=0; while :; do i=$((i+1)); echo T-COUNT=$i; sleep 0.3; done) & '
              'vsockcat 2 7000 </dev/null; echo T-SIGNALED=$?')


def setup_api(run):
    initrd, tool = boot.vsock_initrd(run)
    nested = run.mode == 'nested'
    api = '/tmp/vmm-api.sock' if nested else os.path.join(run.tmp, 'api.sock')
    sock = '/tmp/vmm-vsock.sock' if nested else os.path.join(run.tmp, 'v.sock')
    host = (API_HOST.replace('@API@', api).replace('@CAT@', tool).replace('@VSOCK@', sock))
    command = (f'{host}\n{run.vmm_prefix(initrd)} --cmdline quiet --mem 256M --vsock {sock} '
               f'--api-socket {api}{boot.HOST_RESULTS}')
    return dict(command=command, files=run.files), None


def reply(text, what):
    try:
        value = json.loads(text)
    except ValueError:
        raise boot.Failure(f'{what}: the reply {text!r} is not JSON')
    check(isinstance(value, dict) and 'ok' in value, f'{what}: the reply {text!r} has no "ok"')
    return value


def stats(g, key):
    text = g.expect(rf'{key}=(.*)\n', PHASE_TIMEOUT, what=key).group(1).strip()
    s = reply(text, key)
    check(s['ok'] is True and isinstance(s.get('exits', {}).get('total'), int),
          f'{key}: {text}, expected ok and exits.total')
    return s


def scenario_api(g, run, _):
    g.start(PHASE_TIMEOUT)
    g.expect(r'VMM-GUEST-READY', PHASE_TIMEOUT, what='VMM-GUEST-READY from the guest init')
    g.send(COUNT_LOOP + '\n')
    pause = reply(g.expect(r'T-API-PAUSE=(.*)\n', PHASE_TIMEOUT, what='the pause reply').group(1),
                  'pause')
    check(pause == {'ok': True}, f'pause: {pause}, expected {{"ok": true}}')
    s1, s2 = stats(g, 'T-API-STATS1'), stats(g, 'T-API-STATS2')
    check(s1['state'] == s2['state'] == 'paused', f'state while paused: {s1["state"]}, '
                                                  f'{s2["state"]}')
    check(s1['exits']['total'] == s2['exits']['total'] > 0,
          f'exits while paused moved from {s1["exits"]["total"]} to {s2["exits"]["total"]} in 2 s')
    check(s1['vcpus'] == 1 and s1['guest_ram_bytes'] == 256 << 20,
          f'stats: {s1["vcpus"]} vCPUs, {s1["guest_ram_bytes"]} bytes of guest RAM; vmm has '
          '--mem 256M and one vCPU')
    check(0 < s1['guest_ram_resident_bytes'] <= s1['guest_ram_bytes'] and
          0 < s1['rss_beyond_guest_ram_bytes'] < s1['rss_bytes'],
          f'stats: memory figures out of range: {s1}')
    bad = reply(g.expect(r'T-API-BAD=(.*)\n', PHASE_TIMEOUT, what='the bad request\'s reply')
                .group(1), 'a line that is not JSON')
    check(bad.get('ok') is False and 'not JSON' in bad.get('error', ''),
          f'a line that is not JSON: {bad}, expected ok false and "not JSON"')
    g.expect(r'T-API-RESUMING', PHASE_TIMEOUT, what='T-API-RESUMING')
    for i in range(3):
        g.expect(COUNT_RE, PHASE_TIMEOUT, what=f'count {i + 1} after the resume')
    g.send('vsockcat 2 7001 </dev/null; echo T-SIGNALED2=$?\n')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'vmm exit status {status} after {{"op":"stop"}}, expected 0 (a power-off)')
    results = boot.host_results(g.output)
    for key, want in (('T-API-RESUME', {'ok': True}), ('T-API-STOP', {'ok': True})):
        got = reply(results.get(key, ''), key)
        check(got == want, f'{key}: {got}, expected {want}')
    s3 = reply(results.get('T-API-STATS3', ''), 'stats after resume')
    check(s3.get('state') == 'running' and s3['exits']['total'] > s2['exits']['total'],
          f'stats after resume: {s3}; expected running, with more exits than '
          f'{s2["exits"]["total"]}')
    counts = [int(n) for n in re.findall(COUNT_RE, g.output)]
    check(counts == list(range(1, len(counts) + 1)),
          f'the guest\'s counts are not 1..N in order (a restart or a lost line?): {counts}')


# linux-snapshot's host side: once the first vmm (2 vCPUs, virtio-rng, a virtio-blk disk, a
# --net user NIC and a TAP NIC with 2 queue pairs on PCI with MSI-X) printed T-COUNT=5, a snapshot (which leaves the guest
# paused) and a stop; then `vmm --restore` of that snapshot on the same console, twice: the
# snapshot stays as it was for the second. The disk image is the user's: both restores use it
# as it is. One listener per phase on the host's loopback serves the guest a file through
# 10.0.2.2.
SNAP_HOST = r"""
API=@API@ CAT=@CAT@ SNAP=@SNAP@
rm -rf /tmp/host_results /tmp/vmm1.out $SNAP
truncate -s 8M /tmp/snap-disk.img
ip link set lo up
head -c @NETBYTES@ /dev/urandom >/tmp/snap-net
echo "T-NET-SENT=$(sha256sum /tmp/snap-net | cut -d' ' -f1)"
for port in 5021 5022 5023; do (nc -l -p $port </tmp/snap-net >/dev/null) & done
(sleep 900 | $CAT -L @VSOCK@_7100 >/dev/null) &
for port in 7101 7102; do ($CAT -L @VSOCK@_$port </dev/null >/dev/null) & done
api() { echo "$1" | $CAT -U $API; }
(
	until grep -q 'T-COUNT=5' /tmp/vmm1.out 2>/dev/null; do sleep 0.1; done
	echo "T-SNAP=$(api '{"op":"snapshot","dir":"'$SNAP'"}')" >>/tmp/host_results
	echo "T-SNAP-RAM=$(stat -c %s $SNAP/ram) $(du -k $SNAP/ram | cut -f1)" >>/tmp/host_results
	echo "T-SNAP-STOP=$(api '{"op":"stop"}')" >>/tmp/host_results
) &
"""


# The guest's hardware RNG source and 64 bytes read from it ("virtio_rng.0/64").
RNG_READ = ('echo "@KEY@=$(cat /sys/class/misc/hw_random/rng_current)/'
            '$(head -c 64 /dev/hwrng | wc -c)"')


# Sector 0 of the guest's disk: "before", synced; then writes past the first 64 KiB in a loop;
# and sector 0 read back.
DISK_WRITE = ('printf before | dd of=/dev/vda bs=512 conv=sync,fsync 2>/dev/null; '
              'echo "T-DISK0=$?"')
DISK_LOAD = ('(while :; do dd if=/dev/zero of=/dev/vda bs=64k count=32 seek=1 conv=fsync '
             '2>/dev/null; done) &')
DISK_READ = 'echo "T-DISK1=$(dd if=/dev/vda bs=6 count=1 2>/dev/null)"'
SNAP_NET_BYTES = 256 << 10
# The file from the host's listener on @PORT@, then T-NET@PORT@=its sha256.
NET_FETCH = ('(nc 10.0.2.2 @PORT@ </dev/null >/tmp/net@PORT@) & '
             f'while [ "$(stat -c %s /tmp/net@PORT@ 2>/dev/null)" != {SNAP_NET_BYTES} ]; '
             'do sleep 0.2; done; echo "T-NET@PORT@=$(sha256sum /tmp/net@PORT@ | cut -d\' \' -f1)"')


# linux-snapshot's second NIC: tap0 with 2 queue pairs (vmm creates it, and each restored vmm
# again). The host gives every tap0 it sees the same MAC and 10.0.3.1/24, and serves the same
# file on two ports per phase; the guest fetches both at once from vCPU 0 and vCPU 1, so each
# queue pair carries one (XPS; the TAP steers a flow back to the queue it came from).
SNAP_TAP_MAC = '52:54:00:00:00:77'
SNAP_TAP_HOST = r"""
for port in 6021 6022 6023 6024 6025 6026; do (nc -l -p $port </tmp/snap-net >/dev/null) & done
echo "T-TAP-SENT=$(cat /tmp/snap-net /tmp/snap-net | sha256sum | cut -d' ' -f1)"
(while :; do
	if ip link show tap0 >/dev/null 2>&1 && ! ip -o addr show dev tap0 | grep -q 10.0.3.1; then
		ip link set tap0 address 02:00:00:00:03:01
		ip addr add 10.0.3.1/24 dev tap0 && ip link set tap0 up
	fi
	sleep 0.2
done) &
"""
SNAP_TAP_UP = (f'for d in /sys/class/net/*; do [ "$(cat $d/address)" = {SNAP_TAP_MAC} ] && '
               'T=${d##*/}; done; ip addr add 10.0.3.15/24 dev $T && ip link set $T up; '
               'echo T-TAPUP=$?')
# Once the host's tap0 answers a ping (after a restore the host configures the new one), both
# files at once, from vCPU 0 and vCPU 1, then their sha256 together and the interrupts of the
# NIC's second receive queue. The clients' input stays open: busybox nc as the host's server
# stops sending once its peer half-closes.
SNAP_TAP_FETCH = (
    'until ping -c 1 -W 1 10.0.3.1 >/dev/null 2>&1; do sleep 0.3; done; '
    'for p in @P0@ @P1@; do (sleep 30 | taskset $(( p % 2 ? 1 : 2 )) nc 10.0.3.1 $p '
    '>/tmp/tap$p) & done; for p in @P0@ @P1@; do '
    f'while [ "$(stat -c %s /tmp/tap$p 2>/dev/null)" != {SNAP_NET_BYTES} ]; do sleep 0.2; done; '
    'done; echo "T-TAP@P0@=$(cat /tmp/tap@P0@ /tmp/tap@P1@ | sha256sum | cut -d\' \' -f1)"; '
    'V=$(basename "$(readlink /sys/class/net/$T/device)"); '
    'echo "T-IRQ@P0@=$(grep "$V-input.1" /proc/interrupts | '
    'awk \'{s = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; print s}\')"')


def snapshot_tap_fetch(g, ports, sent, when):
    """Both files through the TAP NIC; returns the interrupts of its receive queue 1."""
    line = SNAP_TAP_FETCH.replace('@P0@', str(ports[0])).replace('@P1@', str(ports[1]))
    g.send(line + '\n')
    got = g.expect(rf'T-TAP{ports[0]}=([0-9a-f]{{64}})\r?\n', PHASE_TIMEOUT,
                   what=f'the two files from 10.0.3.1 {when}').group(1)
    check(got == sent, f'{when} the guest fetched files with sha256 {got} through the TAP NIC, '
          f'the host sent {sent}')
    return int(g.expect(rf'T-IRQ{ports[0]}=(\d+)\r?\n', PHASE_TIMEOUT,
                        what='the interrupts of receive queue 1').group(1))


def setup_snapshot(run, machine='--cpus 2 --disk /tmp/snap-disk.img --net user '
                   f'--net tap=tap0,mac={SNAP_TAP_MAC},queues=2'):
    initrd, tool = boot.vsock_initrd(run)
    nested = run.mode == 'nested'
    api = '/tmp/vmm-api.sock' if nested else os.path.join(run.tmp, 'api.sock')
    snap = '/tmp/vmm-snap' if nested else os.path.join(run.tmp, 'snap')
    sock = '/tmp/vmm-vsock.sock' if nested else os.path.join(run.tmp, 'v.sock')
    machine = machine.replace('@VSOCK@', sock)
    host = (SNAP_HOST.replace('@API@', api).replace('@CAT@', tool).replace('@SNAP@', snap)
            .replace('@NETBYTES@', str(SNAP_NET_BYTES)).replace('@VSOCK@', sock))
    if 'tap=' in machine:
        host += SNAP_TAP_HOST
    vmm = run.vmm_prefix(initrd).split(' --kernel')[0]
    command = (f'{host}\n{{ {run.vmm_prefix(initrd)} --cmdline quiet --mem 256M {machine} '
               f'--api-socket {api}; echo "T-FIRST-EXIT=$?" >>/tmp/host_results; }} | '
               f'tee /tmp/vmm1.out\nprintf "\\nT-RESTORING\\n"\n'
               f'{vmm} --restore {snap}; echo "T-RESTORE1-EXIT=$?" >>/tmp/host_results\n'
               f'printf "\\nT-RESTORING-AGAIN\\n"\n'
               f'{vmm} --restore {snap} --api-socket {api}{boot.HOST_RESULTS}')
    if run.mode == 'direct':  # 10.0.2.2 is the loopback of a network namespace of its own
        command = f'unshare -rn sh -c {shlex.quote(command)}'
    return dict(command=command, files=run.files), None


def snapshot_fetch(g, port, sent, when):
    """The guest fetches the host's file from its listener on @port through --net user."""
    g.send(NET_FETCH.replace('@PORT@', str(port)) + '\n')
    got = g.expect(rf'T-NET{port}=([0-9a-f]{{64}})\r?\n', PHASE_TIMEOUT,
                   what=f'T-NET{port} (the file from 10.0.2.2 {when})').group(1)
    check(got == sent, f'{when} the guest fetched a file with sha256 {got} from 10.0.2.2, '
          f'the host sent {sent}')


def scenario_snapshot(g, run, _):
    g.start(PHASE_TIMEOUT)
    sent = g.expect(r'T-NET-SENT=([0-9a-f]{64})\r?\n', PHASE_TIMEOUT,
                    what='the host file checksum').group(1)
    tap_sent = g.expect(r'T-TAP-SENT=([0-9a-f]{64})\r?\n', PHASE_TIMEOUT,
                        what='the TAP files\' checksum').group(1)
    g.expect(r'VMM-GUEST-READY', PHASE_TIMEOUT, what='VMM-GUEST-READY from the guest init')
    g.send(boot.harness.guest_dhcp('eth0') + '\n')
    check(g.expect(r'T-DHCP=(\d+)\r?\n', PHASE_TIMEOUT, what='T-DHCP').group(1) == '0',
          'udhcpc got no lease on eth0 (--net user)')
    snapshot_fetch(g, 5021, sent, 'before the snapshot')
    g.send(SNAP_TAP_UP + '\n')
    check(g.expect(r'T-TAPUP=(\d+)\r?\n', PHASE_TIMEOUT, what='T-TAPUP').group(1) == '0',
          'the guest could not configure its TAP NIC')
    irq = [snapshot_tap_fetch(g, (6021, 6022), tap_sent, 'before the snapshot')]
    check(irq[0] > 0, 'receive queue 1 of the TAP NIC had no interrupt before the snapshot')
    g.send(RNG_READ.replace('@KEY@', 'T-RNG0') + '\n')
    rng = g.expect(r'T-RNG0=([a-z_.0-9]*/\d+)\r?\n', PHASE_TIMEOUT, what='T-RNG0').group(1)
    check(rng == 'virtio_rng.0/64', f'before the snapshot the guest reads {rng!r} from '
          '/dev/hwrng, expected virtio_rng.0/64')
    # Sector 0 written and synced; then writes further on keep the disk busy, so requests are
    # in flight when the snapshot comes (it waits for them).
    g.send(DISK_WRITE + '\n')
    check(g.expect(r'T-DISK0=(\d+)\r?\n', PHASE_TIMEOUT, what='T-DISK0').group(1) == '0',
          'the guest could not write sector 0 of its disk')
    g.send(DISK_LOAD + '\n')
    g.send('(i=0; while :; do i=$((i+1)); echo T-COUNT=$i; sleep 0.3; done) &\n')
    g.expect(r'T-RESTORING\r?\n', PHASE_TIMEOUT, what='the first vmm stopping after the snapshot')
    before = [int(n) for n in re.findall(COUNT_RE, g.output)]
    check(before and before[-1] >= 5, f'counts before the snapshot: {before}')
    for i in range(3):
        g.expect(COUNT_RE, PHASE_TIMEOUT, what=f'count {i + 1} after the restore')
    g.send(DISK_READ + '\n')
    sector = g.expect(r'T-DISK1=([a-z]*)\r?\n', PHASE_TIMEOUT, what='T-DISK1').group(1)
    check(sector == 'before', f'after the restore sector 0 of the disk reads {sector!r}, '
          'expected "before" (written and synced before the snapshot)')
    snapshot_fetch(g, 5022, sent, 'after the restore')
    irq.append(snapshot_tap_fetch(g, (6023, 6024), tap_sent, 'after the restore'))
    g.send(RNG_READ.replace('@KEY@', 'T-RNG1') + '\n')
    rng = g.expect(r'T-RNG1=([a-z_.0-9]*/\d+)\r?\n', PHASE_TIMEOUT, what='T-RNG1').group(1)
    check(rng == 'virtio_rng.0/64', f'after the restore the guest reads {rng!r} from /dev/hwrng '
          '(its source and byte count), expected virtio_rng.0/64: the restored virtio-rng')
    g.send('poweroff -f\n')
    g.expect(r'T-RESTORING-AGAIN\r?\n', PHASE_TIMEOUT, what='the restored vmm stopping')
    first = [int(n) for n in re.findall(COUNT_RE, g.output)]
    for i in range(3):
        g.expect(COUNT_RE, PHASE_TIMEOUT, what=f'count {i + 1} after restore 2')
    snapshot_fetch(g, 5023, sent, 'after the second restore')
    irq.append(snapshot_tap_fetch(g, (6025, 6026), tap_sent, 'after the second restore'))
    # The restored devices used both pairs: queue 1 received again after each restore.
    check(irq[1] > irq[0] and irq[2] > irq[0], f'interrupts of the TAP NIC\'s receive queue 1 '
          f'before the snapshot and after each restore: {irq} (no traffic on pair 1 after a '
          'restore)')
    g.send('poweroff -f\n')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'the second restored vmm exit status {status} after poweroff -f, '
          'expected 0')
    results = boot.host_results(g.output)
    for key in ('T-SNAP', 'T-SNAP-STOP'):
        got = reply(results.get(key, ''), key)
        check(got == {'ok': True}, f'{key}: {got}, expected {{"ok": true}}')
    check(results.get('T-FIRST-EXIT') == '0',
          f'the snapshotted vmm exited with {results.get("T-FIRST-EXIT")} after a stop, expected 0')
    check(results.get('T-RESTORE1-EXIT') == '0',
          f'the first restored vmm exited with {results.get("T-RESTORE1-EXIT")} after poweroff -f')
    ram = results.get('T-SNAP-RAM', '').split()
    check(len(ram) == 2 and int(ram[0]) == 256 << 20 and 0 < int(ram[1]) * 1024 < 256 << 20,
          f'the snapshot\'s ram file: size and KiB used {ram}, expected 256 MiB with holes')
    # Each restore goes on from the number after the snapshot's last: 1..N, then N+1.. twice.
    n = len(before)
    again = [int(x) for x in re.findall(COUNT_RE, g.output)][len(first):]
    for what, counts in (('the first restore', first), ('the second restore', before + again)):
        check(counts == list(range(1, len(counts) + 1)) and len(counts) >= n + 3,
              f'the guest\'s counts across {what} are not 1..N in order (restarted, lost or '
              f'repeated?): {counts}')
    print(f'snapshot: counted to {n} before, to {first[-1]} and {again[-1]} after each restore')


# linux-snapshot-hvc0: the same snapshot and two restores with the guest's console on a
# virtio console and a vsock device, over virtio-mmio (1 vCPU, no disk or NIC): the guest types
# and counts through the restored console, and no line comes twice (a chain the host had partly
# written before the snapshot goes on from where it was); its vsock stream from before the
# snapshot is reset by the restored device (its host socket is gone) and a new one works.
def scenario_snapshot_hvc0(g, run, _):
    g.start(PHASE_TIMEOUT)
    g.expect(r'VMM-GUEST-READY', PHASE_TIMEOUT, what='VMM-GUEST-READY on hvc0')
    g.send('echo "T-CONSOLE=$(cat /sys/class/tty/console/active)"\n')
    con = g.expect(r'T-CONSOLE=(\w+)\r?\n', PHASE_TIMEOUT, what='the active console').group(1)
    check(con == 'hvc0', f'the guest console is {con!r}, expected hvc0')
    g.send('(sleep 900 | (vsockcat 2 7100 >/dev/null; echo T-OLD-STREAM=$?)) &\n')
    g.send('(i=0; while :; do i=$((i+1)); echo T-COUNT=$i; sleep 0.3; done) &\n')
    g.expect(r'T-RESTORING\r?\n', PHASE_TIMEOUT, what='the first vmm stopping after the snapshot')
    n = len(re.findall(COUNT_RE, g.output))
    for phase, start, marker, port in (('the restore', 'T-RESTORING', 'T-RESTORING-AGAIN', 7101),
                                       ('restore 2', 'T-RESTORING-AGAIN', None, 7102)):
        for i in range(3):
            g.expect(COUNT_RE, PHASE_TIMEOUT, what=f'count {i + 1} after {phase}')
        # The reset stream's line comes before or among the counts.
        since = g.output[[m.end() for m in re.finditer(rf'{start}\r?\n', g.output)][-1]:]
        old = (re.search(r'T-OLD-STREAM=(\d+)\r?\n', since) or
               g.expect(r'T-OLD-STREAM=(\d+)\r?\n', PHASE_TIMEOUT,
                        what=f'the vsock stream from before the snapshot ending after {phase}'))
        check(old.group(1) == '1', f'after {phase} the guest\'s vsock stream from before the '
              f'snapshot ended with status {old.group(1)}, expected 1 (reset)')
        g.send(f'vsockcat 2 {port} </dev/null; echo T-NEW-STREAM=$?\n')
        new = g.expect(r'T-NEW-STREAM=(\d+)\r?\n', PHASE_TIMEOUT, what=f'a vsock stream after {phase}')
        check(new.group(1) == '0', f'after {phase} a new vsock stream to the host ended with '
              f'status {new.group(1)}, expected 0')
        g.send('echo "T-TYPED=$((6 * 7))"\n')
        check(g.expect(r'T-TYPED=(\d+)\r?\n', PHASE_TIMEOUT, what=f'T-TYPED after {phase}')
              .group(1) == '42', f'after {phase} the guest answered a typed line wrongly')
        g.send('poweroff -f\n')
        if marker:
            g.expect(rf'{marker}\r?\n', PHASE_TIMEOUT, what='the restored vmm stopping')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'the second restored vmm exit status {status}, expected 0')
    results = boot.host_results(g.output)
    check(reply(results.get('T-SNAP', ''), 'T-SNAP') == {'ok': True},
          f'T-SNAP: {results.get("T-SNAP")}, expected {{"ok": true}}')
    counts = [int(x) for x in re.findall(COUNT_RE, g.output)]
    first_end = g.output.index('T-RESTORING-AGAIN')
    first = [int(x) for x in re.findall(COUNT_RE, g.output[:first_end])]
    again = counts[len(first):]
    for what, seq in (('the first restore', first), ('the second restore', first[:n] + again)):
        check(seq == list(range(1, len(seq) + 1)) and len(seq) >= n + 3,
              f'the guest\'s counts on hvc0 across {what} are not 1..N in order (restarted, '
              f'lost or repeated?): {seq}')
    print(f'snapshot-hvc0: counted to {n} before, {first[-1]} and {again[-1]} after each restore')


boot.SCENARIOS['api'] = (scenario_api, setup_api)
boot.SCENARIOS['snapshot'] = (scenario_snapshot, setup_snapshot)
boot.SCENARIOS['snapshot-hvc0'] = (
    scenario_snapshot_hvc0,
    lambda run: setup_snapshot(run, '--console virtio --transport mmio --vsock @VSOCK@'))

if __name__ == '__main__':
    sys.exit(boot.main())
