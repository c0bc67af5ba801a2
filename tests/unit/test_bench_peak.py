"""The benchmark producer's peak memory is its own, not that of the process that started it.

bench/suite.py runs bench/produce.py as a child; getrusage's ru_maxrss there carries the parent's
high-water mark across fork and exec (Linux), and the 5M-row run reported the suite's 178.8 MB as
the producer's.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_producer_figure_is_not_its_parents_peak():
    ballast = bytearray(200 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # (every page touched: resident in this process)
    child = subprocess.run([sys.executable, "-c", "from bench.produce import peak_rss_mb; print(peak_rss_mb())"],
                           cwd=ROOT, capture_output=True, text=True, check=True)
    del ballast
    peak = float(child.stdout)
    assert 5 < peak < 100, peak  # a bare interpreter with bench.suite imported, not this process's 200+ MB
