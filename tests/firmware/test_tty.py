#!/usr/bin/env python3
"""vmm on a terminal: stdin in raw mode while the guest runs and restored on every exit path;
Ctrl-A x quits (status 0), Ctrl-A Ctrl-A sends one literal Ctrl-A, SIGTERM ends vmm (status 1).
vmm's stdin and stdout are the slave side of a pseudo-terminal that this test drives.
Exit status: 0 pass, 1 fail, 77 skip."""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fwlib  # noqa: E402

CTRL_A = b"\x01"


class Terminal:
    """vmm running on a fresh pseudo-terminal."""

    def __init__(self, argv):
        self.master, self.slave = pty.openpty()
        self.saved = termios.tcgetattr(self.slave)
        self.output = b""
        self.proc = subprocess.Popen(argv, stdin=self.slave, stdout=self.slave,
                                     stderr=subprocess.PIPE)

    def wait_for(self, pattern, timeout=20):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                return False
            try:
                self.output += os.read(self.master, 4096)
            except OSError:
                return False
        return True

    def lflag(self):
        return termios.tcgetattr(self.slave)[3]

    def is_raw(self):
        return not self.lflag() & (termios.ICANON | termios.ECHO)

    def restored(self):
        return termios.tcgetattr(self.slave) == self.saved

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


def run_case(c, argv, ready, action, expect_status, expect_output=None):
    t = Terminal(argv)
    try:
        if not c.check(t.wait_for(ready), f"guest printed {ready!r}"):
            return
        c.check(t.is_raw(), "the terminal is in raw mode (no ICANON, no ECHO) while vmm runs")
        action(t)
        if expect_output and not c.check(t.wait_for(expect_output),
                                         f"guest output matches {expect_output!r}"):
            print(f"  output was: {t.output!r}")
        status = t.wait_exit()
        c.check(status == expect_status,
                f"vmm ends with status {expect_status} ({fwlib.describe_status(status)})")
        c.check(t.restored(), "the terminal settings are restored after vmm exits")
    finally:
        t.close()


def main():
    args = fwlib.parse_args()
    problem = fwlib.kvm_problem()
    if problem:
        fwlib.skip(problem)
    c = fwlib.Checker("tty")
    idle = [args.vmm, "--kernel", args.payloads["panic_loop"], "--mem", "32M"]
    echo = [args.vmm, "--kernel", args.payloads["echo"], "--mem", "32M"]

    print("Ctrl-A x quits:")
    run_case(c, idle, rb"panic_loop: ready", lambda t: os.write(t.master, CTRL_A + b"x"), 0)
    print("SIGTERM on a terminal:")
    run_case(c, idle, rb"panic_loop: ready", lambda t: t.proc.send_signal(signal.SIGTERM), 1)
    print("typed input reaches the guest; Ctrl-A Ctrl-A is one literal Ctrl-A:")
    run_case(c, echo, rb"echo: ready",
             lambda t: os.write(t.master, b"ab" + CTRL_A + CTRL_A + b"c\r"), 0,
             expect_output=rb"AB\x01C[\r\n]+vmm-firmware: echo: done")
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
