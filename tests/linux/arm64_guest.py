"""The arm64 Linux tests' guest side (tests/linux/test_linux_arm64.py and arm64_pci.py): the
constants both sides of a scenario share, waiting for and asking the guest over its console,
and the --net user checks."""

import os
import re

import harness

# Seconds per wait (TCG is slow, CI machines may be slower); VMM_TEST_TIMEOUT overrides.
PHASE_TIMEOUT = float(os.environ.get('VMM_TEST_TIMEOUT', 180))
DISK_MIB = 8
WRITE_OFFSET_MIB = 1  # where the guest writes its 1 MiB
# The TAP NIC's subnet; the user NIC's is libslirp's 10.0.2.0/24. The guest tells the two
# apart by MAC (the order of virtio-mmio devices is the device tree's).
NET_HOST_ADDR, NET_GUEST_ADDR = '10.0.3.1', '10.0.3.15'
TAP_MAC, USER_MAC = '52:54:00:12:34:56', '52:54:00:12:34:57'
USER_BYTES = 1 << 20  # from a server on L1's loopback to the guest through 10.0.2.2
USER_FWD_WORD, USER_FWD_ACK = 'fwd-arm64', 'fwd-ack-arm64'
# Prints a NIC's name given its MAC.
GUEST_NIC = 'nic() { for d in /sys/class/net/*; do [ "$(cat $d/address)" = "$1" ] && basename $d; done; }'
RNG_READ = ('echo "@KEY@=$(cat /sys/class/misc/hw_random/rng_current)/'
            '$(head -c 64 /dev/hwrng | wc -c)"')

class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def expect(g, pattern, what):
    """g.expect(pattern), but vmm's exit (reported by L1) or a failed set-up ends the wait
    with a Failure that says so."""
    m = g.expect(rf'(?:{pattern})|T-SETUP-FAILED: (?P<setup>[^\n]*)|VMM-L1-EXIT=(?P<exit>\d+)',
                 PHASE_TIMEOUT, what=what)
    if m.group('setup'):
        raise Failure(m.group('setup'))
    if m.group('exit'):
        raise Failure(f'vmm exited with status {m.group("exit")} while waiting for {what}')
    return m


def ask(g, line, key, value):
    """Types @line into the guest's shell and returns the value printed after KEY=. The
    values' patterns cannot match the echo of the typed command ("$(...)")."""
    g.send(line + '\n')
    return expect(g, rf'{key}=(?P<v>{value})\n', f'{key} from the guest').group('v')


def check_guest_disk(g, token):
    """/dev/vda in the guest: DISK_MIB large, starting with @token; 1 MiB of random data
    written at WRITE_OFFSET_MIB. Returns that data's sha256, for the image after vmm exits."""
    size = ask(g, 'echo "T-SIZE=$(blockdev --getsize64 /dev/vda)"', 'T-SIZE', r'\d+')
    check(size == str(DISK_MIB << 20), f'/dev/vda has {size} bytes, the image {DISK_MIB << 20}')
    got = ask(g, f'echo "T-READ=$(head -c {len(token)} /dev/vda)"', 'T-READ', r'[0-9a-z-]*')
    check(got == token, f'the first bytes of /dev/vda are {got!r}, the image holds {token!r}')
    out = ask(g, 'head -c 1048576 /dev/urandom >/tmp/w && '
              f'dd if=/tmp/w of=/dev/vda bs=1M seek={WRITE_OFFSET_MIB} conv=fsync 2>/dev/null; '
              'echo "T-WRITE=$? $(sha256sum </tmp/w | cut -d\' \' -f1)"', 'T-WRITE',
              r'\d+ [0-9a-f]{64}')
    wstatus, wsha = out.split()
    check(wstatus == '0', f'dd to /dev/vda in the guest failed (status {wstatus})')
    return wsha


def check_user_net(g):
    """--net user: DHCP, 1 MiB from L1's loopback through 10.0.2.2, and the forward."""
    dhcp = ask(g, f'U=$(nic {USER_MAC}); ' + harness.guest_dhcp('$U'), 'T-DHCP', r'\d+')
    check(dhcp == '0', f'udhcpc got no lease on the --net user NIC (status {dhcp})')
    lease = ask(g, 'echo "T-LEASE=$(ip -4 -o addr show $U | awk \'{print $4}\'),'
                '$(ip route | awk \'/^default/ {print $3}\'),$(cat /tmp/dns)"', 'T-LEASE',
                r'[0-9./,]*')
    check(lease == '10.0.2.15/24,10.0.2.2,10.0.2.3',
          f'DHCP lease (address, gateway, DNS) {lease}, expected 10.0.2.15/24,10.0.2.2,10.0.2.3')
    sent = re.search(r'T-UH2G-SENT=([0-9a-f]{64})\n', g.output)
    got = ask(g, '(sleep 900 | nc 10.0.2.2 5003 >/tmp/uh2g) & '
              f'while [ "$(stat -c %s /tmp/uh2g 2>/dev/null)" != "{USER_BYTES}" ]; do sleep 0.2; '
              'done; echo "T-UH2G-GOT=$(sha256sum </tmp/uh2g | cut -d\' \' -f1)"', 'T-UH2G-GOT',
              r'[0-9a-f]{64}')
    check(sent and got == sent.group(1), f'{USER_BYTES >> 20} MiB from L1\'s loopback through '
          f'10.0.2.2: sha256 {got} in the guest, {sent and sent.group(1)} sent')
    word = ask(g, f'(echo {USER_FWD_ACK}; sleep 5) | nc -l -p 5001 >/tmp/fwd & '
               'until [ -s /tmp/fwd ]; do sleep 0.2; done; echo "T-FWD=$(cat /tmp/fwd)"', 'T-FWD',
               r'[^\n$]*')
    check(word == USER_FWD_WORD, f'through the forward of 127.0.0.1:6001 in L1 to port 5001: '
          f'the guest got {word!r}, expected {USER_FWD_WORD!r}')
