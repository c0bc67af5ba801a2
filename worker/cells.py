"""Header cells and row cells, as both kinds of file share them. Pure: no I/O.

Column letters as a spreadsheet shows them, the cleaned header and its names,
our own report columns (``_row``, ``_errors``, ``_warnings``), reading a cell
(:func:`clean_cell`) and writing it back so it reads the same (:func:`escape_cell`),
fitting a row to the header's width, invisible characters, the one Unicode form identifiers
and names are compared in (:func:`composed`), and what an e-mail address looks like.

A leading apostrophe is a spreadsheet's "text" marker (Excel hides it; Shopify
exports ids as ``'7985351721238``): reading a cell removes one, in every file.
Writing a cell that starts with an apostrophe, or with a character a
spreadsheet would run as a formula, puts one in front, so that
``clean_cell(escape_cell(v)) == v`` for every value: an errors file imports
exactly as the rows it holds, with or without its ``_row``/``_errors`` columns.
"""
from __future__ import annotations

import re
import unicodedata

from worker.errors import FileProblem
from worker.problems import Problem

#: Columns our own errors/warnings files add: dropped so a corrected file re-imports as it is.
REPORT_COLUMNS = ("_row", "_errors", "_warnings")
# Deliberately plain: one @, no spaces, a domain of two or more dot-separated labels, none
# empty (``b..com``, a trailing dot), none starting or ending with a hyphen (DNS refuses
# those). Any other character may be in a label: IDN domains (``bücher.de``, ``例え.jp``) are
# addresses, as is their punycode (``xn--bcher-kva.de``). Full RFC 5322 accepts addresses no
# mail system delivers to, and rejecting real ones is worse. A "mailto:" link is not an address.
# (Possessive quantifiers: a label, and the labels, split one way only, so the engine never backtracks.)
_LABEL = r"[^@\s,;<>.\-][^@\s,;<>.]*+(?<!-)"
EMAIL = re.compile(rf"(?![Mm][Aa][Ii][Ll][Tt][Oo]:)[^@\s,;<>]++@(?:{_LABEL}\.)++{_LABEL}")
# Characters that print as nothing: zero-width space, word joiner, soft hyphen, BOM, direction
# marks, embeddings and isolates. In a name or an identifier they only break matching
# ("Completes checkout\u200b" never triggers "Completes checkout").
# No-break spaces (copied from web pages and Excel) look like spaces and are not: they are made
# ordinary spaces.
INVISIBLE = re.compile("[\u00a0\u00ad\u2007\u200b-\u200f\u202a-\u202f\u2060-\u2064\u2066-\u2069\ufeff]")
# The same, but zero-width (non-)joiners stay: they shape Persian words and emoji sequences.
INVISIBLE_IN_TEXT = re.compile("[\u00a0\u00ad\u2007\u200b\u200e\u200f\u202a-\u202f\u2060-\u2064\u2066-\u2069\ufeff]")
_SPACES = {"\u00a0": " ", "\u2007": " ", "\u202f": " "}
# A long number Excel shortened to scientific notation: its digits are lost for good.
SCIENTIFIC = re.compile(r"[+-]?\d(?:[.,]\d+)?[eE]\+?\d+")
# A spreadsheet runs a cell starting with one of these as a formula.
_DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "'")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAMES = {"\u00a0": "NO-BREAK SPACE, made a space", "\u2007": "FIGURE SPACE, made a space",
          "\u202f": "NARROW NO-BREAK SPACE, made a space", "\u00ad": "SOFT HYPHEN", "\u200b": "ZERO WIDTH SPACE", "\u200c": "ZERO WIDTH NON-JOINER",
          "\u200d": "ZERO WIDTH JOINER", "\u200e": "LEFT-TO-RIGHT MARK", "\u200f": "RIGHT-TO-LEFT MARK",
          "\u2060": "WORD JOINER", "\ufeff": "BYTE ORDER MARK"}
#: The longest text a spreadsheet cell holds; longer problem texts are cut to it.
CELL_LIMIT = 32_767
#: The longest attribute or property name, in UTF-8 bytes (Customer.io's limit): a longer one is
#: refused, a CSV column's as a file problem, a Segment message's key as a row error.
NAME_LIMIT = 150


def column_letter(index: int) -> str:
    """Spreadsheet letter of a 0-based column index: 0 -> A, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def clean_cell(cell: str) -> str:
    """A cell as it is read: trimmed, and without one leading apostrophe (the text marker)."""
    cell = cell.strip()
    return cell[1:].strip() if cell[:1] == "'" else cell


def clean_cells(raw: list[str]) -> list[str]:
    """:func:`clean_cell` of every cell; the usual row (no apostrophe anywhere) costs two C calls."""
    cells = [c.strip() for c in raw]
    if "'" in "".join(cells):
        return [c[1:].strip() if c[:1] == "'" else c for c in cells]
    return cells


def escape_cell(value: str) -> str:
    """``value`` written so a spreadsheet never runs it and :func:`clean_cell` reads it back as it is.

    Numbers (``-12.5``, ``+7``) stay as they are.
    """
    value = clean_cell(value)
    if value.startswith(_DANGEROUS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def header_key(name: str) -> str:
    """How header names are compared: case, spaces, underscores and hyphens aside (``Event Name``
    is ``event_name``)."""
    return re.sub(r"[\s_\-]+", "", name.lower())


def header_names(header: list[str], max_columns: int) -> tuple[tuple[str, ...], dict[str, int]]:
    """The cleaned header cells, and each lower-cased name's column index.

    Invisible characters (a BOM written twice, zero-width spaces) are removed from names.
    Raises FileProblem when the header is wider than ``max_columns`` or repeats a name.
    """
    cells = tuple(without_invisible(clean_cell(cell))[0] for cell in header)
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


def long_name(name: str) -> str | None:
    """Why ``name`` cannot be an attribute or property name (over :data:`NAME_LIMIT` bytes), or None."""
    # (a character is at most 4 bytes: the usual short name costs one len())
    if len(name) <= NAME_LIMIT // 4 or (size := len(name.encode())) <= NAME_LIMIT:
        return None
    return f"{name[:40]!r}... is {size:,} bytes long; a name may be at most {NAME_LIMIT} bytes (Customer.io's limit)"


def refuse_long_names(names: tuple[tuple[int, str], ...], what: str) -> None:
    """Raise ``name_too_long`` for the first (column index, name) whose name is too long to be
    a ``what`` ("property", "attribute") name."""
    for index, name in names:
        why = long_name(name)
        if why is not None:
            raise FileProblem("name_too_long", f"column {column_letter(index)}: the {what} name {why}; rename the "
                                               "column (in the file, or with --map COLUMN=NAME) or leave it out "
                                               "with --skip COLUMN")


def is_report_file(header: tuple[str, ...], dropped: tuple[int, ...]) -> bool:
    """True for a file we wrote (an errors or warnings CSV)."""
    return any(header[i].lower() in ("_errors", "_warnings") for i in dropped)


def is_email(value: str) -> bool:
    """True when ``value`` looks like one deliverable e-mail address."""
    return EMAIL.fullmatch(value) is not None


def email_problem(value: str, what: str = "") -> str:
    """The message for a value that is not an e-mail address (``what``: "recipient must be an e-mail
    address, got "...), saying what is wrong with its domain when that is what is wrong."""
    if value[:7].lower() == "mailto:":
        return f"{value!r} is a mailto: link, not an address: write {value[7:]!r}"
    said = f"{what}{value!r}" if what else f"{value!r} is not an e-mail address"
    fault = _domain_fault(value)
    return f"{said}: {fault}" if fault else said


def _domain_fault(value: str) -> str:
    """What is wrong with the domain of an address that is otherwise one ("" when it is not that)."""
    local, at, domain = value.partition("@")
    if not local or not at or "@" in domain or "." not in domain or re.search(r"[\s,;<>]", value):
        return ""
    if domain.endswith("."):
        return "the domain ends with a dot"
    if domain.startswith("."):
        return "the domain has an empty label (a dot right after the @)"
    if ".." in domain:
        return "the domain has an empty label (two dots together)"
    labels = domain.split(".")
    if any(label.startswith("-") for label in labels):
        return "a label of the domain starts with a hyphen"
    if any(label.endswith("-") for label in labels):
        return "a label of the domain ends with a hyphen"
    return ""


def mangled_problem(value: str) -> str:
    """The message for an id a spreadsheet turned into scientific notation (see :data:`SCIENTIFIC`)."""
    return (f"{value!r} is a long number that a spreadsheet shortened to scientific notation: its digits are "
            "lost. Format the column as Text in the spreadsheet, export the CSV again")


def without_invisible(value: str, pattern: re.Pattern[str] = INVISIBLE) -> tuple[str, str]:
    """``value`` without invisible characters, and the names of those removed ("" when none)."""
    found = sorted(set(pattern.findall(value)))
    if not found:
        return value, ""
    names = ", ".join(f"U+{ord(c):04X} {_NAMES.get(c, 'FORMAT CHARACTER')}" for c in found)
    return " ".join(pattern.sub(lambda m: _SPACES.get(m.group(), ""), value).split()), names


def visible(value: str, label: str | None, row: int, notes: list[Problem], pattern: re.Pattern[str] = INVISIBLE) -> str:
    """``value`` without invisible characters; a warning in ``notes`` saying which were removed."""
    cleaned, removed = without_invisible(value, pattern)
    if removed:
        notes.append(Problem(row, label, "invisible_characters",
                             f"removed invisible characters ({removed}) from {cleaned!r}"))
    return cleaned


def composed(value: str, label: str | None, row: int, notes: list[Problem]) -> str:
    """``value`` in Unicode's composed form (NFC), the one identifiers and names are compared in; a
    warning in ``notes`` when it was written otherwise.

    macOS writes text decomposed (NFD: ``e`` followed by U+0301 COMBINING ACUTE ACCENT): pasted into a
    sheet, ``Café`` looks the same as the one typed elsewhere but is not equal to it, so it would be
    another person, another event name, another dedupe key. ASCII text is composed as it is.
    """
    if value.isascii() or unicodedata.is_normalized("NFC", value):
        return value
    fixed = unicodedata.normalize("NFC", value)
    # (the characters composition replaced: the combining marks, or a singleton such as U+212B ANGSTROM SIGN)
    gone = sorted(set(value) - set(fixed))
    marks = [c for c in gone if unicodedata.combining(c)] or gone
    names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'CHARACTER')}" for c in marks)
    notes.append(Problem(row, label, "unicode_normalized",
                         f"{fixed!r} was written with {names} (decomposed, as macOS writes accents): read in the "
                         "composed form (NFC), so it matches the same text typed elsewhere"))
    return fixed


def nfc(value: str) -> str:
    """``value`` in the composed form (NFC) identifiers and names are compared in, with no warning (a
    campaign's definition, a name looked up)."""
    return value if value.isascii() else unicodedata.normalize("NFC", value)


def shorten(text: str, limit: int = CELL_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    return text if len(text) <= limit else text[: limit - 40] + f"... ({len(text) - limit + 40} more characters)"


def fit_cells(cells: list[str], row: int, width: int) -> tuple[list[str], list[Problem]]:
    """A row's cleaned cells made as wide as the header.

    Extra cells that hold values are a ``too_many_cells`` problem; empty ones are dropped.
    """
    problems = []
    if len(cells) > width:
        extra = [c for c in cells[width:] if c]
        if extra:
            listed = shorten(", ".join(repr(c) for c in extra[:20]), 500) + (" ..." if len(extra) > 20 else "")
            problems.append(Problem(row, None, "too_many_cells",
                                    f"{len(cells)} cells but the header has {width} columns; "
                                    f"{len(extra)} extra with values: {listed}. An unquoted comma in a value "
                                    "splits it: quote the value, or fix the row"))
        cells = cells[:width]
    elif len(cells) < width:
        cells = cells + [""] * (width - len(cells))
    return cells, problems
