"""``python -m jobsite.respawn -- CMD ...``: run CMD and start it again when it
dies, for `make run`'s worker and beat.

honcho (runstack) stops the whole stack when one of its processes exits, so a
worker killed by the OOM killer or a broker outage would take web, beat and
Redis down with it. Under this wrapper a crashed CMD is restarted after a
backoff (1 s, doubling to 30 s, back to 1 s after a minute of uptime); a clean
exit (status 0) or a SIGTERM/SIGINT sent to the wrapper ends it, passing the
signal on and returning CMD's status. Production supervisors (compose
``restart:``, systemd ``Restart=always``) do the same for their services.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

MIN_BACKOFF, MAX_BACKOFF, STABLE_SECONDS = 1.0, 30.0, 60.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def supervise(argv: list[str], *, min_backoff: float = MIN_BACKOFF, max_backoff: float = MAX_BACKOFF) -> int:
    stopping: list[int] = []
    child: subprocess.Popen | None = None

    def forward(signum, frame):
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    backoff = min_backoff
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv, preexec_fn=_die_with_parent)
        code = child.wait()
        if stopping or code == 0:
            return code
        if time.monotonic() - started >= STABLE_SECONDS:
            backoff = min_backoff
        print(f"respawn: {argv[0]} exited with status {code}; starting it again in {backoff:g} s",
              file=sys.stderr, flush=True)
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not stopping:
            time.sleep(0.05)
        if stopping:
            return code
        backoff = min(backoff * 2, max_backoff)


def main(args: list[str]) -> int:
    if "--" in args:
        args = args[args.index("--") + 1:]
    if not args:
        print("usage: python -m jobsite.respawn -- CMD [ARG ...]", file=sys.stderr)
        return 2
    return supervise(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
