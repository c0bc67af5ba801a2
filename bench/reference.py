"""The script a user would write instead of backfill: the yardstick of the performance targets.

    python bench/reference.py FILE [--db results.db] [--json]

One Python process reads a Vero events file (bench/generate.py's columns: email, event_name, time,
event_id, then properties) with ``csv.reader``, checks each row's e-mail and time, turns the
properties into JSON text with orjson and stores the events in SQLite with ``INSERT OR IGNORE`` in
batches of 5,000 rows, one transaction a batch, the event id the primary key (so an event seen before
is a duplicate). It counts the rows imported, the duplicates and the errors, and prints rows/s (with
``--json``, one JSON line as well). It is written as a competent user would write it in an afternoon:
nothing of backfill is imported, and nothing is left out that the count depends on.
"""
from __future__ import annotations

import argparse
import csv
import re
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

BATCH = 5000
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
#: the event file's fixed columns; every other column is a property
FIXED = ("email", "event_name", "time", "event_id")


def parse_time(text: str, now: float) -> float | None:
    """Unix seconds of an ISO 8601 time (offset or Z; a time without one is UTC) or of a number of
    seconds; None for one that does not read or lies in the future."""
    text = text.strip()
    try:
        if text.isdigit():
            seconds = float(text)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    except ValueError:
        return None
    return seconds if seconds <= now else None


def import_file(path: Path, db_path: Path) -> dict:
    """Import ``path`` into the SQLite file ``db_path``; the counts and the time it took."""
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, email TEXT NOT NULL, "
               "name TEXT NOT NULL, ts INTEGER NOT NULL, properties TEXT NOT NULL)")
    insert = "INSERT OR IGNORE INTO events (event_id, email, name, ts, properties) VALUES (?, ?, ?, ?, ?)"
    rows = imported = errors = 0
    batch: list[tuple] = []
    now = time.time()

    def flush() -> int:
        db.execute("BEGIN")
        before = db.total_changes
        db.executemany(insert, batch)
        db.execute("COMMIT")
        batch.clear()
        return db.total_changes - before

    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as source:
        reader = csv.reader(source)
        header = next(reader)
        at = {name: header.index(name) for name in FIXED}
        properties = [(n, name) for n, name in enumerate(header) if name not in FIXED]
        width = len(header)
        for row in reader:
            rows += 1
            if len(row) != width:
                errors += 1
                continue
            email = row[at["email"]].strip().lower()
            name = row[at["event_name"]].strip()
            event_id = row[at["event_id"]].strip()
            ts = parse_time(row[at["time"]], now)
            if not EMAIL.fullmatch(email) or not name or not event_id or ts is None:
                errors += 1
                continue
            data = {key: row[n] for n, key in properties if row[n]}
            batch.append((event_id, email, name, int(ts * 1000), orjson.dumps(data).decode()))
            if len(batch) >= BATCH:
                imported += flush()
        if batch:
            imported += flush()
    seconds = time.perf_counter() - started
    db.close()
    valid = rows - errors
    return {"rows": rows, "imported": imported, "duplicates": valid - imported, "errors": errors,
            "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    parser.add_argument("--db", type=Path, help="the SQLite file (default: a fresh one in a temporary folder)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="backfill-reference-")) / "events.db"
    result = import_file(args.file, db)
    print(f"reference script: {result['rows']:,} rows in {result['seconds']} s = {result['rows_per_second']:,} rows/s "
          f"(imported {result['imported']:,}, duplicates {result['duplicates']:,}, errors {result['errors']:,})",
          file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
