"""The reliability bar's row for what a results database refuses: while an import drains into it, outbox
entries it cannot store reach the sinks, in the same batches as the import's (a NUL in a file name and a
person too long for its index, which PostgreSQL refuses; a number over 64 bits, which both refuse). Every
other entry is stored exactly once, the refused ones wait as dead letters with the database's message, and
the metric the BackfillSinkDeadLetters alert reads says so. Both backends.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import orjson

from worker import keys

from .harness import Cluster
from .scenarios import _row
from .stored import _begin

#: import id -> the fields of an outbox entry that no database takes unchanged
POISON = {
    "poison-nul": {"record": orjson.dumps({"import_id": "poison-nul", "status": "completed", "report": {
        "status": "completed", "kind": "events", "source": "evil\x00.csv"}})},
    "poison-long": {"count": b"1", "events": orjson.dumps({
        "import": "poison-long", "row": 2, "name": "Ordered", "person": {"email": os.urandom(10_000).hex() + "@x.co"},
        "timestamp": 1700000000, "data": {}})},
    "poison-huge": {"people": orjson.dumps([{"cio_id": "poison1", "_v": "1", "created_at": "1e30"}])},
}


def refused_entries(base: Path, rows: int = 40_000) -> list[dict]:
    """The row for SQLite (refuses the number only) and for PostgreSQL (all three)."""
    from tests.integration.postgres import PrivatePostgres

    out = [_refused(base / "sqlite", "refused entries (SQLite)", f"sqlite:///{base / 'results.db'}", {"poison-huge"},
                    rows, 24)]
    server = PrivatePostgres()
    server.start()
    try:
        out.append(_refused(base / "postgres", "refused entries (PostgreSQL)", server.url, set(POISON), rows, 25))
    finally:
        server.destroy()
    return out


def _refused(base: Path, name: str, database_url: str, refused: set[str], rows: int, seed: int) -> dict:
    from worker.ops.metrics import RedisCollector
    from worker.store.outbox import dead_fields

    started = time.monotonic()
    base.mkdir(parents=True, exist_ok=True)
    with Cluster(base).start(2) as cluster:
        sinks, expected, import_id = _begin(cluster, database_url, rows, seed)
        sinks.start()
        client = cluster.client()
        try:
            deadline = time.monotonic() + 60
            while not client.hget(keys.import_hash(import_id), "outbox_stored") and time.monotonic() < deadline:
                time.sleep(0.05)  # the sink is storing: what follows lands among the import's entries
            for import_id_, fields in POISON.items():
                client.xadd(keys.OUTBOX, {"import": import_id_, **fields})
            report = cluster.wait_report(import_id, timeout=240)
            result = sinks.check(import_id, report, expected)
            deadline = time.monotonic() + 60
            while client.xlen(keys.OUTBOX) and time.monotonic() < deadline:
                time.sleep(0.2)
            dead = {}
            for _, fields in client.xrange(keys.SINK_DEAD):
                original, message = dead_fields(fields)
                dead[original[b"import"].decode()] = message
            held = next(s.value for family in RedisCollector(client).collect() for s in family.samples
                        if s.name == "backfill_sink_dead_letters_held")
            as_expected = set(dead) == refused and all(dead.values()) and held == len(refused) and not client.xlen(keys.OUTBOX)
            row = _row(name, f"{len(POISON)} entries no database takes unchanged, among the import's", started,
                       {**result, "stored_ok": result.get("stored_ok", False) and as_expected})
            row["report"] += (f"; dead letters {', '.join(sorted(dead)) or 'none'}"
                              f" ({'as expected' if as_expected else 'NOT AS EXPECTED'}); alert "
                              + ("fires" if held > 0 else "SILENT"))
            return row
        finally:
            sinks.stop()


ALL = [refused_entries]
