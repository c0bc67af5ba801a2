"""Which columnar library for a chunk core: polars or pyarrow, against today's per-row core.

    pip install polars pyarrow      # not dependencies of backfill yet: this probe chooses between them
    python bench/columnar.py [--rows 100000] [--chunk 10000] [--repeat 3]

On chunks of the benchmark's file (bench/generate.py: Vero dialect, e-mails, names, ISO with Z,
Vero's "+10" offsets and Unix seconds, an event id, 3-5 properties, ~1 % bad rows), one process,
microseconds per row of:

- today:   the per-row core (worker/events/chunk.py: validate, then assemble: dedupe keys, rules,
           event JSON), from the chunk's records, as a worker runs it;
- polars:  the chunk's CSV bytes parsed, every cell trimmed, e-mails checked and lowercased, names
           checked, times read in the file's three formats, and every valid row's event JSON encoded;
- pyarrow: the same steps with pyarrow.compute, the JSON encoded from Python (pyarrow writes no JSON).

The columnar runs do the work a core must do, not yet all of it (every error code, hostile cells,
warnings): they measure what the libraries make cheap, to choose one. Nothing here is in make test.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
PROPERTIES = ["item_type", "price", "currency", "coupon", "channel"]


def _chunks(rows: int, chunk: int) -> list[bytes]:
    """The file as CSV byte chunks, each with the header."""
    from generate import generate

    text = io.StringIO()
    generate(text, rows)
    lines = text.getvalue().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    return [(header + "".join(body[at:at + chunk])).encode() for at in range(0, len(body), chunk)]


def today(chunks: list[bytes]) -> int:
    """The per-row core on each chunk; rows imported."""
    import tempfile

    from producers.api import inspect
    from worker.events import chunk as core
    from worker.events import rules
    from worker.settings import Settings
    from worker.spec import ImportSpec

    with tempfile.NamedTemporaryFile("wb", suffix=".csv", delete=False) as sample:
        sample.write(chunks[0])
    source, plan = inspect(sample.name, settings=Settings())
    source.close()
    Path(sample.name).unlink()
    spec = ImportSpec(import_id="bench", columns=plan.columns, identifier=plan.identifier, create_people=True)
    now, imported = time.time(), 0
    for data in chunks:
        records = list(csv.reader(io.StringIO(data.decode())))[1:]
        numbers = list(range(2, 2 + len(records)))
        validated = core.validate(spec, records, numbers, now, 300)
        outcome = core.assemble(spec, validated, records, numbers, {}, rules.NO_CAMPAIGNS, now, 300)
        imported += len(validated.events)
        del outcome
    return imported


def with_polars(chunks: list[bytes]) -> int:
    """The columnar steps with polars; rows imported."""
    import polars as pl

    imported = 0
    for number, data in enumerate(chunks):
        frame = pl.read_csv(data, infer_schema=False)
        frame = frame.with_columns(pl.all().fill_null("").str.strip_chars())
        t = pl.col("time")
        seconds = pl.coalesce(
            t.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC", strict=False).dt.epoch("s"),
            (t.str.replace(r"\+10$", "+10:00").str.to_datetime("%Y-%m-%d %H:%M%:z", strict=False)
             .dt.epoch("s")),
            pl.when(t.str.contains(r"^[1-9]\d{9}$")).then(t.cast(pl.Int64, strict=False)),
        )
        frame = frame.with_columns(
            row=pl.int_range(2, pl.len() + 2) + number * len(frame), email=pl.col("email").str.to_lowercase(),
            timestamp=seconds,
            ok=pl.col("email").str.contains(EMAIL) & (pl.col("event_name") != "") & seconds.is_not_null(),
        )
        good = frame.filter("ok")
        events = good.select(pl.struct(
            pl.lit("bench").alias("import"), "row", pl.col("event_name").alias("name"),
            pl.struct("email").alias("person"), "timestamp",
            pl.struct([pl.col(p) for p in PROPERTIES if p in good.columns]).alias("data"),
            pl.col("event_id").alias("id"),
        ).struct.json_encode().alias("json"))
        imported += len(events["json"].to_list())
    return imported


def with_pyarrow(chunks: list[bytes]) -> int:
    """The columnar steps with pyarrow.compute, JSON from Python; rows imported."""
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    imported = 0
    for number, data in enumerate(chunks):
        names = data[:data.index(b"\n")].decode().split(",")
        table = pcsv.read_csv(pa.py_buffer(data), convert_options=pcsv.ConvertOptions(
            column_types={n: pa.string() for n in names}, strings_can_be_null=False))
        columns = {n: pc.utf8_trim_whitespace(table[n]) for n in names}
        t = columns["time"]
        iso = pc.cast(pc.strptime(t, "%Y-%m-%dT%H:%M:%SZ", "s", error_is_null=True), pa.int64())
        vero = pc.subtract(pc.cast(pc.strptime(pc.replace_substring_regex(t, r"\+10$", ""), "%Y-%m-%d %H:%M", "s",
                                               error_is_null=True), pa.int64()), 36_000)
        unix = pc.if_else(pc.match_substring_regex(t, r"^[1-9]\d{9}$"),
                          pc.cast(pc.if_else(pc.match_substring_regex(t, r"^\d+$"), t, "0"), pa.int64()), None)
        seconds = pc.coalesce(iso, vero, unix)
        email = pc.utf8_lower(columns["email"])
        ok = pc.and_(pc.and_(pc.match_substring_regex(email, EMAIL), pc.not_equal(columns["event_name"], "")),
                     pc.is_valid(seconds))
        keep = [n for n in names if n in PROPERTIES]
        good = pa.table({"email": email, "name": columns["event_name"], "ts": seconds, "id": columns["event_id"],
                         **{n: columns[n] for n in keep}}).filter(ok)
        base = number * len(table) + 2
        out = [orjson.dumps({"import": "bench", "row": base + i, "name": r["name"], "person": {"email": r["email"]},
                             "timestamp": r["ts"], "data": {n: r[n] for n in keep}, "id": r["id"]})
               for i, r in enumerate(good.to_pylist())]
        imported += len(out)
    return imported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    chunks = _chunks(args.rows, args.chunk)
    print(f"{args.rows:,} rows of the benchmark's file in {args.chunk:,}-row chunks, best of {args.repeat}")
    for name, run in (("today (per-row core)", today), ("polars", with_polars), ("pyarrow", with_pyarrow)):
        best, imported = float("inf"), 0
        for _ in range(args.repeat):
            started = time.perf_counter()
            imported = run(chunks)
            best = min(best, time.perf_counter() - started)
        print(f"{name:<22}{best / args.rows * 1e6:8.2f} us a row   ({imported:,} rows valid)")


if __name__ == "__main__":
    main()
