"""``make chaos``: the full reliability bar, printed as a table (and written to tests/chaos/results.json)."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from . import clock, host_crash, hostile, redis_config, refused, scenarios, split_store, stored, tracking, undo_race

COLUMNS = ("scenario", "broke", "rows", "lost", "doubled", "report", "seconds", "ok")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="backfill-chaos-") as tmp:
        for index, scenario in enumerate(scenarios.ALL + stored.ALL + refused.ALL + split_store.ALL + tracking.ALL
                                         + undo_race.ALL + clock.ALL + redis_config.ALL + host_crash.ALL
                                         + [hostile.all_files]):
            if args.only and args.only not in scenario.__name__:
                continue
            print(f"{scenario.__name__} ...", flush=True)
            try:
                result = scenario(Path(tmp) / f"s{index}")
            except Exception as exc:  # noqa: BLE001 - a scenario that breaks is a failed row, not a lost table
                result = {"scenario": scenario.__name__, "broke": "", "report": f"ERROR {type(exc).__name__}: {exc}"[:200],
                          "ok": False}
            rows.extend(result if isinstance(result, list) else [result])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in COLUMNS))
    Path(__file__).with_name("results.json").write_text(json.dumps(rows, indent=1))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
