"""What `pip install .` ships: the wheel holds everything the commands need outside the checkout."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_the_lua_scripts_the_demo_examples_and_the_console_files(tmp_path):
    import shutil

    source = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache", "results", "data"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(source)],
                          capture_output=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    [wheel] = tmp_path.glob("backfill-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    examples = {p.name for p in (ROOT / "producers" / "examples").glob("*.csv")}
    scripts = {p.name for p in (ROOT / "worker" / "store" / "scripts").glob("*.lua")}
    assert {f"producers/examples/{n}" for n in examples} <= names, sorted(names)
    assert {f"worker/store/scripts/{n}" for n in scripts} <= names
    console = ROOT / "producers" / "console"
    pages = {f"producers/console/{p.relative_to(console)}" for p in console.glob("*/*") if p.suffix in (".html", ".js", ".css")}
    assert pages and pages <= names, sorted(pages - names)  # the templates, the script and the stylesheet
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
