"""The results store's questions on many stored events: milliseconds each, best of five.

    python bench/sink_queries.py [--events 1000000]

Fills a fresh SQLite results file through the sink's own write (batches of 50 entries of 2,000 events,
as ``sink.py`` drains them): 50,000 people, each stored with the entry that first names them, 20 event
names, times spread over four months, five imports of 200,000 rows. Then times what reads the events
table: ``backfill events`` by person (an e-mail, a cio_id, no one), by name and time, by person and
name, by import; the undo's pages of an import's events, its count and its question whether another
import holds a person. Run it from two checkouts to compare their schemas (an index the queries need
shows as milliseconds turned into a scan's hundreds).
"""
from __future__ import annotations

import argparse
import gc
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

PEOPLE = 50_000


def cio(person: int) -> str:
    """The cio_id the benchmark gives a person."""
    return f"{0xa0000000 + person:x}"


def fill(results, events: int) -> None:
    """``events`` events written as a sink writes them, with their people."""
    from worker.sink.batch import batch_of

    rnd, seen = random.Random(3), set()
    names = [f"Event {n}" for n in range(20)]
    for start in range(0, events, 100_000):
        entries = []
        for first in range(start, min(start + 100_000, events), 2000):
            numbers = range(first, min(first + 2000, events))
            people = [rnd.randrange(PEOPLE) for _ in numbers]
            blobs = [orjson.dumps({"import": f"imp{n // 200_000}", "row": n + 2, "name": rnd.choice(names),
                                   "person": {"email": f"person{p}@example.com"},
                                   "timestamp": 1_700_000_000 + rnd.randrange(10**7),
                                   "data": {"item_type": "shirt", "price": "19.99"}, "id": f"evt-{n}"})
                     for n, p in zip(numbers, people)]
            new = [p for p in dict.fromkeys(people) if p not in seen]
            seen.update(new)
            entries.append((f"{first + 1}-0".encode(), {
                b"import": b"bench", b"events": b"\n".join(blobs),
                b"people": orjson.dumps([{"cio_id": cio(p), "email": f"person{p}@example.com", "_v": "1"} for p in new]),
                b"cio": orjson.dumps({f"person{p}@example.com": cio(p) for p in people})}))
        gc.disable()  # (as the sink does: worker/sink/split.py)
        try:
            results.write(batch_of(entries))
        finally:
            gc.enable()


def best(question: Callable[[], int], repeat: int = 5) -> tuple[float, int]:
    """(the fastest of ``repeat`` runs in milliseconds, what it answered)."""
    times, answer = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = question()
        times.append(time.perf_counter() - started)
    return min(times) * 1000, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    from worker.sink.sqlite import SQLiteResults
    from worker.sink.stored import EventQuery

    work = Path(tempfile.mkdtemp(prefix="backfill-queries-"))
    try:
        results = SQLiteResults(work / "results.db")
        results.upgrade()
        started = time.perf_counter()
        fill(results, args.events)
        size = (work / "results.db").stat().st_size
        print(f"{args.events:,} events stored in {time.perf_counter() - started:.1f} s; file {size / 2**20:.0f} MB, "
              f"{results.db.execute('PRAGMA page_size').fetchone()[0]}-byte pages, schema version {results.version()}")
        questions: dict[str, Callable[[], int]] = {
            "events --person (an e-mail)": lambda: len(list(results.events(EventQuery(person="person123@example.com")))),
            "events --person (a cio_id)": lambda: len(list(results.events(EventQuery(person=cio(77))))),
            "events --person (no one)": lambda: len(list(results.events(EventQuery(person="nobody@example.com")))),
            "events --name --since": lambda: len(list(results.events(EventQuery(name="Event 3",
                                                                                 since_ms=1_705_000_000_000)))),
            "events --person --name": lambda: len(list(results.events(EventQuery(person="person5@example.com",
                                                                                  name="Event 3")))),
            "events --import": lambda: len(list(results.events(EventQuery(import_id="imp1")))),
            "undo: a page of 1,000 events": lambda: len(results.events_of("imp2", 5000, 1000)),
            "undo: an import's count": lambda: results.count_events("imp0"),
            "undo: named elsewhere": lambda: int(results.named_elsewhere("imp0", cio(9), "person9@example.com")),
        }
        for label, question in questions.items():
            ms, answer = best(question)
            print(f"{label:32s} {ms:9.2f} ms  ({answer:,})")
        results.close()
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
