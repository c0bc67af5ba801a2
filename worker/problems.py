"""Row problems as data: what is wrong with a row, and the stored form of a problem row. Pure.

Every problem has a stable ``code``, the file row and the column it is about.
Errors keep a row out of the import; warnings do not. Both kinds of import
(events, people) store their problem rows the same way, and the errors and
warnings files are rendered from that form (:mod:`worker.ops.report`).
"""
from __future__ import annotations

import dataclasses

import orjson

#: Why a chunk's rows can all be errors: it raised, it stopped its worker too often, or its import was
#: cancelled before it was processed.
CHUNK_FAILED, CHUNK_POISON, CANCELLED = "chunk_failed", "chunk_poison", "cancelled"


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one row."""

    row: int
    column: str | None
    code: str
    message: str

    def text(self) -> str:
        """One line for the ``_errors``/``_warnings`` cell."""
        where = f" (column {self.column!r})" if self.column else ""
        return f"{self.code}: {self.message}{where}"


def problem_row(row: int, cells: list[str], problems: list[Problem]) -> bytes:
    """One error or warning row, as stored for the errors and warnings files."""
    return orjson.dumps({
        "row": row, "cells": cells,
        "problems": [p.text() for p in problems], "codes": [p.code for p in problems],
    })


def failed_rows(rows: list[list[str]], numbers: list[int], reason: str, code: str = CHUNK_FAILED) -> list[bytes]:
    """Every row of a chunk that could not be processed, as an error row (``code``)."""
    text = ("the import was cancelled before this row was processed; import it again to complete it"
            if code == CANCELLED else f"this part of the file could not be processed ({reason}); import these rows again")
    problem = [Problem(0, None, code, text)]
    return [problem_row(n, r, problem) for r, n in zip(rows, numbers)]
