"""What every app's admin shows the same way: status badges, times with
seconds and zone, durations, escaped text blocks, links to change pages, and
pages that reload themselves while something on them is still going.

No app's model is known here: a badge takes its colours as data (a mapping
from status to one of the ``Palette`` colours), kept by the app that owns the
statuses.
"""
from __future__ import annotations

import functools
import html
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from jobsite import humanize


class Palette:
    """The admin's badge colours: green ok, red bad, amber waiting, blue busy."""

    OK = "#2e7d32"
    BAD = "#c62828"
    WAITING = "#f9a825"
    BUSY = "#1565c0"
    LATE = "#ef6c00"
    BROKEN = "#ad1457"
    OFF = "#616161"
    IDLE = "#9e9e9e"
    MISSED = "#8d6e63"
    OTHER = "#607d8b"


def badge(value: str, label: str | None = None, *, colours: Mapping[str, str]):
    """``value`` as a coloured pill (``colours[value]``, else ``Palette.OTHER``),
    with the CSS class ``ops-badge-<value>``."""
    if not value:
        return "-"
    colour = colours.get(value, Palette.OTHER)
    # format_html's text, built as plain text: a list draws a badge or two a row
    return mark_safe(  # noqa: S308 (each part escaped)
        f'<span class="ops-badge ops-badge-{html_text(value)}" style="background:{html_text(colour)};color:#fff;'
        f'padding:2px 8px;border-radius:10px;font-size:11px;font-weight:600;white-space:nowrap">'
        f'{html_text(label or value)}</span>')


def html_text(value) -> str:
    """``conditional_escape(value)`` as a plain ``str``: safe text as it is, the
    rest escaped (without the lazy-string checks Django's escape makes on every call)."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


#: Django date-format characters with a strftime twin giving the same text
#: (numbers, and the zone's abbreviation: DateFormat.T is ``tzinfo.tzname``).
_STRFTIME = {"Y": "%Y", "m": "%m", "d": "%d", "H": "%H", "i": "%M", "s": "%S", "T": "%Z", "y": "%y"}


@functools.lru_cache(maxsize=64)
def strftime_pattern(django_format: str) -> str | None:
    """``django_format`` (e.g. "Y-m-d H:i:s T") as a strftime pattern giving
    the same text, or None when it uses a character without a twin (then
    Django formats it)."""
    out, escaped = [], False
    for char in django_format:
        if escaped:
            out.append("%%" if char == "%" else char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in _STRFTIME:
            out.append(_STRFTIME[char])
        elif char.isalpha():
            return None
        else:
            out.append("%%" if char == "%" else char)
    return "".join(out)


def format_time(value: datetime, django_format: str) -> str:
    """``formats.date_format(value, django_format)`` (a format name such as
    "DATETIME_FORMAT", or a format): the same text, through strftime when the
    format allows (a list shows hundreds of times: a few µs each instead of ~30)."""
    resolved = formats.get_format(django_format)  # a format name, else the format itself
    pattern = strftime_pattern(resolved)
    if pattern is None or (value.tzinfo is None and "%Z" in pattern):
        return formats.date_format(value, resolved)
    return value.strftime(pattern)


def time_formatter(*, tz=None) -> Callable[[datetime | None], str]:
    """``when`` with the format and the zone looked up once: for a page that
    shows many times (a strip of 1,000 runs). Same text as ``when``."""
    zone = tz or timezone.get_current_timezone()
    resolved = formats.get_format("DATETIME_FORMAT")
    pattern = strftime_pattern(resolved)
    if pattern is None:
        return lambda value: "-" if value is None else formats.date_format(timezone.localtime(value, zone), resolved)
    return lambda value: "-" if value is None else timezone.localtime(value, zone).strftime(pattern)


def when(value: datetime | None, *, tz=None) -> str:
    """A time as the admin shows times: seconds and time zone (jobsite/formats)."""
    if value is None:
        return "-"
    return format_time(timezone.localtime(value, tz), "DATETIME_FORMAT")


def when_stacked(value: datetime | None):
    """A time for a narrow list column: the date, and below it the time with
    seconds and zone."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html('<span class="ops-nowrap">{}</span><br><span class="ops-nowrap">{}</span>',
                       format_time(local, "DATE_FORMAT"), format_time(local, "H:i:s T"))


def human_duration(seconds: float | timedelta | None) -> str:
    """``1.0s``, ``2m 3s``, ``1h 5m``, ``2d 3h``: the one duration format (jobsite.humanize)."""
    return humanize.duration(seconds)


def relative_when(value: datetime | None, *, now: datetime | None = None):
    """A time as ``3m ago`` / ``in 2h 5m`` on one line, the exact time (seconds
    and zone) on hover and in ``datetime``: for list columns."""
    if value is None:
        return "-"
    # ids, ISO times and "3m ago" need no escaping: no format_html per cell
    return mark_safe(f'<time class="ops-when" datetime="{value.isoformat()}" title="{when(value)}">'
                     f'{humanize.relative(value, now)}</time>')


def progress_bar(percent: float | None, *, failed_percent: float | None = None, eta_seconds: float | None = None,
                 label: str | None = None):
    """A progress bar: the done part green, the failed part (``failed_percent``,
    of the whole) red, and the percentage and ETA beside it."""
    if percent is None:
        return "-"
    percent = min(100.0, max(0.0, float(percent)))
    failed = min(percent, max(0.0, float(failed_percent or 0.0)))
    text = label or f"{percent:.0f}%"
    if eta_seconds is not None and percent < 100:
        text += f" · ETA {humanize.duration(eta_seconds)}"
    return format_html(
        '<span class="ops-progress" role="progressbar" aria-valuenow="{}" aria-valuemin="0" aria-valuemax="100">'
        '<span class="ops-progress-track"><span class="ops-progress-ok" style="width:{}%"></span>'
        '<span class="ops-progress-failed" style="width:{}%"></span></span>'
        '<span class="ops-progress-text">{}</span></span>',
        f"{percent:.0f}", f"{percent - failed:.2f}", f"{failed:.2f}", text,
    )


def admin_change_url(obj) -> str | None:
    """The admin change page of ``obj``; None when its model has no admin."""
    try:
        return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None


def pre_block(text: str, *, empty: str = "-"):
    """Multi-line text (a traceback, a log) as an escaped, scrollable block."""
    if not text:
        return empty
    return format_html('<pre class="ops-pre">{}</pre>', text)


def json_block(value):
    if value in (None, {}, []):
        return "-"
    return pre_block(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def refreshing(response, active: bool):
    """Make a list or page reload itself while it shows something queued or running."""
    if active and hasattr(response, "context_data") and response.context_data is not None:
        response.context_data["auto_refresh_seconds"] = settings.ADMIN_REFRESH_SECONDS
    return response


class OpsMedia:
    """The console's look (badges, text blocks, buttons) and its self-reload."""

    css = {"all": ["jobsite/admin/ops.css"]}
    js = ["jobsite/admin/autorefresh.js"]
