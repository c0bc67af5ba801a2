"""The layout's rules, checked on the code: a pure core, and a chunk's route that only goes down.

The core (parsing, validation, rules, reports) must import no I/O library, so it is
imported here in a fresh interpreter in which redis, celery, kombu, click and
prometheus_client cannot be imported at all. The route task -> pipeline -> store is
checked on the import graph read from the source: the store never imports a pipeline,
the operations or the tasks, and a pipeline never imports the tasks.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = [
    "worker.cells", "worker.errors", "worker.keys", "worker.problems", "worker.settings", "worker.spec",
    "worker.timestamps", "worker.events.dialects", "worker.events.rows", "worker.events.rules",
    "worker.events.chunk", "worker.people.columns", "worker.people.rows", "worker.people.directory",
    "worker.ops.report", "worker.sink.schema", "worker.sink.stored",
]
EDGES = ("redis", "celery", "kombu", "click", "prometheus_client", "hiredis")
BLOCKER = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EDGES!r}:
            raise ImportError("the pure core imported " + name)
sys.meta_path.insert(0, Block())
import importlib
for module in {CORE!r}:
    importlib.import_module(module)
edges = sorted(m for m in sys.modules if m.startswith(("worker.store", "worker.tasks", "worker.app", "producers"))
               or m in ("worker.ops.retries", "worker.ops.finalize", "worker.ops.sweeper", "worker.ops.metrics"))
print(",".join(edges))
"""


def test_the_core_imports_with_every_io_library_blocked():
    done = subprocess.run([sys.executable, "-c", BLOCKER], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"the core pulled in I/O modules: {done.stdout}"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in (ROOT / "worker").rglob("*.py")}


def test_the_store_never_imports_what_sits_above_it():
    above = ("worker.events.pipeline", "worker.people.pipeline", "worker.segment.pipeline", "worker.ordered",
             "worker.ops", "worker.tasks", "worker.app", "producers")
    for module, imported in _graph().items():
        if module.startswith("worker.store"):
            wrong = sorted(i for i in imported if i.startswith(above))
            assert not wrong, f"{module} imports {wrong}"


def test_pipelines_and_core_never_import_the_tasks_or_the_producers():
    for module, imported in _graph().items():
        if module in ("worker.tasks", "worker.app", "worker.context"):  # (the context configures the app)
            continue
        wrong = sorted(i for i in imported if i.startswith(("worker.tasks", "worker.app", "producers")))
        assert not wrong, f"{module} imports {wrong}"


def test_no_module_is_over_400_lines():
    sources = [*(ROOT / "worker").rglob("*.py"), *(ROOT / "producers").rglob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in sources if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def test_the_readme_layout_names_every_file_and_only_files_that_exist():
    import re

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Layout"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    named = set(re.findall(r"[\w.]+\.(?:py|lua|md)\b", block))
    tree = {p.name for folder in ("worker", "producers", "bench") for p in (ROOT / folder).rglob("*")
            if p.suffix in (".py", ".lua") and "__pycache__" not in p.parts}
    tree |= {p.name for p in (ROOT / "docs").glob("*.md")}
    tree -= {"__init__.py"}
    assert tree - named == set(), f"files the Layout does not name: {sorted(tree - named)}"
    everywhere = {p.name for p in ROOT.rglob("*") if ".venv" not in p.parts}
    assert named - everywhere == set(), f"the Layout names files that are not there: {sorted(named - everywhere)}"


def test_the_http_service_never_imports_the_cli():
    # the two interfaces share what they both need through producers (api.py, lookup.py, options.py),
    # so that either can change, or move, without the other
    for path in (ROOT / "producers" / "web").rglob("*.py"):
        wrong = sorted(i for i in _imports(path) if i.startswith("producers.cli"))
        assert not wrong, f"{_module(path)} imports {wrong}"


#: The functions over LONG_FUNCTION lines, each with why it stays one function.
LONG_ALLOWED = {
    "worker.events.chunk.assemble": "hot path: one pass over a chunk's rows (bench/core_steps.py, µs a row)",
    "worker.events.plain.validate_chunk": "hot path: the column-at-a-time validation (bench/core_steps.py)",
    "worker.events.rows.validate_rows": "hot path: the per-row validation of the rows plain.py hands over "
                                        "(bench/core_steps.py)",
    "worker.people.rows.validate_people": "hot path: a chunk of people records in one pass (bench/chunk_parts.py)",
    "worker.events.dialects.plan_columns": "not split yet: a header's roles decided in one order of rules",
    "producers.api.enqueue_import": "not split yet: the public entry point, its keyword options checked in turn",
}
LONG_FUNCTION = 80


def test_no_function_is_over_80_lines_but_those_listed_with_a_reason():
    long = set()
    for path in [*(ROOT / "worker").rglob("*.py"), *(ROOT / "producers").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > LONG_FUNCTION:
                    long.add(f"{_module(path)}.{node.name}")
    assert long - set(LONG_ALLOWED) == set(), f"functions over {LONG_FUNCTION} lines: {sorted(long - set(LONG_ALLOWED))}"
    assert set(LONG_ALLOWED) - long == set(), f"listed but no longer long: {sorted(set(LONG_ALLOWED) - long)}"
