"""A worker whose clock is off Redis's says so: a warning now and then, and a gauge.

backfill decides by Redis's clock (:mod:`worker.store.clock`), so a wrong host clock no
longer changes what is imported or triggered; but it still misleads whatever else on the
host reads it (log times, Celery's own timers), and it is a host to fix. Every worker process
measures its skew at each reading of Redis's clock (every chunk); after a task it reports
it to Redis at most once a minute (the gauge ``backfill_worker_clock_skew_seconds``), and
while it is over the clock-skew allowance it logs one warning at most every ten minutes.
"""
from __future__ import annotations

import dataclasses
import time

from worker.logs import get_logger
from worker.store import Store, clock

log = get_logger("backfill.worker")

#: How often a process writes its skew to Redis (the gauge), and how often it warns at most.
REPORT_EVERY_S = 60.0
WARN_EVERY_S = 600.0


@dataclasses.dataclass(slots=True)
class _Said:
    #: when this process last reported, and last warned (its monotonic clock)
    reported: float = float("-inf")
    warned: float = float("-inf")


_said = _Said()


def check(st: Store, worker: str, allowance_s: float) -> float | None:
    """Report this process's clock skew for ``worker`` (at most every :data:`REPORT_EVERY_S`) and warn
    when it is over ``allowance_s`` (at most every :data:`WARN_EVERY_S`); returns the skew (seconds this
    host is ahead of Redis), or None before any reading of Redis's clock."""
    skew = clock.skew_s(st.r)
    moment = time.monotonic()
    if skew is None or moment - _said.reported < REPORT_EVERY_S:
        return skew
    _said.reported = moment
    st.metrics.note_skew(worker, skew)
    if abs(skew) > allowance_s and moment - _said.warned >= WARN_EVERY_S:
        _said.warned = moment
        log.warning("this host's clock is off Redis's by more than the clock-skew allowance; backfill decides "
                    "by Redis's clock, but fix the host's time sync (NTP)", worker=worker,
                    clock_ahead_s=round(skew, 3), allowance_s=allowance_s)
    return skew
