"""What an import's page pictures, and where each figure's numbers come from.

- rows by outcome, triggers by outcome: the report (its counters are exact);
- errors by code: the import's stored error rows in Redis (the report counts errors, not their codes),
  the first :data:`PROBLEM_SCAN` of them (the figure says when it saw fewer than all);
- trigger decisions by campaign: the report when it counts them (reports written before it did: the database);
- events by name, events over time, trigger decisions by campaign: the results database, the import's
  own rows there counted by the database (GROUP BY: bounded answers whatever the import's size). The
  report keeps neither names nor times, and Redis keeps an import's events only until a sink stores
  them; before the sink has stored them (or with no sink running) these figures say so.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
from typing import Any

from markupsafe import Markup

from producers.cli.render import TRIGGER_LABELS
from producers.console import charts
from worker.context import Context
from worker.logs import get_logger

log = get_logger("backfill.console")

#: Error rows read to count errors by code.
PROBLEM_SCAN = 20_000
#: Event names pictured (the most frequent).
NAMES = 20


@dataclasses.dataclass(frozen=True)
class Figure:
    """One picture of the page: its heading, its SVG and a line on where its numbers come from."""

    title: str
    svg: Markup
    note: str = ""


def rows_by_outcome(report: dict[str, Any]) -> Figure:
    """The rows of a finished import: imported, duplicates, errors (and those never queued)."""
    items = [("imported", int(report.get("imported", 0)), None), ("duplicates", int(report.get("duplicates", 0)), None),
             ("errors", int(report.get("errors", 0)), None)]
    if report.get("rows_not_queued"):
        items.append(("not queued", int(report["rows_not_queued"]), None))
    items.append(("with warnings", int(report.get("warnings", 0)), None))
    return Figure("Rows by outcome", charts.bars("Rows by outcome", items), "from the report")


def errors_by_code(context: Context, import_id: str) -> Figure | None:
    """The error rows counted by problem code, each code a link to its rows."""
    codes: collections.Counter[str] = collections.Counter()
    seen = 0
    for problem in itertools.islice(context.store.imports.problems(import_id, "errors"), PROBLEM_SCAN):
        seen += 1
        codes.update(set(problem.get("codes") or ["unknown"]))
    if not codes:
        return None
    items = [(code, n, f"/imports/{import_id}/errors?code={code}") for code, n in codes.most_common()]
    note = f"rows with each problem code (a row may have several), of the first {seen:,} error rows kept"
    return Figure("Errors by code", charts.bars("Errors by code", items), note)


def triggers_by_outcome(report: dict[str, Any]) -> Figure | None:
    """The report's trigger decisions by kind (sent now, scheduled, discarded...)."""
    items = [(TRIGGER_LABELS.get(name, name), n, None) for name, n in (report.get("triggers") or {}).items() if n]
    if not items:
        return None
    return Figure("Trigger decisions", charts.bars("Trigger decisions", items), "from the report")


def triggers_by_campaign(report: dict[str, Any]) -> Figure | None:
    """The report's trigger decisions by campaign then kind (counted in the commits: dry runs and imports
    with no results database have them too)."""
    items = [(f"{campaign}: {TRIGGER_LABELS.get(kind, kind)}", n, None)
             for campaign, kinds in (report.get("triggers_by_campaign") or {}).items() for kind, n in kinds.items()]
    if not items:
        return None
    return Figure("Trigger decisions by campaign", charts.bars("Trigger decisions by campaign", items),
                  "from the report")


def stored(context: Context, import_id: str, decisions_known: bool = False) -> list[Figure]:
    """The figures the results database answers: events by name, over time, decisions by campaign (unless
    ``decisions_known``: the report holds them)."""
    from worker.sink.results import open_results

    try:
        results = open_results(context.settings)
    except Exception as exc:  # (a database that does not answer costs the figures, not the page)
        log.warning("results database unavailable", error=f"{type(exc).__name__}: {exc}")
        return [Figure("Events", Markup(""), f"the results database did not answer: {exc}")]
    try:
        names = results.event_names(import_id, NAMES)
        times = results.event_times(import_id)
        decisions = [] if decisions_known else results.decisions(import_id)
    except Exception as exc:
        log.warning("results database query failed", error=f"{type(exc).__name__}: {exc}")
        return [Figure("Events", Markup(""), f"the results database did not answer: {exc}")]
    finally:
        results.close()
    if not names:
        return [Figure("Events", Markup(""), "none of its events is in the results database (yet): a sink stores "
                       "them (backfill worker runs one)")]
    found = [Figure("Events by name", charts.bars("Events by name", [(n, c, None) for n, c in names]),
                    f"the {NAMES} most frequent names, counted in the results database")]
    if times:
        low, high, counts = times
        found.append(Figure("Events over time", charts.histogram("Events over time", low, high, counts),
                            "the times of its events in the results database, in 40 equal spans"))
    if decisions:
        items = [(f"{campaign}: {TRIGGER_LABELS.get(state, state)}", n, None) for campaign, state, n in decisions]
        found.append(Figure("Trigger decisions by campaign", charts.bars("Trigger decisions by campaign", items),
                            "from the results database"))
    return found


def figures(context: Context, import_id: str, report: dict[str, Any]) -> list[Figure]:
    """Every figure of a finished import's page."""
    found = [rows_by_outcome(report)]
    found += [f for f in (errors_by_code(context, import_id), triggers_by_outcome(report),
                          triggers_by_campaign(report)) if f]
    if report.get("kind", "events") != "people" and not report.get("dry_run"):
        # (a report written before it counted decisions by campaign leaves them to the database)
        found += stored(context, import_id, decisions_known="triggers_by_campaign" in report)
    return found
