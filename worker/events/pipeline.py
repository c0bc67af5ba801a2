"""An events chunk's route to the store: load, validate, look up, decide, commit.

The pure steps are :mod:`worker.events.chunk` (validate, assemble); the store is
read twice (the chunk's rows, which of its people exist; the campaigns on a
triggering import) and written once, by the chunk's atomic commit. A chunk that
was already committed changes nothing. Failure handling and poison counting wrap
this from outside (:mod:`worker.ops.retries`).
"""
from __future__ import annotations

from worker.errors import PermanentError, TransientError
from worker.events import chunk as core
from worker.events import rules
from worker.events.rows import RowOutcome
from worker.problems import CANCELLED, CHUNK_FAILED
from worker.settings import Settings
from worker.spec import ImportSpec
from worker.store import CommitResult, Store
from worker.store.steps import CommitStep

#: Commits refused because the chunk was told wrongly what its import remembers of its event ids (another
#: chunk used them meanwhile), before giving up (and retrying).
MAX_CONFLICTS = 10


def run_chunk(st: Store, import_id: str, chunk: int, settings: Settings, *, now: float | None = None) -> CommitResult:
    """Validate, decide and commit one chunk; a chunk already committed changes nothing."""
    spec = st.imports.spec(import_id)
    stored = st.work.load(import_id, chunk)
    if stored is None:
        # The commit deletes a chunk's rows, so no rows usually means a redelivery.
        if st.work.chunk_done(import_id, chunk):
            return CommitResult(False, 0, 0, st.work.all_done(import_id))
        raise PermanentError(f"the rows of chunk {chunk} of import {import_id} are gone (expired or deleted)")
    if stored.cancelled:  # the import was cancelled after this chunk was queued: skip its rows
        return st.events.commit(spec, chunk, core.failed(stored.rows, stored.numbers, "", CANCELLED),
                                at_ms=round(stored.now * 1000), retention_s=settings.retention_s,
                                max_problem_rows=settings.max_problem_rows, cancelled=len(stored.rows))
    # Redis's clock, read with the rows: every worker decides by the same now, whatever its own clock says.
    return commit_rows(st, spec, chunk, stored.rows, stored.numbers, settings, stored.now if now is None else now)


def commit_rows(st: Store, spec: ImportSpec, chunk: int, rows: list[list[str]], numbers: list[int],
                settings: Settings, at: float) -> CommitResult:
    """Validate rows, look up their people, apply the trigger rules, and commit them as ``chunk``."""
    validated = core.validate(spec, rows, numbers, at, settings.clock_skew_s)
    return commit_validated(st, spec, chunk, validated, rows, numbers, settings, at)


def commit_validated(st: Store, spec: ImportSpec, chunk: int, validated: RowOutcome, rows: list[list[str]],
                     numbers: list[int], settings: Settings, at: float, *,
                     step: CommitStep = CommitStep.WHOLE,
                     anonymous: list[tuple[bytes, str, bytes]] | None = None) -> CommitResult:
    """Look up validated events' people, apply the trigger rules, and commit them as ``chunk`` (``part``:
    the events step of a Segment chunk, with the ``anonymous`` events it holds), deciding again while
    other chunks take the same event ids. A result ``moved``: an anonymous id was tied meanwhile.

    The chunk decides first as if its import had used none of its event ids before (the usual case); the
    commit refuses it when that is wrong where it changes a warning, and tells what the import remembers."""
    campaigns = rules.by_event(st.triggers.campaigns()) if spec.trigger else rules.NO_CAMPAIGNS
    person_keys = list({e.person_key for e in validated.events})
    id_owners = _id_owners(st, spec, validated)
    seen_ids: dict[bytes, bytes] = {}
    for _ in range(MAX_CONFLICTS):
        existing = st.events.existing_people(spec.identifier, person_keys)
        outcome = core.assemble(spec, validated, rows, numbers, existing, campaigns, at, settings.clock_skew_s,
                                seen_ids, id_owners)
        outcome.anonymous = anonymous or []
        result = st.events.commit(spec, chunk, outcome, at_ms=round(at * 1000), retention_s=settings.retention_s,
                                  max_problem_rows=settings.max_problem_rows, shard_bits=settings.dedupe_shard_bits,
                                  step=step, anonymous_ttl_s=settings.anonymous_ttl_s, known=existing)
        if not result.conflict:
            return result
        seen_ids = core.told(seen_ids, result.memory)
    raise TransientError(f"chunk {chunk}: other chunks kept recording the same event ids ({MAX_CONFLICTS} tries)")


def _id_owners(st: Store, spec: ImportSpec, validated: RowOutcome) -> dict[str, str] | None:
    """In a Vero file matched by e-mail with an ``id`` column (a property): the people the directory knows
    by the chunk's ids (id -> cio_id), read once; None for every other file (nothing read)."""
    key = spec.events.id_property_key if spec.identifier == "email" else None
    if key is None:
        return None
    ids = sorted({v for e in validated.events if (v := e.data.get(key))})
    return st.events.existing_people("id", ids) if ids else {}


def fail_chunk(st: Store, import_id: str, chunk: int, reason: str, settings: Settings,
               code: str = CHUNK_FAILED) -> CommitResult:
    """Commit a chunk that cannot be processed: every row an error (``code``).

    The import then completes (with errors) instead of waiting for this chunk forever.
    Rows that cannot even be read (gone: expired, or lost by a Redis rolled back) give no error rows:
    the chunk is counted in chunks_lost (the report's rows then fall short of rows_expected).
    """
    try:
        rows, numbers = st.work.load_chunk(import_id, chunk) or ([], [])
    except (ValueError, KeyError, TypeError):
        rows, numbers = [], []
    return st.events.commit(st.imports.spec(import_id), chunk, core.failed(rows, numbers, reason, code),
                            at_ms=round(st.now() * 1000), retention_s=settings.retention_s,
                            max_problem_rows=settings.max_problem_rows, failed=True, lost=not rows)
