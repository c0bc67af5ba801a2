"""Reading a people import's next chunk while the current one commits.

While Redis runs a chunk's commit, the lease holder (:mod:`worker.ordered.apply`) reads and
validates the next chunk in a thread: validation does not depend on the directory, so only the
snapshot, the decisions and the commit stay in turn.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from worker.people import pipeline
from worker.spec import ImportSpec
from worker.store import Store


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
