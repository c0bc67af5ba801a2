"""A time column that holds only days beside a column of full times. Pure: no I/O.

GA4's BigQuery export has ``event_date`` (``20240301``) and ``event_timestamp``
(microseconds): the header rules take ``event_date`` as the event's time, so every
event would happen at midnight and its real time become a property. Whenever the
time column's first values are days only and another column, named like a time,
holds times with a clock (ISO with hours, or Unix seconds, milliseconds or
microseconds), the file is refused naming both, with the ``--map`` that settles it.
A time column set by hand, or the other column mapped (``--map X=X`` keeps it a
property), is left as it was said.
"""
from __future__ import annotations

import re

from worker.cells import column_letter, header_key
from worker.errors import FileProblem
from worker.events.dialects import Columns

#: How many data rows of the watched columns are looked at (their first values).
SAMPLE_ROWS = 20

# A day and nothing finer: 20240301, 2024-03-01, 01/03/2024, or a midnight written out in full.
_DAY = re.compile(r"\d{8}|\d{4}([-/.])\d{1,2}\1\d{1,2}|\d{1,2}([-/.])\d{1,2}\2\d{2,4}"
                  r"|\d{4}-?\d{2}-?\d{2}[T ]00:?00(:?00(\.0+)?)?(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)
# A time with a clock: ISO with hours, a local date with hours, Unix seconds (10 digits),
# milliseconds (13) or microseconds (16).
_CLOCK = re.compile(r"\d{4}-?\d{2}-?\d{2}[T ]\d{1,2}:?\d{2}.*|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}[T ]\d{1,2}:\d{2}.*"
                    r"|[1-9]\d{9}(\.\d+)?|[1-9]\d{12}|[1-9]\d{15}", re.IGNORECASE)
# The words of a header: event_timestamp -> event, timestamp; createdAt -> created, at.
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_FINE_WORDS = {"time", "timestamp", "datetime", "ts"}
# The names that most often are the event's own time, offered first in the message.
_LIKELY = ("eventtimestamp", "eventtime", "timestamp", "time", "datetime", "occurredat", "ts")


def _named_fine(cell: str) -> bool:
    """A header that names a time finer than a day (``event_timestamp``, ``created_at``, ``createdAt``)."""
    words = [w.lower() for w in _WORDS.findall(cell)]
    return bool(words) and (bool(_FINE_WORDS.intersection(words)) or words[-1] == "at")


def watched(columns: Columns, mapped: set[str]) -> tuple[int, ...]:
    """The columns whose first values decide (the time column first), or () when nothing is to decide.

    ``mapped``: the lower-cased names of the columns ``--map`` named.
    """
    time = columns.time
    if time is None or columns.header[time].lower() in mapped:
        return ()
    others = tuple(i for i, _ in columns.properties
                   if columns.header[i].lower() not in mapped and _named_fine(columns.header[i]))
    return (time, *others) if others else ()


def refuse_a_day_only_time(columns: Columns, values: dict[int, list[str]]) -> None:
    """Raise ``ambiguous_time_column`` when the time column holds days only and another time-named
    column holds times with a clock. ``values``: the first non-empty values of each :func:`watched` column."""
    time = columns.time
    if time is None or time not in values:
        return
    days = values[time]
    if not days or not all(_DAY.fullmatch(v) for v in days):
        return
    finer = [i for i in values if i != time and values[i]
             and all(_CLOCK.fullmatch(v) and not _DAY.fullmatch(v) for v in values[i])]
    if not finer:
        return
    header = columns.header
    best = min(finer, key=lambda i: (_likely(header[i]), i))
    others = [i for i in finer if i != best]
    also = (" (and " + ", ".join(f"{column_letter(i)} {header[i]!r}" for i in others[:3]) + ")") if others else ""
    raise FileProblem(
        "ambiguous_time_column",
        f"column {column_letter(time)} {header[time]!r} is the event's time but holds only days ({days[0]}), while "
        f"column {column_letter(best)} {header[best]!r}{also} holds full times ({values[best][0]}): every event "
        f"would be stored at midnight and its real time become a property. Use the full time with "
        f"--map '{header[best]}=time', or keep the day as the time with --map '{header[time]}=time'")


def _likely(cell: str) -> int:
    key = header_key(cell)
    return _LIKELY.index(key) if key in _LIKELY else len(_LIKELY)
