"""Shared helpers for the guest-firmware tests: run vmm with a time limit, check /dev/kvm,
normalise console output, and report results with the meson exit codes (0 pass, 1 fail,
77 skip)."""

import argparse
import fcntl
import os
import re
import selectors
import signal
import subprocess
import sys
import time

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_SKIP = 77

KVM_GET_API_VERSION = 0xAE00
KVM_API_VERSION = 12

# Guest runs are killed after this many seconds: a hung vmm fails the test, never hangs it.
RUN_TIMEOUT = 30.0

# The kernel parameters vmm appends when the user did not set them.
DEFAULT_PARAMS = ["console=ttyS0", "panic=-1", "reboot=k"]


def parse_args(extra=None):
    """Parses --vmm PATH and --payload PATH (repeatable, named by the file name) plus whatever
    @extra(parser) adds."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--vmm", required=True)
    parser.add_argument("--payload", action="append", default=[])
    if extra:
        extra(parser)
    args = parser.parse_args()
    args.payloads = {}
    for path in args.payload:
        name = os.path.basename(path)
        if name.startswith("fw_"):
            name = name[3:]
        args.payloads[name] = path
    return args


def kvm_problem():
    """Returns None when /dev/kvm (or $VMM_KVM_DEVICE) is usable, else the reason."""
    path = "/dev/kvm"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"cannot open {path}: {e.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
    except OSError as e:
        return f"{path}: KVM_GET_API_VERSION failed: {e.strerror}"
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return f"{path}: KVM API version {version}, expected {KVM_API_VERSION}"
    return None


def normalise(data):
    """Bytes from the console as text with "\\n" line ends, whether the UART sent "\\r\\n" or
    "\\n"."""
    text = data.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def lines(data):
    return [l for l in normalise(data).split("\n") if l != ""]


def describe_status(status):
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


class Run:
    """The outcome of one vmm run."""

    def __init__(self, argv, status, stdout, stderr, elapsed, timed_out):
        self.argv = argv
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self.timed_out = timed_out

    @property
    def out(self):
        return normalise(self.stdout)

    @property
    def err(self):
        return normalise(self.stderr)

    def show(self):
        print(f"  command: {' '.join(quote(a) for a in self.argv)}")
        print(f"  result:  {describe_status(self.status)} after {self.elapsed:.2f} s"
              + (" (TIMED OUT, killed)" if self.timed_out else ""))
        for name, text in (("stdout", self.out), ("stderr", self.err)):
            if not text:
                print(f"  {name}:  (empty)")
                continue
            shown = text if len(text) < 6000 else text[:3000] + "\n...\n" + text[-3000:]
            print(f"  {name}:")
            for line in shown.rstrip("\n").split("\n"):
                print(f"    | {line}")


def quote(arg):
    arg = str(arg)
    if len(arg) > 200:
        arg = arg[:60] + f"...({len(arg)} chars)"
    if re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


def run_vmm(argv, input_data=None, timeout=RUN_TIMEOUT, env=None):
    """Runs @argv (vmm first) with stdin from @input_data (bytes, then EOF) or /dev/null, kills
    it after @timeout seconds. Returns a Run."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input_data is not None
                            else subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    timed_out = False
    try:
        out, err = proc.communicate(input=input_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        out, err = proc.communicate()
    return Run(argv, proc.returncode, out, err, time.monotonic() - start, timed_out)


class Interactive:
    """vmm running with pipes on all three streams, read incrementally."""

    def __init__(self, argv, env=None):
        self.argv = argv
        self.start = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.stdout = b""
        self.stderr = b""
        self.sel = selectors.DefaultSelector()
        for f in (self.proc.stdout, self.proc.stderr):
            os.set_blocking(f.fileno(), False)
            self.sel.register(f, selectors.EVENT_READ)

    def pump(self, timeout):
        """Reads what is available within @timeout seconds. Returns False at EOF on both."""
        if not self.sel.get_map():
            time.sleep(min(timeout, 0.05))
            return False
        for key, _ in self.sel.select(timeout):
            try:
                data = os.read(key.fileobj.fileno(), 65536)
            except BlockingIOError:
                continue
            if not data:
                self.sel.unregister(key.fileobj)
            elif key.fileobj is self.proc.stdout:
                self.stdout += data
            else:
                self.stderr += data
        return True

    def wait_for_output(self, pattern, timeout):
        """Reads stdout until @pattern (a regex on normalised text) matches or @timeout; returns
        True when it matched."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, normalise(self.stdout), re.M):
                return True
            if self.proc.poll() is not None and not self.sel.get_map():
                break
            self.pump(min(0.1, max(0.0, deadline - time.monotonic())))
        return bool(re.search(pattern, normalise(self.stdout), re.M))

    def write(self, data, close=False):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
            if close:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def wait(self, timeout):
        """Waits up to @timeout seconds for the exit, reading output meanwhile; kills vmm when it
        does not exit. Returns a Run."""
        deadline = time.monotonic() + timeout
        timed_out = False
        while self.proc.poll() is None:
            if time.monotonic() >= deadline:
                timed_out = True
                self.proc.kill()
                self.proc.wait()
                break
            self.pump(min(0.05, max(0.0, deadline - time.monotonic())))
        drain_until = time.monotonic() + 2.0
        while self.sel.get_map() and time.monotonic() < drain_until:
            self.pump(0.05)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except (OSError, BrokenPipeError):
                pass
        return Run(self.argv, self.proc.returncode, self.stdout, self.stderr,
                   time.monotonic() - self.start, timed_out)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Checker:
    """Collects named checks, prints each, and turns them into an exit status."""

    def __init__(self, name, quiet=False):
        self.name = name
        self.failures = 0
        self.count = 0
        if not quiet:
            print(f"== {name}")

    def check(self, ok, what):
        self.count += 1
        print(f"  {'PASS' if ok else 'FAIL'}: {what}")
        if not ok:
            self.failures += 1
        return ok

    def finish(self):
        if self.failures:
            print(f"{self.name}: FAILED {self.failures} of {self.count} checks")
            return EXIT_FAIL
        print(f"{self.name}: all {self.count} checks passed")
        return EXIT_PASS


def skip(reason):
    print(f"SKIP: {reason}")
    sys.exit(EXIT_SKIP)


def require_kvm():
    problem = kvm_problem()
    if problem:
        skip(f"/dev/kvm is not usable here ({problem})")


def require_file(path, what):
    if not path or not os.path.isfile(path):
        print(f"FAIL: {what} not found at {path!r} (is the build complete?)")
        sys.exit(EXIT_FAIL)
    return path


def host_memory_bytes():
    """MemTotal + SwapTotal from /proc/meminfo (what vmm compares --mem against)."""
    total = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "SwapTotal"):
                    total += int(rest.split()[0]) * 1024
    except OSError:
        return 0
    return total


def fnv1a32(data):
    h = 2166136261
    for b in data:
        h ^= b
        h = (h * 16777619) & 0xFFFFFFFF
    return h


def pattern_bytes(size, seed=0):
    """Deterministic, non-repeating-looking content for initrds."""
    block = bytes(((i * 131) ^ (i >> 8) ^ seed) & 0xFF for i in range(65536))
    reps = size // len(block) + 1
    return (block * reps)[:size]
