"""Opening an input file, refusing what is not CSV, and sniffing what is.

A :class:`Source` can be read more than once: the producer scans the whole file
once (so every file-level problem is found before any chunk is queued, even an
unterminated quote on the last line or a cp1252 byte at row 900,000), then
streams it again in chunks. Standard input is spooled to a temporary file for
that; nothing is ever held in memory whole.

A Ctrl-Z (0x1A) as the very last byte is DOS's end-of-file mark (``copy /a`` appends one), not
data: every reading of the file ends before it.
"""
from __future__ import annotations

import gzip
import io
import os
import select
import shutil
import sys
import tempfile
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from worker.errors import FileProblem

if TYPE_CHECKING:
    from .spool import Spool

# A gzip file is refused when it inflates past this many times its compressed size (real CSV
# compresses 5-20 times; a "bomb" a thousand times), judged once this much has come out...
GZIP_MAX_RATIO = 100
GZIP_RATIO_AFTER = 16 * 1024 * 1024
# ...or when it inflates past this size at all.
GZIP_MAX_BYTES = 20 * 1024**3
CTRL_Z = 0x1A


class Source:
    """A file that can be opened (as bytes, decompressed) several times."""

    def __init__(self, name: str, path: Path, *, gzipped: bool, temporary: bool = False) -> None:
        self.name = name
        self.path = path
        self.gzipped = gzipped
        self._temporary = temporary
        #: its chunks, kept while it was scanned (producers.spool), if asked for
        self.spool: Spool | None = None

    @classmethod
    def open(cls, target: str | Path, *, stdin: BinaryIO | None = None) -> Source:
        """Open ``target``: a path, ``.gz`` or not, or ``-`` for standard input."""
        if str(target) == "-":
            spool = tempfile.NamedTemporaryFile(prefix="backfill-stdin-", suffix=".csv", delete=False)
            path = Path(spool.name)
            try:
                with spool:
                    _copy_interruptibly(stdin or sys.stdin.buffer, spool)
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
        """A fresh binary stream over the (decompressed) content, without a final Ctrl-Z."""
        stream: io.BufferedReader
        if self.gzipped:
            stream = io.BufferedReader(_CappedGzip(self.path, self.name), 1024 * 1024)
        else:
            stream = self.path.open("rb")
            size = os.fstat(stream.fileno()).st_size
            # (a plain file's last byte is known at once: the usual file is read as it is)
            if not size or os.pread(stream.fileno(), 1, size - 1)[0] != CTRL_Z:
                return stream
        return io.BufferedReader(_BeforeFinalCtrlZ(stream), 1024 * 1024)

    def close(self) -> None:
        """Delete the spooled copy of standard input and the chunks kept while scanning, if any."""
        if self.spool is not None:
            self.spool.close()
        if self._temporary:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _BeforeFinalCtrlZ(io.RawIOBase):
    """A stream that ends before its last byte when that byte is a Ctrl-Z."""

    def __init__(self, stream: io.BufferedReader) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._stream.read1(len(buffer))
        if data and data[-1] == CTRL_Z and not self._stream.peek(1):
            data = data[:-1]
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


class _CappedGzip(io.RawIOBase):
    """A gzip stream that refuses to inflate past :data:`GZIP_MAX_BYTES` or :data:`GZIP_MAX_RATIO`."""

    def __init__(self, path: Path, name: str) -> None:
        self._raw = path.open("rb")
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="rb")
        self._name = name
        self._out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
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


def _copy_interruptibly(source: BinaryIO, target: IO[bytes]) -> None:
    """``shutil.copyfileobj``, but a Ctrl-C always stops it.

    A buffered read blocked on a pipe does not see a Ctrl-C that lands between two of its raw
    reads (CPython looks at signals when a call returns, or when a read is interrupted): the copy
    then waits for input that never comes. Here each read waits in ``select`` for at most 0.2 s
    and reads only what is there, so the interpreter looks at signals at least that often.
    Streams without a file descriptor (or where ``select`` cannot watch one) are copied plainly."""
    try:
        fd = source.fileno()
        select.select([fd], [], [], 0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        shutil.copyfileobj(source, target, 1024 * 1024)
        return
    while True:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        data = os.read(fd, 1024 * 1024)
        if not data:
            return
        target.write(data)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"
