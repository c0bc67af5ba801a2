"""An events chunk validated a column at a time: the per-row outcome, with the loops in C. Pure: no I/O.

:func:`worker.events.rows.validate_rows` pays Python's interpreter for every cell of every row.
Here each column is cleaned, checked and read with ``map`` over C functions (``str.strip``, a
compiled pattern's ``fullmatch``, ``fromisoformat``), and only the rows those checks cannot vouch
for go through ``validate_rows`` itself: a row of another width than the header's, an invisible
character or decomposed text (not NFC), a missing or malformed person, name or id, a time that
does not read or lies in the future, reserved data that is not an address. Those are exactly the
rows that have a problem or a warning, so every error and warning, with its code and message, is
still ``validate_rows``'s.
A plain row gives the event ``validate_rows`` would give it, field for field (the differential
test, tests/unit/test_differential.py, holds the outcome equal to the frozen per-row core's).
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo
from functools import partial
from itertools import compress
from operator import itemgetter, not_
from unicodedata import is_normalized

from worker.cells import EMAIL, INVISIBLE, SCIENTIFIC, clean_cell
from worker.events.dialects import Columns
from worker.events.rows import RESERVED_EMAIL_DATA, Event, RowOutcome, validate_rows
from worker.timestamps import parse_times

_NON_EMPTY = partial(filter, itemgetter(1))


def clean_column(cells: tuple[str, ...] | list[str]) -> list[str]:
    """:func:`worker.cells.clean_cell` of every cell of a column; the usual column (no apostrophe) in C."""
    cleaned = list(map(str.strip, cells))
    if "'" in "".join(cleaned):
        return list(map(clean_cell, cells))
    return cleaned


def _flag(slow: set[int], checks: Sequence[object]) -> None:
    """Add the positions of the true values of ``checks`` to ``slow``."""
    slow.update(compress(range(len(checks)), checks))


def validate_chunk(
    rows: list[list[str]],
    row_numbers: list[int],
    columns: Columns,
    *,
    identifier: str,
    tz: tzinfo,
    now: float,
    clock_skew_s: float,
    formats: tuple[str, ...] = (),
    dst: str | None = None,
) -> RowOutcome:
    """:func:`~worker.events.rows.validate_rows`'s outcome for a chunk, the plain rows read a column at
    a time. ``row_numbers`` are the rows' file row numbers (distinct, as a file's are)."""
    count = len(rows)
    if count == 0:
        return RowOutcome()
    header = columns.header
    width = len(header)
    #: positions of the rows validate_rows must see
    slow: set[int] = set()
    even = rows
    if set(map(len, rows)) != {width}:
        _flag(slow, [len(raw) != width for raw in rows])
        blank = [""] * width  # (the columns' stand-in for a row of another width: validate_rows reads it)
        even = [raw if len(raw) == width else blank for raw in rows]
    cells = list(zip(*even))

    persons, names = clean_column(cells[columns.person]), clean_column(cells[columns.name])
    ids = clean_column(cells[columns.event_id]) if columns.event_id is not None else None
    for column in (persons, names, ids):
        if column is not None:
            joined = "\n".join(column)
            if not joined.isascii():  # (every invisible character, every decomposed text, is not ASCII)
                if INVISIBLE.search(joined):
                    _flag(slow, list(map(INVISIBLE.search, column)))
                # A newline composes with nothing, so the joined column is NFC exactly when every cell is.
                if not is_normalized("NFC", joined):
                    _flag(slow, [not is_normalized("NFC", value) for value in column])
    _flag(slow, list(map(not_, persons)))
    if identifier == "email":
        _flag(slow, [match is None for match in map(EMAIL.fullmatch, persons)])
        person_keys = list(map(str.lower, persons))
    else:
        _flag(slow, list(map(SCIENTIFIC.fullmatch, persons)))
        person_keys = persons
    if "" in names:
        _flag(slow, list(map(not_, names)))
    if ids is not None:
        _flag(slow, list(map(SCIENTIFIC.fullmatch, ids)))
        event_ids: list[str | None] = [value or None for value in ids]
    else:
        event_ids = [None] * count

    if columns.time is not None:
        texts = clean_column(cells[columns.time])
        times = parse_times(texts, tz, formats, dst)
        future_limit = now + clock_skew_s
        # a text that does not read (None where there is text), or a time in the future
        _flag(slow, [(ts is None and text != "") or (ts is not None and ts > future_limit)
                     for ts, text in zip(times, texts)])
    else:
        times = [None] * count

    properties = columns.properties
    keys = [key for _, key in properties]
    values = [clean_column(cells[index]) for index, _ in properties]
    for key, column in zip(keys, values):
        if key.lower() in RESERVED_EMAIL_DATA:
            _flag(slow, [value != "" and match is None for value, match in zip(column, map(EMAIL.fullmatch, column))])
    if values:
        data = list(map(dict, map(_NON_EMPTY, map(partial(zip, keys), zip(*values)))))
    else:
        data = [{} for _ in range(count)]

    events: list[Event | None] = list(map(Event, row_numbers, persons, person_keys, names, times, event_ids, data))
    if not slow:
        return RowOutcome(events)  # type: ignore[arg-type]  # the plain rows' events: none of them is None here (the slow rows were set aside)
    order = sorted(slow)
    outcome = validate_rows([rows[i] for i in order],
                            [row_numbers[i] for i in order], columns, identifier=identifier, tz=tz, now=now,
                            clock_skew_s=clock_skew_s, formats=formats, dst=dst)
    # validate_rows gives each row at most one event, in order: match them by row number
    made = iter(outcome.events)
    event = next(made, None)
    for i in order:
        if event is not None and event.row == row_numbers[i]:
            events[i], event = event, next(made, None)
        else:
            events[i] = None
    outcome.events = [e for e in events if e is not None]
    return outcome

