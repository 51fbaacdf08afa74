"""Run a command in a real pseudo-terminal of a given width (the TTY case of
the CLI tests): what a person at a terminal sees, raw, redraws included."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from dataclasses import dataclass


@dataclass
class TerminalRun:
    returncode: int
    output: str  # raw: \r and escape sequences kept, \r\n turned into \n

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()


def interruptible() -> None:
    """``preexec_fn`` for a command a test sends Ctrl-C (SIGINT) to: the default
    disposition, whatever the test run inherited (a shell's background job, as
    CI or nohup may start the suite, ignores SIGINT, and so would the command)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_in_terminal(args: list[str], *, columns: int, env: dict, cwd, timeout: float = 60.0,
                    interrupt_after: str | None = None) -> TerminalRun:
    """Run ``args`` with stdin, stdout and stderr on a pty ``columns`` wide.
    With ``interrupt_after``, send SIGINT (Ctrl-C) once that text appears."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {key: value for key, value in env.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True,
                               preexec_fn=interruptible)
    os.close(slave)
    raw = b""
    deadline = time.monotonic() + timeout
    interrupted = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                raw += chunk
            if interrupt_after and not interrupted and interrupt_after.encode() in raw:
                process.send_signal(signal.SIGINT)
                interrupted = True
            if process.poll() is not None and not ready:
                raw += _drain(master)  # what it wrote just before it ended
                break
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
    return TerminalRun(process.returncode, raw.decode("utf-8", errors="replace").replace("\r\n", "\n"))


def _drain(master: int) -> bytes:
    rest = b""
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # closed: everything was read
            break
        if not chunk:
            break
        rest += chunk
    return rest


def visible(text: str) -> str:
    """``text`` without colour and style escape sequences."""
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
