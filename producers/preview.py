"""How a file would be read, shown before it is imported: what ``backfill inspect --json`` prints and the
HTTP service's ``POST /v1/uploads/{id}/inspect`` answers (one function, so the two never differ), and a
sample of its first rows as the workers would judge them.

The sample runs the workers' own row core (:func:`worker.events.chunk.validate`,
:func:`worker.people.pipeline.validate`) on the file's first records, under an import spec built from
the options as :func:`producers.api.enqueue_import` builds it, and writes nothing: no Redis is read or
written. So what it leaves out is what needs Redis or the rows around: whether the person exists (an
events import without ``create_people``), duplicates and event ids used again (the import's and the
results' memory), and a people file's directory rules (``only_new``, e-mails already taken).
"""
from __future__ import annotations

import time
from typing import Any

from producers.source import Source
from producers.split import Plan, chunks
from worker.cells import column_letter
from worker.events import chunk as events_core
from worker.people import pipeline as people_core
from worker.problems import Problem
from worker.spec import ImportSpec

#: The most rows a sample may hold.
MAX_SAMPLE = 200


def describe(name: str, plan: Plan) -> dict[str, Any]:
    """What ``backfill inspect --json`` prints for the file known as ``name``, scanned into ``plan``."""
    columns = plan.columns
    return {
        "file": name, "encoding": plan.sniffed.encoding, "encoding_reason": plan.sniffed.encoding_reason,
        "delimiter": plan.sniffed.delimiter, "dialect": columns.dialect, "identifier": plan.identifier,
        "rows": plan.rows, "blank_rows": plan.blank,
        "columns": [
            {"column": column_letter(i), "name": header, "role": columns.role_of(i),
             "first_values": list(plan.samples[i])}
            for i, header in enumerate(columns.header)
        ],
        "warnings": list(columns.notes),
    }


def sample(source: Source, plan: Plan, rows: int, *, kind: str = "events", timezone: str = "UTC",
           date_formats: tuple[str, ...] = (), dst: str | None = None, empty_cells: str = "ignore",
           data_to_process: str = "all", clock_skew_s: float = 300.0,
           now: float | None = None) -> list[dict[str, Any]]:
    """The first ``rows`` data rows of ``source`` (scanned into ``plan``) as the workers would judge
    them: each ``{"row", "cells", "outcome", "problems"}``, ``outcome`` ok, error or warning. Reads
    only those rows of the file. A file of Segment messages has no rows to show: []."""
    if plan.columns.dialect == "segment" or rows < 1:
        return []
    first = next(chunks(source, plan, min(rows, MAX_SAMPLE)), None)
    if first is None:
        return []
    spec = ImportSpec(import_id="inspect", columns=plan.columns, identifier=plan.identifier, kind=kind,
                      timezone=timezone, date_formats=date_formats, dst=dst, empty_cells=empty_cells,
                      data_to_process=data_to_process, encoding=plan.sniffed.encoding,
                      delimiter=plan.sniffed.delimiter)
    if kind == "people":
        judged = people_core.validate(spec, first.rows, first.row_numbers)
        errors, warnings = judged.errors, judged.warnings
    else:
        outcome = events_core.validate(spec, first.rows, first.row_numbers,
                                       time.time() if now is None else now, clock_skew_s)
        errors, warnings = outcome.errors, outcome.warnings
    found: dict[int, list[tuple[str, Problem]]] = {}
    for level, judged_rows in (("error", errors), ("warning", warnings)):
        for row, _, problems in judged_rows:
            found.setdefault(row, []).extend((level, p) for p in problems)
    where = _columns_by_name(plan)
    shown = []
    for row, cells in zip(first.row_numbers, first.rows):
        judged_row = found.get(row, [])
        levels = {level for level, _ in judged_row}
        shown.append({"row": row, "cells": list(cells),
                      "outcome": "error" if "error" in levels else "warning" if levels else "ok",
                      "problems": [_problem(p, level, where) for level, p in judged_row]})
    return shown


def _columns_by_name(plan: Plan) -> dict[str, int]:
    """Where a problem's column is, by the name problems give it: the header as written, or the property
    key it is read as (a mapped column)."""
    columns = plan.columns
    where: dict[str, int] = {}
    for index, key in getattr(columns, "properties", ()):
        where.setdefault(key, index)
    for index, header in reversed(list(enumerate(columns.header))):
        where[header] = index
        where.setdefault(header.strip(), index)
    return where


def _problem(problem: Problem, level: str, where: dict[str, int]) -> dict[str, Any]:
    index = where.get(problem.column) if problem.column else None
    return {"level": level, "code": problem.code, "column": None if index is None else column_letter(index),
            "name": problem.column or None, "message": problem.message}
