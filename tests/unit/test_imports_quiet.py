"""Importing any module of backfill starts nothing, connects nowhere and raises nothing.

Every module of ``worker``, ``producers`` and ``bench`` is imported in a fresh interpreter with no
REDIS_URL, the embedded server allowed (the setting that would start one) and a home that does not
exist yet. Sockets that connect and processes that start are recorded instead of made: an entry point
(the CLI, the service, a worker process, a script) builds its context (:mod:`worker.context`) when it
runs, never when it is imported.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import importlib, pkgutil, socket, subprocess, sys
made = []
def _connect(self, address, *a, **k):
    made.append(f"connect {address}")
    raise OSError("no connections while importing")
socket.socket.connect = _connect
socket.socket.connect_ex = _connect
_popen = subprocess.Popen.__init__
def _start(self, args, *a, **k):
    made.append(f"start {args}")
    raise OSError("no processes while importing")
subprocess.Popen.__init__ = _start
sys.path.insert(0, ".")
names = []
for package in ("worker", "producers", "bench"):
    module = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        importlib.import_module(info.name)
        names.append(info.name)
from worker.app import app  # the app itself exists, not configured
assert not app.configured, "the Celery app was configured on import"
print(len(names))
print("\n".join(made))
"""


def test_importing_every_module_starts_nothing_and_connects_nowhere(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("BACKFILL_")}
    env.update(BACKFILL_EMBEDDED="1", BACKFILL_HOME=str(home))
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    count, *made = done.stdout.strip().splitlines()
    assert int(count) > 100  # (every module was reached: the walk did not stop early)
    assert made == []
    assert not home.exists()  # the embedded server would have made its home
