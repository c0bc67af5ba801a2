"""Event times: every format the vendors publish, to Unix seconds (UTC).

Accepted:
- ISO 8601 / RFC 3339: ``2022-01-15T02:00:00Z``, ``2022-01-15T02:00:00+10:00``,
  ``2022-01-15 02:00``, ``2022-01-15`` (midnight);
- Vero's hour-only offsets: ``2022-01-02 13:05+10`` (and ``+1000``);
- Unix seconds (``1642212000``, ``1642212000.5``) and milliseconds (13 digits).

Times without an offset are read in the import's time zone. Pure: no I/O.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ACCEPTED = "ISO 8601 (2022-01-15T02:00:00Z, 2022-01-02 13:05+10), Unix seconds or milliseconds"

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# Below this a number is seconds (1e11 s is the year 5138); below 1e14, milliseconds.
_SECONDS_LIMIT = 1e11
_MILLIS_LIMIT = 1e14


def zone(name: str) -> tzinfo | None:
    """The time zone called ``name`` (IANA, or UTC), or None if unknown."""
    if name.upper() in {"UTC", "Z", "GMT"}:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_time(text: str, tz: tzinfo = timezone.utc) -> float | None:
    """Unix seconds for ``text``, or None when it is not a time we accept.

    ``text`` must already be stripped and non-empty.
    """
    if _NUMBER.fullmatch(text):
        value = float(text)
        magnitude = abs(value)
        if magnitude < _SECONDS_LIMIT:
            return value
        if magnitude < _MILLIS_LIMIT:
            return value / 1000.0
        return None
    # fromisoformat is C code and, since 3.11, takes every ISO 8601 shape we list,
    # Vero's "+10" offsets included; it rejects nonsense like "2022-02-30".
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.timestamp()


def iso(ts: float) -> str:
    """``ts`` as an ISO 8601 UTC string with a Z, millisecond precision."""
    moment = datetime.fromtimestamp(ts, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> int | None:
    """Seconds in ``72h``, ``30m``, ``10d``, ``90`` (seconds); None = ``none``/``off``.

    Raises ValueError for anything else (this parses options, not rows).
    """
    cleaned = text.strip().lower()
    if cleaned in {"none", "off", "never", "no"}:
        return None
    match = _DURATION.fullmatch(cleaned)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 72h, 30m, 10d or none")
    return int(float(match.group(1)) * _UNIT[match.group(2)])
