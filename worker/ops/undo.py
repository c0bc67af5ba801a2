"""Taking an import back, an operation on the stored data: ``backfill undo ID`` and
``POST /v1/imports/{id}/undo`` call it (through :func:`producers.api.undo_import`).

An undo takes out what a finished events import wrote, so that the same file can be imported
again and import everything:

1. the import joins ``keys.UNDONE``: from then on the sinks drop its outbox entries instead of
   storing them (they ask under the database lock an undo also takes: worker/sink/);
2. its dedupe marks: each event it imported, read back from the outbox and the results database,
   gives its dedupe key again (:func:`worker.events.rows.key_of`), and the mark is removed, except
   for the events another import also brought (counted there as duplicates of this one's: see
   worker/ops/undo_keep.py): those stay, as that import's rows, with their marks, counted imported
   there. Events commits wait meanwhile (``keys.UNDO_MARKS``), so none counts a duplicate of a mark
   being taken away, whenever the other import runs;
3. its triggers scheduled and not yet sent are removed; those sent are listed, not un-sent;
4. the results database loses its events and its unsent trigger decisions, and holds the events that
   stay as the other imports' (one transaction); its record says ``undone``;
5. the people it created that nothing else names (see :func:`_drop_people`: careful, a person
   wrongly deleted being worse than one kept).

One undo runs at a time (``keys.UNDO_LEASE``: another is refused meanwhile). The undo is recorded on
the import (``undo`` in its hash): asked again, it answers what it did and does nothing more.
"""
from __future__ import annotations

import orjson

from worker import keys
from worker.errors import BackfillError, ConfigError, ImportNotFound, ResultsUnavailable
from worker.events.rows import key_of, person_key
from worker.logs import get_logger
from worker.ops import undo_keep as keep
from worker.settings import Settings
from worker.sink.batch import event_rows
from worker.store import Store
from worker.store.clock import now_ms

log = get_logger("backfill.undo")
#: Stored events read back per query, at most (an import's events, in pages).
PAGE = 50_000


def undo_import(st: Store, import_id: str, settings: Settings) -> dict:
    """Undo a finished events import (see the module) in the store ``st``; what it did. Raises
    ImportNotFound, or ConfigError for an import that runs, a people import, a results database that
    cannot be read, another undo running, or an import whose shared events cannot be told
    (worker/ops/undo_keep.py). ``producers.api.undo_import`` calls it on the process's store."""
    state = st.imports.state(import_id)
    if not state:
        raise ImportNotFound(f"no import {import_id!r} (unknown, or expired after its retention)")
    if state.get("undo"):
        return {**orjson.loads(state["undo"]), "already": True}
    if not state.get("report"):
        raise ConfigError(f"import {import_id} has not finished ({state.get('status')}): cancel it first "
                          f"(backfill cancel {import_id}), then undo it")
    spec = st.imports.spec(import_id) if state.get("spec") else None
    if spec is not None and spec.kind in ("people", "segment"):
        raise ConfigError(f"undo takes back events imports; a {spec.kind} import cannot be undone (yet)"
                          + (": its person changes, and the anonymous events it held or tied, would stay"
                             if spec.kind == "segment" else ""))
    done: dict = {"import_id": import_id, "undone_ms": now_ms(st.r), "marks_removed": 0, "triggers_unscheduled": 0,
                  "events_deleted": 0, "events_kept": 0, "kept_by": {}, "decisions_deleted": 0, "sent": [],
                  "people_deleted": 0, "people_kept": 0, "people_kept_why": ""}
    if spec is not None and not spec.dry_run:  # (a refused import or a dry run wrote nothing)
        with st.undoing.hold(keys.UNDO_LEASE, import_id, exclusive=True) as other:
            if other is not None:
                raise ConfigError(f"an undo of import {other} is running: ask again when it has finished")
            _take_back(st, import_id, state, settings, done)
    st.imports.record_undo(import_id, done)
    log.info("import undone", **{k: v for k, v in done.items() if k not in ("sent", "kept_by")}, sent=len(done["sent"]))
    return done


def _take_back(st, import_id: str, state: dict[str, str], settings: Settings, done: dict) -> None:
    """Steps 1 to 5 of the module, under the undo's lease; what was done goes into ``done``."""
    from worker.sink.results import open_results

    since = int(state.get("first_commit_ms") or state.get("created_ms") or 0)
    keep.refuse_untraceable(st, import_id, since, settings.retention_s, now_ms(st.r))  # (before anything changes)
    results = open_results(settings)  # (first: a database that cannot be read stops the undo before it starts)
    try:
        results.check()
        # The outbox before the import joins UNDONE (a sink then drops its entries: read after, they
        # could be gone from both places); the database after (what a sink stored before is there).
        events, created = _in_outbox(st, import_id)
        st.r.sadd(keys.UNDONE, import_id)
        for row, event in _stored_events(results, import_id):
            events.setdefault(row, event)
        keyed = {key: row for row, event in events.items() if (key := _dedupe_key(event)) is not None}
        with st.undoing.hold(keys.UNDO_MARKS, import_id, exclusive=False):
            kept = keep.find_kept(st, import_id, since, keyed, settings.retention_s, now_ms(st.r))
            done["marks_removed"] = st.events.forget_marks([k for k, row in keyed.items() if row not in kept],
                                                           settings.dedupe_shard_bits)
            st.events.keep_marks({k: kept[row].expiry_h for k, row in keyed.items() if row in kept},
                                 settings.dedupe_shard_bits)
            done["kept_by"], records = keep.count_kept(st, import_id, kept)
        done["events_kept"] = len(kept)
        done["triggers_unscheduled"] = st.triggers.drop_scheduled(import_id)
        done.update(results.undo(import_id, keep.kept_rows(events, kept), records))
        created.update(results.created_by(import_id))
        dropped, why = _drop_people(st, results, import_id, created)
        done.update(people_deleted=len(dropped), people_kept=len(created) - len(dropped), people_kept_why=why)
    except Exception as exc:
        if isinstance(exc, BackfillError):
            raise
        # (sqlite3 / psycopg: a locked or unreachable database) one line, and the undo can be asked again
        raise ResultsUnavailable(f"the results database failed during the undo ({type(exc).__name__}: "
                                 f"{exc}); nothing is recorded: ask for the undo again") from None
    finally:
        results.close()


def _dedupe_key(event: tuple) -> bytes | None:
    """The dedupe key of an event as the results database holds it (a row of EVENT_COLUMNS)."""
    _, _, kind, person, name, ts_ms, event_id, data, _ = event
    return key_of(person_key(person, kind), name, ts_ms, orjson.loads(data), event_id)


def _in_outbox(st, import_id: str) -> tuple[dict[int, tuple], dict[str, tuple[str, str]]]:
    """From the import's outbox entries not yet stored: its events by row, as the results database's rows
    (EVENT_COLUMNS), and the people it created (cio_id -> (identifier kind, directory key))."""
    events: dict[int, tuple] = {}
    people: dict[str, tuple[str, str]] = {}
    for fields in st.events.entries():
        if fields.get(b"import", b"").decode() != import_id:
            continue
        if fields.get(b"events"):
            cio = orjson.loads(fields[b"cio"]) if b"cio" in fields else {}
            events.update((event[1], event) for event in event_rows(fields[b"events"], cio))
        for person in orjson.loads(fields[b"people"]) if fields.get(b"people") else ():
            kind = "email" if "email" in person else "id"
            people[person["cio_id"]] = (kind, person_key(person[kind], kind))
    return events, people


def _stored_events(results, import_id: str):
    """(row, event as :func:`_in_outbox` gives it) of the import's events in the results database, by pages."""
    after = -1
    while True:
        page = results.events_of(import_id, after, PAGE)
        for e in page:
            yield e.row, (e.import_id, e.row, e.person_kind, e.person, e.name, e.ts_ms, e.event_id,
                          orjson.dumps(e.data).decode(), e.cio_id)
        if len(page) < PAGE:
            return
        after = page[-1].row


def _drop_people(st, results, import_id: str, created: dict[str, tuple[str, str]]) -> tuple[list[str], str]:
    """Delete the people the import created that nothing else names; (their cio_ids, why others were kept).

    Deliberately careful, a person wrongly deleted being worse than one kept: while any import runs,
    or any outbox entry is not yet in the results database (another import's may name them, this
    import's would write their rows back), every person is kept; then one is deleted only if nothing
    changed it since it was created and no event of another import names it.
    """
    if not created:
        return [], ""
    if st.r.zcard(keys.PRODUCING) or st.r.zcard(keys.PENDING):
        return [], "other imports are running: what they name is not known yet"
    if next(iter(st.events.entries()), None) is not None:
        # another import's entries may name them; this import's would write them back (their people rows)
        return [], "the outbox is not all in the results database yet (is a sink running?)"
    alone = {cio: who for cio, who in created.items() if not results.named_elsewhere(import_id, cio, who[1])}
    gone = st.events.forget_people(alone)  # (only those still at version 1 in the directory)
    results.forget_people(gone)
    kept = len(created) - len(gone)
    return gone, (f"{kept} named by other imports or changed since" if kept else "")
