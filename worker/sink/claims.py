"""Each dedupe key once in the results database within its window, whatever Redis forgets. Pure: no I/O.

Redis decides duplicates with its marks, and commits and the outbox entry go together. But a host crash
with ``appendfsync everysec`` rolls Redis back up to a second or two: commits the sink had already stored
are forgotten, with their marks, and a later chunk can import the same event again at another row. So
the database keeps its own claim of each dedupe key (``event_keys``: the key, the event holding it, the
hour it expires). A batch's events claim their keys before they are stored; an event whose key another
stored event holds, unexpired, is a *late duplicate*: not stored, counted in its entry (and so in its
import's ``late_duplicates``). A claim expired (the dedupe window passed) or whose event is gone (an
undo) is taken over, as Redis would see the event as new.

The backend gives :func:`claim` four operations (SQL it runs in the batch's transaction): upsert the
claims (taking over the expired ones; how many rows it inserted or took over), the holders of some keys,
which of some (import, row) events are stored, and take some claims over. The usual batch costs one
upsert; the rest runs only when some key was already claimed (a batch written again, or a late duplicate).
"""
from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter

from worker.sink.batch import Batch

Claim = tuple  # (dedupe_key, import_id, row, seen_h, expires_h): batch.KEY_COLUMNS


def claim(batch: Batch, upsert: Callable[[list[Claim]], int],
          holders: Callable[[list[bytes]], dict[bytes, tuple[str, int]]],
          stored: Callable[[list[tuple[str, int]]], set[tuple[str, int]]],
          take: Callable[[list[Claim]], None]) -> int:
    """Claim the batch's keys; drop its late duplicates from ``batch.events`` and count them per entry in
    ``batch.late``. Returns how many there were."""
    if not batch.keys:
        return 0
    claims, late = first_in_batch(batch.keys)
    if upsert(claims) < len(claims):
        # Some key was claimed already: by this very event (a batch written again), or by another one.
        held = holders([c[0] for c in claims])
        others = [c for c in claims if held.get(c[0], (c[1], c[2])) != (c[1], c[2])]
        if others:
            present = stored(sorted({held[c[0]] for c in others}))
            gone = [c for c in others if held[c[0]] not in present]
            if gone:  # their event was taken back (undo): the key is free again
                take(gone)
            late |= {(c[1], c[2]) for c in others if held[c[0]] in present}
    if not late:
        return 0
    batch.events = [e for e in batch.events if (e[0], e[1]) not in late]
    counted: set[tuple[str, int]] = set()
    for row, index in zip(batch.keys, batch.key_entries):
        event = (row[1], row[2])
        if event in late and event not in counted:
            counted.add(event)
            entry_id = batch.entries[index][0]
            batch.late[entry_id] = batch.late.get(entry_id, 0) + 1
    return len(counted)


def first_in_batch(keys: list[Claim]) -> tuple[list[Claim], set[tuple[str, int]]]:
    """The claims to make (each key's first event in the batch, in stream order) and the (import, row) of
    the batch's other events with a key already in it (late duplicates; the same event twice is one)."""
    first: dict[bytes, Claim] = {}
    late: set[tuple[str, int]] = set()
    for row in keys:
        held = first.setdefault(row[0], row)
        if held is not row and (held[1], held[2]) != (row[1], row[2]):
            late.add((row[1], row[2]))
    # in key order: SQLite writes a B-tree of random keys faster in order, PostgreSQL sorts them itself
    return sorted(first.values(), key=itemgetter(0)), late  # (keys unique here: the key alone orders them)
