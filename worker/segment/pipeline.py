"""A Segment chunk's route to the store: its events, then its person changes, in file order.

A chunk of Segment messages is committed in two atomic steps, each exactly once:

1. the **events step** (commit.lua, :attr:`~worker.store.steps.CommitStep.EVENTS`): the chunk's
   track, page and screen events with their dedupe (by ``messageId``, else the content key), the
   people they name created when unknown, the trigger rules; its rows stay stored;
2. the **person step** (people_commit.lua, :attr:`~worker.store.steps.CommitStep.PEOPLE`: the
   chunk itself): identify, group, alias, tags and unsubscribes against a snapshot of the
   directory that already holds step 1's people, the chunk's error rows, and the chunk's
   done-marker (the import's file order goes on from there).

Events with only an ``anonymousId`` are held by step 1 (or are their person's, when the id is
tied already); identify and alias calls carrying an anonymous id tie it in step 2, which moves
the events held for it to the person (:mod:`worker.segment.anonymous`).

A crash between the two redoes only the second (the first is in the done-set). Every line is
counted by exactly one step (:mod:`worker.segment.plan`). Chunks apply one after the other
(:mod:`worker.ordered.apply`'s lease): a person's changes land in file order. Inside one chunk
the events step goes first, so an event the file puts before an alias cannot resolve to the
alias's new id; the producer ends a chunk after every alias call, so that never happens
(:mod:`producers.segment`).
"""
from __future__ import annotations

from datetime import UTC

from worker.errors import TransientError
from worker.events import pipeline as events
from worker.events import rules as trigger_rules
from worker.events.rows import RowOutcome
from worker.people import pipeline as people
from worker.people.directory import Changes, Rules, apply_rows, holder
from worker.problems import CANCELLED, CHUNK_FAILED, failed_rows, problem_row
from worker.segment import anonymous
from worker.segment.plan import SegmentChunk, is_event, plan
from worker.settings import Settings
from worker.spec import ImportSpec
from worker.store import Store
from worker.store.people import CONFLICT, PeopleCommit
from worker.store.steps import CommitStep
from worker.timestamps import zone


def apply_chunk(st: Store, spec: ImportSpec, chunk: int, settings: Settings, *,
                now: float | None = None) -> PeopleCommit | None:
    """Commit one chunk's two steps (those not committed yet); None when its rows are not stored."""
    stored = st.work.load(spec.import_id, chunk)
    if stored is None:
        return None
    at = stored.now if now is None else now  # Redis's clock when the rows were read: the same on every worker
    lines, numbers = [r[0] if r else "" for r in stored.rows], stored.numbers
    if stored.cancelled:  # the import was cancelled after this chunk was queued: skip its rows
        rows, numbers = _uncounted(st, spec, chunk, stored.rows, numbers)
        return _commit_people(st, spec, chunk, settings, at, Changes(), failed_rows(rows, numbers, "", CANCELLED),
                              [], cancelled=len(rows))
    planned = plan(lines, numbers, tz=zone(spec.timezone) or UTC, now=at, clock_skew_s=settings.clock_skew_s,
                   dst=spec.dst)
    if not st.work.chunk_done(spec.import_id, chunk, CommitStep.EVENTS):
        _commit_events(st, spec, chunk, planned, stored.rows, numbers, settings, at)
    rules = Rules("all", spec.id_only, "id", int(at), (("id", "userId"), ("email", "traits.email")), segment=True)
    errors = [problem_row(r, c, p) for r, c, p in planned.errors]
    notes = {r: (c, list(p)) for r, c, p in planned.warnings}
    cells_of = dict(zip(numbers, stored.rows))
    campaigns: trigger_rules.CampaignIndex | None = None
    for _ in range(people.MAX_CONFLICTS):
        snap = st.people.snapshot(spec, planned.ops)
        changes = apply_rows(planned.ops, snap, rules)
        failed = {r for r, _ in changes.errors}
        links = [link for link in planned.links if link.row not in failed]
        found = st.people.held(sorted({link.anonymous_id for link in links}))
        if campaigns is None and any(events for _, events in found.values()):
            campaigns = trigger_rules.by_event(st.triggers.campaigns())
        attach = anonymous.attach(links, found, spec, campaigns or trigger_rules.NO_CAMPAIGNS, at,
                                  settings.clock_skew_s)
        attach.owners = {user: cio for *_, user in attach.ties if (cio := holder(snap, changes, "id", user))}
        warned = {r: (c, list(p)) for r, (c, p) in notes.items()}
        for row, problems in [*changes.warnings, *((r, [p]) for r, p in attach.warnings)]:
            warned.setdefault(row, (cells_of[row], []))[1].extend(problems)
        result = _commit_people(st, spec, chunk, settings, at, changes,
                                errors + [problem_row(r, cells_of[r], p) for r, p in changes.errors],
                                [problem_row(r, c, p) for r, (c, p) in sorted(warned.items())], attach=attach)
        if result.status != CONFLICT:
            return result
    raise TransientError(f"chunk {chunk}: the same people kept changing under it")


def _commit_events(st: Store, spec: ImportSpec, chunk: int, planned: SegmentChunk, rows: list[list[str]],
                   numbers: list[int], settings: Settings, at: float) -> None:
    """Step 1: the chunk's events, and those it holds for anonymous ids not tied to anyone yet."""
    for _ in range(people.MAX_CONFLICTS):
        tied = st.people.tied(sorted({e.person for e in planned.anonymous}))
        mine, held = anonymous.split(planned.events, planned.anonymous, tied)
        result = events.commit_validated(st, spec, chunk, RowOutcome(events=mine), rows, numbers, settings, at,
                                         step=CommitStep.EVENTS, anonymous=[anonymous.held(spec, e, at) for e in held])
        if not result.moved:
            return
    raise TransientError(f"chunk {chunk}: the anonymous ids of its events kept being tied to people under it")


def _commit_people(st: Store, spec: ImportSpec, chunk: int, settings: Settings, at: float, changes: Changes,
                   errors: list[bytes], warnings: list[bytes], *, cancelled: int = 0,
                   failed: bool = False, attach: anonymous.Attach | None = None, lost: bool = False) -> PeopleCommit:
    return st.people.commit(spec, chunk, changes, errors, warnings, at_ms=round(at * 1000),
                            retention_s=settings.retention_s, max_problem_rows=settings.max_problem_rows, failed=failed,
                            cancelled=cancelled, attach=attach, lost=lost)


def _uncounted(st: Store, spec: ImportSpec, chunk: int, rows: list[list[str]],
               numbers: list[int]) -> tuple[list[list[str]], list[int]]:
    """The rows the chunk's events step has not counted (all of them while it has not committed)."""
    if not st.work.chunk_done(spec.import_id, chunk, CommitStep.EVENTS):
        return rows, numbers
    kept = [(r, n) for r, n in zip(rows, numbers) if not (r and is_event(r[0]))]
    return [r for r, _ in kept], [n for _, n in kept]


def fail_chunk(st: Store, spec: ImportSpec, chunk: int, reason: str, settings: Settings,
               code: str = CHUNK_FAILED) -> PeopleCommit:
    """Commit a chunk that cannot be applied as errors (``code``): every row its events step has not
    counted already, so that each line is still counted once."""
    try:
        rows, numbers = st.work.load_chunk(spec.import_id, chunk) or ([], [])
    except (ValueError, KeyError, TypeError):
        rows, numbers = [], []
    lost = not rows
    rows, numbers = _uncounted(st, spec, chunk, rows, numbers)
    return _commit_people(st, spec, chunk, settings, st.now(), Changes(), failed_rows(rows, numbers, reason, code),
                          [], failed=True, lost=lost)
