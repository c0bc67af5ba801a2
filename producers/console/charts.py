"""The console's pictures as inline SVG drawn on the server (no chart library, no script): bars of
counts by label, and a histogram of times. Each is an ``<svg role="img">`` with a title, its numbers
written beside its bars, so a screen reader or a text browser reads the same figures. Pure.
"""
from __future__ import annotations

import datetime
from collections.abc import Sequence

from markupsafe import Markup, escape

#: The drawing's width in SVG units (it scales to the page: ``width="100%"``).
WIDTH = 560
ROW = 24
LABEL = 200


def bars(title: str, items: Sequence[tuple[str, int, str | None]], *, unit: str = "") -> Markup:
    """A horizontal bar a ``(label, count, link or None)``: a label with a link is a link (to its rows)."""
    if not items:
        return Markup("")
    top = max((n for _, n, _ in items), default=0) or 1
    room = WIDTH - LABEL - 70
    height = ROW * len(items) + 8
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
             f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for index, (label, count, link) in enumerate(items):
        y = 4 + index * ROW
        length = max(round(room * count / top), 1 if count else 0)
        text = f'<text x="{LABEL - 6}" y="{y + 16}" text-anchor="end">{escape(_short(label))}</text>'
        if link:
            text = f'<a href="{escape(link)}">{text}</a>'
        parts.append(text)
        parts.append(f'<rect x="{LABEL}" y="{y + 4}" width="{length}" height="{ROW - 8}" class="bar"/>')
        parts.append(f'<text x="{LABEL + length + 6}" y="{y + 16}">{count:,}{escape(unit)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def histogram(title: str, low_ms: int, high_ms: int, counts: Sequence[int]) -> Markup:
    """Counts of equal spans of time from ``low_ms`` to ``high_ms``, with the span's ends written under it
    (an import whose events all sit at one instant is one bar; in 1970, the dates say so)."""
    if not counts:
        return Markup("")
    height, base = 162, 120
    top = max(counts) or 1
    step = WIDTH / len(counts)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
             f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for index, count in enumerate(counts):
        tall = round((base - 10) * count / top)
        if count:
            parts.append(f'<rect x="{index * step + 1:.1f}" y="{base - tall}" width="{max(step - 2, 1):.1f}" '
                         f'height="{tall}" class="bar"><title>{count:,}</title></rect>')
    parts.append(f'<line x1="0" y1="{base}" x2="{WIDTH}" y2="{base}" class="axis"/>')
    parts.append(f'<text x="0" y="{base + 18}">{escape(when(low_ms))}</text>')
    if high_ms != low_ms:
        parts.append(f'<text x="{WIDTH}" y="{base + 18}" text-anchor="end">{escape(when(high_ms))}</text>')
    parts.append(f'<text x="0" y="{base + 26 + 10}" class="note">{escape(span_note(low_ms, high_ms, top))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def when(ms: int) -> str:
    """A time as the console writes it: UTC, to the second."""
    try:
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"


def span_note(low_ms: int, high_ms: int, top: int) -> str:
    """What the histogram's span says at a glance (one instant; the epoch)."""
    notes = []
    if low_ms == high_ms:
        notes.append("every event at the same instant")
    if low_ms < 86_400_000 * 366:
        notes.append("events in 1970: times read as 0 or as seconds where milliseconds were meant?")
    span = (high_ms - low_ms) / 1000
    notes.append(f"span {span / 86_400:,.1f} days" if span >= 86_400 else f"span {span:,.0f} s")
    notes.append(f"tallest bar {top:,}")
    return "; ".join(notes)


def _short(label: str, most: int = 28) -> str:
    return label if len(label) <= most else label[:most - 1] + "\u2026"
