"""L1's KVM counters around the benchmark jobs of bench/blk and bench/net (issue 21).

The nested harness runs the VMMs inside one L1 whose KVM serves their guests, so L1's
/sys/kernel/debug/kvm counters (summed over all VMs, and one VMM runs at a time) count what a
guest costs its host in exits. A watcher in L1 (WATCH_SH) follows the VMM's console copy; when
the guest prints "PREFIX-JOB NAME" it waits DELAY seconds (fio's ramp or the start of an iperf3
run), reads the counters, waits SPAN seconds and reads them again, and prints
"PREFIX-KVM NAME t=... exits=... / t=... exits=...": a window inside the job's steady part, so
the rates it gives go with the job's own throughput figure.

Which counters (Linux 6.1, kvm-amd in L1; the L2 guest runs there with nested paging):
  notifications  insn_emulation + io_exits. A virtio-pci (modern) or virtio-mmio doorbell is
                 an MMIO write; with an ioeventfd on it (both VMMs) KVM completes it in the
                 kernel, after an NPF exit whose instruction it emulates (insn_emulation: on
                 SVM there is no fast-MMIO path that skips the emulator) and no exit to
                 userspace, so mmio_exits (exits to userspace only) does not see it. io_exits
                 counts port-I/O exits (doorbells of a legacy or PIO-notify transport). In a
                 steady fio or iperf3 run nothing else is emulated or port I/O to speak of.
  interrupts     irq_injections: every interrupt KVM injected into a vCPU. It includes the
                 guest's own timer ticks and IPIs (a few hundred a second on a busy 2-vCPU
                 guest), so a device that interrupts less shows less here, never more; the
                 guest's own count of its virtio interrupts over the job (PREFIX-IRQ, from
                 /proc/interrupts) is the device's share.
  exits          every exit of the guest, for scale.
"""

import re

COUNTERS = ('exits', 'insn_emulation', 'io_exits', 'mmio_exits', 'irq_injections',
            'irq_window_exits', 'halt_exits')

# POSIX sh (busybox in L1). kvm_watch runs until killed.
WATCH_SH = r'''
kvm_counters_on() {
	grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs none /sys/kernel/debug
}
kvm_snap() {
	printf 't=%s' "$(cut -d' ' -f1 /proc/uptime)"
	for c in @COUNTERS@; do
		printf ' %s=%s' "$c" "$(cat /sys/kernel/debug/kvm/$c 2>/dev/null || echo x)"
	done
}
kvm_watch() {  # PREFIX FILE DELAY SPAN [JOBS: an extended regex of the job names to time]
	seen=0
	while :; do
		n=$(grep -cE "^$1-JOB (${5:-[a-z0-9_]+})[[:space:]]*\$" "$2")
		if [ "$n" -gt "$seen" ]; then
			seen=$n
			job=$(grep -E "^$1-JOB (${5:-[a-z0-9_]+})[[:space:]]*\$" "$2" | tail -n 1 | tr -d '\r' | cut -d' ' -f2)
			sleep "$3"
			a=$(kvm_snap)
			sleep "$4"
			echo "$1-KVM $job $a / $(kvm_snap)"
		fi
		sleep 0.5
	done
}
'''.replace('@COUNTERS@', ' '.join(COUNTERS))

# Guest side: the interrupts of its virtio devices (all but config changes), summed over CPUs.
GUEST_IRQ_SH = r'''
virtio_irqs() {
	awk '/virtio/ && !/config/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i }
		END { print s + 0 }' /proc/interrupts
}
'''


def window(secs):
    """(DELAY, SPAN) for a job measured over secs seconds after a ramp the caller adds."""
    if secs >= 8:
        return 2, secs - 4
    return 1, max(1, secs - 2)


def parse(text, prefix):
    """{job: {'secs': window length, counter: increase}} from the PREFIX-KVM lines of text."""
    out = {}
    for m in re.finditer(rf'{prefix}-KVM (\w+) ([^\n/]*) / ([^\n]*)', text):
        a = dict(re.findall(r'(\w+)=(\S+)', m.group(2)))
        b = dict(re.findall(r'(\w+)=(\S+)', m.group(3)))
        try:
            d = {'secs': float(b['t']) - float(a['t'])}
        except (KeyError, ValueError):
            continue
        for c in COUNTERS:
            if a.get(c, 'x').isdigit() and b.get(c, 'x').isdigit():
                d[c] = int(b[c]) - int(a[c])
        if d['secs'] > 0:
            out[m.group(1)] = d
    return out


def per_unit(d, units_per_sec, scale=1.0):
    """{'notify', 'irq', 'exits'} per scale units of work (units_per_sec: the job's rate), or
    None where a counter is missing."""
    if not d or not units_per_sec:
        return None

    def rate(*names):
        if any(n not in d for n in names):
            return None
        return sum(d[n] for n in names) / d['secs'] / units_per_sec * scale
    return {'notify': rate('insn_emulation', 'io_exits'), 'irq': rate('irq_injections'),
            'exits': rate('exits')}


def fmt(v):
    if v is None:
        return 'n/a'
    return f'{v:.0f}' if v >= 100 else f'{v:.1f}' if v >= 1 else f'{v:.2f}'


NOTE = ('Exit counts: L1\'s KVM counters (/sys/kernel/debug/kvm, all VMs; one VMM runs at a '
        'time) read twice inside each job\'s steady part, as rates divided by the job\'s own '
        'throughput. "notify" = insn_emulation + io_exits: a doorbell is an MMIO write that '
        'KVM hands to the VMM\'s ioeventfd in the kernel after emulating the instruction (SVM '
        'has no fast-MMIO path; mmio_exits only counts exits to userspace and stays ~0), or a '
        'port write (io_exits). "irq" = irq_injections: every interrupt injected, the guest\'s '
        'timer ticks and IPIs included; "dev irq" is the guest\'s own count of its virtio '
        'interrupts (/proc/interrupts) over the whole job. "exits" = all exits.')
