"""Applying a people import (or a Segment one): its chunks, one after the other, in file order.

Rows of one file may touch the same person in different chunks, and the result
must be the file's order whichever worker gets which chunk. So a people
import's chunk task does not apply *its* chunk: it takes the import's apply
lease and applies the import's next chunks in order while they are stored,
then releases the lease atomically with the check that no next chunk is
waiting (lease.lua). A task that finds the lease taken just ends: the holder
will reach its chunk. Only whole chunks are committed, and each only as the
import's next one (people_commit.lua), so even two holders (a lease that
expired under a stalled worker) cannot apply a chunk twice or out of order.

While Redis runs a chunk's commit, the holder reads and validates the next
chunk in a thread (:class:`ReadAhead`): validation does not depend on the
directory, so only the snapshot, the decisions and the commit stay in turn.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from worker.ops.poison import attempt
from worker.people import pipeline
from worker.segment import pipeline as segment
from worker.settings import Settings
from worker.spec import ImportSpec
from worker.store import Store
from worker.store.people import COMMITTED


class ReadAhead:
    """The next chunk of a people import, loaded and validated in a thread while this one commits.

    The thread runs while the holder waits for Redis (the commit script is its longest step), so a
    chunk's validation costs the holder almost nothing. What it read is used only for the chunk it
    was read for; anything it raised is forgotten and the chunk is read again in its turn, where its
    failures are counted as usual.
    """

    def __init__(self, st: Store, spec: ImportSpec) -> None:
        self.st, self.spec = st, spec
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="people-read-ahead")
        self._next: tuple[int, Future] | None = None

    def start(self, chunk: int) -> None:
        """Read and validate ``chunk`` in the thread (once)."""
        if self._next is None or self._next[0] != chunk:
            self._next = (chunk, self._pool.submit(pipeline.prepare, self.st, self.spec, chunk))

    def take(self, chunk: int) -> pipeline.Ready | None:
        """What was read ahead for ``chunk``, or None (nothing read for it, not stored then, or it failed)."""
        if self._next is None or self._next[0] != chunk:
            return None
        future, self._next = self._next[1], None
        try:
            return future.result()
        except Exception:  # read again in its turn, where a failure is counted
            return None

    def close(self) -> None:
        """Stop the thread (a read still running finishes on its own; nothing waits for it)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def run_people(st: Store, import_id: str, settings: Settings, *,
               on_finalize: Callable[[], None], on_handover: Callable[[int], None],
               now: float | None = None) -> int:
    """Apply the import's stored chunks in order while holding its lease; how many were applied.

    ``on_finalize`` is called when the last chunk commits; ``on_handover`` when the
    time budget ran out with chunks still waiting (it must queue another task).
    """
    spec = st.imports.spec(import_id)
    steps = segment if spec.kind == "segment" else pipeline  # Segment messages apply in file order too
    lease_ms = int(settings.chunk_time_limit_s * 1000)
    token = st.people.take_lease(import_id, lease_ms)
    if token is None:
        return 0
    applied = 0
    started = time.monotonic()
    ahead = ReadAhead(st, spec) if steps is pipeline else None
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
            if ahead is not None:
                ready = ahead.take(next_chunk)
                run = lambda n=next_chunk, r=ready: pipeline.apply_chunk(  # noqa: E731
                    st, spec, n, settings, now=now, ready=r, before_commit=lambda: ahead.start(n + 1))
            else:
                run = lambda n=next_chunk: steps.apply_chunk(st, spec, n, settings, now=now)  # noqa: E731
            result = attempt(
                st.work, import_id, next_chunk, settings.max_chunk_tries, run=run,
                fail=lambda reason, code, n=next_chunk: steps.fail_chunk(st, spec, n, reason, settings, code),
            )
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
