"""A people chunk's route to the store: load, validate, read a snapshot, decide, commit in order.

The pure steps are :mod:`worker.people.rows` (what a row means) and
:mod:`worker.people.directory` (what it does, in file order, against a snapshot of
the directory). The commit is a compare-and-set (people_commit.lua): if another
writer changed the same people since the snapshot, nothing is written and the chunk
is decided again on a fresh snapshot. Which chunk is next, and who applies it, is
:mod:`worker.ordered.apply`'s business.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC

from worker.errors import TransientError
from worker.people.directory import Changes, Rules, apply_rows
from worker.people.rows import PeopleRows, validate_people
from worker.problems import CANCELLED, CHUNK_FAILED, failed_rows, problem_row
from worker.settings import Settings
from worker.spec import ImportSpec
from worker.store import Store
from worker.store.people import CONFLICT, PeopleCommit
from worker.store.work import StoredChunk
from worker.timestamps import zone

#: Commits refused because other writers changed the same people, before giving up (and retrying later).
MAX_CONFLICTS = 10


def validate(spec: ImportSpec, rows: list[list[str]], numbers: list[int]) -> PeopleRows:
    """A people chunk's records validated under the import's options (time zone, empty cells, formats, --dst)."""
    return validate_people(rows, numbers, spec.columns,  # type: ignore[arg-type]  # a people import's spec holds people columns
                           tz=zone(spec.timezone) or UTC, clear_empty=spec.empty_cells == "clear",
                           formats=spec.date_formats, dst=spec.dst)


@dataclasses.dataclass(frozen=True, slots=True)
class Ready:
    """A chunk's stored records and their validation, made before its turn (they do not depend on the
    directory, only on the import's options): :mod:`worker.ordered.read_ahead` reads the next chunk ahead."""

    chunk: int
    stored: StoredChunk
    validated: PeopleRows


def prepare(st: Store, spec: ImportSpec, chunk: int) -> Ready | None:
    """Load and validate ``chunk`` ahead of its turn; None when its rows are not stored (yet, or any more)."""
    stored = st.work.load(spec.import_id, chunk)
    if stored is None or stored.cancelled:
        return None
    return Ready(chunk, stored, validate(spec, stored.rows, stored.numbers))


def rules_of(spec: ImportSpec, at: float) -> Rules:
    """The rules a people import's rows are decided by at ``at`` (seconds)."""
    columns = spec.columns
    labels = tuple((role, columns.header[i]) for role in ("cio_id", "id", "email")
                   if (i := getattr(columns, role)) is not None)
    return Rules(spec.data_to_process, spec.id_only, spec.identifier, int(at), labels)


def apply_chunk(st: Store, spec: ImportSpec, chunk: int, settings: Settings, *,
                now: float | None = None, ready: Ready | None = None,
                before_commit: Callable[[], None] | None = None) -> PeopleCommit | None:
    """Validate, decide and commit one chunk of a people import; None when its rows are not stored.

    ``ready``: the chunk as :func:`prepare` read it ahead (its cancellation is read again now);
    ``before_commit`` runs once, before the first commit is sent (the next chunk is read ahead
    while Redis runs this one's commit).
    """
    if ready is not None and ready.chunk == chunk:
        stored = ready.stored
        if st.work.cancelled(spec.import_id):
            stored = dataclasses.replace(stored, cancelled=True)
    else:
        ready = None
        loaded = st.work.load(spec.import_id, chunk)
        if loaded is None:
            return None
        stored = loaded
    rows, numbers = stored.rows, stored.numbers
    at = stored.now if now is None else now  # Redis's clock when the rows were read: the same on every worker
    if stored.cancelled:  # the import was cancelled after this chunk was queued: skip its rows
        return st.people.commit(spec, chunk, Changes(), failed_rows(rows, numbers, "", CANCELLED), [],
                                at_ms=round(at * 1000), retention_s=settings.retention_s,
                                max_problem_rows=settings.max_problem_rows, cancelled=len(rows))
    validated = ready.validated if ready is not None else validate(spec, rows, numbers)
    rules = rules_of(spec, at)
    errors = [problem_row(r, c, p) for r, c, p in validated.errors]
    cells_of = dict(zip(numbers, rows))
    for _ in range(MAX_CONFLICTS):
        changes = apply_rows(validated.rows, st.people.snapshot(spec, validated.rows), rules)
        if before_commit is not None:
            before_commit()
            before_commit = None
        # one warning row a row: a cell's warnings (invisible characters, decomposed text) and the
        # directory's (duplicate_email) of the same row are one row of the warnings file, counted once
        warned = {r: (c, list(p)) for r, c, p in validated.warnings}
        for row, problems in changes.warnings:
            warned.setdefault(row, (cells_of[row], []))[1].extend(problems)
        result = st.people.commit(
            spec, chunk, changes,
            errors + [problem_row(r, cells_of[r], p) for r, p in changes.errors],
            [problem_row(r, c, p) for r, (c, p) in sorted(warned.items())],
            at_ms=round(at * 1000), retention_s=settings.retention_s, max_problem_rows=settings.max_problem_rows,
        )
        if result.status != CONFLICT:
            return result
    raise TransientError(f"chunk {chunk}: the same people kept changing under it ({MAX_CONFLICTS} tries)")


def fail_chunk(st: Store, spec: ImportSpec, chunk: int, reason: str, settings: Settings,
               code: str = CHUNK_FAILED) -> PeopleCommit:
    """Commit a chunk that cannot be applied as errors (``code``), so the next ones can go on (one whose rows
    are gone is counted in chunks_lost)."""
    try:
        rows, numbers = st.work.load_chunk(spec.import_id, chunk) or ([], [])
    except (ValueError, KeyError, TypeError):
        rows, numbers = [], []
    return st.people.commit(spec, chunk, Changes(), failed_rows(rows, numbers, reason, code), [],
                            at_ms=round(st.now() * 1000), retention_s=settings.retention_s,
                            max_problem_rows=settings.max_problem_rows, failed=True, lost=not rows)
