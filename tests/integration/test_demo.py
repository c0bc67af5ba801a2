"""`backfill demo` as a new user runs it: no REDIS_URL, its own embedded Redis, workers, every example,
and the results read back from the embedded database."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_the_demo_runs_every_example_and_reads_the_results_back(tmp_path):
    from worker.settings import Settings
    from worker.store.embedded import stop_embedded

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")
           and not k.startswith("BACKFILL_")}
    env["BACKFILL_HOME"] = str(tmp_path / "home")
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent))
    try:
        done = subprocess.run([exe, "demo"], env=env, capture_output=True, timeout=240)
    finally:
        stop_embedded(Settings(home=tmp_path / "home", embedded=True))
    out = done.stdout.decode()
    assert done.returncode == 0, out[-3000:] + done.stderr.decode()[-3000:]
    assert out.count("== ") >= 6 and "completed_with_errors" in out and "Traceback" not in out
    stored = out[out.index("Read back from the results database"):]
    assert stored.count("tyrion.lannister@casterlyrock.com  Completes checkout") == 3
