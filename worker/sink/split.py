"""Writing outbox entries so that one the database refuses never holds back the others.

A batch the results database refuses for what it holds (:class:`worker.errors.ResultsRefused`: a NUL
in a text, a number out of range, a value over one of its limits) is split in two and each half written
in a transaction of its own, down to the entries refused: those are set aside as dead letters with the
database's message, everything else is stored. One bad entry among n costs about 2 x log2(n) more
transactions; a batch the database takes costs nothing more. An entry whose fields cannot even be made
into rows (malformed) is refused the same way.

A failure of the database itself (a connection lost, a full disk, a lock timeout) is no refusal: it
goes up, and the whole batch is tried again later; nothing is set aside for it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Callable, Iterator

from worker.errors import ResultsRefused
from worker.sink.batch import Batch, batch_of

Entry = tuple[bytes, dict[bytes, bytes]]
#: What reading an entry's fields into rows raises for an entry that is not as the commit scripts
#: write it (a field missing, not JSON, of another type): the entry's fault, whatever the database.
MALFORMED = (KeyError, ValueError, TypeError, IndexError, AttributeError)


@dataclasses.dataclass(slots=True)
class Written:
    """What writing some entries did."""

    #: the entries stored, as :attr:`Batch.entries` holds them, each with its late duplicates (events the
    #: database already held under another row: claims.py), for the acknowledgement's counters
    stored: list[tuple[bytes, str, int, int, int, int]] = dataclasses.field(default_factory=list)
    #: the entries refused, each with the reason
    refused: list[tuple[Entry, str]] = dataclasses.field(default_factory=list)
    events: int = 0
    new_events: int = 0
    late_duplicates: int = 0


def write_entries(entries: list[Entry], write: Callable[[Batch], int]) -> Written:
    """Write ``entries`` with ``write`` (a backend's write of one batch in one transaction: how many events
    were new), splitting a refused batch until the entries refused are found. Any other failure goes up."""
    written = Written()
    with _no_collection():
        _write(entries, write, written)
    return written


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a batch is made into rows and written. A batch is
    ~100,000 new tuples that hold no cycle and die together; each of the hundreds of collections their
    making sets off walks all of them again: about a third of the time of making them (bench/README.md,
    the sink's step). What is collected is collected once the batch is written."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write(entries: list[Entry], write: Callable[[Batch], int], written: Written) -> None:
    try:
        batch = batch_of(entries)
    except MALFORMED as exc:
        reason = f"the entry cannot be read: {type(exc).__name__}: {exc}"
    else:
        try:
            new_events = write(batch)
        except ResultsRefused as exc:
            reason = str(exc)
        else:
            written.stored += [(*entry, batch.late.get(entry[0], 0)) for entry in batch.entries]
            written.events += len(batch.events)
            written.late_duplicates += sum(batch.late.values())
            written.new_events += new_events
            return
    if len(entries) == 1:
        written.refused.append((entries[0], reason))
        return
    half = len(entries) // 2
    _write(entries[:half], write, written)
    _write(entries[half:], write, written)
