"""Local times in a time zone: the instant each stands for, and the ones its clocks skip or repeat.
Pure: no I/O.

Where a zone's clocks go forward (New York, 2024-03-10 02:00 to 03:00) the local times between
never happened; where they go back (2024-11-03 02:00 to 01:00) the local times between happened
twice. Python reads both silently (the first with the offset before the change, the second as
its earlier instant, PEP 495's ``fold=0``); :func:`local_seconds` refuses them instead, unless
``dst`` chooses the instant of a repeated one. A date without a clock is the day's first
instant, which exists whatever the clocks did at midnight (unless the change skipped the whole
day: Samoa, 2011-12-30).
"""
from __future__ import annotations

import math
from bisect import bisect_right
from datetime import UTC, datetime, timezone, tzinfo
from functools import lru_cache
from itertools import chain, compress, repeat
from operator import attrgetter

#: the --dst values: which instant a local time the clocks repeat (the autumn change) stands for
DST_CHOICES = ("earlier", "later")

_YEAR = attrgetter("year")
_ODD = (1).__and__
#: how often _changes samples a zone's offset: no zone's clocks change twice within four days
#: (tzdata 2024: Africa/Freetown, 1939), nor by more than a day
_SAMPLE_S = 12 * 3600
#: the instants fromtimestamp reads in any zone (2 January of year 1 to 30 December 9999)
_FIRST_S, _LAST_S = -62_135_510_400, 253_402_128_000


def check_dst(dst: str | None) -> str | None:
    """Validate a ``--dst`` value: "earlier", "later", or None (a repeated local time is refused);
    raises ValueError."""
    if dst is not None and dst not in DST_CHOICES:
        raise ValueError(f"--dst must be earlier or later, not {dst!r}")
    return dst


def local_seconds(moment: datetime, tz: tzinfo, dst: str | None, day: bool = False) -> float | None:
    """Unix seconds of the naive ``moment`` read in ``tz``; None when the clocks skip it, or repeat
    it and ``dst`` does not choose. A ``day`` (a date without a clock) is the day's first instant."""
    first = moment.replace(tzinfo=tz)
    earlier = first.timestamp()
    if isinstance(tz, timezone):
        return earlier  # (UTC or a fixed offset: no clock changes)
    later = first.replace(fold=1).timestamp()
    if earlier == later:
        return earlier
    if earlier > later:
        # skipped: fold 0 reads it with the offset before the change, fold 1 with the one after.
        # A date's first instant is the change itself, unless it skipped the whole day (Samoa, 2011).
        at = transition(tz, later, earlier) if day else None
        return float(at) if at is not None and datetime.fromtimestamp(at, tz).date() == moment.date() else None
    if day or dst == "earlier":
        return earlier
    return later if dst == "later" else None


def transition(tz: tzinfo, before: float, after: float) -> int:
    """The instant (Unix seconds) in (before, after] where ``tz``'s offset changes to the one at ``after``."""
    low, high = math.floor(before), math.ceil(after)
    offset = datetime.fromtimestamp(high, tz).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return high


def near_changes(times: list[float], moments: list[datetime], tz: tzinfo) -> list[int]:
    """Positions of the ``times`` (the ``moments`` read in ``tz``) that lie near one of ``tz``'s clock
    changes, where a local time may be one the clocks skipped or repeated; a C loop a column."""
    years = set(map(_YEAR, moments))
    edges = _changes(tz, years.pop()) if len(years) == 1 else \
        tuple(sorted(set(chain.from_iterable(_changes(tz, year) for year in years))))
    if not edges:
        return []
    return list(compress(range(len(times)), map(_ODD, map(bisect_right, repeat(edges), times))))


@lru_cache(maxsize=4096)
def _changes(tz: tzinfo, year: int) -> tuple[float, ...]:
    """``tz``'s clock changes around ``year`` (a few days either side), as sorted pairs of instants
    (start, end): a local time the change of ``d`` seconds at ``T`` skipped or repeated reads as an
    instant within ``d`` of ``T``; each pair is ``T - d - 1``, ``T + d + 1``."""
    start = datetime(year, 1, 1, tzinfo=UTC).timestamp()
    low, high = max(_FIRST_S, start - 2 * 86_400), min(_LAST_S, start + 369 * 86_400)
    edges: list[float] = []
    at, offset = low, datetime.fromtimestamp(low, tz).utcoffset()
    while at < high:
        step = min(at + _SAMPLE_S, high)
        then = datetime.fromtimestamp(step, tz).utcoffset()
        if then != offset:
            change = transition(tz, at, step)
            size = abs((then - offset).total_seconds())  # type: ignore[operator]  # both offsets are known: the zone names the transition
            edges += [change - size - 1, change + size + 1]
        at, offset = step, then
    return tuple(edges)
