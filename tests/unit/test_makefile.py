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
