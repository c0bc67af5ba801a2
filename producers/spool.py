"""One pass over a file: its chunks, as a worker reads them, kept on disk while it is scanned.

The scan must read the whole file before anything is queued (a bad byte at row 900,000 refuses
the import with nothing imported). Without a spool the producer then reads the file a second
time to queue it: more than half of its CPU, on the cores the workers need (bench/README.md).
With one, the scan hands each chunk it cuts (:mod:`producers.blocks`: the file's own text,
:mod:`worker.raw`) to :meth:`Spool.put`, which writes it to an anonymous temporary file;
queueing then only reads them back. The file is unlinked from the start (nothing is left behind,
even by a killed producer), and is bounded: past ``limit`` bytes the spool gives up and the
chunks are read from the file again, so a huge file costs at most ``limit`` of temporary disk; so
does a temporary disk that is full or fails.
"""
from __future__ import annotations

import dataclasses
import struct
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

# Each chunk on disk: its payload's length, its record count and its last row number, then the payload.
_HEAD = struct.Struct("<III")


@dataclasses.dataclass(frozen=True, slots=True)
class Encoded:
    """A chunk as it is stored for its task: its number, payload, record count and last row number."""

    number: int
    payload: bytes
    records: int
    last_row: int


class Spool:
    """The chunks of one file, written as the scan cuts them."""

    def __init__(self, chunk_rows: int, chunk_bytes: int, limit: int) -> None:
        self.chunk_rows, self.chunk_bytes, self.limit = chunk_rows, chunk_bytes, limit
        self._file: BinaryIO | None = None  # made with the first chunk: a file refused before has none
        self._written = self._count = 0
        #: False once the file outgrew ``limit``: the chunks must then be read from the file again
        self.complete = True

    @classmethod
    def for_settings(cls, settings) -> Spool | None:
        """A spool for an import under ``settings``, or None when they turn it off (BACKFILL_SPOOL_BYTES=0)."""
        return cls(settings.chunk_rows, settings.chunk_bytes, settings.spool_bytes) if settings.spool_bytes else None

    def put(self, chunk: Encoded) -> None:
        """Keep the next chunk (they come in order, numbered from 0)."""
        if not self.complete:
            return
        self._written += _HEAD.size + len(chunk.payload)
        if self._written > self.limit:
            self.give_up()
            return
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="backfill-spool-")
            self._file.write(_HEAD.pack(len(chunk.payload), chunk.records, chunk.last_row))
            self._file.write(chunk.payload)
        except OSError:  # a full or failing temporary disk: read the file a second time instead
            self.give_up()
            return
        self._count += 1

    def finish(self) -> None:
        """The scan read the whole file: everything kept is on disk."""
        if self._file is not None and self.complete:
            try:
                self._file.flush()
            except OSError:
                self.give_up()

    def reset(self) -> None:
        """Forget everything (the scan starts over, reading the file another way)."""
        self.close()
        self._file = None
        self._written = self._count = 0
        self.complete = True

    def give_up(self) -> None:
        """Keep nothing (more): the chunks will be read from the file again."""
        self.complete = False
        self._count = 0
        self.close()
        self._file = None

    def chunks(self) -> Iterator[Encoded]:
        """The chunks written, in order (only once :meth:`finish` was called; none once the spool gave up)."""
        handle = self._file
        if handle is None:
            return
        handle.seek(0)
        for number in range(self._count):
            length, records, last_row = _HEAD.unpack(handle.read(_HEAD.size))
            yield Encoded(number, handle.read(length), records, last_row)

    def close(self) -> None:
        """Give the disk space back."""
        if self._file is not None:
            self._file.close()

    @property
    def closed(self) -> bool:
        """Whether no temporary file is open (none was made, or it was closed)."""
        return self._file is None or self._file.closed
