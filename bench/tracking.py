"""The tracking endpoint's throughput: Segment's own client library, in a process of its own, sending
the seeded archive's messages to `backfill serve` in batches; timed until every message is committed.

    python bench/tracking.py [--messages 50000] [--workers 2]

Starts a private redis-server, N worker processes and `backfill serve`; the sender is
segment-analytics-python (its background consumer, 100 messages a batch, gzip). Prints
messages/s to "every message committed" and how many were imported, duplicates and errors.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SENDER = """
import sys, orjson
from segment.analytics.client import Client
key, url, path = sys.argv[1:4]
failed = []
client = Client(write_key=key, host=url, gzip=True, upload_size=100, max_queue_size=1_000_000,
                on_error=lambda error, batch: failed.append(len(batch)))
for line in open(path, "rb"):
    m = orjson.loads(line)
    common = dict(message_id=m.get("messageId"), timestamp=None)
    if m["type"] == "identify":
        client.identify(m.get("userId"), m.get("traits"), integrations=m.get("integrations"),
                        anonymous_id=m.get("anonymousId"), **common)
    elif m["type"] == "track":
        client.track(m.get("userId"), m.get("event"), m.get("properties"), anonymous_id=m.get("anonymousId"), **common)
    elif m["type"] == "page":
        client.page(m["userId"], None, m.get("name"), m.get("properties"), **common)
    elif m["type"] == "screen":
        client.screen(m["userId"], None, m.get("name"), m.get("properties"), **common)
    elif m["type"] == "group":
        client.group(m["userId"], m["groupId"], m.get("traits"), **common)
    elif m["type"] == "alias":
        client.alias(m["previousId"], m["userId"], **common)
client.flush()
print(orjson.dumps({"failed_batches": len(failed)}).decode())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from tests.segment_data import messages

    work = Path(tempfile.mkdtemp(prefix="backfill-bench-track-"))
    lines = []
    for line in messages(args.messages, people=5000)[0]:
        try:  # what a client library can send: messages (not the archive's broken lines), with a type it knows
            if orjson.loads(line).get("type") in ("identify", "track", "page", "screen", "group", "alias"):
                lines.append(line)
        except orjson.JSONDecodeError:
            pass
    data = work / "messages.ndjson"
    data.write_text("\n".join(lines) + "\n")

    from worker.store.embedded import start_private

    redis_process, url = start_private(work / "redis")
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "REDIS_URL": url, "BACKFILL_HOME": str(work), "BACKFILL_LOG_LEVEL": "WARNING",
           "BACKFILL_OUTBOX_LIMIT": "0", "BACKFILL_API_PORT": str(port)}
    os.environ.update(env)
    from producers.api import default_context
    from producers.demo import start_workers, stop_workers, wait_ready
    from worker import keys
    from worker.app import app

    processes = start_workers(url, args.workers, beat=False, log_dir=work)
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent)) or "backfill"
    serve = subprocess.Popen([exe, "serve"], env=env, cwd=ROOT,
                             stdout=(work / "serve.log").open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_ready(app, args.workers)
        time.sleep(3)  # the service's start
        st = default_context().store
        _, key = st.apikeys.create("bench", "track")
        started = time.perf_counter()
        sent = subprocess.run([sys.executable, "-c", SENDER, key, f"http://127.0.0.1:{port}", str(data)],
                              capture_output=True, cwd=ROOT, timeout=3600)
        sent_s = time.perf_counter() - started
        if sent.returncode != 0:
            raise SystemExit(sent.stderr.decode()[-3000:])
        totals = {}
        while True:
            states = [st.imports.state(i.decode()) for i in st.r.zrange(keys.IMPORTS_INDEX, 0, -1)]
            totals = {name: sum(int(s.get(name, 0) or 0) for s in states)
                      for name in ("rows", "imported", "duplicates", "errors")}
            if totals["rows"] >= len(lines):
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        serve.terminate()
        serve.wait(timeout=60)
        stop_workers(processes)
        redis_process.kill()
    print(f"\nbackfill tracking endpoint: {len(lines):,} messages from segment-analytics-python (100 a batch, gzip), "
          f"{args.workers} workers, {os.cpu_count()} cores")
    print(f"sent (every batch answered) in {sent_s:.2f} s; every message committed in {elapsed:.2f} s = "
          f"{len(lines) / elapsed:,.0f} messages/s; {orjson.loads(sent.stdout.splitlines()[-1])}")
    print(f"rows {totals['rows']:,}: imported {totals['imported']:,}, duplicates {totals['duplicates']:,}, "
          f"errors {totals['errors']:,}")


if __name__ == "__main__":
    main()
