"""``make bench``: every figure of the performance brief, from one run on this machine.

1. end-to-end rows/s of a 1M-row file with 1 and 2 workers (producer process to finished report);
2. the floor: the same file read, chunked and queued to tasks that do nothing, and the ratio;
3. a naive baseline: one Celery task per row (20,000 rows), and the ratio;
4. peak RSS of the producer and of each worker, for 1M and for 5M rows;
5. Redis memory per remembered event id, and Redis peak memory during the 5M import;
6. chunk time p50/p99 (from the workers' "chunk done" lines), and rows/s of the pure core in one process;
7. the targets (bench/targets.py): the script a user would write instead (bench/reference.py), run on the
   same file before and after the rest, and the imports with a SQLite or a PostgreSQL sink, a people file
   (bench/throughput.py --type people), ``--trigger`` with two campaigns and Redis's CPU a row
   (bench/cpu_split.py) as ratios against it or against the events import, each beside its target.

Each measured run gets a fresh private redis-server on a free port and fresh worker
processes. Prints a table and writes bench/results/bench.json.

    python bench/suite.py [--rows 1000000] [--big-rows 5000000] [--naive-rows 20000]
    python bench/suite.py --quick            # 200,000 rows, no 5M run, small naive and Segment runs
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))


def vm_hwm_mb(pid: int | str) -> float | None:
    """Peak resident memory of a live process (Linux /proc; ``"self"``: this one), its own alone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _chunk_ms(log_dir: Path) -> list[float]:
    times = []
    for log in log_dir.glob("worker*.log"):
        for line in log.read_bytes().splitlines():
            if b'"chunk done"' in line:
                try:
                    times.append(float(orjson.loads(line)["ms"]))
                except (ValueError, KeyError):
                    pass
    return times


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def run(mode: str, data: Path, workers: int, work: Path, chunk_rows: int, extra: list[str] = (),
        sink: bool = False, database_url: str | None = None) -> dict:
    """One measured run: private Redis, ``workers`` worker processes, the producer in its own process; with
    ``sink``, a ``backfill sink`` process writing to ``database_url`` (default: a fresh SQLite file) beside
    them (and the producer waits until the import is stored). Without, the outbox is left to grow
    (BACKFILL_OUTBOX_LIMIT=0)."""
    from producers.demo import start_workers, stop_workers, wait_ready
    from worker.store.embedded import start_private

    run_dir = Path(tempfile.mkdtemp(prefix=f"{mode}-{workers}w-", dir=work))
    server, url = start_private(run_dir / "redis", aof=False)
    env = {**os.environ, "REDIS_URL": url, "BACKFILL_CHUNK_ROWS": str(chunk_rows), "BACKFILL_LOG_LEVEL": "INFO",
           "BACKFILL_LOG_FORMAT": "json", "BACKFILL_HOME": str(run_dir), "BACKFILL_OUTBOX_LIMIT": "1000" if sink else "0",
           "DATABASE_URL": database_url or f"sqlite:///{run_dir / 'results.db'}"}
    os.environ.update(env)
    from worker.app import app_for
    from worker.settings import get_settings, reset_settings

    reset_settings()
    app = app_for(get_settings(), url)  # (an app a run: each has a Redis of its own)
    processes = start_workers(url, workers, beat=False, log_dir=run_dir, include=("bench.tasks",))
    sinks = []
    if sink:
        exe = str(Path(sys.executable).with_name("backfill"))
        subprocess.run([exe, "db", "upgrade"], env=env, check=True, capture_output=True)
        sinks.append(subprocess.Popen([exe, "sink"], env=env, stdout=subprocess.DEVNULL,
                                      stderr=open(run_dir / "sink.log", "wb")))
        extra = [*extra, "--stored"]
    try:
        wait_ready(app, workers)
        from cpu_split import _cpu

        sink_started = [_cpu(process.pid) or 0 for process in sinks]  # (its start: Python's imports, the store)
        produced = subprocess.run([sys.executable, str(HERE / "produce.py"), mode, str(data), *extra],
                                  env=env, capture_output=True, timeout=3600, cwd=ROOT)
        if produced.returncode != 0:
            raise SystemExit(f"{mode} producer failed:\n{produced.stderr.decode()[-3000:]}")
        result = orjson.loads(produced.stdout.splitlines()[-1])
        result["workers"] = workers
        result["worker_peak_rss_mb"] = [vm_hwm_mb(p.pid) for p in processes]
        import redis

        client = redis.Redis.from_url(url)
        memory = client.info("memory")
        result["redis_peak_mb"] = round(memory["used_memory_peak"] / 2**20, 1)
        if mode == "import":
            result["bytes_per_event_id"] = _bytes_per_mark(client)
        if sink:
            deadline = time.monotonic() + 30  # (the sink trims right after it acknowledges)
            while client.xlen("bf:outbox") > 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            memory = client.info("memory")
            result["outbox_left"] = client.xlen("bf:outbox")
            result["redis_after_mb"] = round(memory["used_memory"] / 2**20, 1)
            result["redis_kept_mb"] = _memory_mb(client, ("bf:dd:*", "bf:person:*", "bf:people:*"))
            # the sink's own CPU from the import's start (steadier than the wall time on a shared host; its
            # database's is not in it)
            spent = (_cpu(sinks[0].pid) or 0) - sink_started[0]
            result["sink_cpu_us_an_event"] = round(spent * 1e6 / max(result["events_stored"], 1), 2)
    finally:
        for process in sinks:
            process.terminate()
            process.wait(timeout=30)
        stop_workers(processes)
        server.kill()
        server.wait()
    times = _chunk_ms(run_dir)
    if times:
        result.update(chunks_timed=len(times), chunk_p50_ms=_percentile(times, 0.5),
                      chunk_p99_ms=_percentile(times, 0.99))
    return result


def _bytes_per_mark(client) -> float | None:
    """Redis memory of the dedupe shards divided by the event ids they remember."""
    size = marks = 0
    for key in client.scan_iter(match="bf:dd:*", count=1000):
        size += client.memory_usage(key, samples=0) or 0
        marks += client.hlen(key)
    return round(size / marks, 1) if marks else None


def _memory_mb(client, patterns: tuple[str, ...]) -> float:
    """Redis memory of the keys matching ``patterns`` (what it is meant to keep: dedupe marks, people)."""
    size = 0
    for pattern in patterns:
        for key in client.scan_iter(match=pattern, count=1000):
            size += client.memory_usage(key, samples=0) or 0
    return round(size / 2**20, 1)


def sink_alone(events: int, postgres: bool, sinks: int) -> dict:
    """bench/sink.py's measure: a pre-filled outbox drained by ``sinks`` processes."""
    import sink as sink_bench

    from worker.store.embedded import start_private

    work = Path(tempfile.mkdtemp(prefix="sink-"))
    server, url = start_private(work / "redis", aof=False)
    stop_pg = lambda: None
    try:
        import redis

        sink_bench.fill(redis.Redis.from_url(url), events, 2000)
        if postgres:
            from tests.integration.postgres import start_postgres

            target, stop_pg = start_postgres()
        else:
            target = f"sqlite:///{work / 'results.db'}"
        seconds, stored, _ = sink_bench.drain(url, target, sinks, 50)
    finally:
        stop_pg()
        server.kill()
        server.wait()
    return {"backend": "PostgreSQL" if postgres else "SQLite", "sinks": sinks, "events": stored,
            "seconds": round(seconds, 2), "events_per_second": round(stored / seconds)}


def with_postgres(data: Path, work: Path, chunk_rows: int) -> dict:
    """The import with 2 workers and one sink storing into a private PostgreSQL."""
    from tests.integration.postgres import start_postgres

    url, stop = start_postgres()
    try:
        return run("import", data, 2, work, chunk_rows, sink=True, database_url=url)
    finally:
        stop()


def script(name: str, *args: str) -> dict:
    """Run bench/``name`` in its own process with ``args``; the JSON it wrote to its ``--out`` file (or,
    for reference.py, printed last)."""
    out = Path(tempfile.mkdtemp(prefix="bench-out-")) / "out.json"
    command = [sys.executable, str(HERE / name), *args]
    command += ["--json"] if name == "reference.py" else ["--out", str(out)]
    done = subprocess.run(command, capture_output=True, timeout=3600, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr.decode()[-3000:]}")
    return orjson.loads(done.stdout.splitlines()[-1] if name == "reference.py" else out.read_bytes())


def pure_core(data: Path, chunk_rows: int) -> dict:
    """Parse + validate + rules of the whole file in this process, no Redis: rows/s."""
    from producers.api import inspect
    from producers.split import chunks
    from worker.events import chunk as core
    from worker.events import rules
    from worker.spec import ImportSpec

    source, plan = inspect(data)
    spec = ImportSpec(import_id="bench", columns=plan.columns, identifier=plan.identifier, create_people=True)
    started = time.perf_counter()
    rows = 0
    now = time.time()
    with source:
        for chunk in chunks(source, plan, chunk_rows):
            validated = core.validate(spec, chunk.rows, chunk.row_numbers, now, 300)
            core.assemble(spec, validated, chunk.rows, chunk.row_numbers, {}, rules.NO_CAMPAIGNS, now, 300)
            rows += len(chunk.rows)
    elapsed = time.perf_counter() - started
    return {"rows": rows, "seconds": round(elapsed, 2), "rows_per_second": round(rows / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=5_000_000, help="0 to skip the big run")
    parser.add_argument("--naive-rows", type=int, default=20_000)
    parser.add_argument("--segment-rows", type=int, default=100_000,
                        help="messages in the Segment archive row (tests/segment_data.py); 0 to skip it")
    parser.add_argument("--chunk-rows", type=int, default=2000)
    parser.add_argument("--out", default=str(HERE / "results" / "bench.json"))
    parser.add_argument("--quick", action="store_true",
                        help="--rows 200000 --big-rows 0 --naive-rows 2000 --segment-rows 20000 (a few minutes)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.big_rows, args.naive_rows, args.segment_rows = 200_000, 0, 2000, 20_000

    from generate import generate
    from targets import targets

    work = Path(tempfile.mkdtemp(prefix="backfill-bench-"))
    files = {}
    for rows in sorted({args.rows, args.big_rows} - {0}):
        files[rows] = work / f"events-{rows}.csv"
        started = time.perf_counter()
        with files[rows].open("w", newline="") as out:
            generate(out, rows)
        print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    main_file = files[args.rows]
    results: dict = {"machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform()},
                     "rows": args.rows, "chunk_rows": args.chunk_rows, "big_rows": args.big_rows}
    step = lambda text: print(text, file=sys.stderr, flush=True)
    step("the script a user would write (bench/reference.py) ...")
    references = [script("reference.py", str(main_file))]
    step("pure core ...")
    results["pure_core"] = pure_core(main_file, args.chunk_rows)
    results["import"] = []
    for workers in (1, 2):
        step(f"import, {workers} worker(s) ...")
        results["import"].append(run("import", main_file, workers, work, args.chunk_rows))
    if args.segment_rows:
        from tests.segment_data import messages, write_archive

        step(f"Segment archive, {args.segment_rows:,} messages, 2 workers ...")
        archive = write_archive(work / "archive.ndjson.gz", messages(args.segment_rows, people=5000)[0])
        results["segment"] = run("import", archive, 2, work, args.chunk_rows)
    step("import --trigger, 2 workers ...")
    results["trigger"] = run("import", main_file, 2, work, args.chunk_rows, ["--trigger", "--campaigns", "2"])
    step("floor ...")
    results["floor"] = run("floor", main_file, 2, work, args.chunk_rows)
    step("naive ...")
    results["naive"] = run("naive", main_file, 2, work, args.chunk_rows, ["--rows", str(args.naive_rows)])
    step("import, 2 workers and a sink ...")
    results["with_sink"] = run("import", main_file, 2, work, args.chunk_rows, sink=True)
    step("import, 2 workers and a PostgreSQL sink ...")
    results["with_postgres"] = with_postgres(main_file, work, args.chunk_rows)
    step(f"people file, {args.rows:,} rows, 2 workers (bench/throughput.py --type people) ...")
    results["people"] = script("throughput.py", "--type", "people", "--rows", str(args.rows), "--workers", "2")["runs"][-1]
    step("Redis's CPU a row (bench/cpu_split.py) ...")
    split = script("cpu_split.py", "--file", str(main_file))
    results["cpu_split"] = {**split, "redis_us_a_row": split["us_a_row"]["redis-server"]}
    step("sink alone ...")
    results["sink_alone"] = [sink_alone(args.rows, postgres, sinks) for postgres, sinks in
                             ((False, 1), (True, 1), (True, 2))]
    if args.big_rows:
        step(f"import of {args.big_rows:,} rows, 2 workers and a sink ...")
        results["big"] = run("import", files[args.big_rows], 2, work, args.chunk_rows, sink=True)

    step("the script a user would write, again ...")
    references.append(script("reference.py", str(main_file)))
    results["reference"] = {"runs": references,
                            "rows_per_second": round(sum(x["rows_per_second"] for x in references) / len(references))}
    results["targets"] = {t.name: t.as_dict() for t in targets(results)}
    best = results["import"][-1]
    results["ratios"] = {
        "of_floor": round(best["rows_per_second"] / results["floor"]["rows_per_second"], 3),
        "over_naive": round(best["rows_per_second"] / results["naive"]["rows_per_second"], 1),
    }
    _print(results, args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"wrote {out}")


def _print(r: dict, args) -> None:
    m = r["machine"]
    print(f"\nbackfill benchmark: {args.rows:,}-row Vero file, {args.chunk_rows}-row chunks, {m['cores']} cores, "
          f"Python {m['python']}")
    print(f"{'run':<28}{'seconds':>9}{'rows/s':>11}{'producer MB':>13}{'workers MB':>16}{'redis peak MB':>15}"
          f"{'chunk p50/p99 ms':>18}")
    runs = [(f"import, {x['workers']} worker(s)", x) for x in r["import"]]
    runs.append(("import --trigger, 2 workers", r["trigger"]))
    if "segment" in r:
        runs.append((f"Segment archive {r['segment']['rows']:,}, 2 w", r["segment"]))
    runs += [("floor (tasks do nothing)", r["floor"]), (f"naive, 1 task per row ({r['naive']['rows']:,})", r["naive"])]
    runs.append(("import, 2 workers + a sink", r["with_sink"]))
    runs.append(("import, 2 w + PostgreSQL sink", r["with_postgres"]))
    if "big" in r:
        runs.append((f"import {r['big']['rows']:,} rows, 2 w + sink", r["big"]))
    for name, x in runs:
        chunk = f"{x.get('chunk_p50_ms')}/{x.get('chunk_p99_ms')}" if x.get("chunk_p50_ms") is not None else "-"
        workers = "/".join(str(w) for w in x["worker_peak_rss_mb"])
        print(f"{name:<28}{x['seconds']:>9}{x['rows_per_second']:>11,}{x['peak_rss_mb']:>13}{workers:>16}"
              f"{x['redis_peak_mb']:>15}{chunk:>18}")
    pc = r["pure_core"]
    print(f"{'pure core, one process':<28}{pc['seconds']:>9}{pc['rows_per_second']:>11,}")
    print(f"\n2 workers = {r['ratios']['of_floor']:.0%} of the floor, {r['ratios']['over_naive']}x the naive baseline; "
          f"Redis bytes per remembered event id: {r['import'][-1].get('bytes_per_event_id')}")
    imp = r["import"][-1]
    print(f"rows {imp['rows']:,}: imported {imp['imported']:,}, duplicates {imp['duplicates']:,}, "
          f"errors {imp['errors']:,}")
    ws = r["with_sink"]
    print(f"with a sink: report in {ws['report_seconds']} s, every event stored in {ws['stored_seconds']} s "
          f"({ws['stored_seconds'] / ws['report_seconds']:.2f}x), {ws['events_stored']:,} events stored; the sink's "
          f"CPU a stored event: SQLite {ws['sink_cpu_us_an_event']} us, PostgreSQL "
          f"{r['with_postgres']['sink_cpu_us_an_event']} us")
    for x in r["sink_alone"]:
        print(f"sink alone, {x['backend']}, {x['sinks']} sink(s): {x['events']:,} events in {x['seconds']} s = "
              f"{x['events_per_second']:,} events/s")
    ref = r["reference"]
    before_after = " and ".join(f"{x['rows_per_second']:,}" for x in ref["runs"])
    print(f"the script a user would write (bench/reference.py): {before_after} rows/s (before and after), "
          f"mean {ref['rows_per_second']:,}; people file {r['people']['rows_per_second']:,} rows/s; Redis "
          f"{r['cpu_split']['redis_us_a_row']} us a row")
    if "big" in r:
        b = r["big"]
        print(f"{b['rows']:,} rows drained: outbox {b['outbox_left']} entries; Redis {b['redis_after_mb']} MB, of which "
              f"dedupe marks and people {b['redis_kept_mb']} MB: {b['redis_after_mb'] - b['redis_kept_mb']:.1f} MB else "
              f"(stored in {b['stored_seconds']} s, report in {b['report_seconds']} s)")
    from targets import lines, targets

    print("\n".join(["", *lines(targets(r))]))


if __name__ == "__main__":
    main()
