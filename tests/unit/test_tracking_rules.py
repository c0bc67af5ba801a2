"""What the tracking endpoints make of a request's body, before any store: pure."""
from __future__ import annotations

import gzip
from datetime import UTC, datetime

import orjson
import pytest

from producers.web.trackapi import as_segment
from producers.web.tracking import BATCH_LIMIT, Refused, messages_of

AT = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def test_a_batch_gets_the_servers_time_and_shares_its_sent_at_and_context():
    body = orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "E"},
                                   {"type": "identify", "userId": "u", "sentAt": "own", "context": {"a": 1}}],
                         "sentAt": "2024-03-01T09:59:59Z", "context": {"library": "x"}})
    first, second = (orjson.loads(line) for line in messages_of(gzip.compress(body), "gzip", None, AT))
    assert first["receivedAt"] == "2024-03-01T10:00:00.000Z" and first["sentAt"] == "2024-03-01T09:59:59Z"
    # the batch's context lies under a message's own (Segment merges them)
    assert first["context"] == {"library": "x"} and (second["sentAt"], second["context"]) == \
        ("own", {"library": "x", "a": 1})
    [one] = messages_of(orjson.dumps({"userId": "u", "event": "E"}), None, "track", AT)
    assert orjson.loads(one)["type"] == "track"


@pytest.mark.parametrize("body, encoding, call, code", [
    (b"{", None, None, "invalid_json"),
    (b"[]", None, None, "invalid_json"),
    (b'{"batch": 3}', None, None, "invalid_batch"),
    (b'{"batch": [1]}', None, None, "invalid_message"),
    (b"plain", "gzip", None, "invalid_gzip"),
    (b"{}", "br", None, "invalid_encoding"),
    (gzip.compress(b'{"batch": [' + b" " * (BATCH_LIMIT + 10) + b"]}"), "gzip", None, "batch_too_large"),
    (orjson.dumps({"userId": "u", "properties": {"x": "a" * 40_000}}), None, "track", "message_too_large"),
    (b'{"userId": "u", "context": ' + b"[" * 300 + b"]" * 300 + b"}", None, "track", "invalid_message"),
])
def test_bodies_segment_refuses_are_refused_with_its_codes(body, encoding, call, code):
    with pytest.raises(Refused) as refused:
        messages_of(body, encoding, call, AT)
    assert refused.value.code == code


def test_track_api_calls_are_the_segment_messages_they_stand_for():
    assert as_segment("identify", "u1", {"email": "a@example.com", "id": "u1", "plan": "pro"}) == \
        {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com", "plan": "pro"}}
    event = as_segment("event", "u1", {"name": "Bought", "data": {"n": 1}, "timestamp": 1_700_000_000, "id": 7})
    assert event == {"type": "track", "userId": "u1", "event": "Bought", "properties": {"n": 1},
                     "messageId": "7", "timestamp": "2023-11-14T22:13:20.000Z"}
    assert as_segment("event", "u1", {"type": "page", "name": "/pricing"})["type"] == "page"
    # milliseconds or nonsense are passed on as text: the worker's row error says what is wrong
    assert as_segment("event", "u1", {"name": "E", "timestamp": 1_700_000_000_000})["timestamp"] == "1700000000000"
    assert as_segment("event", "u1", {"name": "E", "timestamp": 1e20})["timestamp"] == "1e+20"
