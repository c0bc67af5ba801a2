"""Header cells and row cells, as both kinds of file share them. Pure: no I/O.

Column letters as a spreadsheet shows them, the trimmed header and its names,
our own report columns (``_row``, ``_errors``, ``_warnings``), the escape our
errors files add, fitting a row to the header's width, and what an e-mail
address looks like.
"""
from __future__ import annotations

import re

from worker.errors import FileProblem
from worker.problems import Problem

#: Columns our own errors/warnings files add: dropped so a corrected file re-imports as it is.
REPORT_COLUMNS = ("_row", "_errors", "_warnings")
# Deliberately plain: one @, no spaces, a dot in the domain. Full RFC 5322 accepts
# addresses no mail system delivers to, and rejecting real ones is worse.
EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>.]+")
# Cells we escaped in our own errors files: a quote before a formula trigger.
_ESCAPED = re.compile(r"'[=+\-@\t\r]")


def column_letter(index: int) -> str:
    """Spreadsheet letter of a 0-based column index: 0 -> A, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def header_names(header: list[str], max_columns: int) -> tuple[tuple[str, ...], dict[str, int]]:
    """The trimmed header cells, and each lower-cased name's column index.

    Raises FileProblem when the header is wider than ``max_columns`` or repeats a name.
    """
    cells = tuple(cell.strip() for cell in header)
    if len(cells) > max_columns:
        raise FileProblem(
            "too_many_columns",
            f"the file has {len(cells)} columns; the limit is {max_columns} "
            "(set BACKFILL_MAX_COLUMNS to raise it)",
        )
    seen: dict[str, int] = {}
    for index, cell in enumerate(cells):
        if not cell:
            continue
        key = cell.lower()
        if key in seen:
            raise FileProblem(
                "duplicate_header",
                f"duplicate column {cell!r}: columns {column_letter(seen[key])} and "
                f"{column_letter(index)} have the same name",
            )
        seen[key] = index
    return cells, seen


def is_report_file(header: tuple[str, ...], dropped: tuple[int, ...]) -> bool:
    """True for a file we wrote (an errors or warnings CSV): its cells carry our escapes."""
    return any(header[i].lower() in ("_errors", "_warnings") for i in dropped)


def is_email(value: str) -> bool:
    """True when ``value`` looks like one deliverable e-mail address."""
    return EMAIL.fullmatch(value) is not None


def unescape(cell: str) -> str:
    """Undo the formula escape our errors files add (``'=x`` -> ``=x``)."""
    return cell[1:] if _ESCAPED.match(cell) else cell


def fit_cells(cells: list[str], row: int, width: int, from_report: bool) -> tuple[list[str], list[Problem]]:
    """A row's stripped cells made as wide as the header, undoing our own escapes in a file we wrote.

    Extra cells that hold values are a ``too_many_cells`` problem; empty ones are dropped.
    """
    if from_report:
        # strip again: under our quote a cell may begin with the tab or CR the escape protected
        cells = [unescape(c).strip() for c in cells]
    problems = []
    if len(cells) > width:
        if any(cells[width:]):
            problems.append(Problem(row, None, "too_many_cells",
                                    f"{len(cells)} cells but the header has {width} columns; extra: "
                                    + ", ".join(repr(c) for c in cells[width:] if c)))
        cells = cells[:width]
    elif len(cells) < width:
        cells = cells + [""] * (width - len(cells))
    return cells, problems
