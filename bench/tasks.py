"""Tasks that exist for ``make bench`` only: the transport floor and the naive one-task-per-row design.

They run on the real workers, through the real queue, so the benchmark can put the
real pipeline's figure next to what the transport alone costs and next to what
a design without chunks manages. Nothing else sends them.
"""
from __future__ import annotations

import time

from worker import keys
from worker.app import app
from worker.events.pipeline import commit_rows
from worker.tasks import context


@app.task(name="backfill.bench.floor_chunk")
def floor_chunk(import_id: str, chunk: int) -> None:
    """Do nothing with a chunk: drop its rows and count it (the producer's backpressure needs the count)."""
    pipe = context().store.r.pipeline(transaction=False)
    pipe.delete(keys.import_chunk(import_id, chunk))
    pipe.hincrby(keys.import_hash(import_id), "chunks_done", 1)
    pipe.execute()


@app.task(name="backfill.bench.naive_row")
def naive_row(import_id: str, row: int, cells: list[str]) -> None:
    """One row, one task: the same validation, lookup, dedupe and commit as a chunk, for a single row."""
    st = context().store
    commit_rows(st, st.imports.spec(import_id), row, [cells], [row], context().settings, time.time())
