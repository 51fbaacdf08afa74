"""What a terminal shows of a redrawn progress line."""
from tests.jobsite.cli.terminal import visible

CLEAR_TO_END = "\x1b[K"


def redraws(output: str) -> list[str]:
    """Each redraw (``\\r`` + line + clear-to-end) of the output, as seen."""
    drawn = []
    for part in output.split("\r")[1:]:
        line = part.split("\n")[0]
        if line.endswith(CLEAR_TO_END) or CLEAR_TO_END in line:
            drawn.append(visible(line.split(CLEAR_TO_END)[0]))
    return drawn
