"""An import's options, checked before anything is read: the one check of the CLI (``backfill
import``) and of the HTTP service, so that what one lets through the other does too, and neither
lets through what would fail later with Python's message instead of one about the option."""
from __future__ import annotations

import codecs
import warnings
from pathlib import Path

from worker.errors import ConfigError, FileProblem
from worker.people.columns import DATA_TO_PROCESS, EMPTY_CELLS
from worker.timestamps import check_formats, check_zone, parse_duration

from . import segment
from .source import Source
from .text import check_text, check_texts

#: What ``--delimiter`` accepts besides the character itself.
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def delimiter_of(text: str | None) -> str | None:
    """The delimiter ``text`` names: a character, ``tab`` (or ``\\t``), ``comma``, ``semicolon``, ``pipe``;
    raises ConfigError for anything else."""
    if text is None or text == "":
        return None
    chosen = DELIMITER_NAMES.get(text.lower(), text)
    if chosen != "\t":
        check_text("--delimiter", chosen)
    if len(chosen) != 1 or chosen in "\"\r\n" or chosen.isalnum():
        raise ConfigError(f"--delimiter {text!r}: give one character (, ; |) or tab")
    return chosen


def check_options(*, kind: str = "events", data_to_process: str = "all", empty_cells: str = "ignore",
                  date_formats: tuple[str, ...] | list[str] = (), timezone: str = "UTC",
                  dst: str | None = None, trigger_window: str | int | None = "72h",
                  delimiter: str | None = None, encoding: str | None = None,
                  mapping: dict[str, str] | None = None, skip: tuple[str, ...] | list[str] = (),
                  source: str | None = None, trigger: bool = False,
                  create_people: bool = False) -> tuple[tuple[str, ...], int | None]:
    """Check an import's options before anything is read; (date formats, trigger window in seconds).
    Raises ConfigError naming the option that is wrong. The one check of both the CLI and the HTTP
    service: what it lets through is read the same way by the producer and the workers."""
    check_text("file name", source or "")
    check_texts("--map", mapping or {})
    check_texts("--skip", skip)
    _check_columns(mapping or {}, skip)
    check_texts("--date-format", date_formats)
    check_text("--timezone", timezone)
    if isinstance(trigger_window, str):
        check_text("--trigger-window", trigger_window)
    if kind not in ("events", "people"):
        raise ConfigError(f"kind must be events or people, not {kind!r}")
    if data_to_process not in DATA_TO_PROCESS or empty_cells not in EMPTY_CELLS:
        raise ConfigError(f"data_to_process must be one of {', '.join(DATA_TO_PROCESS)} and empty_cells one of "
                          f"{', '.join(EMPTY_CELLS)}")
    if kind == "events" and (data_to_process != "all" or empty_cells != "ignore"):
        raise ConfigError("data_to_process and empty_cells are options of people imports")
    if kind == "people" and (trigger or create_people):
        raise ConfigError("--trigger and --create-people are options of events imports: a people import creates "
                          "the people it names and triggers no campaign")
    try:
        formats = check_formats(tuple(date_formats))
        check_zone(timezone, dst)
        window = parse_duration(trigger_window) if isinstance(trigger_window, str) else trigger_window
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    delimiter_of(delimiter)
    if encoding:
        check_encoding(encoding)
    return formats, window


def _check_columns(mapping: dict[str, str], skip: tuple[str, ...] | list[str]) -> None:
    """A column mapped to no name, or both mapped and skipped, is refused (one of the two would be dropped
    without a word: the CLI's ``--map COLUMN=`` is refused, and the HTTP service's options must be too)."""
    for column, name in mapping.items():
        if not name.strip():
            raise ConfigError(f"--map {column!r}: give the column's new name (COLUMN=NAME), or --skip it")
    skipped = {s.strip().lower() for s in skip}
    both = sorted(c for c in mapping if c.strip().lower() in skipped)
    if both:
        raise ConfigError(f"--map and --skip both name column {both[0]!r}: map it or skip it, not both")


#: ASCII text that every encoding a CSV file may be read in gives back as it is: each byte below 0x80,
#: and what other codecs would read otherwise (escapes, UTF-7's +...-, HZ's ~{, ISO-2022's ESC $ B,
#: an IDNA label).
_ASCII = bytes(range(128)) + b"\\n \\x41 \\u0041 +AGEA- ~{ \x1b$B\",\x1b(B .xn--bcher-kva.example,ok\r\n"


def check_encoding(name: str) -> str:
    """The codec's name, when ``--encoding name`` can read a CSV file: a text encoding that reads
    ASCII as ASCII (the commas, quotes and line ends are found in the text it decodes). Raises
    ConfigError otherwise: base64, rot13, zlib... (not text encodings), idna, punycode, UTF-7,
    EBCDIC, and UTF-16 and UTF-32, which backfill refuses as files."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ConfigError(f"unknown encoding {name!r}: use utf-8, cp1252, latin-1...") from None
    if info.name.startswith(("utf-16", "utf-32")):
        raise ConfigError(f"--encoding {name!r}: backfill reads no UTF-16 or UTF-32 file (save it as CSV UTF-8)")
    try:
        with warnings.catch_warnings():  # (unicode_escape warns of the sample's "\]" before it is refused)
            warnings.simplefilter("ignore", DeprecationWarning)
            reads_ascii = info._is_text_encoding and _ASCII.decode(info.name) == _ASCII.decode("latin-1")
    except (UnicodeError, ValueError, TypeError):
        reads_ascii = False
    if not reads_ascii:
        raise ConfigError(f"--encoding {name!r} is not a text encoding that reads ASCII as ASCII, as a CSV "
                          "file needs: use utf-8, cp1252, latin-1...")
    return info.name


#: Why options are refused for a file of Segment messages (the CLI and the HTTP service say the same).
SEGMENT_DRY_RUN = "--dry-run does not read Segment files yet: import into a test Redis instead"
SEGMENT_KIND = "a file of Segment messages holds people and events together: leave out --type"


def check_file_options(path: str | Path, *, dry_run: bool = False, kind: str = "events", format: str | None = None,
                       content: bool = True) -> None:
    """The options that depend on what the file holds, checked before anything is recorded: a file of
    Segment messages (by the rule :func:`producers.api.enqueue_import` applies: ``format``, the name,
    else the first character) takes no dry run and no ``--type``. ``content`` False: by the name only
    (a URL not downloaded yet). Raises ConfigError; a file that cannot be opened is left for the
    import to refuse."""
    if (not dry_run and kind == "events") or format == "csv":
        return
    if format == "segment" or segment.named_like(str(path)) or (content and _opens_like_json(path)):
        raise ConfigError(SEGMENT_DRY_RUN if dry_run else SEGMENT_KIND)


def _opens_like_json(path: str | Path) -> bool:
    try:
        source = Source.open(path)
    except FileProblem:
        return False
    try:
        return segment.looks_like(source)
    except (FileProblem, OSError):
        return False
    finally:
        source.close()
