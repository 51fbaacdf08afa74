"""A live local stack for the doc tests, and a bash that runs a page against it.

The stack is what `make run` starts (``manage.py runstack``), on free ports and a
var dir of its own (tests/e2e/test_runstack.py's helper). A page runs in a
"clone": a temporary folder that links every entry of the project but ``var/``,
which links the stack's var dir — so ``cat var/admin_password`` and relative
paths such as ``predictions/samples/...`` work as written, and files a page
writes (``-o predictions.csv``) land in the temporary folder, not the project.

The pages use the documented addresses; the test points them at its own ports:
``127.0.0.1:8000`` / ``localhost:8000`` (the web server), ``8765`` (the stand-in
external API) and ``9999`` (a webhook receiver) are rewritten before a page runs.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from jobsite.runtime import free_port, port_open
from tests.docs.blocks import Block, squash
from tests.docs.pages import settings_environment_variables
from tests.e2e.test_runstack import _get_json

ROOT = Path(__file__).resolve().parents[2]
NOT_LINKED = {".git", "var", "site", ".pytest_cache", "__pycache__"}
# The documented ports of the servers a page starts itself (the stand-in external API, a
# webhook receiver): each run gets free ones instead.
SIDE_PORTS = (8765, 9999)
# Limits for a loaded machine (three stacks start at once in `make test`; a page of
# 35 commands took 240 s at a load average of 20): hangs end, slowness does not fail.
STACK_START_SECONDS = 180
PAGE_PRELUDE = r"""set -euo pipefail
# Each request also reports its HTTP status on stderr, for the test to check. curl
# writes that line in pieces, and a block's own `tee /dev/stderr` could land between
# them: so what curl prints on stderr is held and written at once (a line is one write;
# what the tee writes may still come right before it: see request_statuses).
curl() {
  local err status=0
  { err=$(command curl -w '%{stderr}@@http %{http_code}\n' "$@" 2>&1 >&3 3>&-) || status=$?; } 3>&1
  [ -z "$err" ] || printf '\n%s\n' "$err" >&2
  return $status
}
"""
_STATUS = re.compile(r"@@http (\d{3})\n?")


def request_statuses(err: str) -> tuple[list[int], str]:
    """The HTTP statuses a block's requests reported on its stderr, and that
    stderr without them. A status is looked for anywhere on a line: a body a
    block copies to stderr (``tee /dev/stderr``) can end, without a newline,
    right before one."""
    return [int(code) for code in _STATUS.findall(err)], _STATUS.sub("", err)


@dataclass
class Stack:
    process: subprocess.Popen
    var_dir: Path
    log: Path
    web_port: int
    redis_port: int
    token: str
    clone: Path

    def rewrite(self, text: str, ports: dict[int, int]) -> str:
        text = text.replace("127.0.0.1:8000", f"127.0.0.1:{self.web_port}")
        text = text.replace("localhost:8000", f"localhost:{self.web_port}")
        for documented, free in ports.items():
            text = re.sub(rf"\b{documented}\b", str(free), text)
        return text

    def env(self) -> dict[str, str]:
        env = fresh_clone_environment()
        env.update(JOBSITE_VAR_DIR=str(self.var_dir), EMBEDDED_REDIS_PORT=str(self.redis_port), TOKEN=self.token,
                   NO_COLOR="1", COLUMNS="100", PYTHONUNBUFFERED="1")
        return env


def fresh_clone_environment() -> dict[str, str]:
    """This process's environment without anything that configures jobsite: no setting
    the code reads (tests/plugin.py sets several for the suite) and no Django or venv
    variables, so the stack and the pages see the defaults of a fresh clone."""
    dropped = settings_environment_variables() | {
        "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT", "JOBSITE_TEST_SESSION", "FLOWER_BASIC_AUTH", "COLUMNS", "LINES",
        "FORCE_COLOR", "NO_COLOR",
    }
    return {key: value for key, value in os.environ.items() if key not in dropped}


def start_stack(tmp_path: Path) -> Stack:
    """``manage.py runstack`` as `make run` starts it, on free ports and a var dir of its
    own (like tests/e2e/test_runstack.py's ``_start_stack``, with a fresh clone's settings)."""
    var_dir = tmp_path / "var"
    ports = {"web": free_port(), "redis": free_port()}
    env = fresh_clone_environment()
    env.update(JOBSITE_VAR_DIR=str(var_dir), EMBEDDED_REDIS_PORT=str(ports["redis"]), PYTHONUNBUFFERED="1",
               HEALTH_DISK_MIN_FREE_MB="1")  # (/health's disk check: a test machine's disk may be fuller)
    log = tmp_path / "runstack.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--port", str(ports["web"]), "--concurrency", "2"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    token, deadline = None, time.monotonic() + STACK_START_SECONDS
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-4000:]
            if token is None:
                match = re.search(r"export TOKEN=(\S+)", log.read_text())
                token = match.group(1) if match else None
            elif port_open(ports["web"]):
                status, report = _get_json(f"http://127.0.0.1:{ports['web']}/health", token)
                if status == 200 and report["checks"]["workers"]["ok"]:
                    break
            time.sleep(0.3)
        else:
            raise AssertionError(f"the stack did not become healthy in {STACK_START_SECONDS} s:\n"
                                 + log.read_text()[-4000:])
    except BaseException:
        stop_stack_process(process)
        raise
    clone = tmp_path / "clone"
    clone.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in NOT_LINKED:
            (clone / entry.name).symlink_to(entry)
    (clone / "var").symlink_to(var_dir)
    return Stack(process=process, var_dir=var_dir, log=log, web_port=ports["web"], redis_port=ports["redis"],
                 token=token, clone=clone)


class ProcessStack:
    """The live stack of this pytest process: started by the first page that needs
    it, kept for the pages that follow it in this process, stopped as soon as the
    process moves on to a test that does not need it (``stop``: the test's
    fixture calls it) or the session ends. Pages are spread over the xdist
    processes (tests/plugin.py): each process runs its own stack, none shares one."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.live: Stack | None = None
        self.starts = 0

    def get(self) -> Stack:
        if self.live is not None and self.live.process.poll() is not None:
            # died under the previous page: this page fails with its log, the next starts another
            dead, self.live = self.live, None
            raise AssertionError("the stack stopped by itself:\n" + dead.log.read_text()[-4000:])
        if self.live is None:
            self.live = start_stack(self.tmp_path_factory.mktemp("docs-stack"))
            self.starts += 1
        return self.live

    def stop(self) -> None:
        """Stop the stack (Ctrl-C, as a reader would) and check it stopped cleanly."""
        live, self.live = self.live, None
        if live is not None:
            returncode = stop_stack_process(live.process)
            assert returncode == 0, live.log.read_text()[-4000:]


def stop_stack_process(process: subprocess.Popen) -> int:
    os.killpg(process.pid, signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


@dataclass
class BlockRun:
    block: Block
    output: str
    statuses: list[int]
    expected: list[str]  # the block's output fragments, with the test's ports
    started: float = 0.0  # (bash's clock)
    seconds: float = 0.0


@dataclass
class PageRun:
    returncode: int
    blocks: list[BlockRun]
    stdout: str
    stderr: str
    seconds: float

    def failed_block(self) -> Block | None:
        return self.blocks[-1].block if self.returncode != 0 and self.blocks else None


def run_page(stack: Stack, blocks: list[Block], *, timeout: float = 480) -> PageRun:
    """Run a page's runnable blocks in order in one bash; split what they print by block."""
    ports = {port: free_port() for port in SIDE_PORTS}
    script = [PAGE_PRELUDE]
    for number, block in enumerate(blocks):
        # (a newline first: curl's output rarely ends with one)
        script.append(f"printf '\\n@@block {number}\\n'; printf '\\n@@block {number}\\n@@at %s\\n' \"$EPOCHREALTIME\" >&2\n")
        script.append(stack.rewrite(block.code, ports))
    started = time.monotonic()
    process = subprocess.Popen(
        ["bash", "-c", "".join(script)], cwd=stack.clone, env=stack.env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        stderr = re.sub(r"(@@http 000\n)+", "@@http 000 (repeated)\n", stderr) + f"\n(timed out after {timeout} s)"
        process.returncode = process.returncode or -9
    finally:
        _stop_group(process.pid)
    seconds, ended = time.monotonic() - started, time.time()
    out_parts, err_parts = _split(stdout), _split(stderr)
    runs = []
    for number in sorted(set(out_parts) | set(err_parts)):
        err = err_parts.get(number, "")
        statuses, err = request_statuses(err)
        at = re.search(r"^@@at (\S+)$", err, re.M)
        text = out_parts.get(number, "") + "\n" + re.sub(r"^@@at \S+\n?", "", err, flags=re.M)
        runs.append(BlockRun(block=blocks[number], output=text, statuses=statuses,
                             expected=[stack.rewrite(fragment, ports) for fragment in blocks[number].expected],
                             started=float(at.group(1)) if at else 0.0))
    for run, following in zip(runs, runs[1:]):
        run.seconds = following.started - run.started
    if runs:
        runs[-1].seconds = max(0.0, ended - runs[-1].started)
    return PageRun(returncode=process.returncode, blocks=runs, stdout=stdout, stderr=stderr, seconds=seconds)


def _split(text: str) -> dict[int, str]:
    parts: dict[int, str] = {}
    current = None
    for line in text.splitlines(keepends=True):
        match = re.match(r"^@@block (\d+)$", line.rstrip("\n"))
        if match:
            current = int(match.group(1))
            parts[current] = ""
        elif current is not None:
            parts[current] += line
    return parts


def _stop_group(pgid: int) -> None:
    """Background servers a page started (`... &`) end with it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def problems(run: BlockRun) -> list[str]:
    """What a block's run shows that its page does not: a missing output
    fragment, a 5xx, or a 4xx the page does not show."""
    found = []
    haystack = squash(run.output)
    for fragment in run.expected:
        if squash(fragment) not in haystack:
            found.append(f"output lacks {fragment!r}")
    unshown = [status for status in run.statuses
               if status >= 500 or (status >= 400 and status not in run.block.statuses)]
    for status in dict.fromkeys(unshown):
        times = unshown.count(status)
        found.append(f"a request answered {status}" + (f" ({times} times)" if times > 1 else ""))
    return found
