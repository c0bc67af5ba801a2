"""One pass: the chunks kept while a file is scanned are, byte for byte, the chunks a second pass reads."""
from __future__ import annotations

import dataclasses
import errno
import gzip
import io
import sys
import tempfile
from pathlib import Path

import pytest

from producers.queueing import _encoded
from producers.source import Source
from producers.split import chunks, raw_chunks, scan
from producers.spool import Spool
from worker.errors import FileProblem
from worker.settings import Settings
from worker.store.work import decode_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from generate import generate


def _files(tmp_path: Path) -> dict[str, Path]:
    bench = tmp_path / "bench.csv"
    with bench.open("w", newline="") as out:
        generate(out, 3000)
    files = {"bench": bench}
    zipped = tmp_path / "bench.csv.gz"
    zipped.write_bytes(gzip.compress(bench.read_bytes()))
    files["gzip"] = zipped
    # Vero's own example: spaces after a closing quote, read again the loose way (the spool starts over)
    loose = tmp_path / "loose.csv"
    loose.write_text('email,event_name,time\n' + "".join(
        f'"u{n}@example.com" , "Bought" , "2024-01-0{n % 9 + 1}"\n' for n in range(40)), newline="")
    files["loose"] = loose
    odd = tmp_path / "odd.csv"
    odd.write_bytes(b"\xef\xbb\xbfemail;event_name;note\r\n\r\n" + b"".join(
        b'a%d@x.co;Bought;"two\r\nlines"\r\n;;\r\n' % n for n in range(50)) + b"last@x.co;Bought;end")
    files["odd"] = odd
    return files


@pytest.mark.parametrize("chunk_rows, chunk_bytes", [(2000, 8 * 1024 * 1024), (7, 8 * 1024 * 1024), (1, 10**9),
                                                     (500, 3000)])
def test_spooled_chunks_are_the_chunks_a_second_pass_reads(tmp_path, chunk_rows, chunk_bytes):
    for name, path in _files(tmp_path).items():
        with Source.open(path) as source:
            spool = Spool(chunk_rows, chunk_bytes, 10**9)
            plan = scan(source, spool=spool)
            assert source.spool is spool and spool.complete
            kept = list(spool.chunks())
            assert kept == list(raw_chunks(source, plan, chunk_rows, chunk_bytes)), name
            # ... and they hold the rows and row numbers of the per-record reader's chunks, cut at the same records
            again = list(chunks(source, plan, chunk_rows, chunk_bytes))
            assert [(c.number, decode_rows(c.payload), c.records, c.last_row) for c in kept] == [
                (c.number, (c.rows, c.row_numbers), len(c.rows), c.row_numbers[-1]) for c in again], name
            assert sum(len(decode_rows(c.payload)[0]) for c in kept) == plan.rows
        assert source.spool.closed  # closed with its source


def test_a_file_over_the_limit_is_read_again_instead(tmp_path):
    path = _files(tmp_path)["bench"]
    settings = dataclasses.replace(Settings(), chunk_rows=100, spool_bytes=20_000)
    with Source.open(path) as source:
        plan = scan(source, spool=Spool.for_settings(settings))
        assert not source.spool.complete and list(source.spool.chunks()) == []
        queued = list(_encoded(source, plan, settings))
        assert len(queued) == 30 and queued == list(_encoded_without_spool(path, settings))
    assert Spool.for_settings(dataclasses.replace(settings, spool_bytes=0)) is None


def _encoded_without_spool(path: Path, settings: Settings):
    with Source.open(path) as source:
        plan = scan(source)
        assert source.spool is None
        yield from _encoded(source, plan, settings)


def test_a_file_refused_mid_scan_leaves_no_spool_open(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"email,event_name\n" + b"a@x.co,Bought\n" * 5000 + b'b@x.co,"never closed\n')
    source = Source.open(path)
    with pytest.raises(FileProblem) as refused:
        scan(source, spool=Spool(100, 10**6, 10**9))
    assert refused.value.code == "unterminated_quote"
    source.close()
    assert source.spool.closed


def test_a_file_refused_before_its_records_are_read_makes_no_spool_file(tmp_path, monkeypatch):
    made = []
    real = tempfile.TemporaryFile
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, **k: made.append(1) or real(*a, **k))
    path = tmp_path / "book.csv"
    path.write_bytes(b"email,event_name\na@x.co,Bou\x00ght\n")
    with Source.open(path) as source:
        with pytest.raises(FileProblem) as refused:
            scan(source, spool=Spool(100, 10**6, 10**9))
    assert refused.value.code == "binary_file" and made == []


class _FullDisk(io.BytesIO):
    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_temporary_disk_falls_back_to_reading_the_file_again(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, **k: _FullDisk())
    path = _files(tmp_path)["bench"]
    settings = dataclasses.replace(Settings(), chunk_rows=100)
    with Source.open(path) as source:
        plan = scan(source, spool=Spool.for_settings(settings))
        assert not source.spool.complete and source.spool.closed
        queued = list(_encoded(source, plan, settings))
    assert queued == list(_encoded_without_spool(path, settings)) and len(queued) == 30


@pytest.mark.parametrize("name, end", [("newline.csv", b"\r\n\x1a"), ("last.csv", b"\x1a"),
                                       ("newline.csv.gz", b"\r\n\x1a"), ("last.csv.gz", b"\x1a")])
def test_a_final_ctrl_z_is_no_row_in_the_spool_nor_in_a_second_pass(tmp_path, name, end):
    # what `copy /a` makes of a file: a Ctrl-Z after its last byte
    body = b"email,event_name\r\n" + b"\r\n".join(b"a%d@x.co,Bought" % n for n in range(250)) + end
    path = tmp_path / name
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    expected = [[f"a{n}@x.co", "Bought"] for n in range(250)]
    with Source.open(path) as source:
        spool = Spool(100, 10**6, 10**9)
        plan = scan(source, spool=spool)
        kept = [decode_rows(c.payload) for c in spool.chunks()]
        again = list(chunks(source, plan, 100))
    assert plan.rows == 250 and [r for rows, _ in kept for r in rows] == expected
    assert [r for c in again for r in c.rows] == expected and again[-1].row_numbers[-1] == kept[-1][1][-1] == 251
