"""The reliability bar's row for an undo racing an import of the same events.

X is imported and stored; Y (X's second half, then rows of its own) runs with its chunks slowed, and
``undo X`` is asked once N of Y's chunks are committed (paced by Y's progress, by a process of its own
that is ready before Y starts). In the end the results database holds every event of Y's file exactly
once, as Y's, none of X's, and Y's report equals the oracle's for its file alone (the events it counted
duplicates of X's are counted imported once X is undone).

``python -m tests.chaos.undo_race X N`` is that undo process: it says "ready", reads Y's id (once Y is
queued), waits until Y has committed N chunks, undoes X, and prints what the undo did and how far Y was
(JSON).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from worker import keys

from .harness import ROOT, Cluster, events_file, oracle
from .scenarios import _row
from .stored import Sinks


def undo_race(base: Path, rows: int = 2000, new_rows: int = 6000, after: int = 3) -> dict:
    """The row, on SQLite (the undo's database side is the same SQL on both backends)."""
    started = time.monotonic()
    base.mkdir(parents=True, exist_ok=True)
    with Cluster(base, settings={"CHAOS_SLOW_MS": "300"}).start(2) as cluster:
        sinks = Sinks(cluster, f"sqlite:///{base / 'results.db'}")
        sinks.start()
        try:
            x_path = events_file(base, rows, seed=31)
            lines = x_path.read_text().splitlines(keepends=True)
            y_path = base / "y.csv"
            y_path.write_text("".join([lines[0], *lines[1 + rows // 2:],
                                       *events_file(base, new_rows, seed=32).read_text().splitlines(True)[1:]]))
            expected = oracle(y_path, cluster.chunk_rows)
            x_id = cluster.enqueue(x_path)
            cluster.wait_report(x_id, timeout=240)
            sinks.wait_stored(x_id)

            undo = subprocess.Popen([sys.executable, "-m", "tests.chaos.undo_race", x_id, str(after)],
                                    env=sinks.env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            assert undo.stdout is not None and undo.stdin is not None
            assert undo.stdout.readline().strip() == "ready", undo.stderr.read() if undo.stderr else ""
            y_id = cluster.enqueue(y_path)
            out, err = undo.communicate(y_id + "\n", timeout=240)
            if undo.returncode != 0:
                raise RuntimeError(f"the undo failed: {err[-2000:]}")
            done = json.loads(out)
            report = cluster.wait_report(y_id, timeout=240)
            sinks.wait_stored(y_id)
            result = sinks.check(y_id, report, expected)
            x_left = _events_of(sinks, x_id)
            raced = done["y_chunks_done"] >= after and not done["y_finished"] and done["events_kept"] > 0
            result["stored_ok"] = result["stored_ok"] and x_left == 0
            broke = (f"undo X after {done['y_chunks_done']} of {done['y_chunks_total']} of Y's chunks, "
                     f"{done['events_kept']} of X's events kept as Y's")
            row = _row("undo racing an import of the same events", broke if raced else
                       f"COULD NOT MAKE ITS FAULT: {broke}{', Y had finished' if done['y_finished'] else ''}",
                       started, result, complete=raced)
            row["report"] += f"; X's events left {x_left}"
            return row
        finally:
            sinks.stop()


def _events_of(sinks: Sinks, import_id: str) -> int:
    from worker.settings import Settings
    from worker.sink.results import open_results

    results = open_results(Settings(database_url=sinks.database_url))
    try:
        return results.count_events(import_id)
    finally:
        results.close()


def main() -> None:
    """The undo process (see the module)."""
    from producers.api import default_context, undo_import

    undone, after = sys.argv[1:3]
    st = default_context().store
    print("ready", flush=True)
    running = sys.stdin.readline().strip()
    while int(st.r.hget(keys.import_hash(running), "chunks_done") or 0) < int(after):
        time.sleep(0.005)
    state = st.imports.state(running)
    done = undo_import(undone)
    print(json.dumps({**done, "y_chunks_done": int(state["chunks_done"]), "y_chunks_total": state.get("chunks_total"),
                      "y_finished": bool(state.get("report"))}))


ALL = [undo_race]

if __name__ == "__main__":
    main()
