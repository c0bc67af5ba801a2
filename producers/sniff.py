"""What a file is, before it is parsed: not a workbook, not binary, its delimiter, its encoding.

:func:`sniff` reads the first 64 KiB: signatures of what is not CSV (workbooks, PDF, UTF-16),
the delimiter from the header. :func:`check_bytes` then reads the whole file as bytes, a block
at a time: NUL bytes and over-long lines are refused, and what the file says about UTF-8 is
gathered, so :func:`choose_encoding` decides from the whole file, not from its start.
"""
from __future__ import annotations

import codecs
import dataclasses
import re

from producers.source import Source
from worker.errors import FileProblem

SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
_SAVE_AS_CSV = "open it in Excel or Google Sheets and use File > Save as (Download) > CSV, then import the .csv"
_SIGNATURES = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\xff\xfe", "UTF-16 text (Excel's \"Unicode text\")"),
    (b"\xfe\xff", "UTF-16 text"),
)
# Fields above this are refused: no real spreadsheet cell is this long, and a
# file that is one giant field would otherwise be held in memory whole.
FIELD_LIMIT = 1024 * 1024
# Physical lines above this are refused before the CSV parser sees them: a 200 MB line of
# commas would otherwise become a list of a hundred million fields.
LINE_LIMIT = 2 * FIELD_LIMIT
# Blocks of the byte check: at most LINE_LIMIT, so a line over the limit always crosses blocks.
BLOCK_BYTES = FIELD_LIMIT


@dataclasses.dataclass(slots=True)
class Utf8Evidence:
    """What the whole file says about UTF-8: its first byte that is not UTF-8, its first UTF-8 text."""

    #: (line, byte value) of the first byte that does not decode as UTF-8
    bad: tuple[int, int] | None = None
    #: (line, a few characters around it) of the first non-ASCII character that decodes as UTF-8
    text: tuple[int, str] | None = None


_BAD_BYTE = re.compile("[\udc80-\udcff]")
_WIDE = re.compile("[^\x00-\x7f\udc80-\udcff]")
_WORD_END, _WORD_START = re.compile(r'[^\s,;|"]*$'), re.compile(r'[^\s,;|"]*')


def check_bytes(source: Source) -> Utf8Evidence:
    """Read the whole file as bytes, a block at a time, before any decoding or CSV parsing: a NUL
    byte, or a line longer than :data:`LINE_LIMIT`, is a FileProblem naming its line. Returns what
    the file says about UTF-8 (see :func:`choose_encoding`).

    One pass of bytes.find/count over 1 MiB blocks costs a few milliseconds per 100 MB; checking
    inside the parsing passes cost the producer ~10 % (a Python step per read). Only blocks that are
    not ASCII are decoded, and only until both pieces of evidence are found.
    """
    evidence = Utf8Evidence()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    lines = run = 0  # newlines before the block; bytes since the last line break
    with source.binary() as stream:
        while block := stream.read(BLOCK_BYTES):
            if (evidence.bad is None or evidence.text is None) and not block.isascii():
                _utf8_evidence(decoder.decode(block), lines, evidence)
            nul = block.find(b"\0")
            if nul != -1:
                line = lines + block.count(b"\n", 0, nul) + 1
                raise FileProblem("binary_file", f"line {line} of {source.name} holds a NUL byte: this is not a "
                                  f"text CSV file; {_SAVE_AS_CSV} (UTF-8)", line=line)
            breaks = [i for i in (block.find(b"\n"), block.find(b"\r")) if i != -1]
            if run + (min(breaks) if breaks else len(block)) > LINE_LIMIT:
                raise FileProblem("line_too_long", f"line {lines + 1} of {source.name} is over "
                                  f"{LINE_LIMIT // 1024**2} MiB: this is not a spreadsheet's CSV", line=lines + 1)
            last = max(block.rfind(b"\n"), block.rfind(b"\r"))
            run = run + len(block) if last == -1 else len(block) - last - 1
            lines += block.count(b"\n")
    return evidence


def _utf8_evidence(text: str, lines: int, evidence: Utf8Evidence) -> None:
    if evidence.bad is None and (bad := _BAD_BYTE.search(text)):
        evidence.bad = (lines + text.count("\n", 0, bad.start()) + 1, ord(bad.group()) - 0xDC00)
    if evidence.text is None and (wide := _WIDE.search(text)):
        start = text.rfind("\n", 0, wide.start()) + 1
        word = _WORD_END.search(text[start:wide.start()]).group() + _WORD_START.match(text[wide.start():]).group()
        evidence.text = (lines + text.count("\n", 0, wide.start()) + 1, word[:40])


def choose_encoding(sniffed: Sniffed, evidence: Utf8Evidence, name: str) -> Sniffed:
    """The file's encoding from the whole file's evidence, when none was given and there is no BOM.

    UTF-8 when every byte decodes as UTF-8. cp1252 (what Excel writes) when some byte does not and
    the file holds no UTF-8 text at all. A file that holds both, valid UTF-8 text and a byte that is
    not UTF-8, is refused naming both lines: reading it either way would garble part of it.
    """
    if sniffed.encoding_reason != "sniffed":
        if evidence.bad and sniffed.encoding == "utf-8-sig":
            line, byte = evidence.bad
            raise FileProblem("bad_encoding", f"{name} starts with a UTF-8 BOM but line {line} has byte 0x{byte:02x}, "
                              "which is not UTF-8: fix that line or save the file as CSV UTF-8 again", line=line)
        return sniffed
    if evidence.bad is None:
        return dataclasses.replace(sniffed, encoding="utf-8", encoding_reason="valid UTF-8")
    line, byte = evidence.bad
    if evidence.text is None:
        return dataclasses.replace(sniffed, encoding="cp1252", encoding_reason=(
            f"cp1252: not UTF-8 (line {line} has byte 0x{byte:02x}) and no UTF-8 text anywhere"))
    text_line, word = evidence.text
    raise FileProblem(
        "mixed_encoding",
        f"{name} mixes encodings: line {line} has byte 0x{byte:02x}, which is not UTF-8, while line {text_line} "
        f"holds UTF-8 text ({word!r}). Fix line {line} (re-type its accented letters) or save the whole file as "
        "CSV UTF-8; --encoding cp1252 reads every byte as cp1252 (and garbles the UTF-8 text)",
        line=line,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Sniffed:
    """What the start of a file says about all of it."""

    encoding: str
    delimiter: str
    #: True when the first line was Excel's ``sep=;`` hint (skipped when reading)
    sep_line: bool
    #: why this encoding: "BOM", "valid UTF-8", "cp1252: ...", "given" ("sniffed" until the whole file is read)
    encoding_reason: str
    #: spaces between a closing quote and the next delimiter (``"x" , "y"``) are removed before parsing
    quote_spaces: bool = False


def _check_signature(sample: bytes, name: str) -> None:
    for magic, what in _SIGNATURES:
        if sample.startswith(magic):
            raise FileProblem("not_csv", f"{name} is {what}, not a CSV file: {_SAVE_AS_CSV}")
    if sample.count(0) > len(sample) // 4:  # ASCII text in UTF-16 without a BOM: every other byte is 0
        raise FileProblem("not_csv", f"{name} is UTF-16 text, not a CSV file: {_SAVE_AS_CSV} (UTF-8)")
    if b"\x00" in sample:
        raise FileProblem(
            "binary_file",
            f"{name} is not a text file (it contains NUL bytes): {_SAVE_AS_CSV} (UTF-8)",
        )


def sniff(source: Source, *, encoding: str | None = None, delimiter: str | None = None) -> Sniffed:
    """Refuse non-CSV content, then pick the encoding and delimiter from a sample."""
    with source.binary() as stream:
        try:
            sample = stream.read(SAMPLE_BYTES)
        except (OSError, EOFError) as exc:
            raise FileProblem("unreadable", f"{source.name} cannot be read: {exc}") from None
    if not sample.strip():
        raise FileProblem("empty_file", f"{source.name} is empty: a CSV file needs a header row")
    _check_signature(sample, source.name)

    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise FileProblem("unknown_encoding", f"unknown encoding {encoding!r}") from None
        chosen, reason = encoding, "given"
    elif sample.startswith(codecs.BOM_UTF8):
        chosen, reason = "utf-8-sig", "BOM"
    else:
        chosen, reason = "utf-8", "sniffed"  # settled by choose_encoding once the whole file is read

    text = sample.decode(chosen, errors="replace")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    sep_line = False
    if first_line.lower().startswith("sep=") and len(first_line) == 5:
        delimiter, sep_line = delimiter or first_line[4], True
    if not delimiter:
        delimiter = _delimiter(text, 1 if sep_line else 0)
    return Sniffed(chosen, delimiter, sep_line, reason)


def _delimiter(text: str, skip: int) -> str:
    """The candidate the header holds most of, outside quotes; on a tie (``email;event_name;Amount,
    gross``), the one that splits the first lines into as many fields as the header."""
    lines = [line.rstrip("\r") for line in text.split("\n")[skip:skip + 21] if line.strip()]
    if not lines:
        return ","
    header = _strip_quoted(lines[0])
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts.values())
    if best == 0:
        return ","
    tied = [d for d in DELIMITERS if counts[d] == best]
    if len(tied) > 1:
        steady = [d for d in tied if all(_strip_quoted(line).count(d) == best for line in lines[1:])]
        if len(steady) == 1:
            return steady[0]
        # Still tied: prefer the one no header name would contain (";" rather than ",").
        for preferred in ("\t", ";", "|", ","):
            if preferred in tied:
                return preferred
    return tied[0]


def _strip_quoted(line: str) -> str:
    out, quoted = [], False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted:
            out.append(char)
    return "".join(out)
