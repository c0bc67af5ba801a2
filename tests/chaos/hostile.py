"""Hostile and broken files: each must be refused within seconds, with a clear message, in bounded memory.

Every file goes through the real ``backfill import`` command (its own process, so
its peak RSS is measured alone) against a private redis-server. ``scale`` shrinks
the big files for ``make test``; ``make chaos`` runs them at full size.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path

import redis

from worker import keys
from worker.store.embedded import start_private

ROOT = Path(__file__).resolve().parents[2]
HEADER = b"email,event_name,time,price\n"
ROW = b"ann@example.com,Bought,2024-01-01T00:00:00Z,9.99\n"
MIB = 1024 * 1024


def gzip_bomb(path: Path, scale: float) -> None:
    """A CSV that inflates ~1000 times: a header and the same row over and over."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    block = ROW * (4 * MIB // len(ROW))
    with path.open("wb") as out:
        out.write(squeeze.compress(HEADER))
        for _ in range(int(512 * scale)):  # 2 GiB at full size
            out.write(squeeze.compress(block))
        out.write(squeeze.flush())


def long_line(path: Path, scale: float) -> None:
    """A header, then one 200 MB line (commas and letters: a hundred million fields if parsed)."""
    with path.open("wb") as out:
        out.write(HEADER)
        piece = b"x," * (MIB // 2)
        for _ in range(int(200 * scale)):
            out.write(piece)
        out.write(b"\n")


def nul_bytes(path: Path, scale: float) -> None:
    """A valid start, then a NUL byte past the first sample the sniffer reads."""
    path.write_bytes(HEADER + ROW * 5000 + b"ann@example.com,Bou\x00ght,2024-01-01,1\n" + ROW * 10)


def utf16(path: Path, scale: float) -> None:
    """Excel's "Unicode text": UTF-16 with a BOM."""
    path.write_bytes((HEADER + ROW * 100).decode().encode("utf-16"))


def utf16_no_bom(path: Path, scale: float) -> None:
    """UTF-16LE without a BOM."""
    path.write_bytes((HEADER + ROW * 100).decode().encode("utf-16-le"))


def xlsx_renamed(path: Path, scale: float) -> None:
    """A real .xlsx (zip) container renamed to .csv."""
    import zipfile

    with zipfile.ZipFile(path, "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")


def many_columns(path: Path, scale: float) -> None:
    """A header of 10,000 columns."""
    header = ",".join(["email", "event_name"] + [f"c{i}" for i in range(9998)])
    path.write_text(header + "\n" + "ann@example.com,Bought" + "," * 9998 + "\n")


def late_open_quote(path: Path, scale: float) -> None:
    """A large valid file whose last rows open a quote that never closes."""
    with path.open("wb") as out:
        out.write(HEADER)
        block = ROW * 20_000
        for _ in range(int(50 * MIB * scale) // len(block) + 1):
            out.write(block)
        out.write(b'bob@example.com,"Bought,2024-01-01,1\n' + ROW * 100)


def wide_rows(path: Path, scale: float) -> None:
    """A normal header, then 40 rows of a million commas each (40 MB): a million cells a row."""
    with path.open("wb") as out:
        out.write(HEADER + ROW * 100)
        for _ in range(max(int(40 * scale), 2)):
            out.write(b"ann@example.com,Bought" + b"," * MIB + b"\n")


def huge_row(path: Path, scale: float) -> None:
    """One record of quoted fields holding newlines: every line and field within its limit, the row 3 MB."""
    field = b'"' + (b"y" * 999 + b"\n") * 900 + b'"'
    with path.open("wb") as out:
        out.write(HEADER + ROW * 100)
        out.write(b"ann@example.com,Bought," + field + b"," + field + b"," + field + b"\n")


CASES = [  # (builder, file name, the refusal's code)
    (gzip_bomb, "bomb.csv.gz", "gzip_bomb"),
    (long_line, "long-line.csv", "line_too_long"),
    (nul_bytes, "nul.csv", "binary_file"),
    (utf16, "utf16.csv", "not_csv"),
    (utf16_no_bom, "utf16-no-bom.csv", "not_csv"),
    (xlsx_renamed, "book.csv", "not_csv"),
    (many_columns, "wide.csv", "too_many_columns"),
    (late_open_quote, "late-quote.csv", "unterminated_quote"),
    (wide_rows, "wide-rows.csv", "row_too_wide"),
    (huge_row, "huge-row.csv", "row_too_large"),
]


def refuse(path: Path, url: str, home: Path) -> dict:
    """Run ``backfill import path`` in its own process: seconds, its peak RSS (MB), exit code, refusal code,
    message."""
    env = {**os.environ, "REDIS_URL": url, "BACKFILL_HOME": str(home), "BACKFILL_LOG_FORMAT": "json"}
    peak = home / "peak-kb.txt"
    started = time.monotonic()
    with open(home / "out.txt", "wb") as out, open(home / "err.txt", "wb") as err:
        done = subprocess.run([sys.executable, "-m", "tests.chaos.peak", str(peak), "import", str(path),
                               "--create-people"], env=env, cwd=ROOT, stdout=out, stderr=err, timeout=120)
    seconds = time.monotonic() - started
    message = (home / "err.txt").read_text(errors="replace")
    found = re.search(r"import (\w+) failed: (.*)", message)
    code = None
    if found:
        code = redis.Redis.from_url(url).hget(keys.import_hash(found.group(1)), "failure_code")
    return {"seconds": round(seconds, 2), "rss_mb": round(int(peak.read_text()) / 1024, 1), "exit": done.returncode,
            "code": code.decode() if code else None, "message": found.group(2) if found else message[-300:]}


def all_files(base: Path, scale: float = 1.0) -> list[dict]:
    """Every hostile file, refused: rows of the chaos table."""
    base.mkdir(parents=True, exist_ok=True)
    server, url = start_private(base / "redis")
    try:
        rows = []
        for build, name, code in CASES:
            path = base / name
            build(path, scale)
            result = refuse(path, url, base)
            path.unlink()
            ok = result["code"] == code and result["exit"] == 1 and result["seconds"] < 5 and result["rss_mb"] < 256
            rows.append({**result, "scenario": f"hostile: {name}", "broke": build.__name__.replace("_", " "),
                         "report": f"refused: {result['code']}, peak RSS {result['rss_mb']} MB", "ok": ok})
        return rows
    finally:
        server.kill()
        server.wait()
