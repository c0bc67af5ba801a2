"""The Makefile's interpreter probe, on a machine where pyenv shims answer for versions it lacks."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_python_probe_is_quiet_and_says_which_python_it_chose(tmp_path):
    shims = tmp_path / "shims"
    shims.mkdir()
    for version in ("python3.13", "python3.12"):  # pyenv's shims for versions not installed
        shim = shims / version
        shim.write_text(f'#!/bin/sh\necho "pyenv: {version}: command not found" >&2\nexit 127\n')
        shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}"}
    env.pop("PYTHON", None)
    venv = tmp_path / "venv"
    done = subprocess.run([shutil.which("make") or "make", "-n", "--no-print-directory", "-C", str(ROOT),
                           "setup", f"VENV={venv}"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pyenv" not in done.stderr and "command not found" not in done.stderr
    assert "setting up" in done.stdout and "python3.13" not in done.stdout


def test_make_test_runs_the_unit_tests_first_then_every_other_test(tmp_path):
    done = subprocess.run([shutil.which("make") or "make", "-n", "--no-print-directory", "-C", str(ROOT), "test",
                           f"VENV={tmp_path / 'venv'}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    runs = [line.split() for line in done.stdout.splitlines() if line.split()[:1] == [f"{tmp_path}/venv/bin/pytest"]]
    folders = [[arg for arg in run if arg.startswith("tests/")] for run in runs]
    # a broken core fails in seconds: make stops at the first run that fails
    assert folders == [["tests/unit"], ["tests/integration", "tests/chaos"]]
    assert all('"not promtool"' in " ".join(run) for run in runs) and "--durations=15" in runs[-1]
    with_tests = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")}
    assert with_tests == {"tests/unit", "tests/integration", "tests/chaos"}  # none left out
