"""What the benchmark scripts print and how they measure it: percentiles and
summaries, verdicts, section headers, a cProfile on request, CPU seconds of a
process tree or of the PostgreSQL server, and the machine a run was on.
Nothing here imports Django or the project (``_common.BenchEnv`` sets the
environment up first)."""
from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from pathlib import Path

# ---------------------------------------------------------------------------
# Statistics and printing
# ---------------------------------------------------------------------------
def percentile(values, pct: float) -> float:
    """Nearest-rank percentile (pct in 0-100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = max(0, min(len(ordered) - 1, math.ceil(pct / 100.0 * len(ordered)) - 1))
    return ordered[index]


def summary_ms(values_seconds) -> dict:
    """p50/p95/p99/max/mean in milliseconds of a list of durations in seconds."""
    values = [v * 1000.0 for v in values_seconds]
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
        "mean": sum(values) / len(values) if values else float("nan"),
    }


def fmt_summary(label: str, s: dict) -> str:
    return (f"{label:<46} n={s['n']:<4} p50={s['p50']:8.1f} ms  p95={s['p95']:8.1f} ms  "
            f"p99={s['p99']:8.1f} ms  max={s['max']:8.1f} ms  mean={s['mean']:8.1f} ms")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def profile_if_asked(call, *, sort: str = "cumulative", top: int = 30) -> None:
    """With ``BENCH_PROFILE=1``: ``call()`` once more under cProfile, and the
    ``top`` functions by ``sort`` ("cumulative", or "tottime": own time)."""
    if not os.environ.get("BENCH_PROFILE"):
        return
    import cProfile
    import pstats

    profile = cProfile.Profile()
    profile.enable()
    call()
    profile.disable()
    pstats.Stats(profile).sort_stats(sort).print_stats(top)


def header(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def _stat_cpu_seconds(stat: str) -> float:
    """User + system CPU seconds in the text of a /proc/<pid>/stat."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (Linux
    /proc): what a piece of work cost, whatever else the machine was doing."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            total += _stat_cpu_seconds(Path(f"/proc/{current}/stat").read_text())
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(int(child) for child in children)
    return total


def postgres_server_cpu_seconds() -> float:
    """User + system CPU seconds of every PostgreSQL server process on this
    machine (Linux /proc; 0 when there is none): the database's share of a
    piece of work, when the server runs beside the benchmark."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if text[text.find("(") + 1:text.rfind(")")].startswith(("postgres", "postmaster")):
            total += _stat_cpu_seconds(text)
    return total


# ---------------------------------------------------------------------------
# Machine description (for docs/benchmarks.md)
# ---------------------------------------------------------------------------
def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""


def machine_info(redis_url: str | None = None) -> dict:
    """CPU, memory, Python, database and Redis versions. Call after django.setup()."""
    info = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": _cmd(["nproc"]),
        "cpu": "",
        "memory": "",
        "python": platform.python_version(),
        "os": platform.platform(),
        # Other work on the machine skews every figure: recorded so a reader can tell.
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    for line in _cmd(["lscpu"]).splitlines():
        if line.startswith("Model name"):
            info["cpu"] = line.split(":", 1)[1].strip()
    for line in _cmd(["free", "-h"]).splitlines():
        if line.startswith("Mem:"):
            info["memory"] = line.split()[1]
    try:
        from django.db import connection

        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("select sqlite_version()")
                info["database"] = f"SQLite {cursor.fetchone()[0]}"
            elif connection.vendor == "postgresql":
                cursor.execute("show server_version")
                info["database"] = f"PostgreSQL {cursor.fetchone()[0]}"
            else:
                info["database"] = connection.vendor
    except Exception as exc:  # informative only
        info["database"] = f"? ({exc})"
    if redis_url:
        try:
            import redis

            info["redis"] = "Redis " + redis.Redis.from_url(redis_url).info("server")["redis_version"]
        except Exception as exc:
            info["redis"] = f"? ({exc})"
    try:
        from importlib.metadata import version

        info["packages"] = ", ".join(
            f"{name} {version(name)}" for name in ("Django", "celery", "django-celery-beat", "djangorestframework", "gunicorn")
        )
    except Exception:
        pass
    return info


def print_machine(info: dict) -> None:
    header("machine")
    for key, value in info.items():
        print(f"{key:>10}: {value}")
