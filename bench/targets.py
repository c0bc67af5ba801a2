"""The performance targets, each as a measured figure next to what it is measured against. Pure: no I/O.

Most targets are ratios against the script a user would write instead (bench/reference.py, run in the
same ``make bench``, so the host's speed of the day divides out); people and ``--trigger`` are ratios
against the events import of the same run; Redis's CPU a row and the peak memory are absolute limits.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One target: ``name``, the figure measured and the one it is divided by (None: an absolute limit),
    the bound, and whether the figure must stay at least (``at_least``) or below it."""

    name: str
    measured: float | None
    against: float | None
    bound: float
    at_least: bool = True
    unit: str = "x"

    @property
    def value(self) -> float | None:
        """The ratio (or, for an absolute limit, the figure); None when it was not measured."""
        if self.measured is None or (self.against is not None and not self.against):
            return None
        return self.measured / self.against if self.against is not None else self.measured

    @property
    def met(self) -> bool | None:
        value = self.value
        if value is None:
            return None
        return value >= self.bound if self.at_least else value < self.bound

    def as_dict(self) -> dict:
        """For bench/results/bench.json."""
        value = self.value
        return {"measured": self.measured, "against": self.against,
                "value": None if value is None else round(value, 3), "bound": self.bound,
                "at_least": self.at_least, "unit": self.unit, "met": self.met}


def _rate(run: dict | None) -> float | None:
    return run.get("rows_per_second") if run else None


def targets(r: dict) -> list[Target]:
    """The targets of a suite's results ``r`` (what was skipped is listed, unmeasured)."""
    reference = r["reference"]["rows_per_second"]
    events = _rate(r["import"][-1])
    big = r.get("big")
    peak = max([big["peak_rss_mb"], *big["worker_peak_rss_mb"]]) if big else None
    return [
        Target("events, 2 workers / the script", events, reference, 1.5),
        Target("events, 2 workers + SQLite sink / the script", _rate(r.get("with_sink")), reference, 1.2),
        Target("events, 2 workers + PostgreSQL sink / the script", _rate(r.get("with_postgres")), reference, 1.0),
        Target("people file / events, 2 workers", _rate(r.get("people")), events, 0.5),
        Target("--trigger, 2 campaigns / passive", _rate(r.get("trigger")), events, 0.8),
        Target("Redis CPU a row (cpu_split.py)", (r.get("cpu_split") or {}).get("redis_us_a_row"), None, 2.5,
               at_least=False, unit=" us"),
        Target(f"peak RSS, producer and workers, {big['rows']:,} rows" if big else "peak RSS at 5M rows (no big run)",
               peak, None, 130, at_least=False, unit=" MB"),
    ]


def lines(found: list[Target]) -> list[str]:
    """The targets as a table: figure, bound, ok or missed."""
    out = [f"{'target':<52}{'measured':>11}{'target':>10}  result"]
    for t in found:
        value, sign = t.value, ">=" if t.at_least else "<"
        shown = "-" if value is None else f"{value:.2f}{t.unit}"
        result = {True: "ok", False: "missed", None: "not measured"}[t.met]
        out.append(f"{t.name:<52}{shown:>11}{sign + ' ' + str(t.bound) + t.unit:>10}  {result}")
    return out
