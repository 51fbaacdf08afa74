"""Times and durations in words, the one way every screen shows them: the
admin, the CLI and the dashboard alike.

- ``duration(seconds)``: ``0.4s``, ``12.0s``, ``2m 30s``, ``1h 5m``, ``2d 3h``;
- ``relative(when, now)``: ``3m ago``, ``in 2h 5m``, ``just now``.

The predictions API keeps its own ``human_duration`` (``1m 25s``, part of its
published response shape).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone


def _compact(span: float) -> str:
    """A non-negative span as at most two units, from whole seconds up."""
    whole = int(span)
    if whole < 60:
        return f"{whole}s"
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m {secs}s" if secs else f"{minutes}m"


def duration(seconds: float | timedelta | None, *, empty: str = "-") -> str:
    """A run's length: tenths of a second under a minute, then two units."""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    if seconds is None:
        return empty
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f}s"
    return _compact(round(seconds))


def relative(value: datetime | None, now: datetime | None = None, *, empty: str = "-") -> str:
    """``3m ago`` / ``in 2h 5m`` / ``just now`` (within a second)."""
    if value is None:
        return empty
    now = now or timezone.now()
    seconds = (value - now).total_seconds()
    if abs(seconds) < 1:
        return "just now"
    text = _compact(abs(seconds))
    return f"in {text}" if seconds > 0 else f"{text} ago"
