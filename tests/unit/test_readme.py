"""The README says what the code reads: its settings table and its Python example, checked on the code."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _section(title: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"\n### {title}\n")
    end = re.compile(r"^##", re.M).search(readme, start + 5)
    return readme[start:end.start()]


def test_the_settings_table_names_every_setting_as_the_code_reads_it():
    from worker.settings import env_names

    rows = [line for line in _section("Settings").splitlines() if line.startswith("| `")]
    # the first cell of each row: its variables, each written out in full (an abbreviation such as
    # `_TIME_LIMIT_S` led readers to a name the code never read)
    named = [name for row in rows for name in re.findall(r"`([^`]*)`", row.split("|")[1])]
    settings = env_names()
    assert [n for n in named if n not in settings] == [], "names in the table that are no setting"
    assert [n for n in settings if n not in named] == [], "settings missing from the table"
    assert len(named) == len(set(named)), "a setting listed twice"
