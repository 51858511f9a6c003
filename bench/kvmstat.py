"""L1's KVM counters around the benchmark jobs of bench/blk and bench/net (issue 21).

The nested harness runs the VMMs inside one L1 whose KVM serves their guests, so L1's
/sys/kernel/debug/kvm counters (summed over all VMs, and one VMM runs at a time) count what a
guest costs its host in exits. A watcher in L1 (WATCH_SH) follows the VMM's console copy; when
the guest prints "PREFIX-JOB NAME" it waits DELAY seconds (fio's ramp or the start of an iperf3
run), reads the counters, waits SPAN seconds and reads them again, and prints
"PREFIX-KVM NAME t=... exits=... / t=... exits=...": a window inside the job's steady part, so
the rates it gives go with the job's own throughput figure.

Which counters (Linux 6.1, kvm-amd in L1; the L2 guest runs there with nested paging). The
debugfs counters cannot tell a doorbell from other exits: a virtio-pci (modern) or virtio-mmio
doorbell is an MMIO write that KVM hands to the VMM's ioeventfd in the kernel, after an NPF
exit whose instruction it emulates (SVM has no fast-MMIO path), so it is in exits, not in
mmio_exits (exits to userspace only); insn_emulation counts it, but measured here it counts
nearly every exit (about 1,100 a second in a fio job that rang 20 doorbells a second; likely
because TCG's SVM has no NRIP save, so KVM decodes each intercepted instruction to skip it);
irq_injections counts every interrupt injected, the guest's timer ticks (about 450 a second
with 2 vCPUs) and IPIs included. So the watcher also hangs hist triggers
(CONFIG_HIST_TRIGGERS) on three KVM tracepoints and reads their counts:
  notifications  kvm_mmio writes (type 2) outside the IOAPIC and LAPIC pages, plus kvm_pio
                 writes outside COM1: every guest write that exits to KVM and is neither an
                 interrupt-controller access nor console output -- in a steady fio or iperf3
                 run, the doorbells (each one exit, whether an ioeventfd or the VMM takes it).
  interrupts     kvm_apic_accept_irq with a vector below 0xec: Linux's device vectors (the
                 local timer, IPIs and other system vectors are 0xec and up), so the MSIs (or
                 INTx) of the devices; the guest's own count of its virtio interrupts over the
                 job (PREFIX-IRQ, from /proc/interrupts) is a cross-check.
  exits          every exit of the guest, for scale (debugfs).
"""

import re

COUNTERS = ('exits', 'insn_emulation', 'io_exits', 'mmio_exits', 'irq_injections',
            'irq_window_exits', 'halt_exits')

# POSIX sh (busybox in L1). kvm_watch runs until killed.
WATCH_SH = r'''
KVM_EV=/sys/kernel/tracing/events/kvm
kvm_counters_on() {
	grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs none /sys/kernel/debug
	grep -q ' /sys/kernel/tracing ' /proc/mounts || mount -t tracefs none /sys/kernel/tracing
	echo 'hist:keys=gpa:vals=hitcount:size=4096 if type == 2' >$KVM_EV/kvm_mmio/trigger
	echo 'hist:keys=port:vals=hitcount if rw == 1' >$KVM_EV/kvm_pio/trigger
	echo 'hist:keys=vec:vals=hitcount' >$KVM_EV/kvm_apic_accept_irq/trigger
}
kvm_hist() {  # EVENT NAME: " NAME=KEY:COUNT,..." from the event's hist (decimal keys)
	printf ' %s=' "$2"
	if grep -q '^hist' "$KVM_EV/$1/trigger" 2>/dev/null; then
		awk '/^\{.*hitcount:/ { printf "%s:%s,", $3, $NF }' "$KVM_EV/$1/hist"
	else
		printf x
	fi
}
kvm_snap() {
	printf 't=%s' "$(cut -d' ' -f1 /proc/uptime)"
	for c in @COUNTERS@; do
		printf ' %s=%s' "$c" "$(cat /sys/kernel/debug/kvm/$c 2>/dev/null || echo x)"
	done
	kvm_hist kvm_mmio mmiow
	kvm_hist kvm_pio piow
	kvm_hist kvm_apic_accept_irq vec
}
kvm_watch() {  # PREFIX FILE DELAY SPAN [JOBS: an extended regex of the job names to time]
	seen=0 pat="^$1-JOB (${5:-[a-z0-9_]+})[[:space:]]*\$"
	while :; do
		n=$(grep -cE "$pat" "$2")
		if [ "$n" -gt "$seen" ]; then
			seen=$n
			job=$(grep -E "$pat" "$2" | tail -n 1 | tr -d '\r' | cut -d' ' -f2)
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


APIC_RANGES = ((0xfec00000, 0xfed00000), (0xfee00000, 0xfef00000))  # IOAPIC, LAPIC pages
CONSOLE_PORTS = range(0x3f8, 0x400)  # COM1
SYSTEM_VECTOR = 0xec  # Linux x86_64: the local timer, IPIs and the rest from here up


def hist(text):
    """{key: count} from kvm_hist's KEY:COUNT,... (empty when the event had none)."""
    out = {}
    for part in (text or '').split(','):
        k, _, v = part.partition(':')
        if k.isdigit() and v.isdigit():
            out[int(k)] = int(v)
    return out


def hist_delta(a, b, name, keep):
    """The increase of the hitcounts of hist name from snapshot a to b, over keys kept."""
    if b.get(name, 'x') == 'x' or a.get(name, 'x') == 'x':
        return None
    ha, hb = hist(a.get(name)), hist(b.get(name))
    return sum(n - ha.get(k, 0) for k, n in hb.items() if keep(k))


def parse(text, prefix):
    """{job: {'secs': window length, counter: increase}} from the PREFIX-KVM lines of text;
    besides the debugfs counters: 'doorbells' (MMIO writes outside the interrupt controllers'
    pages and port writes outside COM1, each one exit), 'dev_irqs' (interrupts accepted
    below the system vectors: the devices'), 'all_irqs'."""
    out = {}
    for m in re.finditer(rf'{prefix}-KVM (\w+) ([^\n/]*) / ([^\n]*)', text):
        a = dict(re.findall(r'(\w+)=(\S*)', m.group(2)))
        b = dict(re.findall(r'(\w+)=(\S*)', m.group(3)))
        try:
            d = {'secs': float(b['t']) - float(a['t'])}
        except (KeyError, ValueError):
            continue
        for c in COUNTERS:
            if a.get(c, 'x').isdigit() and b.get(c, 'x').isdigit():
                d[c] = int(b[c]) - int(a[c])
        mmio = hist_delta(a, b, 'mmiow',
                          lambda g: not any(lo <= g < hi for lo, hi in APIC_RANGES))
        pio = hist_delta(a, b, 'piow', lambda p: p not in CONSOLE_PORTS)
        if mmio is not None and pio is not None:
            d['doorbells'] = mmio + pio
        if (irqs := hist_delta(a, b, 'vec', lambda v: v < SYSTEM_VECTOR)) is not None:
            d['dev_irqs'] = irqs
            d['all_irqs'] = hist_delta(a, b, 'vec', lambda v: True)
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
    return {'notify': rate('doorbells'), 'irq': rate('dev_irqs'), 'exits': rate('exits')}


def fmt(v):
    if v is None:
        return 'n/a'
    return f'{v:.0f}' if v >= 100 else f'{v:.1f}' if v >= 1 else f'{v:.2f}'


NOTE = ('Exit counts: L1\'s KVM tracepoints (hist triggers) and counters, read twice inside '
        'each job\'s steady part (one VMM runs at a time), as rates divided by the job\'s own '
        'throughput. "notify": guest MMIO writes outside the interrupt controllers\' pages '
        '(kvm_mmio) and port writes outside COM1 (kvm_pio), i.e. doorbells, each an exit even '
        'when an ioeventfd takes it in the kernel; "irq": interrupts KVM delivered with a '
        'device vector (kvm_apic_accept_irq below 0xec: no timer ticks, no IPIs); "dev irq": '
        'the guest\'s own count of its virtio interrupts (/proc/interrupts) over the whole job, '
        'a cross-check; "exits": all exits (debugfs). bench/kvmstat.py says why these.')
