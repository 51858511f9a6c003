"""The arm64 Linux tests' PCI scenarios (test_linux_arm64.py --scenario pci-its, pci-gicv2m,
pci-intx; see its docstring): the L1 command and the guest's checks."""

import re
import shlex

from arm64_guest import (DISK_MIB, GUEST_NIC, NET_GUEST_ADDR, NET_HOST_ADDR, PHASE_TIMEOUT,
                         RNG_READ, TAP_MAC, USER_BYTES, USER_FWD_ACK, USER_FWD_WORD, USER_MAC,
                         WRITE_OFFSET_MIB, ask, check, check_guest_disk, check_user_net)

# The pci scenarios: the --irqchip each passes (None: the default), the GIC driver and the
# /proc/interrupts chip of virtio's MSIs they expect in the nested L1, and a choice that L1
# cannot offer, with what its one-line refusal must say (None: not checked).
PCI_SCENARIOS = {
    'pci-its': (None, 'GICv3', r'ITS-(PCI-)?MSI', None),
    # a GICv3 without its ITS: no MSI controller, so the devices' INTx lines (interrupt-map)
    'pci-intx': ('gicv3', 'GICv3', 'GICv3', None),
    'pci-gicv2m': ('gicv2m', 'GIC-0', r'(GICv2m-)?(PCI-)?MSI',
                   ('gicv3-its', "vmm: --irqchip gicv3-its: this host's KVM cannot emulate a "
                    'GICv3 ITS (it offers gicv2, gicv2m)')),
}
PCI_DEVICES = 5  # the disk, two NICs, virtio-rng and the console


def l1_command_pci(vmm, kernel, initrd, disk, token, irqchip, refused):
    """Shell text for the pci scenarios: a refused --irqchip (when @refused), the user NIC's
    and the TAP's L1 side as in the devices scenario, the disk with the token, vmm with every
    device on PCI, then the image's checksum where the guest wrote and the forward's answer."""
    q = shlex.quote
    lines = []
    if refused:
        lines.append(f'o=$({q(vmm)} --kernel {q(kernel)} --transport pci --irqchip {refused} '
                     '--timeout 60 2>&1); echo "T-REFUSED=$? $(echo "$o" | wc -l) $o"')
    chip = f'--irqchip {irqchip} ' if irqchip else ''
    return '\n'.join(lines + [
        'ip link set lo up',
        f'head -c {USER_BYTES} /dev/urandom >/tmp/uh2g',
        'echo "T-UH2G-SENT=$(sha256sum </tmp/uh2g | cut -d\' \' -f1)"',
        '(nc -l -p 5003 </tmp/uh2g >/dev/null) &',
        f'(until (echo {USER_FWD_WORD}; sleep 3) | nc 127.0.0.1 6001 2>/dev/null | '
        f'grep -q {USER_FWD_ACK}; do',
        '  sleep 0.5; done; echo ok >/tmp/fwd_ok) &',
        '(until ip link show tap0 >/dev/null 2>&1; do sleep 0.1; done',
        f' ip addr add {NET_HOST_ADDR}/24 dev tap0 && ip link set tap0 up) &',
        f'if ! (rm -f {q(disk)} && truncate -s {DISK_MIB}M {q(disk)} && '
        f'printf %s {q(token)} | dd of={q(disk)} conv=notrunc 2>/dev/null); then',
        '\techo "T-SETUP-FAILED: cannot make the disk image"; s=99',
        'else',
        f'\t{q(vmm)} --kernel {q(kernel)} --initrd {q(initrd)} --mem 512M --cpus 2 '
        f'--transport pci {chip}--disk {q(disk)} --console virtio '
        f'--net tap=tap0,mac={TAP_MAC} --net user,hostfwd=tcp:127.0.0.1:6001-:5001,mac={USER_MAC} '
        '--cmdline quiet',
        '\ts=$?',
        f'\techo "T-IMAGE-SHA=$(dd if={q(disk)} bs=1M skip={WRITE_OFFSET_MIB} count=1 '
        "2>/dev/null | sha256sum | cut -d' ' -f1)\"",
        'fi',
        'i=0; while [ ! -s /tmp/fwd_ok ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i + 1)); done',
        'echo "T-FWD-OK=$(cat /tmp/fwd_ok)"',
        '(exit $s)',
    ])


def check_pci_interrupts(g, chip_re):
    """Every virtio interrupt in /proc/interrupts is an MSI of @chip_re (none on INTx, whose
    chip is the GIC's), the five devices have vectors, and the disk's and NICs' ones counted;
    or, with @chip_re the GIC's, each device has its INTx line, the disk's and NICs' counting."""
    if chip_re == 'GICv3':
        check_pci_intx(g)
        return
    irqs = ask(g, 'echo "T-IRQS=$(grep virtio /proc/interrupts | '
               'awk \'{printf "%s,%s,%d ", $4, $NF, $2 + $3}\')"', 'T-IRQS', r'[^\n$]*').split()
    print(f'virtio interrupts (chip,name,count): {" ".join(irqs)}')
    vectors = [v.split(',') for v in irqs if v.count(',') == 2]
    check(vectors and len(vectors) == len(irqs), f'no virtio interrupts, or unreadable: {irqs}')
    chips = {c for c, _, _ in vectors}
    check(all(re.fullmatch(chip_re, c) for c in chips),
          f'virtio interrupts on {sorted(chips)}, expected only MSIs ({chip_re})')
    devices = {re.match(r'virtio(\d+)-', n).group(1) for _, n, _ in vectors
               if re.match(r'virtio\d+-', n)}
    check(len(devices) == PCI_DEVICES, f'MSI-X vectors for {len(devices)} virtio devices, '
          f'expected {PCI_DEVICES}: {irqs}')
    for what, pat in (('the disk\'s requests', 'req'), ('the NICs\' receive', 'input'),
                      ('the NICs\' transmit', 'output')):
        n = sum(int(c) for _, name, c in vectors if pat in name)
        check(n > 0, f'{what}: no interrupts counted on its MSI-X vectors ({irqs})')


def check_pci_intx(g):
    """INTx: one level-triggered GIC line per device (virtio0, the disk; 1 and 2, the NICs)."""
    irqs = ask(g, 'echo "T-IRQS=$(grep virtio /proc/interrupts | '
               'awk \'{printf "%s,%s,%s,%d ", $4, $6, $NF, $2 + $3}\')"', 'T-IRQS',
               r'[^\n$]*').split()
    print(f'virtio interrupts (chip,trigger,name,count): {" ".join(irqs)}')
    lines = {v.split(',')[2]: v.split(',') for v in irqs if v.count(',') == 3}
    check(sorted(lines) == [f'virtio{i}' for i in range(PCI_DEVICES)] and
          all(c == 'GICv3' and t == 'Level' for c, t, _, _ in lines.values()),
          f'virtio interrupts {irqs}, expected one GICv3 Level line per device')
    for dev in ('virtio0', 'virtio1', 'virtio2'):
        check(int(lines[dev][3]) > 0, f'{dev}: no interrupts counted on its INTx line ({irqs})')


def check_pci(g, token, want_gic, chip_re, refused):
    """The pci scenarios' checks (see the module's docstring)."""
    if refused:
        m = re.search(r'T-REFUSED=([^\n]*)\n', g.output)
        got = m.group(1).strip() if m else ''
        check(got.startswith('1 1 ' + refused[1]), f'--irqchip {refused[0]} in this L1 gave '
              f'{got!r}, expected status 1 and the one line {refused[1]!r}')
    gic = ask(g, 'echo "T-GIC=$(grep -o -m 1 -E \'GICv3|GIC-0\' /proc/interrupts)"', 'T-GIC',
              r'[A-Za-z0-9-]*')
    check(gic == (want_gic or gic), f'the guest\'s interrupt controller is {gic!r}, expected '
          f'{want_gic}')
    if want_gic == 'GIC-0':  # the GICv2m frame's SPIs, as the guest read them from MSI_TYPER
        spis = ask(g, 'echo "T-V2M=$(dmesg | grep -o -m 1 \'SPI\\[[0-9]*:[0-9]*\\]\')"',
                   'T-V2M', r'[^\n$]*').strip()
        check(spis == 'SPI[96:223]', f'the guest\'s GICv2m frame: {spis!r}, expected SPI[96:223]')
    pci = ask(g, 'echo "T-PCI=$(ls /sys/bus/pci/drivers/virtio-pci | grep -c :)"', 'T-PCI',
              r'\d+')
    check(pci == str(PCI_DEVICES), f'{pci} devices bound to virtio-pci, expected {PCI_DEVICES}')
    console = ask(g, 'echo "T-CONSOLE=$(head -n 1 /proc/consoles | cut -d\' \' -f1)"',
                  'T-CONSOLE', r'\S*')
    check(console == 'hvc0', f'the guest\'s console is {console!r}, expected hvc0')
    rng = ask(g, RNG_READ.replace('@KEY@', 'T-RNG'), 'T-RNG', r'[a-z_.0-9]*/\d+')
    check(re.fullmatch(r'virtio_rng\.\d+/64', rng) is not None,
          f'the guest reads {rng!r} from /dev/hwrng, expected virtio_rng/64')
    wsha = check_guest_disk(g, token)
    ping = ask(g, f'{GUEST_NIC}; T=$(nic {TAP_MAC}); ip link set $T up && '
               f'ip addr add {NET_GUEST_ADDR}/24 dev $T && '
               f'ping -c 2 -W 5 {NET_HOST_ADDR} >/dev/null; echo "T-PING=$?"', 'T-PING', r'\d+')
    check(ping == '0', f'ping from the guest to L1 over virtio-net on PCI failed (status {ping})')
    check_user_net(g)
    check_pci_interrupts(g, chip_re)
    g.send('poweroff -f\n')
    m = g.expect(r'T-IMAGE-SHA=([0-9a-f]{64})\n', PHASE_TIMEOUT,
                 what='the image checksum after vmm exited')
    check(m.group(1) == wsha, f'the image holds {m.group(1)} at {WRITE_OFFSET_MIB} MiB, '
          f'the guest wrote {wsha}')
    status = g.wait_exit(PHASE_TIMEOUT)
    check(status == 0, f'vmm exit status {status} after the guest\'s poweroff -f, expected 0')
    m = re.search(r'T-FWD-OK=([^\n]*)\n', g.output)
    check(m and m.group(1).strip() == 'ok', f'the guest\'s answer through the forward: L1 got '
          f'{m and m.group(1)!r} (ok when it read {USER_FWD_ACK!r})')
