"""Finding the outbox entries a database refuses by splitting their batch (worker/sink/split.py)."""
from __future__ import annotations

import gc
import math

import orjson
import pytest

from worker.errors import ResultsRefused, ResultsUnavailable
from worker.sink.split import write_entries


def _entries(n: int, bad: set[int]) -> list:
    """``n`` entries of one event each; those in ``bad`` hold an event the fake database refuses."""
    out = []
    for k in range(n):
        event = {"import": f"i{k}", "row": 2, "name": "NUL\x00" if k in bad else "Ordered",
                 "person": {"id": str(k)}, "timestamp": 1, "data": {}}
        out.append((f"{k}-0".encode(), {b"import": f"i{k}".encode(), b"events": orjson.dumps(event)}))
    return out


class Database:
    """Refuses a batch holding a NUL in a name; counts its transactions."""

    def __init__(self, down: bool = False) -> None:
        self.transactions, self.stored, self.down = 0, [], down

    def write(self, batch) -> int:
        self.transactions += 1
        if self.down:
            raise ResultsUnavailable("the results database did not answer")
        if any("\x00" in row[4] for row in batch.events):
            raise ResultsRefused("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        self.stored += [row[0] for row in batch.events]
        return len(batch.events)


def test_one_refused_entry_is_found_in_about_two_log2_n_transactions_and_the_rest_stored():
    db = Database()
    written = write_entries(_entries(64, {37}), db.write)
    assert [(e[0], m) for e, m in written.refused] == [(b"37-0", "PostgreSQL text fields cannot contain NUL (0x00) bytes")]
    assert sorted(db.stored) == sorted(f"i{k}" for k in range(64) if k != 37)
    assert [s[0] for s in written.stored] == [f"{k}-0".encode() for k in range(64) if k != 37]
    assert written.new_events == written.events == 63
    assert db.transactions <= 1 + 2 * math.log2(64)


def test_a_batch_taken_costs_one_transaction_and_several_refused_are_all_found():
    db = Database()
    assert not write_entries(_entries(50, set()), db.write).refused and db.transactions == 1
    written = write_entries(_entries(50, {0, 1, 49}), Database().write)
    assert sorted(e[0] for e, _ in written.refused) == [b"0-0", b"1-0", b"49-0"] and len(written.stored) == 47


def test_a_malformed_entry_is_refused_with_why():
    entries = _entries(4, set())
    entries[2] = (b"2-0", {b"import": b"i2", b"events": b"{not json"})
    written = write_entries(entries, Database().write)
    [(entry, message)] = written.refused
    assert entry[0] == b"2-0" and message.startswith("the entry cannot be read: JSONDecodeError")
    assert len(written.stored) == 3


def test_a_database_that_is_down_refuses_nothing_the_batch_is_tried_again_whole():
    db = Database(down=True)
    with pytest.raises(ResultsUnavailable):
        write_entries(_entries(8, {3}), db.write)
    assert db.transactions == 1


def test_no_garbage_collection_runs_while_a_batch_is_written_and_it_is_back_after_even_a_failure():
    seen = []

    def write(batch) -> int:
        seen.append(gc.isenabled())
        return Database().write(batch)

    assert gc.isenabled()
    write_entries(_entries(8, {3}), write)
    assert seen and not any(seen) and gc.isenabled()
    with pytest.raises(ResultsUnavailable):
        write_entries(_entries(8, set()), Database(down=True).write)
    assert gc.isenabled()
    gc.disable()  # (held off by someone else: left so)
    try:
        write_entries(_entries(2, set()), Database().write)
        assert not gc.isenabled()
    finally:
        gc.enable()
