"""Reading records: the strict CSV parser over a sniffed source, with spreadsheet row numbers."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from producers.sniff import FIELD_LIMIT, Sniffed
from producers.source import Source
from worker.errors import FileProblem
from worker.raw import loosen, reader


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
        # (spaces after a closing quote are removed only from a file whose strict reading failed there)
        lines = loosen(text, self.sniffed.delimiter) if self.sniffed.quote_spaces else text
        records = reader(lines, self.sniffed.delimiter)
        row = 0
        try:
            if self.sniffed.sep_line:
                text.readline()
            offset = 1 if self.sniffed.sep_line else 0
            while True:
                self.line = records.line_num + 1 + offset
                try:
                    record = next(records)
                except StopIteration:
                    return
                row += 1
                yield row, record
        except csv.Error as exc:
            raise self._csv_problem(exc, records.line_num + offset) from None
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
