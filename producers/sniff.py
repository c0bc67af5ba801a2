"""What a file is, before it is parsed: not a workbook, not binary, its delimiter, its encoding.

:func:`sniff` reads the first 64 KiB: signatures of what is not CSV (workbooks, PDF, UTF-16),
the delimiter from the header. :func:`check_bytes` then reads the whole file as bytes, a block
at a time: NUL bytes and over-long lines are refused, and what the file says about UTF-8 (and,
once a byte is not UTF-8, whether it reads as cp1252: :mod:`producers.mojibake`) is gathered,
so :func:`choose_encoding` decides from the whole file, not from its start.
"""
from __future__ import annotations

import codecs
import dataclasses
import re

from producers.mojibake import CANDIDATES, Unlikely, shown, undefined, unlikely, word_at
from producers.source import Source
from worker.errors import FileProblem
from worker.raw import FIELD_LIMIT

SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
_SAVE_AS_CSV = "open it in Excel or Google Sheets and use File > Save as (Download) > CSV, then import the .csv"
_SIGNATURES = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel workbook (.xls)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF)"),
    (b"\xff\xfe", "UTF-16 text (Excel's \"Unicode text\")"),
    (b"\xfe\xff", "UTF-16 text"),
)
# Physical lines above this are refused before the CSV parser sees them: a 200 MB line of
# commas would otherwise become a list of a hundred million fields.
LINE_LIMIT = 2 * FIELD_LIMIT
# Blocks of the byte check: at most LINE_LIMIT, so a line over the limit always crosses blocks.
BLOCK_BYTES = FIELD_LIMIT


@dataclasses.dataclass(slots=True)
class Evidence:
    """What the whole file says about its encoding: its first byte that is not UTF-8, its first UTF-8
    text, and its first word that does not read as cp1252 (looked for once a byte is not UTF-8)."""

    #: (line, byte value) of the first byte that does not decode as UTF-8
    bad: tuple[int, int] | None = None
    #: (line, a few characters around it) of the first non-ASCII character that decodes as UTF-8
    text: tuple[int, str] | None = None
    #: (line, the word) of the first word that reads as mojibake in cp1252 and as letters in another encoding
    unlikely: tuple[int, Unlikely] | None = None


_BAD_BYTE = re.compile("[\udc80-\udcff]")
_LINES = re.compile("\r\n?|\n")  # a Mac file's lines end in CR alone
_WIDE = re.compile("[^\x00-\x7f\udc80-\udcff]")
# Bytes of the block before that are read again with a block, so that a word across the two is whole.
_OVERLAP = 64


def check_bytes(source: Source, *, cp1252: bool = True) -> Evidence:
    """Read the whole file as bytes, a block at a time, before any decoding or CSV parsing: a NUL
    byte, or a line longer than :data:`LINE_LIMIT`, is a FileProblem naming its line. Returns what
    the file says about its encoding (see :func:`choose_encoding`); ``cp1252``: whether to look for
    a word that does not read as cp1252 (needed only when the encoding is not given).

    One pass of bytes.find/count over 1 MiB blocks costs a few milliseconds per 100 MB; checking
    inside the parsing passes cost the producer ~10 % (a Python step per read). Only blocks that are
    not ASCII are decoded, and only until the evidence is found; the cp1252 reading only once a
    byte is not UTF-8 (and then until a word does not read as cp1252).
    """
    evidence = Evidence()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
    lines = run = offset = 0  # newlines before the block; bytes since the last line break; bytes before the block
    previous = b""
    with source.binary() as stream:
        while block := stream.read(BLOCK_BYTES):
            if (evidence.bad is None or evidence.text is None) and not block.isascii():
                _utf8_evidence(decoder.decode(block), lines, evidence)
            if cp1252 and evidence.bad is not None and evidence.text is None and evidence.unlikely is None \
                    and not block.isascii():
                found = unlikely(previous + block)
                if found is not None:
                    evidence.unlikely = (_line_at(source, offset - len(previous) + found.start), found)
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
            offset += len(block)
            previous = block[-_OVERLAP:]
    return evidence


def _line_at(source: Source, offset: int) -> int:
    """The line the byte at ``offset`` is on, counting every kind of line end (a Mac file's are CRs)."""
    lines, last = 0, b""
    with source.binary() as stream:
        while offset > 0 and (block := stream.read(min(BLOCK_BYTES, offset))):
            offset -= len(block)
            lines += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
            if last == b"\r" and block.startswith(b"\n"):  # a CRLF across two blocks is one line end
                lines -= 1
            last = block[-1:]
    return lines + 1


def _utf8_evidence(text: str, lines: int, evidence: Evidence) -> None:
    if evidence.bad is None and (bad := _BAD_BYTE.search(text)):
        evidence.bad = (lines + text.count("\n", 0, bad.start()) + 1, ord(bad.group()) - 0xDC00)
    if evidence.text is None and (wide := _WIDE.search(text)):
        word = word_at(text, wide.start())[1]
        evidence.text = (lines + text.count("\n", 0, wide.start()) + 1, word[:40])


def choose_encoding(sniffed: Sniffed, evidence: Evidence, name: str) -> Sniffed:
    """The file's encoding from the whole file's evidence, when none was given and there is no BOM.

    UTF-8 when every byte decodes as UTF-8. cp1252 (what Excel writes) when some byte does not and
    the file holds no UTF-8 text at all, unless a word reads as mojibake in cp1252 and as letters in
    another encoding (Mac Roman's ``Zürich`` is cp1252's ``ZŸrich``): that file is refused naming the
    line, the word and the encodings that read it. A file that holds both, valid UTF-8 text and a
    byte that is not UTF-8, is refused naming both lines: reading it either way would garble part of it.
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
    if evidence.text is None and evidence.unlikely is not None:
        raise _unlikely(name, *evidence.unlikely)
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


def _unlikely(name: str, line: int, found: Unlikely) -> FileProblem:
    writers = dict(CANDIDATES)
    ways = "; or ".join(f"as {encoding} ({text!r}), what {writers[encoding]} writes"
                        for encoding, text in found.readings)
    options = " or ".join(f"--encoding {encoding}" for encoding, _ in found.readings)
    # (a byte cp1252 does not define cannot be read as cp1252 at all)
    anyway = "" if undefined(found.word) else " (--encoding cp1252 reads it as cp1252 all the same)"
    return FileProblem(
        "unlikely_encoding",
        f"{name} does not read as cp1252 (what Excel on Windows writes): line {line} would hold "
        f"{shown(found.word)}, which is no word. It reads {ways}: pass {options}{anyway}",
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


def _utf16_without_bom(sample: bytes) -> bool:
    """True when the sample reads as UTF-16 text of the first 256 code points without its BOM: one byte
    of each pair is 0 and the other is not. A file whose NUL bytes fall anywhere (an image, a database,
    a program) is binary, not UTF-16."""
    even, odd = sample[0:len(sample) - len(sample) % 2:2], sample[1::2]
    if len(odd) < 2:
        return False
    return any(zeros.count(0) >= len(zeros) * 0.9 and text.count(0) <= len(text) * 0.1
               for zeros, text in ((odd, even), (even, odd)))


def _check_signature(sample: bytes, name: str) -> None:
    for magic, what in _SIGNATURES:
        if sample.startswith(magic):
            raise FileProblem("not_csv", f"{name} is {what}, not a CSV file: {_SAVE_AS_CSV}")
    if _utf16_without_bom(sample):
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
    first_line = _LINES.split(text, 1)[0]
    sep_line = False
    if first_line.lower().startswith("sep=") and len(first_line) == 5:
        delimiter, sep_line = delimiter or first_line[4], True
    if not delimiter:
        delimiter = _delimiter(text, 1 if sep_line else 0)
    return Sniffed(chosen, delimiter, sep_line, reason)


def _delimiter(text: str, skip: int) -> str:
    """The candidate the header holds most of, outside quotes; on a tie (``email;event_name;Amount,
    gross``), the one that splits the first lines into as many fields as the header."""
    lines = [line for line in _LINES.split(text, skip + 21)[skip:skip + 21] if line.strip()]
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
