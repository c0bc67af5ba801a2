"""An import keeps at most BACKFILL_MAX_PROBLEM_ROWS error rows (and as many warning rows): past it they
are counted, not stored, the counts stay exact and the errors file ends saying how many were not kept. A
file of 170,000 empty messages once made 170,659 error rows kept 30 days."""
from __future__ import annotations

import csv
import dataclasses
import io

from producers.api import ImportHandle, inspect
from producers.source import Source
from producers.split import chunks, scan
from worker import keys
from worker.events.dialects import plan_columns
from worker.events.pipeline import commit_rows
from worker.ops.report import build_report
from worker.people.pipeline import apply_chunk
from worker.settings import get_settings
from worker.spec import ImportSpec, new_import_id

from .helpers import write

NOTE = "3 more error rows not kept: an import keeps its first BACKFILL_MAX_PROBLEM_ROWS error rows"


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


def test_events_error_rows_past_the_cap_are_counted_not_kept_and_the_file_says_so(store, tmp_path):
    settings = dataclasses.replace(get_settings(), max_problem_rows=5)
    spec = ImportSpec(import_id=new_import_id(), columns=plan_columns(["email", "event_name", "note"]),
                      identifier="email", create_people=True)
    store.imports.create(spec, {}, 3600)
    bad = [["not-an-address", "Ordered", f"n{n}"] for n in range(4)]
    good = [["ann@example.com", "Ordered", "ok"]]
    assert commit_rows(store, spec, 0, bad + good, [2, 3, 4, 5, 6], settings, 1_700_000_000).committed
    assert commit_rows(store, spec, 1, bad, [7, 8, 9, 10], settings, 1_700_000_000).committed
    state = store.imports.state(spec.import_id)
    assert int(state["errors"]) == 8 and int(state["imported"]) == 1  # the counts stay exact
    assert store.r.llen(keys.import_errors(spec.import_id)) == 5 and int(state["errors_not_kept"]) == 3
    assert build_report(state, {})["errors_not_kept"] == 3
    text = "".join(ImportHandle(spec.import_id).problems_csv("errors"))
    rows = _rows(text)
    assert rows[0] == ["email", "event_name", "note", "_row", "_errors"]
    assert [r[3] for r in rows[1:6]] == ["2", "3", "4", "5", "7"]  # the first rows kept, by chunk
    assert rows[6][:4] == ["", "", "", ""] and rows[6][4].startswith(NOTE) and len(rows) == 7
    # the file corrected and imported again: its closing note is no row (our own columns are not data)
    fixed = write(tmp_path, "fixed.csv", text.lstrip("\ufeff").replace("not-an-address", "bob@example.com"))
    source, plan = inspect(fixed)
    source.close()
    assert (plan.rows, plan.blank) == (5, 1)
    source = Source.open(fixed)
    assert [c.row_numbers for c in chunks(source, scan(source), 100)] == [[2, 3, 4, 5, 6]]
    source.close()


def test_people_error_rows_past_the_cap_are_counted_not_kept(store, tmp_path):
    settings = dataclasses.replace(get_settings(), max_problem_rows=2)
    path = write(tmp_path, "people.csv", "id,email\n" + "".join(f"{n},bad{n}@\n" for n in range(3)) + "9,ok@example.com\n")
    source = Source.open(path)
    plan = scan(source, people={"mapping": {}, "skip": (), "data_to_process": "all"})
    spec = ImportSpec(import_id=new_import_id(), columns=plan.columns, identifier=plan.identifier, kind="people",
                      source=str(path))
    store.imports.create(spec, {"rows_expected": plan.rows}, 3600)
    for chunk in chunks(source, plan, 50):
        store.work.put_chunk(spec.import_id, chunk.number, chunk.rows, chunk.row_numbers, 3600)
    source.close()
    assert apply_chunk(store, spec, 0, settings).status == 1
    state = store.imports.state(spec.import_id)
    assert int(state["errors"]) == 3 and int(state["errors_not_kept"]) == 1
    rows = _rows("".join(ImportHandle(spec.import_id).problems_csv("errors")))
    assert [r[-2] for r in rows[1:3]] == ["2", "3"] and rows[3][-1].startswith("1 more error row not kept")
