"""Run the ``backfill`` command and record its own peak RSS: ``python -m tests.chaos.peak OUT ARGS...``.

The kernel's rusage of a child counts the parent's memory at fork (its high-water mark
survives exec), so the harness asks the process itself: VmHWM of its own address space,
written to OUT when it exits.
"""
from __future__ import annotations

import atexit
import re
import sys
from pathlib import Path


def _record(out: Path) -> None:
    status = Path("/proc/self/status").read_text()
    out.write_text(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def main() -> None:
    out = Path(sys.argv[1])
    atexit.register(_record, out)
    sys.argv = ["backfill", *sys.argv[2:]]
    from producers.cli import main as backfill

    backfill()


if __name__ == "__main__":
    main()
