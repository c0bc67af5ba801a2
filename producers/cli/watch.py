"""Live views: ``backfill top`` (imports in flight, queue depths) and ``backfill status ID --watch``.

:func:`progress` and the ``render_*`` functions are pure (state in, text out); the loop
redraws in place on a terminal (ANSI home + clear) and prints one frame per refresh
otherwise, so it reads well in a log too.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

import click

from worker.sink.stored import dead_letters, settled

#: Statuses of an import still in flight (``top`` also shows imports whose results are still being stored).
IN_FLIGHT = ("queued", "running")


def progress(import_id: str, state: dict[str, str], now_ms: int) -> dict:
    """Rows done/total, rows/s since the first commit, ETA and errors of one import's stored state."""
    number = lambda name: int(state.get(name, 0) or 0)
    rows, expected = number("rows"), number("rows_expected")
    first = number("first_commit_ms") or number("created_ms")
    end = number("finished_ms") or now_ms
    seconds = max((end - first) / 1000, 0.001) if first else 0.0
    rate = rows / seconds if seconds and rows else 0.0
    eta = (expected - rows) / rate if rate and state.get("status") in IN_FLIGHT and expected > rows else None
    return {"import_id": import_id, "status": state.get("status", "unknown"), "source": state.get("source", ""),
            "rows": rows, "rows_expected": expected, "imported": number("imported"),
            "duplicates": number("duplicates"), "errors": number("errors"), "rows_per_second": round(rate),
            "eta_s": None if eta is None else round(eta), "stored": number("events_stored"),
            "storing": not settled(state), "dead_letters": dead_letters(state), "waiting": state.get("waiting", "")}


def _line(p: dict) -> str:
    total = p["rows_expected"] or "?"
    share = f"{100 * p['rows'] / p['rows_expected']:5.1f}%" if p["rows_expected"] else "    -"
    eta = f"{p['eta_s']:>5} s" if p["eta_s"] is not None else "      -"
    line = (f"{p['import_id']}  {p['status']:<22}{p['rows']:>10}/{total:<10}{share}  {p['rows_per_second']:>8} rows/s"
            f"  ETA {eta}  {p['errors']:>7} errors  {p['stored']:>10} stored  {p['source']}")
    line += f"\n{'':<23}{p['dead_letters']} outbox entries set aside as dead letters" if p.get("dead_letters") else ""
    return line + (f"\n{'':<23}waiting {p['waiting']}" if p["waiting"] else "")


def render_top(imports: list[dict], queues: dict[str, int], pending: int, at: str,
               outbox: tuple[int, float, int] = (0, 0.0, 0), dead: int = 0) -> str:
    """One frame of ``backfill top``; ``outbox``: entries not stored, the oldest one's age (s), sinks;
    ``dead``: entries the database refused, held as dead letters."""
    entries, age, sinks = outbox
    sink = f"outbox {entries} entries to store" + (f" (oldest {age:.0f} s)" if entries else "") + \
        (f", {sinks} sink(s) running" if sinks else ", no sink running") + \
        (f", {dead} dead letter(s): backfill sink --retry-dead" if dead else "")
    lines = [f"backfill top - {at}",
             "queues  " + "  ".join(f"{name} {depth}" for name, depth in queues.items()) + f"  pending chunks {pending}"
             + f"  {sink}", ""]
    if not imports:
        lines.append("no import in flight")
    else:
        lines.append(f"{'import':<21}  {'status':<22}{'rows done/total':>21}         {'speed':>8}  "
                     f"{'ETA':>9}  {'errors':>14}  {'events stored':>17}  file")
        lines += [_line(p) for p in imports]
    return "\n".join(lines)


def render_one(p: dict) -> str:
    """One frame of ``backfill status ID --watch``."""
    return _line(p)


def run(frame: Callable[[], tuple[str, bool]], interval_s: float, *, once: bool = False) -> None:
    """Draw ``frame()`` every ``interval_s`` until it says it is the last one (or once)."""
    tty = sys.stdout.isatty()
    while True:
        text, last = frame()
        if tty:
            click.echo("\x1b[H\x1b[2J" + text, nl=True)
        else:
            click.echo(text)
        if once or last:
            return
        time.sleep(interval_s)
