"""The `backfill` command as a user runs it: exit codes, reports, errors files, inspect, campaigns."""
from __future__ import annotations

import orjson

from .helpers import EXAMPLES, write


def test_wait_exit_codes(backfill, tmp_path):
    ok = backfill("import", str(EXAMPLES / "vero_events.csv"), "--create-people", "--wait", "--json")
    assert ok.returncode == 0, ok.stderr
    assert orjson.loads(ok.stdout)["imported"] == 3
    errors = backfill("import", str(EXAMPLES / "events_with_errors.csv"), "--create-people", "--wait")
    assert errors.returncode == 4, errors.stderr
    assert b"completed_with_errors" in errors.stdout and b"backfill errors" in errors.stdout
    failed = backfill("import", str(write(tmp_path, "x.csv", "foo,bar\n1,2\n")), "--wait")
    assert failed.returncode == 1 and b"no person column" in failed.stderr


def test_timeout_exit_code(tmp_path):
    """No worker on this Redis, so the import cannot finish: --wait --timeout must give up with 3."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from worker.store.embedded import start_private

    server, url = start_private(tmp_path / "redis")
    try:
        exe = shutil.which("backfill", path=str(Path(sys.executable).parent))
        slow = subprocess.run([exe, "import", str(EXAMPLES / "vero_events.csv"), "--wait", "--timeout", "1"],
                              env={**os.environ, "REDIS_URL": url}, capture_output=True, timeout=60)
    finally:
        server.kill()
    assert slow.returncode == 3 and b"still running after 1.0 s" in slow.stderr


def test_errors_command_writes_the_file(backfill, tmp_path):
    run = backfill("import", str(EXAMPLES / "events_with_errors.csv"), "--create-people", "--wait", "--json")
    iid = orjson.loads(run.stdout)["import_id"]
    out = tmp_path / "errors.csv"
    assert backfill("errors", iid, "-o", str(out)).returncode == 0
    text = out.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0] == "email,event_name,time,order_id,total,recipient,_row,_errors"
    assert "invalid_email" in text and "missing_event_name" in text and "invalid_time" in text
    report = backfill("report", iid, "--json")
    assert orjson.loads(report.stdout)["errors"] == 4
    assert iid.encode() in backfill("status").stdout


def test_inspect_shows_roles_and_samples(backfill):
    run = backfill("inspect", str(EXAMPLES / "customerio_events.csv"), "--json")
    info = orjson.loads(run.stdout)
    assert info["dialect"] == "customerio" and info["identifier"] == "id" and info["delimiter"] == ","
    roles = {c["name"]: (c["role"], c["first_values"]) for c in info["columns"]}
    assert roles["_cio_customer_id"] == ("person", ["cust_1001", "cust_1002", "cust_1001"])
    assert roles["item.sku"][0] == "property"


def test_campaigns_commands(backfill):
    assert backfill("campaigns", "add", "follow-up", "--event", "Completes checkout", "--delay", "10d").returncode == 0
    listed = orjson.loads(backfill("campaigns", "list", "--json").stdout)
    assert listed == [{"name": "follow-up", "event": "Completes checkout", "delay_s": 864000, "match": "exact"}]
    assert backfill("campaigns", "remove", "follow-up").returncode == 0
    assert backfill("campaigns", "remove", "follow-up").returncode == 1


def test_dry_run_from_the_cli(backfill):
    run = backfill("import", str(EXAMPLES / "vero_events.csv"), "--create-people", "--dry-run", "--wait")
    assert run.returncode == 0 and b"DRY RUN" in run.stdout
