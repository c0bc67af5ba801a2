"""Small helpers shared by the integration tests."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "producers" / "examples"


def run_import(path, timeout: float = 60, **options) -> dict:
    """Enqueue ``path`` through the public API and wait for its report."""
    from producers.api import enqueue_import

    handle = enqueue_import(path, **options)
    report = handle.wait(timeout=timeout)
    assert report is not None, f"import {handle.import_id} did not finish in {timeout} s: {handle.state()}"
    report["_handle"] = handle
    return report


def counted_once(report: dict) -> bool:
    """Every row is imported, a duplicate or an error: exactly once."""
    return report["imported"] + report["duplicates"] + report["errors"] == report["rows"] == report["rows_expected"]


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path
