"""The README says what the code reads: its settings table and its Python example, checked on the code."""
from __future__ import annotations

import ast
import builtins
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


def test_the_python_example_uses_only_the_public_api():
    import producers.api as api

    text = _section("From Python")
    code = text[text.index("```python\n") + 10:]
    code = code[:code.index("```")]
    tree = ast.parse(code)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            assert isinstance(node, ast.ImportFrom) and node.module == "producers.api", ast.unparse(node)
            imported |= {alias.name for alias in node.names}
    assert imported - set(api.__all__) == set(), "the example imports names producers.api does not export"
    assigned = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assigned |= {n.name for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler) and n.name}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert used - imported - assigned - set(dir(builtins)) == set(), "the example uses names it never imports"
    # the prose around it: the names it tells a caller to use or catch, and the handle's methods
    prose = set(re.findall(r"`(?:except )?([A-Z][A-Za-z]+|TRANSIENT|enqueue_import)\b", text))
    assert prose and prose - set(api.__all__) == set(), "the text names what producers.api does not export"
    methods = set(re.findall(r"\bhandle\.(\w+)\(", text))
    assert methods and {m for m in methods if not hasattr(api.ImportHandle, m)} == set()
