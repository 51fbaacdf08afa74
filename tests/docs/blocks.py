"""The shell blocks of the README and the documentation, as the doc tests run them.

Conventions the pages follow (docs/index.md, "About these pages", says the same
to a reader):

- Every fenced block in ``sh``, ``bash`` or ``shell`` is run, in page order, in one
  bash per page (``set -euo pipefail``), against a live stack.
- A block that cannot run in a test (a production deploy, docker, a server that
  runs until Ctrl-C) is preceded by ``<!-- not-run: why -->``; the test lists it
  with its reason.
- ``# → text`` after a command (or on its own line, continued by ``#   `` lines)
  shows what the block prints. The test checks its fragments: each line split at
  ``…`` / ``...``, each piece found in the block's output, whitespace ignored.
  A leading HTTP status (``# → 201 {...}``) is the status a request of the block
  may answer: any 4xx the block's requests get must be one shown so, and a 5xx
  always fails.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SHELL_LANGUAGES = {"sh", "bash", "shell"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<why>.+?)\s*-->", re.S)
ARROW = re.compile(r"#\s*→\s?(?P<text>.*)$")
CONTINUATION = re.compile(r"^\s*#\s{2,}(?P<text>\S.*)$")
STATUS = re.compile(r"^\s*(?P<status>[1-5]\d\d)\b")
ELLIPSIS = re.compile(r"…|\.\.\.")
EDGES_LEFT = " ,{["
EDGES_RIGHT = " ,]}"


@dataclass
class Block:
    path: str
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    not_run: str | None = None  # the reason, for blocks marked <!-- not-run: ... -->
    expected: list[str] = field(default_factory=list)  # output fragments (# → ...)
    statuses: set[int] = field(default_factory=set)  # HTTP statuses the block shows

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def shell_blocks(path: Path, root: Path | None = None) -> list[Block]:
    """Every shell block of a Markdown file, in order, with its marks."""
    text = path.read_text(encoding="utf-8")
    name = str(path.relative_to(root)) if root else str(path)
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        info = match["info"].strip()
        language = info.split()[0].strip("{}.").lower() if info else ""
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            body.append(lines[end][indent:] if lines[end][:indent].strip() == "" else lines[end])
            end += 1
        if language in SHELL_LANGUAGES:
            code = "\n".join(body) + "\n"
            block = Block(path=name, line=index + 1, language=language, code=code,
                          not_run=_not_run_reason(lines, index))
            block.expected, block.statuses = output_fragments(code)
            blocks.append(block)
        index = end + 1
    return blocks


def _not_run_reason(lines: list[str], fence_index: int) -> str | None:
    """The reason of a ``<!-- not-run: ... -->`` comment just before the fence
    (blank lines between are allowed; the comment may span lines)."""
    above = fence_index - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above < 0 or not lines[above].rstrip().endswith("-->"):
        return None
    start = above
    while start >= 0 and "<!--" not in lines[start]:
        start -= 1
    match = NOT_RUN.search("\n".join(lines[max(start, 0):above + 1]))
    return " ".join(match["why"].split()) if match else None


def output_fragments(code: str) -> tuple[list[str], set[int]]:
    """(fragments the block's output must contain, HTTP statuses it shows)."""
    texts: list[str] = []
    current: list[str] | None = None
    for line in code.splitlines():
        arrow = ARROW.search(line) if "→" in line else None
        if arrow:
            current = [arrow["text"]]
            texts.append(current)
            continue
        continuation = CONTINUATION.match(line)
        if current is not None and continuation:
            current.append(continuation["text"])
        else:
            current = None
    fragments: list[str] = []
    statuses: set[int] = set()
    for parts in texts:
        status = STATUS.match(parts[0])
        if status:
            statuses.add(int(status["status"]))
            parts = [parts[0][status.end():], *parts[1:]]
        for text in parts:  # each line on its own: a continued output is several fragments
            for piece in ELLIPSIS.split(text):
                piece = squash(piece).lstrip(EDGES_LEFT).rstrip(EDGES_RIGHT)
                if piece:
                    fragments.append(piece)
    return fragments, statuses


def squash(text: str) -> str:
    """Text without whitespace: JSON printed compactly or indented, tables
    aligned with any number of spaces, compare equal."""
    return re.sub(r"\s+", "", text)
