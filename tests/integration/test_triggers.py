"""The trigger rules end to end: campaigns in Redis, scheduled set, deliveries stream."""
from __future__ import annotations

import time

import pytest

from worker.events.rules import Campaign

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
