"""Opening an input file, refusing what is not CSV, and sniffing what is.

A :class:`Source` can be read more than once: the producer scans the whole file
once (so every file-level problem is found before any chunk is queued, even an
unterminated quote on the last line or a cp1252 byte at row 900,000), then
streams it again in chunks. Standard input is spooled to a temporary file for
that; nothing is ever held in memory whole.
"""
from __future__ import annotations

import codecs
import csv
import dataclasses
import gzip
import io
import re
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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
csv.field_size_limit(FIELD_LIMIT)
# Physical lines above this are refused before the CSV parser sees them: a 200 MB line of
# commas would otherwise become a list of a hundred million fields.
LINE_LIMIT = 2 * FIELD_LIMIT
# Blocks of the byte check: at most LINE_LIMIT, so a line over the limit always crosses blocks.
BLOCK_BYTES = FIELD_LIMIT
# A gzip file is refused when it inflates past this many times its compressed size (real CSV
# compresses 5-20 times; a "bomb" a thousand times), judged once this much has come out...
GZIP_MAX_RATIO = 100
GZIP_RATIO_AFTER = 16 * 1024 * 1024
# ...or when it inflates past this size at all.
GZIP_MAX_BYTES = 20 * 1024**3


class Source:
    """A file that can be opened (as bytes, decompressed) several times."""

    def __init__(self, name: str, path: Path, *, gzipped: bool, temporary: bool = False) -> None:
        self.name = name
        self.path = path
        self.gzipped = gzipped
        self._temporary = temporary

    @classmethod
    def open(cls, target: str | Path, *, stdin: BinaryIO | None = None) -> Source:
        """Open ``target``: a path, ``.gz`` or not, or ``-`` for standard input."""
        if str(target) == "-":
            spool = tempfile.NamedTemporaryFile(prefix="backfill-stdin-", suffix=".csv", delete=False)
            path = Path(spool.name)
            try:
                with spool:
                    shutil.copyfileobj(stdin or sys.stdin.buffer, spool, 1024 * 1024)
                return cls("-", path, gzipped=_is_gzip(path), temporary=True)
            except BaseException:  # Ctrl-C, a full disk, a broken pipe: no partial copy left behind
                path.unlink(missing_ok=True)
                raise
        path = Path(target)
        if not path.exists():
            raise FileProblem("not_found", f"{path}: no such file")
        if path.is_dir():
            raise FileProblem("not_a_file", f"{path} is a folder, not a CSV file")
        return cls(str(path), path, gzipped=_is_gzip(path))

    def binary(self) -> BinaryIO:
        """A fresh binary stream over the (decompressed) content."""
        if self.gzipped:
            return io.BufferedReader(_CappedGzip(self.path, self.name), 1024 * 1024)  # type: ignore[return-value]
        return self.path.open("rb")

    def close(self) -> None:
        """Delete the spooled copy of standard input, if any."""
        if self._temporary:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _CappedGzip(io.RawIOBase):
    """A gzip stream that refuses to inflate past :data:`GZIP_MAX_BYTES` or :data:`GZIP_MAX_RATIO`."""

    def __init__(self, path: Path, name: str) -> None:
        self._raw = path.open("rb")
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="rb")
        self._name = name
        self._out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        try:
            n = self._gzip.readinto(buffer)
        except EOFError:
            raise FileProblem("unreadable", f"{self._name} is a damaged gzip file: it ends before its last block "
                              "(a cut download?); download or compress it again") from None
        except (OSError, zlib.error) as exc:
            raise FileProblem("unreadable", f"{self._name} is a damaged gzip file ({exc}); download or compress "
                              "it again") from None
        self._out += n
        if self._out > GZIP_MAX_BYTES:
            raise FileProblem("too_large", f"{self._name} inflates to more than {GZIP_MAX_BYTES // 1024**3} GiB: "
                              "split it into several files")
        if self._out > GZIP_RATIO_AFTER and self._out > GZIP_MAX_RATIO * max(self._raw.tell(), 1):
            raise FileProblem("gzip_bomb", f"{self._name} inflates more than {GZIP_MAX_RATIO} times its size, "
                              "which no real CSV file does: refused as a decompression bomb")
        return n

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()
        super().close()


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


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


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
        # The header decides: the candidate it holds most of, outside quotes.
        header = _strip_quoted(first_line)
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        delimiter = best if counts[best] else ","
    return Sniffed(chosen, delimiter, sep_line, reason)


def _strip_quoted(line: str) -> str:
    out, quoted = [], False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted:
            out.append(char)
    return "".join(out)


def _loose_quotes(lines: Iterator[str], delimiter: str) -> Iterator[str]:
    """``lines`` with the spaces between a closing quote and the next delimiter or line end removed.

    Vero's own example writes ``"x" , "y"``; the strict parser refuses a space after a closing
    quote. Quotes are tracked across lines (a quoted field may hold newlines); a doubled quote
    inside a field closes and reopens it, which leaves it as it is. Only used for a file whose
    strict reading failed there, so the usual file pays nothing.
    """
    inside = False
    for line in lines:
        if '"' not in line:
            yield line
            continue
        parts = line.split('"')
        for index in range(1, len(parts)):
            inside = not inside
            if not inside:
                part = parts[index]
                rest = part.lstrip(" \t")
                if rest != part and (not rest or rest[0] == delimiter or rest[0] in "\r\n"):
                    parts[index] = rest
        yield '"'.join(parts)


class Records:
    """Strictly parsed records of a source, with the file row number of each.

    Row numbers count records the way a spreadsheet shows them: the header is
    row 1, the first data record row 2, whatever newlines quoted fields hold.
    """

    def __init__(self, source: Source, sniffed: Sniffed) -> None:
        self.source = source
        self.sniffed = sniffed
        self.line = 0  # physical line where the record being read started

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        binary = self.source.binary()
        text = io.TextIOWrapper(binary, encoding=self.sniffed.encoding, newline="")
        lines = _loose_quotes(text, self.sniffed.delimiter) if self.sniffed.quote_spaces else text
        reader = csv.reader(lines, delimiter=self.sniffed.delimiter, skipinitialspace=True, strict=True)
        row = 0
        try:
            if self.sniffed.sep_line:
                text.readline()
            offset = 1 if self.sniffed.sep_line else 0
            while True:
                self.line = reader.line_num + 1 + offset
                try:
                    record = next(reader)
                except StopIteration:
                    return
                row += 1
                yield row, record
        except csv.Error as exc:
            raise self._csv_problem(exc, reader.line_num + offset) from None
        except UnicodeDecodeError:
            # The text layer decodes blocks ahead of the parser: find the exact line.
            line, byte = self._bad_byte()
            raise FileProblem(
                "bad_encoding",
                f"{self.source.name} is not valid {self.sniffed.encoding}: line {line} has byte 0x{byte:02x}; "
                "save it as CSV UTF-8 or pass --encoding",
                line=line,
            ) from None
        except (OSError, EOFError) as exc:  # gzip: truncated or corrupt stream
            raise FileProblem("unreadable", f"{self.source.name} cannot be read: {exc}") from None
        finally:
            text.close()

    def _bad_byte(self) -> tuple[int, int]:
        """Line number and value of the first byte that does not decode."""
        with self.source.binary() as stream:
            for number, line in enumerate(stream, 1):
                try:
                    line.decode(self.sniffed.encoding)
                except UnicodeDecodeError as exc:
                    return number, line[exc.start]
        return self.line, 0

    def _csv_problem(self, exc: csv.Error, last_line: int) -> FileProblem:
        message = str(exc)
        if "unexpected end of data" in message or "EOF" in message:
            return FileProblem(
                "unterminated_quote",
                f"unterminated quote: the quoted field that starts on line {self.line} is never closed "
                f"(the file ends at line {last_line}); nothing was imported",
                line=self.line,
            )
        if "field larger than field limit" in message:
            return FileProblem(
                "field_too_large",
                f"a field starting on line {self.line} is over {FIELD_LIMIT // 1024} KiB: "
                "most likely a quote that is never closed",
                line=self.line,
            )
        return FileProblem(
            "bad_csv", f"line {last_line} is not valid CSV ({message}); nothing was imported", line=last_line
        )
