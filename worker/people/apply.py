"""Applying a people import: its chunks, one after the other, in file order.

Rows of one file may touch the same person in different chunks, and the result
must be the file's order whichever worker gets which chunk. So a people
import's chunk task does not apply *its* chunk: it takes the import's apply
lease and applies the import's next chunks in order while they are stored,
then releases the lease atomically with the check that no next chunk is
waiting (lease.lua). A task that finds the lease taken just ends: the holder
will reach its chunk. Only whole chunks are committed, and each only as the
import's next one (people_commit.lua), so even two holders (a lease that
expired under a stalled worker) cannot apply a chunk twice or out of order.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timezone

from worker.errors import TransientError
from worker.events import chunk as core
from worker.logs import get_logger
from worker.ops.poison import delivery, poison_reason
from worker.people.directory import Changes, Rules, apply_rows
from worker.people.rows import validate_people
from worker.settings import Settings
from worker.spec import ImportSpec
from worker.store import TRANSIENT, Store
from worker.store.people import COMMITTED, CONFLICT, PeopleCommit
from worker.timestamps import zone

log = get_logger("backfill.worker")
#: Commits refused because other writers changed the same people, before giving up (and retrying later).
MAX_CONFLICTS = 10


def apply_chunk(st: Store, spec: ImportSpec, chunk: int, settings: Settings, *,
                now: float | None = None) -> PeopleCommit | None:
    """Validate, decide and commit one chunk of a people import; None when its rows are not stored."""
    raw = st.load_chunk(spec.import_id, chunk)
    if raw is None:
        return None
    rows, numbers = core.decode_payload(raw)
    at = time.time() if now is None else now
    validated = validate_people(rows, numbers, spec.columns,  # type: ignore[arg-type]
                                tz=zone(spec.timezone) or timezone.utc, clear_empty=spec.empty_cells == "clear")
    columns = spec.columns
    labels = tuple((role, columns.header[i]) for role in ("cio_id", "id", "email")  # type: ignore[union-attr]
                   if (i := getattr(columns, role)) is not None)
    rules = Rules(spec.data_to_process, spec.id_only, spec.identifier, int(at), labels)
    errors = [core.problem_row(r, c, p) for r, c, p in validated.errors]
    cells_of = dict(zip(numbers, rows))
    for _ in range(MAX_CONFLICTS):
        changes = apply_rows(validated.rows, st.people.snapshot(spec, validated.rows), rules)
        result = st.people.commit(
            spec, chunk, changes,
            errors + [core.problem_row(r, cells_of[r], p) for r, p in changes.errors],
            [core.problem_row(r, cells_of[r], p) for r, p in changes.warnings],
            at_ms=round(at * 1000), retention_s=settings.retention_s,
        )
        if result.status != CONFLICT:
            return result
    raise TransientError(f"chunk {chunk}: the same people kept changing under it ({MAX_CONFLICTS} tries)")


def fail_people_chunk(st: Store, spec: ImportSpec, chunk: int, reason: str, settings: Settings,
                      code: str = core.CHUNK_FAILED) -> PeopleCommit:
    """Commit a chunk that cannot be applied as errors (``code``), so the next ones can go on."""
    errors = core.failed_payload(st.load_chunk(spec.import_id, chunk), reason, code).errors
    return st.people.commit(spec, chunk, Changes(), errors, [], at_ms=round(time.time() * 1000),
                            retention_s=settings.retention_s, failed=True)


def run_people(st: Store, import_id: str, settings: Settings, *,
               on_finalize: Callable[[], None], on_handover: Callable[[int], None],
               now: float | None = None) -> int:
    """Apply the import's stored chunks in order while holding its lease; how many were applied.

    ``on_finalize`` is called when the last chunk commits; ``on_handover`` when the
    time budget ran out with chunks still waiting (it must queue another task).
    """
    spec = st.spec(import_id)
    lease_ms = int(settings.chunk_time_limit_s * 1000)
    token = st.people.take_lease(import_id, lease_ms)
    if token is None:
        return 0
    applied = 0
    started = time.monotonic()
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
            with delivery(st, import_id, next_chunk, settings.max_chunk_tries) as deaths:
                try:
                    if deaths:
                        result = fail_people_chunk(st, spec, next_chunk, poison_reason(deaths), settings,
                                                   core.CHUNK_POISON)
                    else:
                        result = apply_chunk(st, spec, next_chunk, settings, now=now)
                except TRANSIENT:
                    raise
                except Exception as exc:  # a bug or bad data: report the rows, never stall the import
                    log.exception("chunk failed", chunk=next_chunk, error=str(exc))
                    result = fail_people_chunk(st, spec, next_chunk, f"{type(exc).__name__}: {exc}", settings)
            if result is None:
                continue  # committed by a holder whose lease had expired: look again
            if result.status == COMMITTED:
                applied += 1
                st.observe_chunk(time.perf_counter() - chunk_started)
            if result.finalize:
                on_finalize()
    except BaseException:
        st.people.drop_lease(import_id, token)
        raise
