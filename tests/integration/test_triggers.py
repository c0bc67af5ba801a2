"""The trigger rules end to end: campaigns in Redis, scheduled set, deliveries stream."""
from __future__ import annotations

import dataclasses
import time

import pytest

from worker import keys
from worker.events.rules import Campaign
from worker.settings import get_settings

from .helpers import run_import, write

DAY, HOUR = 86_400, 3_600


@pytest.fixture
def people(store):
    for person in ("p1", "p2", "p3", "p4", "p5"):
        store.people.add("id", person)
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        store.people.add("email", email)


def test_vero_delay_rules(store, workers, people, tmp_path):
    store.triggers.add_campaign(Campaign("follow-up", "Completes checkout", 10 * DAY))
    now = time.time()
    path = write(tmp_path, "vero.csv", "email,event_name,time\n"
                 f"a@example.com,Completes checkout,{int(now - 9 * DAY)}\n"
                 f"b@example.com,Completes checkout,{int(now - 10 * DAY)}\n"
                 f"c@example.com,Completes checkout,{int(now + 2 * DAY)}\n")
    report = run_import(path, trigger=True, trigger_window="none")
    assert report["triggers"]["scheduled"] == 1 and report["triggers"]["discarded"] == 1
    assert report["triggers"]["future"] == 1 and report["warnings"] == 1
    [(message, due_ms)] = store.triggers.scheduled()
    assert message["person"] == {"email": "a@example.com"} and message["campaign"] == "follow-up"
    assert abs(due_ms / 1000 - (now + DAY)) < 5  # one day from now
    warnings = "".join(report["_handle"].problems_csv("warnings"))
    assert "future_time" in warnings and "c@example.com" in warnings
    assert not store.triggers.deliveries()


def test_customerio_window_rules(store, workers, people, tmp_path):
    store.triggers.add_campaign(Campaign("welcome", "signed_up", 0))
    now = time.time()
    path = write(tmp_path, "cio.csv", "_cio_name,_cio_customer_id,_cio_timestamp\n"
                 f"signed_up,p1,{int(now - 71 * HOUR)}\n"
                 f"signed_up,p2,{int(now - 73 * HOUR)}\n"
                 "signed_up,p3,\n"
                 f"other_event,p4,{int(now)}\n")
    report = run_import(path, trigger=True)  # default window: 72 h
    triggers = report["triggers"]
    assert triggers["sent_now"] == 2 and triggers["outside_window"] == 1 and triggers["no_campaign"] == 1
    assert report["imported"] == 4
    sent = {d["person"]["id"] for d in store.triggers.deliveries()}
    assert sent == {"p1", "p3"}


def test_passive_import_triggers_nothing(store, workers, people, tmp_path):
    store.triggers.add_campaign(Campaign("welcome", "signed_up", 0))
    path = write(tmp_path, "passive.csv", "_cio_name,_cio_customer_id\nsigned_up,p1\n")
    report = run_import(path)
    assert report["triggers"]["passive"] == 1 and not store.triggers.deliveries()


def test_due_triggers_move_to_deliveries(store, workers, people, tmp_path):
    store.triggers.add_campaign(Campaign("nudge", "browsed", 2))  # due 2 s after the event
    path = write(tmp_path, "soon.csv", f"_cio_name,_cio_customer_id,_cio_timestamp\nbrowsed,p5,{int(time.time())}\n")
    report = run_import(path, trigger=True)
    assert report["triggers"]["scheduled"] == 1
    deadline = time.monotonic() + 15
    while not store.triggers.deliveries() and time.monotonic() < deadline:
        time.sleep(0.2)  # beat runs move_due_triggers every 0.5 s in the test workers
    [delivery] = store.triggers.deliveries()
    assert delivery["campaign"] == "nudge" and delivery["person"] == {"id": "p5"}
    assert delivery["delivery_id"] == f"{report['import_id']}:{delivery['row']}:nudge"  # stable: consumers dedupe
    assert not store.triggers.scheduled()


def test_the_report_counts_decisions_per_campaign_once_dry_or_real(store, workers, people, tmp_path):
    from producers.cli.render import report_lines
    from worker.tasks import process_chunk

    store.triggers.add_campaign(Campaign("order follow-up", "Placed order", 2 * DAY))
    store.triggers.add_campaign(Campaign("late nudge", "Placed order", HOUR))  # passed for an order 3 h old
    welcome = 'welcome "new", café'  # a name its JSON escapes: counted, taken back and read back as written
    store.triggers.add_campaign(Campaign(welcome, "signed_up", 0))
    now = time.time()
    path = write(tmp_path, "orders.csv", "email,event_name,time\n"
                 f"a@example.com,Placed order,{int(now - 3 * HOUR)}\n"
                 f"b@example.com,Placed order,{int(now - 600)}\n"
                 f"c@example.com,signed_up,{int(now - 60)}\n"
                 f"a@example.com,signed_up,{int(now - 120)}\n"
                 f"b@example.com,browsed,{int(now)}\n"
                 f"c@example.com,Placed order,{int(now + 2 * DAY)}\n")
    small = dataclasses.replace(get_settings(), chunk_rows=2)  # three chunks, each counted on its own
    expected = {"late nudge": {"scheduled": 1, "discarded": 1, "future": 1},
                "order follow-up": {"scheduled": 2, "future": 1}, welcome: {"sent_now": 2}}
    for dry in (True, False):
        report = run_import(path, trigger=True, trigger_window="none", dry_run=dry, settings=small)
        assert report["triggers_by_campaign"] == expected
        triggers = report["triggers"]
        assert (triggers["sent_now"], triggers["scheduled"], triggers["discarded"], triggers["future"],
                triggers["no_campaign"]) == (2, 3, 1, 1, 1)
        for kind in ("sent_now", "scheduled", "discarded"):  # an action per campaign; future counts once an event
            assert sum(c.get(kind, 0) for c in report["triggers_by_campaign"].values()) == triggers[kind]
    lines = report_lines(report)
    at = lines.index("  triggers")
    assert "    late nudge: scheduled 1, discarded 1, future 1" in lines[at:]
    assert f"    {welcome}: sent now 2" in lines[at:]

    iid = report["import_id"]
    state = store.imports.state(iid)
    for chunk in range(report["chunks"]):  # every chunk delivered again: counted once
        process_chunk.apply_async((iid, chunk))
    deadline = time.monotonic() + 20
    while (store.r.llen(keys.QUEUE_IMPORTS) or store.r.hlen("unacked")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert {k: v for k, v in store.imports.state(iid).items() if k.startswith("tc:")} == \
        {k: v for k, v in state.items() if k.startswith("tc:")}
    again = run_import(path, trigger=True, trigger_window="none", settings=small)  # all duplicates: nothing decided
    assert again["duplicates"] == 6 and again["triggers_by_campaign"] == {}
