"""Chunks as the file's own text: the worker's parse of them is exactly what the per-record reader gives.

Every file here is scanned (the block reading, chunks kept) and read again by the per-record reader
(:func:`producers.split.chunks`, the rows chunks used to carry): chunk by chunk, the rows and row
numbers :func:`worker.store.work.decode_rows` reads from the raw text are the reader's, for several
chunk sizes and with blocks small enough that records and chunks straddle them.
"""
from __future__ import annotations

import codecs
import dataclasses
import gzip
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from producers import blocks
from producers.queueing import _encoded
from producers.source import Source
from producers.split import _Decide, _scan, chunks, scan
from producers.spool import Spool
from worker.errors import FileProblem
from worker.events.dialects import plan_columns
from worker.people.columns import plan_people_columns
from worker.raw import is_raw, read_raw
from worker.settings import Settings
from worker.store.work import decode_rows, encode_rows

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from generate import generate

EXAMPLES = Path(__file__).resolve().parents[2] / "producers" / "examples"
SIZES = [(2000, 8 * 1024 * 1024), (7, 8 * 1024 * 1024), (1, 10**9), (3, 120)]


def _hostile() -> dict[str, bytes]:
    body = "".join(f'u{n}@x.co,Bought,"two\nlines {n}",{n}\n' if n % 3 else f"u{n}@x.co,Bought,plain,{n}\r\n"
                   for n in range(60))
    return {
        "quoted newlines": ("email,event_name,note,n\n" + body).encode(),
        "CRLF and CR": b"email;event_name\r\na@x.co;Bought\r\nb@x.co;Sold\rc@x.co;Kept\r\r\nd@x.co;\"x\r\ny\"\r\n",
        "BOM and sep= line": codecs.BOM_UTF8 + b"sep=;\r\nemail;event_name;note\r\n" + b"".join(
            b'a%d@x.co;Bought;"one; ""two""\r\nthree"\r\n' % n for n in range(20)),
        "blank records": b"\n ,\nemail,event_name\n\n,\n  ,  \n\"\",\"\"\na@x.co,Bought\n\n\"\n\",\nb@x.co,Sold\n"
                         b"\t,\xc2\xa0\nc@x.co,Kept\n\n\n",
        "spaced quotes": b'email,event_name,note\n' + b"".join(
            b'"a%d@x.co" , "Bought" , "n %d"  \n' % (n, n) for n in range(9)),
        # a stray quote in an unquoted field turns the loose quotes' count over: later chunks must know it
        "spaced quotes, odd count": b'email,event_name,note\n"a@x.co" , "Bought" , "x"\nb@x.co,Bought,5" tv\n'
                                    b'c@x.co,Bought,"hello "" , world"\nd@x.co, "Sold","y"\n',
        "Ctrl-Z": b"email,event_name\r\n" + b"".join(b"a%d@x.co,Bought\r\n" % n for n in range(30)) + b"\x1a",
        "cp1252": b"email,event_name,city\n" + "".join(
            f"a{n}@x.co,Bought,Zürich café {n}\n" for n in range(30)).encode("cp1252"),
        "spaces and tabs": b"email, event_name ,note\n a@x.co,\tBought, \"x, y\"\n\tb@x.co , Sold,  z \n",
        "report columns": b"_row,email,event_name,_errors\n2,a@x.co,Bought,bad time\n3,b@x.co,Sold,\n"
                          b",,,2 rows had problems\n4,c@x.co,Kept,\n",
        "spaces, no quote": b"email, event_name\n a@x.co, Bought\n\n b@x.co ,Sold\n,\n",
        "CR alone, no quote": b"email,event_name\ra@x.co,Bought\r\rb@x.co,Sold\r",
        "LF and CRLF, no quote": b"email,event_name\r\na@x.co,Bought\nb@x.co,Sold\r\n\r\n",
        "no final newline": b"email,event_name\na@x.co,Bought\nb@x.co,\"Sold\"",
        "people, one column": b"email\na@x.co\n\nb@x.co\n",
        "identifier from values": b"_cio_name,_cio_customer_id\n\npurchase,42\npurchase, 43\n",
    }


def _files(tmp_path: Path) -> list[tuple[Path, str | None]]:
    files: list[tuple[Path, str | None]] = [(p, None) for p in sorted(EXAMPLES.glob("*.csv"))]
    # (a file whose name starts with "people" is read as a people file)
    bench = tmp_path / "bench.csv"
    with bench.open("w", newline="") as out:
        generate(out, 2500)
    zipped = tmp_path / "bench.csv.gz"
    zipped.write_bytes(gzip.compress(bench.read_bytes()))
    files += [(bench, None), (zipped, None)]
    for number, (name, data) in enumerate(_hostile().items()):
        path = tmp_path / f"{'people' if name.startswith('people') else 'hostile'}-{number}.csv"
        path.write_bytes(data)
        files.append((path, None))
    mac = tmp_path / "mac.csv"
    mac.write_bytes(b"email,event_name,city\r" + "".join(
        f"a{n}@x.co,Bought,Zürich {n}\r" for n in range(12)).encode("mac_roman"))
    files.append((mac, "mac_roman"))
    return files


def _compare(path: Path, encoding: str | None, chunk_rows: int, chunk_bytes: int) -> None:
    with Source.open(path) as source:
        spool = Spool(chunk_rows, chunk_bytes, 10**9)
        people = {} if path.name.startswith("people") else None
        plan = scan(source, spool=spool, encoding=encoding, people=people)
        assert plan.raw and spool.complete, path
        kept = list(spool.chunks())
        assert all(is_raw(chunk.payload) for chunk in kept)
        again = list(chunks(source, plan, chunk_rows, chunk_bytes))
        assert [(c.number, decode_rows(c.payload), c.records, c.last_row) for c in kept] == [
            (c.number, (c.rows, c.row_numbers), len(c.rows), c.row_numbers[-1]) for c in again], path
        columns_of = plan_columns if people is None else plan_people_columns
        exact = _scan(source, plan.sniffed, _Decide(columns_of, None, 100, None))
        assert (plan.rows, plan.blank, plan.samples, plan.identifier) == (
            exact.rows, exact.blank, exact.samples, exact.identifier), path


@pytest.mark.parametrize("block", [blocks.BLOCK_CHARS, 50])
@pytest.mark.parametrize("chunk_rows, chunk_bytes", SIZES)
def test_raw_chunks_read_as_the_per_record_reader_reads_the_file(tmp_path, monkeypatch, block, chunk_rows,
                                                                 chunk_bytes):
    monkeypatch.setattr(blocks, "BLOCK_CHARS", block)
    for path, encoding in _files(tmp_path):
        _compare(path, encoding, chunk_rows, chunk_bytes)


def test_a_chunk_is_its_records_text_from_its_first_data_record(tmp_path):
    path = tmp_path / "e.csv"
    path.write_bytes(b"sep=,\r\n\r\nemail,event_name\r\n\r\na@x.co,Bought\r\n\r\nb@x.co,Sold\r\n\r\nc@x.co,Kept\r\n\r\n")
    with Source.open(path) as source:
        spool = Spool(2, 10**6, 10**9)
        scan(source, spool=spool)
        kept = [read_raw(chunk.payload) for chunk in spool.chunks()]
    assert [(c.text, c.first_row, c.delimiter) for c in kept] == [
        (b"a@x.co,Bought\r\n\r\nb@x.co,Sold\r\n", 4, ","), (b"c@x.co,Kept\r\n", 8, ",")]


def test_records_longer_than_a_block_are_whole_in_their_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(blocks, "BLOCK_CHARS", 4096)
    note = "\n".join(f"line {n} of a long note" for n in range(2000))
    path = tmp_path / "long.csv"
    path.write_text("email,event_name,note\n" + "".join(f'a{n}@x.co,Bought,"{note}"\n' for n in range(5)), newline="")
    _compare(path, None, 2, 10**9)


@pytest.mark.parametrize("data, code", [
    (b"email,event_name\n" + b"a@x.co,Bought\n" * 3000 + b'b@x.co,"never closed\n', "unterminated_quote"),
    (b"email,event_name\n" + b"a@x.co,Bought\n" * 3000 + b"b@x.co,Bought" + b",x" * 300 + b"\n", "row_too_wide"),
    (b"email,event_name,\n" + b"a@x.co,Bought,\n" * 3000 + b"b@x.co,Bought,oops\n", "unnamed_column"),
    (b"_cio_name,_cio_customer_id\n" + b"purchase,42\n" * 3000 + b"purchase,a@x.co\n", "mixed_identifiers"),
    (b"email,event_name\n" + b"a@x.co,Bought\n" * 3000 + b'b@x.co,"x"y\n', "bad_csv"),
    (b"\n\n,\n", "empty_file"),
])
def test_a_problem_is_named_as_the_per_record_reader_names_it(tmp_path, data, code):
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    with Source.open(path) as source, pytest.raises(FileProblem) as refused:
        scan(source, spool=Spool(100, 10**6, 10**9))
    assert refused.value.code == code
    if code != "empty_file":
        with Source.open(path) as source, pytest.raises(FileProblem) as named:
            _scan(source, refused_sniffed(source), _Decide(plan_columns, None, 100, None))
        assert (named.value.code, str(named.value), named.value.line) == (
            code, str(refused.value), refused.value.line)


def refused_sniffed(source: Source):
    from producers.sniff import check_bytes, choose_encoding, sniff

    sniffed = sniff(source)
    return choose_encoding(sniffed, check_bytes(source), source.name)


def test_a_file_the_block_reading_leaves_to_the_per_record_reader_is_queued_as_rows(tmp_path, monkeypatch):
    # a record longer than the block reading carries from block to block (here 40 characters) is left to
    # the per-record reader; it accepts it (the file's rows are below ROW_LIMIT), and the chunks are rows
    monkeypatch.setattr(blocks, "BLOCK_CHARS", 50)
    monkeypatch.setattr(blocks, "ROW_LIMIT", 20)
    path = tmp_path / "long.csv"
    path.write_text("email,event_name,note\n" + "".join(f'a{n}@x.co,Bought,"{"x" * 30}\n{"y" * 30}"\n'
                                                         for n in range(9)), newline="")
    settings = dataclasses.replace(Settings(), chunk_rows=4)
    with Source.open(path) as source:
        plan = scan(source, spool=Spool.for_settings(settings))
        assert not plan.raw and not source.spool.complete
        queued = list(_encoded(source, plan, settings))
        again = list(chunks(source, plan, 4))
    assert [(c.payload, c.records, c.last_row) for c in queued] == [
        (encode_rows(c.rows, c.row_numbers), len(c.rows), c.row_numbers[-1]) for c in again]
    assert [len(c.rows) for c in again] == [4, 4, 1]


_PIECES = ["a@x.co", "Bought", "x", " ", "  ", "\t", ",", ";", '"', '""', "\n", "\r\n", "\r", "é", "\xa0", "5\" tv",
           '"q, r"', '"two\nlines"', '"x" , ', "\u2028"]

_HEADERS = [
    "email,event_name,note\n",
    '"email" , "event_name" , note\n',  # Vero's spaced quotes: read the loose way when the strict reading fails
    "\n,\nemail,event_name,,note\n",  # blank records before the header, an unnamed column
    "_row,email,event_name,_errors\n",  # a re-imported errors file: text only in _row or _errors is blank
    "_cio_name,_cio_customer_id,x\n",  # ids or e-mails: the values tell
]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.sampled_from(_PIECES), max_size=80), chunk_rows=st.integers(1, 7),
       chunk_bytes=st.sampled_from([10, 40, 10**6]), block=st.integers(8, 120), head=st.sampled_from(_HEADERS))
def test_any_text_reads_as_the_per_record_reader_reads_it(tmp_path, monkeypatch, body, chunk_rows, chunk_bytes,
                                                           block, head):
    # accepted: the same chunks, rows and plan as the per-record reader; refused: the problem it names
    monkeypatch.setattr(blocks, "BLOCK_CHARS", block)
    path = tmp_path / "any.csv"
    path.write_bytes((head + "".join(body)).encode())
    try:
        with Source.open(path) as source:
            scan(source)
    except FileProblem as problem:
        with Source.open(path) as source, pytest.raises(FileProblem) as named:
            sniffed = refused_sniffed(source)
            for quote_spaces in (False, True):
                try:
                    _scan(source, dataclasses.replace(sniffed, quote_spaces=quote_spaces),
                          _Decide(plan_columns, None, 100, None))
                except FileProblem as exc:
                    if quote_spaces or exc.code != "bad_csv" or "expected after" not in str(exc):
                        raise
        assert (named.value.code, str(named.value)) == (problem.code, str(problem))
        event(f"refused: {problem.code}")
        return
    event("accepted")
    _compare(path, None, chunk_rows, chunk_bytes)
