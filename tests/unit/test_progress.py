"""``backfill import --wait``'s progress lines when standard error is not a terminal (a log, a pipe)."""
from __future__ import annotations

from producers.cli.render import WORKER_HINT_S, progress_printer


def _run(states, *, tty=False, step=0.2):
    """Feed ``states`` (one a poll, ``step`` seconds apart) to a printer; return what it wrote."""
    clock = [0.0]
    lines: list[str] = []
    show = progress_printer("imp", tty=tty, clock=lambda: clock[0], out=lambda text, nl: lines.append(text))
    for state in states:
        show(state)
        clock[0] += step
    return lines


def test_a_minute_with_no_worker_prints_a_few_lines_and_says_once_how_to_start_one():
    queued = {"status": "queued", "rows_expected": "2", "chunks_queued": "1"}
    lines = _run([queued] * 300)  # 60 s polled 5 times a second
    waiting = [line for line in lines if line.startswith("queued 1 chunk of 2 rows")]
    hints = [line for line in lines if "backfill worker" in line]
    assert len(waiting) == 2  # at 0 s and 30 s: the same line is news only every 30 s
    assert len(hints) == 1 and f"{WORKER_HINT_S:.0f} s" in hints[0]
    assert lines.index(hints[0]) == 1  # said after 10 s, between the two


def test_a_change_is_printed_but_the_rate_alone_is_not_news():
    states = [{"status": "running", "rows_expected": "1000", "rows": str(10 * i), "created_ms": "1"}
              for i in range(1, 51)]  # rows move at every poll for 10 s
    lines = _run(states)
    assert 2 <= len(lines) <= 3  # a change at most every 5 s
    assert all(line.startswith(tuple(f"{r}/1000 rows" for r in range(10, 510, 10))) for line in lines)
    steady = [{"status": "running", "rows_expected": "1000", "rows": "500", "created_ms": str(i)} for i in range(300)]
    assert len(_run(steady)) == 2  # the rate changes, the rows do not: every 30 s


def test_no_hint_once_a_chunk_is_committed():
    states = [{"status": "queued", "rows_expected": "2", "chunks_queued": "1"}] * 10 + \
             [{"status": "running", "rows_expected": "2", "rows": "1", "chunks_queued": "1", "created_ms": "1"}] * 100
    assert not [line for line in _run(states) if "backfill worker" in line]


def test_on_a_terminal_the_line_is_redrawn_in_place():
    queued = {"status": "queued", "rows_expected": "2", "chunks_queued": "1"}
    lines = _run([queued] * 10, tty=True)
    assert lines and all(line.startswith("\r") for line in lines)
