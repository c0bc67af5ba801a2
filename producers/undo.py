"""Taking an import back: ``backfill undo ID`` and ``POST /v1/imports/{id}/undo``.

An undo takes out what a finished events import wrote, so that the same file can be imported
again and import everything:

1. the import joins ``keys.UNDONE``: from then on the sinks drop its outbox entries instead of
   storing them (they ask under the database lock an undo also takes: worker/sink/);
2. its dedupe marks: each event it imported, read back from the outbox and the results database,
   gives its dedupe key again (:func:`worker.events.rows.key_of`), and the mark is removed;
3. its triggers scheduled and not yet sent are removed; those sent are listed, not un-sent;
4. the results database loses its events and its unsent trigger decisions; its record says
   ``undone``.

The undo is recorded on the import (``undo`` in its hash): asked again, it answers what it did
and does nothing more. People the import created stay (they may have been named since by other
imports); the report says how many it created.
"""
from __future__ import annotations

import orjson

from worker import keys
from worker.errors import ConfigError, ImportNotFound
from worker.events.rows import key_of
from worker.logs import get_logger
from worker.settings import Settings, get_settings
from worker.store.client import now_ms

log = get_logger("backfill.undo")
#: Stored events read back per query, at most (an import's events, in pages).
PAGE = 50_000


def undo_import(import_id: str, settings: Settings | None = None) -> dict:
    """Undo a finished events import (see the module); what it did. Raises ImportNotFound, or
    ConfigError for an import that runs, a people import, or a results database that cannot be read."""
    from worker.sink.results import open_results
    from worker.tasks import store

    settings = settings or get_settings()
    st = store()
    state = st.imports.state(import_id)
    if not state:
        raise ImportNotFound(f"no import {import_id!r} (unknown, or expired after its retention)")
    if state.get("undo"):
        return {**orjson.loads(state["undo"]), "already": True}
    if not state.get("report"):
        raise ConfigError(f"import {import_id} has not finished ({state.get('status')}): cancel it first "
                          f"(backfill cancel {import_id}), then undo it")
    spec = st.imports.spec(import_id) if state.get("spec") else None
    if spec is not None and spec.kind == "people":
        raise ConfigError("undo takes back events imports; a people import cannot be undone (yet)")
    done: dict = {"import_id": import_id, "undone_ms": now_ms(), "marks_removed": 0, "triggers_unscheduled": 0,
                  "events_deleted": 0, "decisions_deleted": 0, "sent": [],
                  "people_kept": int(state.get("people_created", 0) or 0)}
    if spec is not None and not spec.dry_run:  # (a refused import or a dry run wrote nothing)
        results = open_results(settings)  # (first: a database that cannot be read stops the undo before it starts)
        try:
            results.check()
            st.r.sadd(keys.UNDONE, import_id)
            events = _events(st, results, import_id)
            dedupe = {k for k in (key_of(*e) for e in events) if k is not None}
            done["marks_removed"] = st.events.forget_marks(dedupe, settings.dedupe_shard_bits)
            done["triggers_unscheduled"] = st.triggers.drop_scheduled(import_id)
            done.update(results.undo(import_id))
        finally:
            results.close()
    st.imports.record_undo(import_id, done)
    log.info("import undone", **{k: v for k, v in done.items() if k != "sent"}, sent=len(done["sent"]))
    return done


def _events(st, results, import_id: str) -> list[tuple]:
    """(person key, name, ts_ms, data, event id) of every event the import imported: those still in the
    outbox and those the results database holds (the same event in both counts once, by row)."""
    found: dict[int, tuple] = {}
    for event in st.events.read(import_id):
        (kind, person), = event["person"].items()
        found[event["row"]] = (person.lower() if kind == "email" else person, event["name"],
                               round(event["timestamp"] * 1000), event["data"], event.get("id"))
    after = -1
    while True:
        page = results.events_of(import_id, after, PAGE)
        for e in page:
            found.setdefault(e.row, (e.person.lower() if e.person_kind == "email" else e.person, e.name, e.ts_ms,
                                     e.data, e.event_id))
        if len(page) < PAGE:
            return list(found.values())
        after = page[-1].row
