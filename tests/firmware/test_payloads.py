#!/usr/bin/env python3
"""Boots one guest-firmware payload under vmm and checks the outcome (one meson test per
scenario). Usage: test_payloads.py SCENARIO --vmm PATH --payload PATH [--payload PATH ...]

Exit status 0 pass, 1 fail, 77 skip (printed reason)."""

import os
import re
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fwlib  # noqa: E402

# Exit codes of elf64_boot / pvh_boot (guest-firmware/x86_64/boot_checks.h).
BOOT_CODES = {
    0x10: "entry state (segments, mode, flags)",
    0x11: "boot structure address, magic or version",
    0x12: "command line missing or not starting with the user's string",
    0x13: "console=ttyS0 not appended after the user's string",
    0x14: "fwtest.* parameters missing on the command line",
    0x15: "memory map",
    0x16: "PVH module list",
    0x17: "initrd size",
    0x18: "initrd placement",
    0x19: "initrd not at the highest page-aligned address of low RAM",
    0x1A: "initrd contents",
}

# Exit codes of dispatch (guest-firmware/x86_64/dispatch.c).
DISPATCH_CODES = {
    0x20: "port 1-byte accesses",
    0x21: "port 2-byte accesses",
    0x22: "port 4-byte accesses",
    0x23: "port byte order across sizes",
    0x24: "mmio 1-byte accesses",
    0x25: "mmio 2-byte accesses",
    0x26: "mmio 4-byte accesses",
    0x27: "mmio 8-byte accesses",
    0x28: "mmio byte order across sizes",
    0x29: "unaligned accesses",
    0x2A: "unclaimed port reads",
    0x2B: "unclaimed mmio reads",
    0x2C: "unclaimed reads after writes",
    0x2D: "test device intact after unclaimed writes",
}

HELLO_LINE = "vmm-firmware: hello from the guest"
# Port 0xf4 ends vmm with the byte written only with --debug-exit (guest-firmware/x86_64/lib.c
# fw_exit): the payloads that report through it are run with it.
DEBUG_EXIT = "--debug-exit"
NO_DEBUG_EXIT_LINE = "vmm-firmware: debug-exit port did not end the VM"
SIGNAL_GRACE = 5.0  # seconds vmm may take to end after SIGTERM/SIGINT


def payload(args, name):
    return fwlib.require_file(args.payloads.get(name), f"payload {name}")


def explain(codes, status):
    if status in codes:
        return f" ({codes[status]} failed)"
    return ""


def guest_checks_passed(c, run):
    """Checks the PASS/FAIL lines a checking payload printed."""
    fails = [l for l in run.out.split("\n") if l.startswith("vmm-firmware: FAIL")]
    passes = [l for l in run.out.split("\n") if l.startswith("vmm-firmware: PASS")]
    c.check(passes and not fails,
            f"guest printed {len(passes)} PASS and {len(fails)} FAIL lines"
            + "".join(f"\n        {l}" for l in fails))


# ---- scenarios -----------------------------------------------------------------------------


def hello(args, c, extra=()):
    run = fwlib.run_vmm([args.vmm, "--kernel", payload(args, "hello"), *extra])
    run.show()
    c.check(not run.timed_out, "vmm ended by itself")
    c.check(run.status == 0,
            f"i8042 reset ends vmm with status 0 ({fwlib.describe_status(run.status)})")
    c.check(HELLO_LINE in run.out.split("\n"), f"stdout has the line {HELLO_LINE!r}")
    c.check(run.err == "", "nothing on stderr at the default log level")


def hello_cpus2(args, c):
    hello(args, c, extra=("--cpus", "2"))


def boot_test(args, c, name, mem, initrd_size, expect_initrd=True):
    """Runs the elf64_boot or pvh_boot payload with --mem @mem and an initrd of @initrd_size
    bytes (none when 0) and checks what it reports."""
    with tempfile.TemporaryDirectory(prefix="vmm-fwtest-") as tmp:
        argv = [args.vmm, "--kernel", payload(args, name), "--mem", mem, DEBUG_EXIT]
        user = f"fwtest.begin fwtest.mem={mem} fwtest.initrd_size={initrd_size}"
        if initrd_size:
            data = fwlib.pattern_bytes(initrd_size, seed=0x5A)
            path = os.path.join(tmp, "initrd.img")
            with open(path, "wb") as f:
                f.write(data)
            user += f" fwtest.initrd_fnv={fwlib.fnv1a32(data):#010x}"
            argv += ["--initrd", path]
        # A quoted value with spaces, passed through unchanged.
        user += ' fwtest.quoted="a b  c" fwtest.end'
        argv += ["--cmdline", user]
        run = fwlib.run_vmm(argv)
    run.show()
    c.check(not run.timed_out, "vmm ended by itself")
    c.check(run.status == 0, f"guest checks passed: {fwlib.describe_status(run.status)}"
            + explain(BOOT_CODES, run.status))
    guest_checks_passed(c, run)
    cmdlines = [l[len("vmm-firmware: cmdline: "):] for l in run.out.split("\n")
                if l.startswith("vmm-firmware: cmdline: ")]
    if c.check(len(cmdlines) == 1, "guest printed its command line"):
        seen = cmdlines[0]
        c.check(seen.startswith(user), "command line starts with the user's string verbatim")
        tail = seen[len(user):].split()
        for param in fwlib.DEFAULT_PARAMS:
            c.check(param in tail, f"{param} appended after the user's string")
    c.check(run.err == "", "nothing on stderr")


def elf64_boot(args, c):
    boot_test(args, c, "elf64_boot", "64M", 100000)


def elf64_boot_noinitrd(args, c):
    boot_test(args, c, "elf64_boot", "128M", 0)


# The high-memory runs keep the initrd small: under PVM (TESTING.md) the guest reading its
# initrd costs about 4 s per MiB, and only the placement and the memory map matter here.
def elf64_boot_highmem(args, c):
    need_host_memory(4 << 30)
    boot_test(args, c, "elf64_boot", "4G", 256 * 1024 + 123)


def pvh_boot(args, c):
    boot_test(args, c, "pvh_boot", "64M", 100000)


def pvh_boot_noinitrd(args, c):
    boot_test(args, c, "pvh_boot", "128M", 0)


def pvh_boot_highmem(args, c):
    need_host_memory(4 << 30)
    boot_test(args, c, "pvh_boot", "4G", 256 * 1024 + 123)


def need_host_memory(size):
    host = fwlib.host_memory_bytes()
    if host and host < size:
        fwlib.skip(f"the host has {host >> 20} MiB of RAM and swap, this test needs "
                   f"{size >> 20} MiB")


def dispatch(args, c):
    run = fwlib.run_vmm([args.vmm, "--kernel", payload(args, "dispatch"), "--test-device",
                         DEBUG_EXIT])
    run.show()
    c.check(not run.timed_out, "vmm ended by itself")
    c.check(run.status == 0, f"guest dispatch checks passed: {fwlib.describe_status(run.status)}"
            + explain(DISPATCH_CODES, run.status))
    guest_checks_passed(c, run)


def dispatch_without_device(args, c):
    """Without --test-device the scratch device is absent: the first check must fail."""
    run = fwlib.run_vmm([args.vmm, "--kernel", payload(args, "dispatch"), DEBUG_EXIT])
    run.show()
    c.check(not run.timed_out, "vmm ended by itself")
    c.check(run.status == 0x20, "without --test-device the port check fails (status 0x20 = 32): "
            + fwlib.describe_status(run.status))


def debug_exit_off(args, c):
    """Without --debug-exit port 0xf4 is not decoded: the guest cannot choose vmm's status. The
    dispatch payload (no --test-device) writes 0x20 there and then halts; vmm keeps running
    until --timeout gives its own 124."""
    run = fwlib.run_vmm([args.vmm, "--kernel", payload(args, "dispatch"), "--timeout", "3"])
    run.show()
    c.check(not run.timed_out, "vmm ended by itself")
    c.check(run.status == 124, "status 124 from --timeout, not the guest's 0x20: "
            + fwlib.describe_status(run.status))
    c.check(NO_DEBUG_EXIT_LINE in run.out.split("\n"),
            f"the guest went on after its write to port 0xf4 ({NO_DEBUG_EXIT_LINE!r})")
    c.check(re.search(r"^vmm: --timeout", run.err, re.M) is not None,
            "stderr says --timeout stopped the guest")


def triple_fault(args, c):
    run = fwlib.run_vmm([args.vmm, "--kernel", payload(args, "triple_fault"), DEBUG_EXIT])
    run.show()
    c.check(not run.timed_out, "vmm ended by itself")
    c.check(run.status == 1, f"status 1 for a guest crash ({fwlib.describe_status(run.status)})")
    c.check("triple_fault: loading an empty IDT" in run.out, "guest ran up to the fault")
    c.check("FAIL" not in run.out, "guest did not survive ud2")
    errs = [l for l in run.err.split("\n") if l]
    c.check(any(re.search(r"triple fault", l, re.I) for l in errs),
            "stderr mentions the triple fault")
    c.check(any(re.search(r"triple fault.* on vCPU 0 at rip=0x[0-9a-f]+ .*cr3=0x9000 ", l)
                for l in errs), "the triple fault message says where vCPU 0 stopped")
    c.check(all(l.startswith("vmm: ") for l in errs), "stderr lines start with 'vmm: '")


def first_write(args, c):
    run = fwlib.run_vmm([args.vmm, "--kernel", payload(args, "first_write"), DEBUG_EXIT])
    run.show()
    c.check(not run.timed_out, "vmm ended by itself")
    c.check(run.status == 0, f"debug-exit 0 gives status 0 ({fwlib.describe_status(run.status)})")
    c.check(run.stdout == b"!", f"stdout is exactly '!' (got {run.stdout[:40]!r})")


def signal_test(args, c, sig):
    proc = fwlib.Interactive([args.vmm, "--kernel", payload(args, "panic_loop")])
    try:
        ready = proc.wait_for_output(r"^vmm-firmware: panic_loop: ready", 20)
        c.check(ready, "guest printed its ready line")
        if not ready:
            proc.wait(0.1).show()
            return
        proc.pump(0.3)  # let the guest reach hlt
        c.check(proc.proc.poll() is None, "vmm still running with a halted guest")
        proc.proc.send_signal(sig)
        sent = time.monotonic()
        run = proc.wait(SIGNAL_GRACE)
    finally:
        proc.kill()
    run.show()
    took = time.monotonic() - sent
    c.check(not run.timed_out, f"vmm ended within {SIGNAL_GRACE:.0f} s of {sig.name} "
            f"(took {took:.2f} s)")
    c.check(run.status == 1, f"status 1 after {sig.name} ({fwlib.describe_status(run.status)})")
    errs = [l for l in run.err.split("\n") if l]
    c.check(all(l.startswith("vmm: ") for l in errs), "any stderr lines start with 'vmm: '")


def sigterm(args, c):
    signal_test(args, c, signal.SIGTERM)


def sigint(args, c):
    signal_test(args, c, signal.SIGINT)


def disk_lock(args, c):
    """A writable disk image is locked: while one vmm has it, a second vmm cannot open it,
    writable or read-only, and says why; once the first has gone, it can."""
    with tempfile.TemporaryDirectory(prefix="vmm-disk-lock-") as tmp:
        img = os.path.join(tmp, "disk.img")
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        kernel = ["--kernel", payload(args, "panic_loop")]
        first = fwlib.Interactive([args.vmm] + kernel + ["--disk", img])
        try:
            ready = first.wait_for_output(r"^vmm-firmware: panic_loop: ready", 20)
            c.check(ready, "the first vmm (holding the disk) started its guest")
            if not ready:
                first.wait(0.1).show()
                return
            for spec in (img, img + ",ro"):
                run = fwlib.run_vmm([args.vmm] + kernel + ["--disk", spec], timeout=10)
                run.show()
                c.check(run.status == 1, f"second vmm with --disk {os.path.basename(spec)}: "
                        f"status 1 ({fwlib.describe_status(run.status)})")
                c.check(re.search(r"^vmm: .*disk\.img.*(?i:locked|in use)", run.err, re.M),
                        "its error names the image and says it is in use")
        finally:
            first.kill()
        run = fwlib.run_vmm([args.vmm, "--kernel", payload(args, "hello"), "--disk", img])
        c.check(run.status == 0 and HELLO_LINE in run.out,
                f"after the first vmm ended, the disk opens ({fwlib.describe_status(run.status)})")


def echo_check(c, run):
    run.show()
    c.check(not run.timed_out, "vmm ended by itself")
    c.check(run.status == 0, f"guest reset after the newline: {fwlib.describe_status(run.status)}")
    out = run.out
    c.check("vmm-firmware: echo: ready" in out, "guest printed its ready line")
    c.check(re.search(r"^PING$", out, re.M) is not None,
            "stdout has 'PING' (input reached the guest)")
    c.check("vmm-firmware: echo: done" in out, "guest saw the newline")


def echo_pipe(args, c):
    """`printf 'ping\\n' | vmm ...`: input sent at once, then EOF, before the guest reads."""
    echo_check(c, fwlib.run_vmm([args.vmm, "--kernel", payload(args, "echo")],
                                input_data=b"ping\n"))


def echo_pipe_after_ready(args, c):
    """Input sent once the guest polls the UART; stdin stays open until vmm ends."""
    proc = fwlib.Interactive([args.vmm, "--kernel", payload(args, "echo")])
    try:
        if c.check(proc.wait_for_output(r"^vmm-firmware: echo: ready", 20),
                   "guest printed its ready line before any input"):
            proc.write(b"pi")
            proc.pump(0.2)
            proc.write(b"ng\n")
        run = proc.wait(fwlib.RUN_TIMEOUT)
    finally:
        proc.kill()
    echo_check(c, run)


SCENARIOS = {f.__name__: f for f in (
    hello, hello_cpus2, elf64_boot, elf64_boot_noinitrd, elf64_boot_highmem, pvh_boot,
    pvh_boot_noinitrd, pvh_boot_highmem, dispatch, dispatch_without_device, debug_exit_off,
    triple_fault, first_write, sigterm, sigint, echo_pipe, echo_pipe_after_ready, disk_lock)}


def main():
    args = fwlib.parse_args(lambda p: p.add_argument("scenario", choices=sorted(SCENARIOS)))
    fwlib.require_file(args.vmm, "vmm")
    fwlib.require_kvm()
    c = fwlib.Checker(args.scenario)
    SCENARIOS[args.scenario](args, c)
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
