"""Worker logs: JSON lines, ours and Celery's, each bound to its import and chunk."""
from __future__ import annotations

import orjson

from .helpers import run_import, wait_until, write


def _succeeded(record: dict) -> bool:
    return (record.get("logger") == "celery.app.trace" and "succeeded" in record["event"]
            and "process_chunk" in record["event"])


def test_worker_lines_carry_import_id_and_chunk(store, workers, worker_logs, tmp_path):
    lines = ["email,event_name,time"] + [f"p{i}@example.com,x,2024-01-01T00:00:00Z" for i in range(120)]
    report = run_import(write(tmp_path, "logged.csv", "\n".join(lines) + "\n"), create_people=True)
    iid = report["import_id"]

    def logged() -> list[dict]:
        """The import's lines in the workers' logs once its last ones are there: the report is written
        before its worker logs "import finished", and before Celery logs that the chunk task succeeded."""
        records = [orjson.loads(line) for path in worker_logs.glob("worker*.log")
                   for line in path.read_bytes().splitlines()
                   if line.startswith(b"{") and line.endswith(b"}")]  # (not a line half written)
        mine = [r for r in records if r.get("import_id") == iid]
        complete = len([r for r in mine if _succeeded(r)]) == 3 and any(r["event"] == "import finished" for r in mine)
        return mine if complete else []

    mine = wait_until(logged, 10, "the 3 chunks' 'succeeded' lines and 'import finished' in the workers' logs")
    assert {r["chunk"] for r in mine if _succeeded(r)} == {0, 1, 2}  # Celery's own lines, bound
    assert any(r["event"] == "import finished" and r["imported"] == 120 for r in mine)  # ours
    assert all("timestamp" in r and "level" in r for r in mine)
