"""Charts for the admin as inline SVG written here: no JavaScript, no CDN,
no chart package (docs/architecture.md, "The admin's look", says why not
pygal: its render alone took longer than a page may).

``stacked_bars`` draws counts per bucket (runs per hour by outcome): each
bucket a link to the list behind it, its counts in a native tooltip
(``<title>``), the axis with a few round numbers. ``lines`` draws values
per point (a job's run durations with their p50 and p95): the same axis, a
tooltip on each dot, a legend below. Both style themselves (presentation
attributes), so they need no stylesheet of the page they are on.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    values: Sequence[int]


def nice_step(value: float) -> int:
    """The smallest of 1, 2, 5 × 10^k at or above ``value`` (at least 1): the
    axis's step, so that its labels are round whole numbers."""
    if value <= 1:
        return 1
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * 10 ** exponent >= value:
            return int(step * 10 ** exponent)
    return int(10 ** (exponent + 1))


def _number(value: float) -> str:
    return f"{value / 1000:g}k" if value >= 10_000 else f"{value:g}"


def stacked_bars(*, labels: Sequence[str], series: Sequence[Series], tick_labels: dict[int, str],
                 links: Sequence[str] | None = None, title: str, width: int = 640, height: int = 190) -> SafeString:
    """Bars of ``series`` stacked per bucket (bottom to top in order).
    ``labels`` name each bucket in its tooltip, ``tick_labels`` the buckets
    the x axis labels (index -> text), ``links`` the URL of each bucket."""
    count = len(labels)
    left, right, top, bottom = 40, 6, 8, 20
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(count)]
    ceiling = 4 * nice_step(max(totals, default=0) / 4)  # four steps up the axis
    slot = plot_w / max(count, 1)
    gap = min(2.0, slot * 0.2)
    parts = [f'<svg class="ops-svg-chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for step in range(5):  # y grid and labels: 0, ¼, ½, ¾, 1 of the ceiling
        value = ceiling * step / 4
        y = top + plot_h - plot_h * step / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="ops-grid"/>'
                     f'<text x="{left - 6}" y="{y + 3.5:.1f}" class="ops-axis" text-anchor="end">{_number(value)}</text>')
    for i in range(count):
        x = left + i * slot + gap / 2
        bar_w = max(slot - gap, 0.5)
        y = top + plot_h
        rects = []
        for s in series:
            value = s.values[i]
            if not value:
                continue
            h = plot_h * value / ceiling
            y -= h
            rects.append(f'<rect x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" fill="{s.colour}"/>')
        tip = ", ".join(f"{s.values[i]} {s.label.lower()}" for s in series if s.values[i]) or "no runs"
        hit = (f'<rect x="{left + i * slot:.2f}" y="{top}" width="{slot:.2f}" height="{plot_h}" class="ops-hit"/>')
        group = f'<g class="ops-bar"><title>{escape(labels[i])}: {escape(tip)}</title>{hit}{"".join(rects)}</g>'
        if links and links[i]:
            group = f'<a href="{escape(links[i])}">{group}</a>'
        parts.append(group)
        if i in tick_labels:
            parts.append(f'<text x="{left + (i + 0.5) * slot:.1f}" y="{height - 5}" class="ops-axis" '
                         f'text-anchor="middle">{escape(tick_labels[i])}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" class="ops-baseline"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    values: Sequence[float]
    dash: str = ""  # an SVG stroke-dasharray, e.g. "6,4"; empty: solid
    dots: bool = True  # a dot (with its tooltip) on each value


def nice_ceiling(value: float) -> float:
    """The top of an axis of four equal steps of 1, 2 or 5 × 10^k (k may be
    negative: a chart of durations under a second) at or above ``value``."""
    if value <= 0:
        return 1.0
    quarter = value / 4
    exponent = math.floor(math.log10(quarter))
    for step in (1, 2, 5, 10):
        if step * 10.0 ** exponent >= quarter:
            return 4 * step * 10.0 ** exponent
    return 4 * 10.0 ** (exponent + 1)


def lines(*, labels: Sequence[str], series: Sequence[Line], tick_labels: dict[int, str], title: str,
          value_text=lambda value: f"{value:g}", unit: str = "", width: int = 760, height: int = 230) -> SafeString:
    """``series`` as lines over the points ``labels`` (each dot's tooltip:
    ``labels[i]: value_text(value)``), with ``tick_labels`` under the x axis
    (index -> text), the y axis in ``unit`` and a legend below."""
    count = len(labels)
    left, right, top, bottom, legend = (60 if unit else 46), 10, 10, 20, 22  # room for "0.0015" beside the unit
    plot_w, plot_h = width - left - right, height - top - bottom - legend
    ceiling = nice_ceiling(max((v for s in series for v in s.values), default=0.0))
    step_x = plot_w / max(count - 1, 1)
    axis = 'font-size="10" fill="#757575" font-family="system-ui, sans-serif"'

    def xy(i: int, value: float) -> tuple[float, float]:
        return left + i * step_x, top + plot_h - plot_h * min(value, ceiling) / ceiling

    parts = [f'<svg class="ops-svg-chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg" style="display:block;width:100%;height:auto">']
    for step in range(5):
        value, y = ceiling * step / 4, top + plot_h - plot_h * step / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ececec"/>'
                     f'<text x="{left - 6}" y="{y + 3.5:.1f}" text-anchor="end" {axis}>{value:g}</text>')
    if unit:
        parts.append(f'<text x="9" y="{top + plot_h / 2:.1f}" text-anchor="middle" {axis} '
                     f'transform="rotate(-90 9 {top + plot_h / 2:.1f})">{escape(unit)}</text>')
    for i, text in tick_labels.items():
        parts.append(f'<text x="{left + i * step_x:.1f}" y="{top + plot_h + 14}" text-anchor="middle" {axis}>'
                     f'{escape(text)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#9e9e9e"/>')
    for s in series:
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(s.values)))
        dash = f' stroke-dasharray="{escape(s.dash)}"' if s.dash else ""
        parts.append(f'<g class="ops-line"><title>{escape(s.label)}</title><polyline points="{points}" fill="none" '
                     f'stroke="{escape(s.colour)}" stroke-width="1.5"{dash}/></g>')
        if s.dots:
            for i, value in enumerate(s.values):
                x, y = xy(i, value)
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{escape(s.colour)}">'
                             f'<title>{escape(labels[i])}: {escape(value_text(value))}</title></circle>')
    x = left
    for s in series:  # the legend: a swatch of each line and its label
        dash = f' stroke-dasharray="{escape(s.dash)}"' if s.dash else ""
        y = height - 7
        parts.append(f'<line x1="{x}" x2="{x + 22}" y1="{y - 4}" y2="{y - 4}" stroke="{escape(s.colour)}" '
                     f'stroke-width="2"{dash}/><text x="{x + 28}" y="{y}" font-size="12" fill="#333" '
                     f'font-family="system-ui, sans-serif">{escape(s.label)}</text>')
        x += 40 + 7 * len(s.label)
    parts.append("</svg>")
    return mark_safe("".join(parts))
