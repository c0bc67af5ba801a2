"""Segment's tracking calls against a real `backfill serve`, from the real client libraries
(segment-analytics-python, customerio-cdp-analytics) and from raw HTTP, with real workers."""
from __future__ import annotations

import collections
import gzip
import ssl
import time
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from tests.segment_data import messages
from worker import keys

from .helpers import outbox_events, stream_reports
from .test_http import Service


@pytest.fixture(scope="module")
def service(redis_url, workers, tmp_path_factory):
    # short streams: their reports are written within the test
    running = Service(tmp_path_factory.mktemp("track-home"), BACKFILL_TRACK_FLUSH_MS="50", BACKFILL_TRACK_IMPORT_S="2")
    yield running
    running.stop()


def _events(store) -> dict[str, int]:
    return dict(collections.Counter(event["name"] for event in outbox_events(store)))


def _calls(client) -> None:
    client.identify("u1", {"email": "ann@example.com", "plan": "pro"},
                    integrations={"Vero": {"tags": {"action": "add", "values": ["vip", "beta"]}}})
    client.track("u1", "Bought", {"total": 5}, message_id="m-1")
    client.track("u1", "Bought", {"total": 5}, message_id="m-1")  # the client sent it again
    client.page("u1", "Docs", "Pricing", message_id="m-2")
    client.screen("u1", name="Home", message_id="m-3")
    client.group("u1", "acme", {"name": "Acme"})
    client.identify("u1", integrations={"Vero": {"tags": {"action": "remove", "values": ["beta"]}}})
    client.alias("u1", "c1")
    client.track("u1", "Unsubscribe", {"id": "c1"})
    client.flush()


@pytest.mark.parametrize("library", ["segment", "customerio"])
def test_a_segment_library_sends_every_call(library, service, store):
    if library == "segment":
        from segment.analytics.client import Client
    else:
        from customerio.analytics.client import Client
    record, key = store.apikeys.create(library, "track")
    failures: list = []
    client = Client(write_key=key, host=service.url, sync_mode=True, gzip=True, max_retries=1,
                    on_error=lambda error, batch: failures.append(error))
    _calls(client)
    assert failures == []
    reports = stream_reports(store, record.id)
    assert sum(r["rows"] for r in reports) == 9
    assert (sum(r["imported"] for r in reports), sum(r["duplicates"] for r in reports),
            sum(r["errors"] for r in reports)) == (8, 1, 0)
    person = store.people.find("u1", "id")
    assert store.people.find("c1", "id") == person and person["id"] == "c1"
    assert (person["email"], person["a:plan"], person["tags"], person["unsubscribed"]) == \
        ("ann@example.com", "pro", '["vip"]', "true")
    assert orjson.loads(person["a:group"]) == {"id": "acme", "name": "Acme"}
    assert _events(store) == {"Bought": 1, "Viewed Docs Pricing Page": 1, "Viewed Home Screen": 1}


def test_batches_give_the_store_a_file_import_gives(service, store):
    lines, ex = messages(1500, seed=5, people=60)
    sendable = []
    for line in lines:
        try:
            sendable.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    record, key = store.apikeys.create("replay", "track")
    with httpx.Client(base_url=service.url, auth=(key, ""), timeout=60) as client:
        for start in range(0, len(sendable), 200):
            body = gzip.compress(orjson.dumps({"batch": sendable[start:start + 200]}))
            answer = client.post("/v1/batch", content=body, headers={"Content-Encoding": "gzip",
                                                                      "Content-Type": "application/json"})
            assert answer.status_code == 200 and answer.json()["success"] is True, answer.text
    reports = stream_reports(store, record.id)
    assert sum(r["imported"] for r in reports) == ex.imported
    assert sum(r["duplicates"] for r in reports) == ex.duplicates
    assert sum(r["errors"] for r in reports) == ex.errors - (len(lines) - len(sendable))
    assert _events(store) == ex.events
    for uid, person in ex.current.items():
        found = store.people.find(uid, "id")
        if found is not None:
            assert found["id"] == person and found.get("a:plan") == ex.plan.get(person), uid
            assert set(orjson.loads(found.get("tags", "[]"))) == ex.tags.get(person, set()), uid


def _behind(seconds: float, before: float = 0.0) -> str:
    """The time ``before`` seconds ago by a clock ``seconds`` behind."""
    return datetime.fromtimestamp(time.time() - seconds - before, UTC).isoformat(timespec="milliseconds")


@pytest.mark.parametrize("sender", ["httpx", "segment library"])
def test_a_batchs_sent_at_corrects_a_device_clock_that_is_off(sender, service, store, monkeypatch):
    # a device whose clock is 10 minutes behind logged its calls 90 and 30 s before the batch left; the
    # batch carries sentAt (by the same clock) and the context once, which Segment's batch API merges into each
    behind = 600
    user = f"d-{sender[0]}"
    sent = time.time()  # no earlier than the device's calls, no later than the service received them
    calls = [{"type": "track", "userId": user, "event": "Opened App", "messageId": f"{user}-1",
              "originalTimestamp": _behind(behind, 90), "context": {"app": {"build": "17"}}},
             {"type": "page", "userId": user, "name": "Pricing", "messageId": f"{user}-2",
              "originalTimestamp": _behind(behind, 30), "context": {"page": {"path": "/pricing"}}}]
    context = {"library": {"name": "analytics.js"}, "traits": {"email": f"{user}@example.com"}}
    record, key = store.apikeys.create(sender, "track")
    if sender == "httpx":
        body = {"batch": calls, "sentAt": _behind(behind), "context": context}
        answer = httpx.post(f"{service.url}/v1/batch", content=gzip.compress(orjson.dumps(body)), auth=(key, ""),
                            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}, timeout=30)
        assert answer.status_code == 200, answer.text
    else:
        from segment.analytics import request

        class Behind(datetime):  # the library's clock, which stamps the batch's sentAt
            @classmethod
            def now(cls, tz=None):
                return datetime.now(tz) - timedelta(seconds=behind)

        monkeypatch.setattr(request, "datetime", Behind)
        answer = request.post(key, host=service.url, gzip=True, batch=calls, context=context)
        assert answer.status_code == 200
    answered = time.time()
    [report] = stream_reports(store, record.id)
    assert (report["imported"], report["errors"]) == (2, 0)
    # receivedAt - (sentAt - originalTimestamp): 90 and 30 s before the service received them, not 10 min earlier
    times = {e["name"]: e["timestamp"] for e in outbox_events(store, report["import_id"])}
    assert set(times) == {"Opened App", "Viewed Pricing Page"}
    for name, before in (("Opened App", 90), ("Viewed Pricing Page", 30)):
        assert sent - before - 1 <= times[name] <= answered - before + 1, (name, times[name] - sent)
    # the envelope's context lies under each message's own
    assert store.people.find(user, "id")["email"] == f"{user}@example.com"


def test_what_the_tracking_api_refuses(service, store):
    _, key = store.apikeys.create("w", "track")
    _, reader = store.apikeys.create("r", "read")
    with httpx.Client(base_url=service.url, timeout=30) as client:
        def post(path, body, auth=(key, ""), **headers):
            return client.post(path, content=body, auth=auth, headers=headers)

        one = orjson.dumps({"userId": "u", "event": "E"})
        assert post("/v1/track", one, auth=None).status_code == 401
        assert post("/v1/track", one, auth=("bfk_nope_nope", "")).status_code == 401
        assert post("/v1/track", one, auth=(reader, "")).status_code == 403
        refused = post("/v1/track", b"{not json")
        assert refused.status_code == 400 and refused.json()["code"] == "invalid_json"
        assert post("/v1/batch", b'{"batch": {}}').json()["code"] == "invalid_batch"
        big = orjson.dumps({"userId": "u", "event": "E", "properties": {"x": "a" * 40_000}})
        assert post("/v1/track", big).json()["code"] == "message_too_large"
        huge = orjson.dumps({"batch": [{"userId": "u", "event": "E", "properties": {"x": "a" * 20_000}}] * 30})
        assert post("/v1/batch", huge).json()["code"] == "batch_too_large"
        bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
        assert post("/v1/batch", bomb, **{"Content-Encoding": "gzip"}).json()["code"] == "batch_too_large"
        assert post("/v1/batch", b"plain", **{"Content-Encoding": "gzip"}).json()["code"] == "invalid_gzip"
        # the Bearer form of a key works too (scripts), and the single calls take their type from the path
        taken = client.post("/v1/identify", content=orjson.dumps({"userId": "u9", "traits": {"plan": "x"}}),
                            headers={"Authorization": f"Bearer {key}"})
        assert taken.status_code == 200 and taken.json() == {"success": True}
    deadline = time.monotonic() + 30
    while store.people.find("u9", "id") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.people.find("u9", "id")["a:plan"] == "x"


def test_a_batch_message_with_a_key_too_long_to_be_a_name_is_a_row_error(service, store):
    """Answered 200 like any message the library sent well formed: the stream's report has the row error."""
    record, key = store.apikeys.create("long-names", "track")
    long_key = "Which of our newsletters would you like to receive from now on, and how often? " * 2  # 158 bytes
    batch = {"batch": [
        {"type": "track", "userId": "u20", "event": "Answered", "messageId": "n-1", "properties": {long_key: "weekly"}},
        {"type": "identify", "userId": "u20", "traits": {"plan": "pro", long_key: "weekly"}},
        {"type": "track", "userId": "u20", "event": "Answered", "messageId": "n-2", "properties": {"topic": "news"}},
    ]}
    with httpx.Client(base_url=service.url, auth=(key, ""), timeout=30) as client:
        answer = client.post("/v1/batch", content=orjson.dumps(batch))
    assert answer.status_code == 200 and answer.json() == {"success": True}
    reports = stream_reports(store, record.id)
    assert (sum(r["imported"] for r in reports), sum(r["errors"] for r in reports)) == (1, 2)
    errors = [p for r in reports for p in store.imports.problems(r["import_id"], "errors")]
    assert sorted(p["problems"][0].split(":")[0] for p in errors) == ["name_too_long", "name_too_long"]
    assert all("'Which of our newsletters would you like '... is 158 bytes" in p["problems"][0] for p in errors)
    assert "a:plan" not in store.people.find("u20", "id")  # its identify was the error: nothing of it applied
    assert _events(store).get("Answered") == 1


@pytest.fixture(scope="module")
def tls_service(redis_url, workers, tmp_path_factory):
    """`backfill serve` over https with a certificate of a CA made for the test (Customer.io's library
    speaks https only); REQUESTS_CA_BUNDLE makes the library trust it."""
    import trustme

    home = tmp_path_factory.mktemp("track-tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(home / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(home / "cert.pem"))
    ca.cert_pem.write_to_path(str(home / "ca.pem"))
    running = Service(home, "--certfile", str(home / "cert.pem"), "--keyfile", str(home / "key.pem"),
                      verify=ssl.create_default_context(cafile=str(home / "ca.pem")),
                      BACKFILL_TRACK_FLUSH_MS="50", BACKFILL_TRACK_IMPORT_S="2")
    yield running, home / "ca.pem"
    running.stop()


def test_customerios_track_api_library_over_https(tls_service, store, monkeypatch):
    from customerio import CustomerIO, CustomerIOException

    service, ca = tls_service
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    record, key = store.apikeys.create("cio", "track")
    cio = CustomerIO(site_id=key, api_key="unused", host="localhost", port=service.port, retries=0)
    cio.identify("u5", email="eve@example.com", plan="team", created_at=1_700_000_000)
    cio.track("u5", "Purchased", {"total": 9}, id="e-1", timestamp=1_700_000_100)
    cio.track("u5", "Purchased", {"total": 9}, id="e-1", timestamp=1_700_000_100)  # sent again
    cio.pageview("u5", "/pricing")
    with pytest.raises(CustomerIOException, match="405"):
        cio.delete("u5")
    with pytest.raises(CustomerIOException, match="401"):
        CustomerIO(site_id="bfk_x_y", api_key="z", host="localhost", port=service.port, retries=0).identify("u6")
    reports = stream_reports(store, record.id)
    assert (sum(r["imported"] for r in reports), sum(r["duplicates"] for r in reports)) == (3, 1)
    person = store.people.find("u5", "id")
    assert (person["email"], person["a:plan"], person["created_at"]) == ("eve@example.com", "team", "1700000000")
    events = outbox_events(store)
    assert sorted((e["name"], e.get("id")) for e in events) == [("Purchased", "e-1"), ("Viewed /pricing Page", None)]
    assert [e["timestamp"] for e in events if e["name"] == "Purchased"] == [1_700_000_100]


def test_an_anonymous_track_api_event_is_attached_by_an_identify_and_triggers(tls_service, store, monkeypatch):
    from customerio import CustomerIO, CustomerIOException

    from worker.events.rules import Campaign

    service, ca = tls_service
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    store.triggers.add_campaign(Campaign("welcome", "Started Trial", 0))
    record, key = store.apikeys.create("cio-anon", "track")
    cio = CustomerIO(site_id=key, api_key="unused", host="localhost", port=service.port, retries=0)
    now = int(time.time())
    cio.track_anonymous("visitor-9", "Started Trial", {"plan": "pro"}, id="t-1", timestamp=now - 600)
    cio.track_anonymous("visitor-9", "Old Visit", id="t-2", timestamp=now - 5 * 86400)
    with pytest.raises(CustomerIOException, match="400"):  # neither a customer nor an anonymous id
        cio.track_anonymous(None, "Nobody")
    with pytest.raises(CustomerIOException, match="invalid_anonymous_id"):
        cio.track_anonymous({"not": "an id"}, "Nobody")
    # nothing is anyone's yet: the events wait, and trigger nothing
    deadline = time.monotonic() + 30
    while store.r.llen(keys.ANONYMOUS_PREFIX + "visitor-9") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert store.r.llen(keys.ANONYMOUS_PREFIX + "visitor-9") == 2 and not store.triggers.deliveries()
    cio.identify("u9", email="nia@example.com", anonymous_id="visitor-9")
    reports = stream_reports(store, record.id)
    assert sum(r["anonymous_stored"] for r in reports) == 2 and sum(r["anonymous_merged"] for r in reports) == 2
    person = store.people.find("u9", "id")
    assert person["email"] == "nia@example.com" and "a:anonymous_id" not in person
    events = sorted((e["name"], e["person"], e["timestamp"]) for e in outbox_events(store))
    assert events == [("Old Visit", {"id": "u9"}, now - 5 * 86400), ("Started Trial", {"id": "u9"}, now - 600)]
    # the rules applied when it was attached, with its own time: the trial started 10 minutes ago
    # triggers now; the visit 5 days ago is outside the 72-hour window (and no campaign is on it)
    [delivery] = store.triggers.deliveries()
    assert (delivery["campaign"], delivery["person"], delivery["event"]) == ("welcome", {"id": "u9"}, "Started Trial")


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a worker's pool children, its sink thread's process)."""
    from pathlib import Path

    children: dict[int, list[int]] = collections.defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def test_a_persons_changes_apply_in_order_across_streams_while_the_workers_are_behind(service, workers, store):
    """The service's streams end every 2 s. With the workers paused, plan=A is stored in one stream, that
    stream ends, and plan=B arrives: B must not be stored (nor answered) until A's stream is committed,
    across any number of streams that open and end empty while B waits; then B is the person's plan."""
    import os
    import signal
    import threading

    record, key = store.apikeys.create("order", "track")
    paused = [pid for process in workers for pid in _tree(process.pid)]
    answers: list[int] = []
    with httpx.Client(base_url=service.url, auth=(key, ""), timeout=90) as client:
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        try:
            assert client.post("/v1/identify", json={"userId": "u-order", "traits": {"plan": "A"}}).status_code == 200
            time.sleep(2.6)  # A's stream ends, its chunk not committed
            second = threading.Thread(target=lambda: answers.append(
                client.post("/v1/identify", json={"userId": "u-order", "traits": {"plan": "B"}}).status_code))
            second.start()
            time.sleep(6)  # streams opened for B end empty meanwhile
            assert second.is_alive() and not answers, "B was stored while A's stream was not committed"
        finally:
            for pid in paused:
                os.kill(pid, signal.SIGCONT)
        second.join(90)
    assert answers == [200]
    deadline = time.monotonic() + 60
    while (store.people.find("u-order", "id") or {}).get("a:plan") != "B" and time.monotonic() < deadline:
        time.sleep(0.1)
    stream_reports(store, record.id)  # every stream of the key ended and reported
    assert store.people.find("u-order", "id")["a:plan"] == "B"
