"""The ordered route: an import's chunks applied one after the other, in file order, under a lease.

People and Segment imports take this route (:data:`KINDS`); events chunks do not (each commits on
its own, in any order: worker/events/pipeline.py). Rows of one file may touch the same person in
different chunks, and the result must be the file's order whichever worker gets which chunk. So
an ordered import's chunk task does not apply *its* chunk (the number it carries only wakes a
worker): it takes the import's apply lease and applies the import's next chunks in order while
they are stored, then releases the lease atomically with the check that no next chunk is waiting
(lease.lua). A task that finds the lease taken just ends: the holder will reach its chunk. Only
whole chunks are committed, and each only as the import's next one (people_commit.lua), so even
two holders (a lease that expired under a stalled worker) cannot apply a chunk twice or out of
order. Each chunk passes the delivery guard (:func:`worker.ops.retries.run_or_reject`) once.

A people chunk is one commit, read ahead while the one before commits
(:class:`worker.ordered.read_ahead.ReadAhead`); a Segment chunk is two
(:mod:`worker.segment.pipeline`, :class:`worker.store.steps.CommitStep`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from worker.ops.retries import run_or_reject
from worker.ordered.read_ahead import ReadAhead
from worker.people import pipeline as people
from worker.segment import pipeline as segment
from worker.settings import Settings
from worker.spec import ImportSpec
from worker.store import Store
from worker.store.people import COMMITTED

#: The kinds of import whose chunks apply in file order (the others' chunks commit in any order).
KINDS = ("people", "segment")


def steps_for(spec: ImportSpec) -> ModuleType:
    """The pipeline that applies (``apply_chunk``) and rejects (``fail_chunk``) an ordered import's chunks."""
    return segment if spec.kind == "segment" else people


def run_ordered(st: Store, import_id: str, settings: Settings, *,
                on_finalize: Callable[[], None], on_handover: Callable[[int], None],
                now: float | None = None) -> int:
    """Apply the import's stored chunks in order while holding its lease; how many were applied.

    ``on_finalize`` is called when the last chunk commits; ``on_handover`` when the
    time budget ran out with chunks still waiting (it must queue another task).
    """
    spec = st.imports.spec(import_id)
    steps = steps_for(spec)
    lease_ms = int(settings.chunk_time_limit_s * 1000)
    token = st.people.take_lease(import_id, lease_ms)
    if token is None:
        return 0
    applied = 0
    started = time.monotonic()
    ahead = ReadAhead(st, spec) if steps is people else None
    try:
        while True:
            kept, next_chunk = st.people.keep_lease(import_id, token, lease_ms)
            if kept != 1:
                return applied
            if time.monotonic() - started > settings.people_apply_budget_s:
                st.people.drop_lease(import_id, token)
                on_handover(next_chunk)
                return applied
            chunk_started = time.perf_counter()
            ready = ahead.take(next_chunk) if ahead is not None else None

            def run(n: int = next_chunk, r: people.Ready | None = ready) -> Any:
                if ahead is None:
                    return steps.apply_chunk(st, spec, n, settings, now=now)
                return people.apply_chunk(st, spec, n, settings, now=now, ready=r,
                                          before_commit=lambda: ahead.start(n + 1))

            def fail(reason: str, code: str, n: int = next_chunk) -> Any:
                return steps.fail_chunk(st, spec, n, reason, settings, code)

            result = run_or_reject(st.work, import_id, next_chunk, settings.max_chunk_tries, run=run, fail=fail)
            if result is None:
                continue  # committed by a holder whose lease had expired: look again
            if result.status == COMMITTED:
                applied += 1
                st.metrics.observe_chunk(time.perf_counter() - chunk_started)
            if result.finalize:
                on_finalize()
    except BaseException:
        st.people.drop_lease(import_id, token)
        raise
    finally:
        if ahead is not None:
            ahead.close()
