"""Charts for the admin as inline SVG written here: no JavaScript, no CDN,
no chart package (docs/architecture.md, "The admin's look", says why not
pygal: its render alone took longer than a page may).

``stacked_bars`` draws counts per bucket (runs per hour by outcome): each
bucket a link to the list behind it, its counts in a native tooltip
(``<title>``), the axis with a few round numbers.
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
