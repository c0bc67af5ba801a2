"""Worker logs: JSON lines, ours and Celery's, each bound to its import and chunk."""
from __future__ import annotations

import time

import orjson

from .helpers import run_import, write


def test_worker_lines_carry_import_id_and_chunk(store, workers, worker_logs, tmp_path):
    lines = ["email,event_name,time"] + [f"p{i}@example.com,x,2024-01-01T00:00:00Z" for i in range(120)]
    report = run_import(write(tmp_path, "logged.csv", "\n".join(lines) + "\n"), create_people=True)
    iid = report["import_id"]
    time.sleep(0.5)  # let the last lines reach the files
    records = []
    for path in worker_logs.glob("worker*.log"):
        for line in path.read_bytes().splitlines():
            if line.startswith(b"{"):
                records.append(orjson.loads(line))
    mine = [r for r in records if r.get("import_id") == iid]
    succeeded = [r for r in mine if r.get("logger") == "celery.app.trace" and "succeeded" in r["event"]
                 and "process_chunk" in r["event"]]
    assert {r["chunk"] for r in succeeded} == {0, 1, 2}  # Celery's own lines, bound
    assert any(r["event"] == "import finished" and r["imported"] == 120 for r in mine)  # ours
    assert all("timestamp" in r and "level" in r for r in mine)
