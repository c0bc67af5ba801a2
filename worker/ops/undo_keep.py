"""What an undo leaves to later imports: the events they also brought.

An import that finds an event already marked counts it a duplicate and stores nothing of it, so taking
back the import that held the event would leave it stored nowhere. commit.lua therefore records, for
each chunk that counted duplicates, their dedupe keys and rows (``keys.import_duplicates``, kept for the
retention, listed in ``keys.TRACED``). An undo of X looks there for its events: each one another import
counted as a duplicate since X's first commit stays, as that import's row (the first import to count
it), with its dedupe mark; that import counts it imported instead of duplicate.
"""
from __future__ import annotations

import collections
import dataclasses

import orjson

from worker.errors import ConfigError
from worker.ops.report import combine
from worker.sink.batch import import_row

#: One duplicate in a record: its 10-byte dedupe key, and its row (4 bytes) in a block after the keys.
_KEY, _ROW = 10, 4


@dataclasses.dataclass(frozen=True, slots=True)
class Kept:
    """An event of the undone import that stays, as another import's row."""

    import_id: str
    row: int
    #: the hour its dedupe mark lasts to, from that import's commit
    expiry_h: int
    #: when that import's commit counted it (the first to count it keeps it)
    at_ms: int


def refuse_untraceable(st, import_id: str, since_ms: int, retention_s: int, now_ms: int) -> None:
    """Refuse (ConfigError) an undo that cannot tell which of its events later imports also brought: its
    import committed first more than the retention ago (what others recorded since may be gone), or an
    import that recorded duplicates since then has lost its record."""
    if since_ms and now_ms - since_ms > retention_s * 1000:
        raise ConfigError(f"import {import_id} committed its first events more than BACKFILL_RETENTION_S "
                          f"({retention_s} s) ago: which of them later imports also brought (counted there as "
                          "duplicates) is no longer known, and those would be stored nowhere; it cannot be undone")
    others = [i for i in st.undoing.traced_since(since_ms, retention_s, now_ms) if i != import_id]
    gone = sorted(set(others) - st.undoing.undone(others) - st.undoing.with_traces(others))
    if gone:
        raise ConfigError(f"import{'s' if len(gone) > 1 else ''} {', '.join(gone)} counted duplicates since import "
                          f"{import_id} began, and {'their records of them are' if len(gone) > 1 else 'its record of them is'} "
                          "gone (expired): the events they share with it would be stored nowhere; it cannot be undone")


def find_kept(st, import_id: str, since_ms: int, keyed: dict[bytes, int], retention_s: int,
              now_ms: int) -> dict[int, Kept]:
    """The undone import's events that stay (its row -> :class:`Kept`), from its events' dedupe keys
    (``keyed``: key -> its row). Read while keys.UNDO_MARKS holds the commits off, so none counts one more."""
    others = [i for i in st.undoing.traced_since(since_ms, retention_s, now_ms) if i != import_id]
    undone = st.undoing.undone(others)
    kept: dict[int, Kept] = {}
    for other in others:
        if other in undone:
            continue
        for record in st.undoing.traces(other).values():
            at, hour, packed = record.split(b":", 2)  # ("<ms>:<hour>:" then binary: split twice only)
            if int(at) < since_ms:  # (counted before the undone import marked anything: not its events)
                continue
            count = len(packed) // (_KEY + _ROW)
            for n in range(count):
                row = keyed.get(packed[n * _KEY:(n + 1) * _KEY])
                if row is None or (row in kept and kept[row].at_ms <= int(at)):
                    continue
                start = count * _KEY + n * _ROW
                kept[row] = Kept(other, int.from_bytes(packed[start:start + _ROW], "big"), int(hour), int(at))
    return kept


def kept_rows(events: dict[int, tuple], kept: dict[int, Kept]) -> list[tuple]:
    """The results database's rows of the events that stay: the undone import's, as the keeping import's rows."""
    return [(k.import_id, k.row, *events[row][2:]) for row, k in kept.items()]


def count_kept(st, import_id: str, kept: dict[int, Kept]) -> tuple[dict[str, int], list[tuple]]:
    """Count the events that stay as imported by the imports keeping them (once; their reports too); (kept
    per import, the imports rows of those already finished, for the results database)."""
    per_import = collections.Counter(k.import_id for k in kept.values())
    records = []
    for other, count in sorted(per_import.items()):
        report = st.undoing.keep(other, import_id, count, lambda r, o=other, c=count: _patched(st, r, o, c, import_id))
        state = st.imports.state(other)
        if report is not None and not report.get("dry_run"):
            records.append(import_row({"import_id": other, "status": state.get("status", report["status"]),
                                       "finished_ms": int(state.get("finished_ms") or 0) or None,
                                       "created_ms": int(state.get("created_ms") or 0) or None, "report": report}))
    return dict(per_import), records


def _patched(st, report: dict, other: str, count: int, undone_id: str) -> dict:
    """``report`` of import ``other`` with ``count`` of its duplicates counted imported (kept from ``undone_id``)."""
    report = {**report, "imported": report["imported"] + count, "duplicates": report["duplicates"] - count,
              "kept_from_undone": {**report.get("kept_from_undone", {}), undone_id: count}}
    original = st.imports.state(report["retry_of"]).get("report") if report.get("retry_of") else None
    if original and "combined" in report:
        report["combined"] = combine(orjson.loads(original), report)
    return report
