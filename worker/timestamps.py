"""Event times: every format the vendors publish, to Unix seconds (UTC). Pure: no I/O.

Accepted without asking:
- ISO 8601 / RFC 3339: ``2022-01-15T02:00:00Z``, ``2022-01-15T02:00:00+10:00``,
  ``2022-01-15 02:00``, ``2022-01-15`` (midnight), ``20220115`` (a date, midnight), and RFC 3339's
  lower-case ``t`` and ``z`` (``2022-01-15t02:00:00z``);
- Vero's hour-only offsets: ``2022-01-02 13:05+10`` (and ``+1000``);
- Unix seconds as exactly 10 digits (``1642212000``, ``1642212000.5``: 2001-09-09 to 2286),
  milliseconds as exactly 13 digits and microseconds as exactly 16 (GA4's ``event_timestamp``).

Any other bare number is refused, never read as a time: ``2024`` or ``45356.58`` (an Excel
date serial) would otherwise land in January 1970. Local formats (``10/18/2010``) are read
only with an explicit ``--date-format`` (strptime patterns, several allowed; they are tried
first, on every value, so ``2024030110`` under ``%Y%m%d%H`` is not a Unix time; a value that
two of them read as different times is refused as ambiguous), and Excel serials only with
``--date-format excel``. Times without an offset are read in the import's time zone.

A local time the zone's clocks skip (02:30 on the spring change) is refused, naming the change;
one they repeat (01:30 on the autumn change) is refused unless ``dst`` ("earlier" or "later",
``--dst``) says which of its two instants it is (:mod:`worker.clocks`). A date without a clock is
the day's first instant. Times with an offset, and Unix times, are instants already.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, timezone, tzinfo
from itertools import compress
from operator import attrgetter, itemgetter, not_
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.clocks import check_dst, local_seconds, near_changes, transition

ACCEPTED = ("ISO 8601 (2022-01-15T02:00:00Z, 2022-01-02 13:05+10, 20220115), Unix seconds (10 digits), "
            "milliseconds (13 digits) or microseconds (16 digits), or a format given with --date-format")
#: the --date-format value that reads Excel's date serial numbers (days since 1899-12-30)
EXCEL = "excel"

_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?|[+-]?\.\d+")
_SECONDS = re.compile(r"[1-9]\d{9}(?:\.\d+)?")
_MILLIS = re.compile(r"[1-9]\d{12}(?:\.\d+)?")
_MICROS = re.compile(r"[1-9]\d{15}")
_YYYYMMDD = re.compile(r"\d{8}")
_TZINFO = attrgetter("tzinfo")
#: strptime directives that read a clock: a pattern without one reads dates
_CLOCK = re.compile(r"%[-#]?[HIMSfpXcTRr]")
_AT_4 = itemgetter(slice(4, 5))
_DASH_AT_4 = "-".__eq__
# Excel's serials of 1900-01-01 .. 9999-12-31; below ~20000 (1954) a number is rarely a date.
_EXCEL_MIN, _EXCEL_MAX, _EXCEL_LIKELY = 1, 2_958_465, 20_000
_EXCEL_EPOCH = datetime(1899, 12, 30)
_LOCAL_DATE = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{2}|\d{4})(?:[ T](\d{1,2}:\d{2})(:\d{2})?\s*([AaPp][Mm])?)?")


def zone(name: str) -> tzinfo | None:
    """The time zone called ``name`` (IANA, or UTC), or None if unknown."""
    if name.upper() in {"UTC", "Z", "GMT"}:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def check_zone(name: str, dst: str | None = None) -> tzinfo:
    """The zone ``--timezone name`` names, and ``--dst`` checked beside it; raises ValueError."""
    found = zone(name)
    if found is None:
        raise ValueError(f"unknown time zone {name!r}; use an IANA name like Europe/Paris, or UTC")
    check_dst(dst)
    return found


def check_formats(formats: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate ``--date-format`` values (strptime patterns or ``excel``); raises ValueError."""
    for pattern in formats:
        if pattern == EXCEL:
            continue
        if "%" not in pattern:
            raise ValueError(f"--date-format {pattern!r} is not a strptime pattern like '%m/%d/%Y' (or excel)")
        repeated = _repeated_directive(pattern)
        if repeated:
            raise ValueError(f"--date-format {pattern!r} repeats %{repeated}: each directive may appear once")
        try:
            datetime.now().strftime(pattern)
            datetime.strptime("", pattern)
        except ValueError as exc:
            # strptime names an unknown directive ("'Q' is a bad directive"); any other complaint is
            # only that "" is no time, which says nothing about the pattern
            if "directive" in str(exc) or "strftime" in str(exc):
                raise ValueError(f"--date-format {pattern!r}: {exc}") from None
        except re.error:
            # strptime's regular expression names a field twice: %c, %x and %X hold %d, %m, %y, %H...
            raise ValueError(f"--date-format {pattern!r} reads a field twice (%c, %x and %X hold several of "
                             "%d %m %y %Y %H %M %S themselves): each may appear once") from None
    return tuple(formats)


def _repeated_directive(pattern: str) -> str | None:
    """The first directive ``pattern`` holds twice (strptime cannot read a field twice), or None."""
    seen: set[str] = set()
    position = 0
    while position < len(pattern) - 1:
        if pattern[position] != "%":
            position += 1
            continue
        directive = pattern[position + 1]
        if directive != "%" and directive in seen:
            return directive
        seen.add(directive)
        position += 2
    return None


def parse_time(text: str, tz: tzinfo = UTC, formats: tuple[str, ...] = (),
               dst: str | None = None) -> float | None:
    """Unix seconds for ``text``, or None when it is not a time we accept (see :func:`time_problem`).

    ``text`` must already be stripped and non-empty. ``dst`` chooses the instant of a local time
    ``tz``'s clocks repeat ("earlier" or "later"); None refuses it.
    """
    if formats:
        # The patterns the user gave come first, numbers included (2024030110 under '%Y%m%d%H' is
        # not a Unix time); a value two of them read differently is refused (time_problem says so),
        # and so is one a pattern reads as a local time the clocks skip or repeat.
        readings, refused = _custom(text, tz, formats, dst)
        if readings or refused:
            return readings.pop() if len(readings) == 1 and not refused else None
    return _builtin(text, tz, formats, dst)


def parse_times(texts: list[str], tz: tzinfo = UTC, formats: tuple[str, ...] = (),
                dst: str | None = None) -> list[float | None]:
    """:func:`parse_time` of every text of a column (stripped), None for an empty one or one it refuses.

    The same readings, made a column at a time: without ``--date-format`` the ISO texts (a "-"
    after four characters) go through ``fromisoformat`` and ``timestamp`` as one C loop each, and
    10-digit Unix seconds through ``float``; every other text through :func:`parse_time` itself.
    """
    if formats:
        return [parse_time(text, tz, formats, dst) if text else None for text in texts]
    times: list[float | None] = [None] * len(texts)
    dashed = list(map(_DASH_AT_4, map(_AT_4, texts)))
    iso_at = list(compress(range(len(texts)), dashed))
    if iso_at:
        # (a "-" at index 4 is never _NUMBER's: parse_time would call parse_iso for each of these)
        for i, value in zip(iso_at, _iso_column([texts[i] for i in iso_at], tz, dst)):
            times[i] = value
    if len(iso_at) < len(texts):
        other_at = [i for i in compress(range(len(texts)), map(not_, dashed)) if texts[i]]
        other = [texts[i] for i in other_at]
        for i, text, seconds in zip(other_at, other, map(_SECONDS.fullmatch, other)):
            times[i] = float(text) if seconds else parse_time(text, tz, (), dst)
    return times


def _iso_column(texts: list[str], tz: tzinfo, dst: str | None) -> list[float | None]:
    """:func:`parse_iso` of each text; a run holding a text ``fromisoformat`` refuses is halved until
    the refused ones are read one by one."""
    try:
        moments = list(map(datetime.fromisoformat, texts))
    except ValueError:
        if len(texts) <= 16:
            return [parse_iso(text, tz, dst) for text in texts]
        half = len(texts) // 2
        return _iso_column(texts[:half], tz, dst) + _iso_column(texts[half:], tz, dst)
    if None not in map(_TZINFO, moments):
        return list(map(datetime.timestamp, moments))
    moments = [m if m.tzinfo is not None else m.replace(tzinfo=tz) for m in moments]
    times: list[float | None] = list(map(datetime.timestamp, moments))
    if not isinstance(tz, timezone):
        # The times near one of the zone's clock changes are read again one by one: a local time
        # the clocks skipped or repeated is refused, or its instant chosen, as parse_iso does.
        for i in near_changes(times, moments, tz):  # type: ignore[arg-type]  # the moments of an ISO column are aware once read in the zone
            times[i] = parse_iso(texts[i], tz, dst)
    return times


def _builtin(text: str, tz: tzinfo, formats: tuple[str, ...], dst: str | None) -> float | None:
    """ISO 8601, 10/13/16-digit Unix times, YYYYMMDD, and Excel serials when asked for."""
    if _NUMBER.fullmatch(text):
        if _SECONDS.fullmatch(text):
            return float(text)
        if _MILLIS.fullmatch(text):
            return float(text) / 1000.0
        if _MICROS.fullmatch(text):
            # int / int is rounded once, to the float nearest the exact instant
            return int(text) / 1_000_000
        if _YYYYMMDD.fullmatch(text):
            return parse_iso(text, tz, dst)
        if EXCEL in formats:
            return _excel(text, tz, dst)
        return None
    return parse_iso(text, tz, dst)


def parse_iso(text: str, tz: tzinfo, dst: str | None = None) -> float | None:
    """Unix seconds of an ISO 8601 ``text`` (``tz`` when it names no offset), or None.

    What :func:`parse_time` does with a text that is no number; a caller that knows it is none
    (a "-" after four digits, with no ``--date-format``) may call it directly."""
    parsed = _fromiso(text)
    if parsed is None:
        return None
    if parsed.tzinfo is not None:
        return parsed.timestamp()
    # (every ISO date without a clock has at most 10 characters, every one with a clock more)
    return local_seconds(parsed, tz, dst, day=len(text) <= 10)


def _fromiso(text: str) -> datetime | None:
    """``fromisoformat(text)``, RFC 3339's lower-case ``z`` included, or None."""
    # fromisoformat is C code and, since 3.11, takes every ISO 8601 shape we list,
    # Vero's "+10" offsets and a lower-case "t" included; it rejects nonsense like "2022-02-30".
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        if text[-1:] != "z":
            return None
    try:
        return datetime.fromisoformat(text[:-1] + "Z")
    except ValueError:
        return None


def _excel(text: str, tz: tzinfo, dst: str | None) -> float | None:
    value = float(text)
    if not _EXCEL_MIN <= value <= _EXCEL_MAX:
        return None
    return local_seconds(_excel_moment(value), tz, dst, day=value.is_integer())


def _excel_moment(value: float) -> datetime:
    # Excel counts a 29 February 1900 that never was (serial 60): before it, days start a day later.
    return (_EXCEL_EPOCH if value >= 61 else _EXCEL_EPOCH + timedelta(days=1)) + timedelta(days=value)


def _custom(text: str, tz: tzinfo, formats: tuple[str, ...],
            dst: str | None) -> tuple[set[float], list[tuple[datetime, bool]]]:
    """Every distinct reading of ``text`` under the strptime patterns in ``formats``, and the local
    times a pattern read that :func:`~worker.clocks.local_seconds` refused, unread (each with whether
    it is a date)."""
    readings: set[float] = set()
    refused: list[tuple[datetime, bool]] = []
    for pattern in formats:
        if pattern == EXCEL:
            continue
        try:
            parsed = datetime.strptime(text, pattern)
        except ValueError:
            continue
        if parsed.tzinfo is not None:
            readings.add(parsed.timestamp())
            continue
        day = _CLOCK.search(pattern) is None
        seconds = local_seconds(parsed, tz, dst, day)
        if seconds is None:
            refused.append((parsed, day))
        else:
            readings.add(seconds)
    return readings, refused


def _naive(text: str, formats: tuple[str, ...]) -> tuple[datetime, bool] | None:
    """The local time :func:`_builtin` reads ``text`` as, if it reads one, and whether it is a date."""
    if _NUMBER.fullmatch(text):
        if _YYYYMMDD.fullmatch(text):
            date = _fromiso(text)
            return (date, True) if date is not None else None
        value = float(text)
        if EXCEL not in formats or not _EXCEL_MIN <= value <= _EXCEL_MAX or _SECONDS.fullmatch(text) \
                or _MILLIS.fullmatch(text) or _MICROS.fullmatch(text):
            return None
        return _excel_moment(value), value.is_integer()
    parsed = _fromiso(text)
    return (parsed, len(text) <= 10) if parsed is not None and parsed.tzinfo is None else None


def clock_problem(text: str, moment: datetime, tz: tzinfo, dst: str | None = None,
                  day: bool = False) -> tuple[str, str] | None:
    """(code, message) when ``tz``'s clocks skip the naive ``moment`` (``invalid_time``) or repeat it
    and ``dst`` does not choose (``ambiguous_time``), naming the change; None when it reads as one
    instant. A ``day`` (a date) is refused only when the change skipped all of it."""
    if local_seconds(moment, tz, dst, day) is not None:
        return None
    first = moment.replace(tzinfo=tz)
    earlier, later = first.timestamp(), first.replace(fold=1).timestamp()
    at = transition(tz, min(earlier, later), max(earlier, later))
    old, new = datetime.fromtimestamp(at - 1, tz), datetime.fromtimestamp(at, tz)
    # what the clocks read at the change, before it (02:00 on the spring change in New York)
    was = datetime.fromtimestamp(at, timezone(old.utcoffset()))  # type: ignore[arg-type]  # a zone's offset is known at a transition it names
    zones = f"({old.tzname()} to {new.tzname()})"
    if was.date() == new.date():
        change = f"from {was:%H:%M} to {new:%H:%M} {zones} on {was.date()}"
    elif was.time() == time() and was.date() - new.date() == timedelta(days=1):
        # (Santiago's autumn change: at 24:00 on 6 April back to 23:00, not at 00:00 on the 7th)
        change = f"from 24:00 to {new:%H:%M} {zones} on {new.date()}"
    else:
        change = f"from {was:%Y-%m-%d %H:%M} to {new:%Y-%m-%d %H:%M} {zones}"
    if earlier > later:
        return "invalid_time", f"{text!r} does not exist in {tz}: clocks went forward {change}"
    return "ambiguous_time", (f"{text!r} happened twice in {tz}: clocks went back {change}, so it is "
                              f"{iso(earlier)} ({old.tzname()}) or {iso(later)} ({new.tzname()}); "
                              "pass --dst earlier or --dst later to choose")


def local_problem(text: str, tz: tzinfo = UTC, formats: tuple[str, ...] = (),
                  dst: str | None = None) -> tuple[str, str] | None:
    """(code, message) when :func:`parse_time` refused ``text`` because it reads as a local time
    ``tz``'s clocks skip or repeat (see :func:`clock_problem`); None when that is not why."""
    moments = _custom(text, tz, formats, dst)[1] if formats else []
    builtin = _naive(text, formats)
    for moment, day in moments if builtin is None else [*moments, builtin]:
        problem = clock_problem(text, moment, tz, dst, day)
        if problem is not None:
            return problem
    return None


def time_problem(text: str, tz: tzinfo = UTC, formats: tuple[str, ...] = (),
                 dst: str | None = None) -> tuple[str, str]:
    """(code, message) for a value :func:`parse_time` refused: what it looks like and how to fix it."""
    if formats:
        readings = _custom(text, tz, formats, dst)[0]
        if len(readings) > 1:
            shown = ", ".join(sorted(iso(r) for r in readings))
            return "ambiguous_time", (f"{text!r} reads as different times under the given --date-format patterns "
                                      f"({shown}); give only the pattern the file uses")
    problem = local_problem(text, tz, formats, dst)
    if problem is not None:
        return problem
    if formats:
        given = ", ".join(repr(f) for f in formats)
        return "invalid_time", f"{text!r} matches none of the given --date-format patterns ({given}) nor {ACCEPTED}"
    if _NUMBER.fullmatch(text):
        value = float(text)
        if _YYYYMMDD.fullmatch(text):
            return "invalid_time", f"{text!r} is not a date written as YYYYMMDD (nor a Unix time)"
        if _EXCEL_LIKELY <= value <= _EXCEL_MAX and text[:1].isdigit() and text[:1] != "0":
            moment = _excel_moment(value).strftime("%Y-%m-%d %H:%M")
            return "invalid_time", (f"{text!r} looks like an Excel date serial number ({moment}); format the "
                                    "column as a date (yyyy-mm-dd hh:mm) before saving, or pass --date-format excel")
        return "invalid_time", (f"{text!r} is a number but not a time: Unix times have 10 digits (seconds), "
                                "13 (milliseconds) or 16 (microseconds), dates 8 (YYYYMMDD); --date-format "
                                "reads other layouts")
    local = _LOCAL_DATE.fullmatch(text)
    if local:
        return "invalid_time", f"{text!r} is a local date format; {_suggest(local)}"
    return "invalid_time", f"{text!r} is not a time; use {ACCEPTED}"


def _suggest(match: re.Match[str]) -> str:
    first, sep, second, year, clock, seconds, half = match.groups()
    tail = ((" %I:%M" if half else " %H:%M") + (":%S" if seconds else "") + (" %p" if half else "")) if clock else ""
    y = "%Y" if len(year) == 4 else "%y"
    month_first, day_first = f"%m{sep}%d{sep}{y}{tail}", f"%d{sep}%m{sep}{y}{tail}"
    if int(first) > 12 >= int(second):
        return f"it reads as day{sep}month: pass --date-format '{day_first}'"
    if int(second) > 12 >= int(first):
        return f"it reads as month{sep}day: pass --date-format '{month_first}'"
    return (f"it could be month{sep}day or day{sep}month: pass --date-format '{month_first}' "
            f"or '{day_first}', whichever the file uses")


def iso(ts: float) -> str:
    """``ts`` as an ISO 8601 UTC string with a Z, millisecond precision (as ``isoformat(timespec="milliseconds")``
    writes it, its microseconds cut: written out, as that call took 1.5-4.3 us here and this 1.1-2.0, twice
    for each decision of a triggering import)."""
    m = datetime.fromtimestamp(ts, UTC)
    return _ISO % (m.year, m.month, m.day, m.hour, m.minute, m.second, m.microsecond // 1000)


_ISO = "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"


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
