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


def test_make_demo_then_serves_the_console_with_a_fresh_key_until_ctrl_c(tmp_path):
    """`make demo` runs `backfill demo --console`: the reports, then the console on the same Redis and
    workers; a newcomer signs in with the printed key at the printed URL and imports a file."""
    import re
    import signal
    import time

    import httpx

    from worker.settings import Settings
    from worker.store.embedded import free_port, stop_embedded

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")
           and not k.startswith("BACKFILL_")}
    env.update(BACKFILL_HOME=str(tmp_path / "home"), BACKFILL_API_PORT=str(free_port()), PYTHONUNBUFFERED="1")
    exe = shutil.which("backfill", path=str(Path(sys.executable).parent))
    demo = subprocess.Popen([exe, "demo", "--console"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = ""
    try:
        assert demo.stdout is not None
        while "bfk_" not in out:
            line = demo.stdout.readline().decode()
            assert line, out[-3000:]
            out += line
        url = re.search(r"open (http://\S+/) and sign in", out)[1]
        key = re.search(r"(bfk_\S+)", out)[1]
        with httpx.Client(base_url=url, timeout=30) as browser:
            deadline = time.monotonic() + 30
            while True:
                try:
                    signed = browser.post("/signin", data={"key": key}, headers={"Origin": url.rstrip("/")})
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, out
                    time.sleep(0.2)
            assert signed.status_code == 303
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', browser.get("/").text)[1]
            assert len(browser.get("/v1/imports").json()["imports"]) == 6  # the examples'
            writes = {"Origin": url.rstrip("/"), "X-CSRF-Token": csrf}
            upload = browser.post("/v1/uploads", files={"file": ("mine.csv", b"email,event_name\nme@example.com,Hi\n")},
                                  headers=writes).json()
            started = browser.post("/v1/imports", json={"upload_id": upload["upload_id"], "create_people": True},
                                   headers=writes)
            assert started.status_code == 202, started.text
            import_id = started.json()["import_id"]
            deadline = time.monotonic() + 60
            while browser.get(f"/v1/imports/{import_id}").json()["status"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.2)
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        rest = demo.communicate(timeout=60)[0].decode()
        assert demo.returncode == 0, out + rest
        assert "Traceback" not in out + rest
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        stop_embedded(Settings(home=tmp_path / "home", embedded=True))
