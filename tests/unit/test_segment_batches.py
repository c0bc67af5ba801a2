"""Segment batch envelopes (``{"batch": [...], "sentAt": ..., "context": {...}}``) in archive files and
request bodies: what their messages take from them, and the times that follow. Pure: no Redis."""
from __future__ import annotations

import gzip
from datetime import UTC, datetime

import orjson
import pytest

from producers import segment
from producers.source import Source
from producers.web.tracking import messages_of
from worker.segment.envelope import with_envelope
from worker.segment.messages import read_message
from worker.segment.plan import plan

NOW = datetime(2024, 3, 10, tzinfo=UTC).timestamp()
# A phone whose clock is 7 minutes behind: it logged the calls at 09:51:30 and 09:52:00 by its clock
# and sent the batch at 09:53:00 by its clock, which Segment's servers received at 10:00:00.
SENT = "2024-03-01T09:53:00Z"
RECEIVED = "2024-03-01T10:00:00Z"
CALLS = [
    {"type": "track", "userId": "u1", "event": "Opened App", "messageId": "m1",
     "originalTimestamp": "2024-03-01T09:51:30Z", "receivedAt": RECEIVED, "context": {"library": {"name": "ios"}}},
    {"type": "screen", "userId": "u1", "name": "Home", "messageId": "m2",
     "originalTimestamp": "2024-03-01T09:52:00Z", "receivedAt": RECEIVED},
]
ENVELOPE = {"batch": CALLS, "sentAt": SENT,
            "context": {"traits": {"email": "ann@example.com"}, "library": {"name": "envelope"}}}
# receivedAt - (sentAt - originalTimestamp): 1.5 and 1 minute before it was received
CORRECTED = [datetime(2024, 3, 1, 9, 58, 30, tzinfo=UTC).timestamp(),
             datetime(2024, 3, 1, 9, 59, tzinfo=UTC).timestamp()]


def _copy(value):
    return orjson.loads(orjson.dumps(value))


def test_a_message_takes_the_batchs_sent_at_and_its_context_and_integrations_under_its_own():
    shared = {"sentAt": SENT, "context": {"ip": "1.2.3.4", "traits": {"email": "a@example.com", "plan": "x"}},
              "integrations": {"Vero": {"tags": {"action": "add", "values": ["vip"]}}, "All": True}}
    bare = with_envelope({"type": "track"}, shared)
    assert bare == {"type": "track", **shared}
    own = with_envelope({"type": "track", "sentAt": "2024-03-01T09:00:00Z", "context": {"traits": {"plan": "y"}},
                         "integrations": {"All": False}}, shared)
    # its own sentAt and keys win whole (one level: its context.traits is not mixed with the batch's)
    assert own["sentAt"] == "2024-03-01T09:00:00Z"
    assert own["context"] == {"ip": "1.2.3.4", "traits": {"plan": "y"}}
    assert own["integrations"] == {"Vero": {"tags": {"action": "add", "values": ["vip"]}}, "All": False}
    # null and "" are no sentAt; a context that is no object is the message's to answer for
    assert with_envelope({"sentAt": None, "context": "flat"}, {"sentAt": SENT, "context": {"ip": "x"}}) == \
        {"sentAt": SENT, "context": "flat"}
    assert with_envelope({"sentAt": ""}, {"context": {"ip": "x"}}) == {"sentAt": "", "context": {"ip": "x"}}
    assert with_envelope(7, shared) == 7


def _planned(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    source = Source.open(path)
    scanned = segment.scan(source)
    rows = [(row, record[0]) for chunk in segment.chunks(source, scanned, 100)
            for row, record in zip(chunk.row_numbers, chunk.rows)]
    return scanned, rows, plan([text for _, text in rows], [row for row, _ in rows], tz=UTC, now=NOW,
                               clock_skew_s=300)


@pytest.mark.parametrize("name, content", [
    ("batch.json", orjson.dumps(ENVELOPE, option=orjson.OPT_INDENT_2)),
    ("batches.ndjson.gz", gzip.compress(b"\n".join(orjson.dumps(e) for e in [
        ENVELOPE, {"batch": [], "sentAt": SENT}, _copy(CALLS[1]) | {"messageId": "m3"}]) + b"\n")),
    ("bodies.json", orjson.dumps([ENVELOPE])),
])
def test_an_archives_batches_correct_the_device_clock_with_their_sent_at(tmp_path, name, content):
    scanned, rows, out = _planned(tmp_path, name, content)
    assert out.errors == [] and [e.row for e in out.events][:2] == [1, 2]
    assert [e.ts for e in out.events][:2] == CORRECTED
    # the batch's context lies under each message's: its e-mail beside both events, the message's library kept
    assert [op.email for op in out.ops] == ["ann@example.com", "ann@example.com"]
    first = orjson.loads(rows[0][1])
    assert first["context"]["library"] == {"name": "ios"} and first["sentAt"] == SENT
    if name.endswith(".gz"):
        # a batch a line: rows count messages (the empty batch gives none); a line of one message is
        # read as it is, with no batch's sentAt: its device time stands
        assert scanned.sniffed.encoding_reason == "JSON (one batch a line)" and scanned.rows == 3
        device = datetime(2024, 3, 1, 9, 52, tzinfo=UTC).timestamp()
        assert (out.events[2].row, out.events[2].ts) == (3, device)


def test_a_batch_on_a_line_of_single_messages_is_a_row_error_not_a_silent_loss(tmp_path):
    lines = b"\n".join([orjson.dumps(CALLS[0]), orjson.dumps(ENVELOPE), orjson.dumps(CALLS[1])])
    scanned, _, out = _planned(tmp_path, "mixed.ndjson", lines)
    assert scanned.rows == 3 and [e.row for e in out.events] == [1, 3]
    [(row, _, problems)] = out.errors
    assert (row, [(p.column, p.code) for p in problems]) == (2, [("batch", "misplaced_batch")])
    assert "a batch of 2 messages" in problems[0].message


def test_a_batch_body_corrects_times_by_its_sent_at_and_the_servers_receive_time():
    received = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    bare = [{k: v for k, v in call.items() if k != "receivedAt"} for call in _copy(CALLS)]
    lines = messages_of(orjson.dumps({"batch": bare, "sentAt": SENT, "context": ENVELOPE["context"]}), None, None,
                        received)
    read = [read_message(text, n) for n, text in enumerate(lines, 1)]
    assert [(m.ts, m.ts_from) for m in read] == [(CORRECTED[0], "corrected"), (CORRECTED[1], "corrected")]
    assert [m.context_email for m in read] == ["ann@example.com", "ann@example.com"]
    assert orjson.loads(lines[0])["context"]["library"] == {"name": "ios"}
