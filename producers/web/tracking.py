"""Segment's tracking API on ``backfill serve``: what Segment's libraries send, into the same chunks.

``POST /v1/batch`` (and ``/v1/track``, ``/identify``, ``/page``, ``/screen``, ``/group``,
``/alias`` for one message) take Segment's JSON, gzipped or not, with the write key as the
HTTP Basic user name (a ``track`` or ``import`` key from ``backfill keys create``). Each write
key has a **stream**: an import of kind ``segment`` that this process fills chunk by chunk
(group commit: a request finding no write under way stores everything waiting, in chunks of at
most ``BACKFILL_TRACK_CHUNK_MESSAGES``, after gathering ``BACKFILL_TRACK_FLUSH_MS`` if set; what
arrives meanwhile waits for the next write; a chunk also ends after an alias, as in files) and ends
after ``BACKFILL_TRACK_IMPORT_S`` (its report is then written; the next message opens a new one).

A request is answered only once every message it brought is in a chunk stored in Redis and
queued: a crash of this process after the answer loses nothing (workers and the sweeper take
it from there, as for any import), and a crash before it is answered by the client's retry
(events dedupe by ``messageId``; person changes applied again give the same person). If this
process stops without ending a stream, the sweeper ends that import as ``interrupted`` once
its producer is silent, with everything that was stored imported.
"""
from __future__ import annotations

import threading
import time
import zlib
from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from starlette.concurrency import run_in_threadpool

from producers import segment
from producers.split import batched
from producers.web.deps import Service, ServiceDep
from producers.web.models import ApiError
from worker import tasks
from worker.context import Context
from worker.logs import get_logger
from worker.segment.envelope import with_envelope
from worker.segment.messages import MESSAGE_LIMIT
from worker.spec import ImportSpec, new_import_id
from worker.store.apikeys import ApiKey

log = get_logger("backfill.api")
#: Segment's limit on one request's JSON (a batch), bytes.
BATCH_LIMIT = 500 * 1024
#: The calls of the single-message endpoints (the path names the type).
CALLS = ("track", "identify", "page", "screen", "group", "alias")
#: How often an open stream says its producer is alive (the sweeper ends silent ones).
HEARTBEAT_S = 5.0


_basic = HTTPBasic(auto_error=False, description="The write key as the user name (Segment's libraries send it so).")
_bearer = HTTPBearer(auto_error=False)


class TrackingError(ApiError):
    """An answer of the tracking endpoints other than 2xx (shaped for Segment's libraries too)."""


def speaks_segment(path: str) -> bool:
    """True for the paths Segment's and Customer.io's libraries call: their errors carry ``code`` and
    ``message`` at the top, as Segment's do (every answer other than 2xx, 503s included)."""
    return path == "/v1/batch" or path.removeprefix("/v1/") in CALLS or path.startswith("/api/v1/")


async def bounded_body(request: Request) -> bytes:
    """The request's body as it arrives, refused (400) past :data:`BATCH_LIMIT` bytes."""
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > BATCH_LIMIT:
            raise TrackingError(400, "batch_too_large", f"the limit is {BATCH_LIMIT // 1024} KB a request")
    return bytes(body)


class Refused(Exception):
    """A request Segment's API answers with 400: its body is too large or not JSON."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def messages_of(body: bytes, encoding: str | None, call: str | None, received: datetime) -> list[str]:
    """The messages of one request as JSON lines for the worker (pure): ``call`` None for a batch.
    Each gets ``receivedAt`` (the time the server got it: Segment's clock-skew rule needs it) and what
    its batch shares (:func:`~worker.segment.envelope.with_envelope`). Raises :class:`Refused`."""
    if encoding and encoding.lower() == "gzip":
        try:
            inflater = zlib.decompressobj(wbits=31)
            body = inflater.decompress(body, BATCH_LIMIT + 1)
            if len(body) > BATCH_LIMIT or inflater.unconsumed_tail:
                raise Refused("batch_too_large", f"the request inflates past Segment's {BATCH_LIMIT // 1024} KB limit")
        except zlib.error as exc:
            raise Refused("invalid_gzip", f"the body is not gzip ({exc})") from None
    elif encoding and encoding.lower() not in ("identity", ""):
        raise Refused("invalid_encoding", f"Content-Encoding {encoding!r}: send gzip or nothing")
    if len(body) > BATCH_LIMIT:
        raise Refused("batch_too_large", f"{len(body):,} bytes; Segment's limit is {BATCH_LIMIT // 1024} KB a request")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused("invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Refused("invalid_json", "the body must be a JSON object")
    if call is None:
        found = data.get("batch")
        if not isinstance(found, list):
            raise Refused("invalid_batch", 'a batch is {"batch": [messages...]}')
    else:
        found = [dict(data, type=data.get("type") or call)]
    at = received.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lines = []
    for n, message in enumerate(found, 1):
        if not isinstance(message, dict):
            raise Refused("invalid_message", f"message {n} of the batch is not a JSON object")
        if call is None:
            with_envelope(message, data)
        message["receivedAt"] = at
        try:
            line = orjson.dumps(message)
        except orjson.JSONEncodeError:
            raise Refused("invalid_message", f"message {n} is nested too deeply") from None
        if len(line) > MESSAGE_LIMIT:
            raise Refused("message_too_large", f"message {n} holds {len(line):,} bytes; Segment's limit is "
                                                f"{MESSAGE_LIMIT // 1024} KB a message")
        lines.append(line.decode())
    return lines


class _Ticket:
    """One request's messages: stored once ``done``; ``error`` when they could not be."""

    __slots__ = ("lines", "done", "error")

    def __init__(self, lines: list[str]) -> None:
        self.lines, self.done = lines, False
        self.error: str | None = None


class _Stream:
    """One write key's open import in this process."""

    def __init__(self, import_id: str, after: str | None) -> None:
        self.import_id = import_id
        #: the key's previous stream: nothing joins this one until that one is all committed, so that a
        #: person's changes apply in the order they arrived across the two imports
        self.after = after
        self.opened = time.monotonic()
        self.beat = self.opened
        self.waiting: list[_Ticket] = []  # requests whose messages no write has taken yet
        self.oldest = 0.0
        self.stored = 0  # messages in stored chunks (row numbers are 1..stored)
        self.chunks = 0
        self.flushing = False  # a write of its messages is under way (outside the lock)
        self.failed: str | None = None  # why a write failed (the stream then ends)


class Streams:
    """The open streams of this process, their flusher thread, and the requests waiting on them."""

    def __init__(self, context: Context) -> None:
        self.settings, self.store = context.settings, context.store
        self.cond = threading.Condition()
        self.open: dict[str, _Stream] = {}
        self.previous: dict[str, str] = {}
        self.stopping = False
        self.stop_by = 0.0
        self.thread = threading.Thread(target=self._flusher, name="backfill-track-flusher", daemon=True)
        self.thread.start()

    def send(self, key_id: str, lines: list[str], timeout_s: float = 60.0) -> str:
        """Take a request's messages; return once they are stored (the stream's import id). Raises
        ConnectionError (the store failed) or TimeoutError, in both cases with none of them stored
        later: the request is answered 503 and the client sends it again.

        Group commit: a request whose messages wait, finding no write under way, writes everything
        waiting (after gathering for ``BACKFILL_TRACK_FLUSH_MS`` when set); what arrives meanwhile
        waits for the next write. One sender gets its answer at once; many share chunks."""
        deadline = time.monotonic() + timeout_s
        gather_s = self.settings.track_flush_ms / 1000
        with self.cond:
            stream = self._joinable(key_id, deadline)
            ticket = _Ticket(lines)
            if not stream.waiting:
                stream.oldest = time.monotonic()
            stream.waiting.append(ticket)
            while not ticket.done and ticket.error is None:
                now = time.monotonic()
                if now >= deadline and ticket in stream.waiting:  # not taken by a write: it never will be
                    stream.waiting.remove(ticket)
                    raise TimeoutError("the messages were not stored in time")
                waiting = sum(len(t.lines) for t in stream.waiting)
                due = now if waiting >= self.settings.track_chunk_messages else stream.oldest + gather_s
                if not stream.flushing and stream.waiting and now >= due:
                    self._flush(key_id, stream)
                else:
                    self.cond.wait(max(min(due - now if not stream.flushing else 0.05, deadline - now), 0.001))
            if ticket.error is not None:
                raise ConnectionError(f"the messages could not be stored: {ticket.error}")
            return stream.import_id

    def _joinable(self, key_id: str, deadline: float) -> _Stream:
        """The key's open stream, opened when there is none; once the previous stream is all committed
        (lock held; released while waiting)."""
        while True:
            stream = self.open.get(key_id)
            if stream is None or stream.failed:
                stream = self.open[key_id] = self._new(key_id)
            if stream.after is None:
                return stream
            if self.store.work.all_done(stream.after) or not self.store.imports.state(stream.after):
                stream.after = None  # (an expired predecessor is no wait)
                return stream
            if time.monotonic() >= deadline:
                raise TimeoutError("the previous stream of this key is still being committed")
            self.cond.wait(0.05)

    async def take(self, key: ApiKey, body: bytes, call: str | None, encoding: str | None) -> None:
        """A request's body into the key's stream (:func:`messages_of`, then :meth:`send` off the event
        loop); raises TrackingError: 400 for a body Segment refuses, 503 when it could not be stored."""
        try:
            lines = messages_of(body, encoding, call, datetime.now(UTC))
        except Refused as refused:
            raise TrackingError(400, refused.code, str(refused)) from None
        if lines:
            try:
                await run_in_threadpool(self.send, key.id, lines)
            except (ConnectionError, TimeoutError) as exc:
                raise TrackingError(503, "unavailable", str(exc), {"Retry-After": "5"}) from None

    def _new(self, key_id: str) -> _Stream:
        import_id = new_import_id()
        spec = ImportSpec(import_id=import_id, columns=segment.COLUMNS, identifier="id", kind="segment",
                          source=f"track:{key_id}", create_people=True, dedupe_window_s=self.settings.dedupe_window_s,
                          trigger=self.settings.track_trigger)
        self.store.imports.create(spec, {"source": f"track:{key_id}", "rows_expected": 0,
                                         "started_ms": int(time.time() * 1000)}, self.settings.retention_s)
        log.info("tracking stream opened", import_id=import_id, key=key_id)
        return _Stream(import_id, self.previous.get(key_id))

    def _flush(self, key_id: str, stream: _Stream) -> None:
        """Store the waiting requests' messages as chunks. Called with the lock held; releases it while it
        writes (one write a stream at a time: ``flushing``), so that requests gather meanwhile. A chunk
        counts as stored once it is in Redis: the sweeper queues its task if queueing it failed."""
        stream.flushing = True
        tickets, stream.waiting = stream.waiting, []
        ends, total = [], 0
        for ticket in tickets:
            total += len(ticket.lines)
            ends.append(total)
        lines = [line for ticket in tickets for line in ticket.lines]
        base, error = stream.stored, None
        self.cond.release()
        try:
            chunks = batched(((base + n, [line]) for n, line in enumerate(lines, 1)),
                             self.settings.track_chunk_messages, self.settings.chunk_bytes, ends_chunk=segment.is_alias)
            for chunk in chunks:
                if not self.store.work.put_chunk(stream.import_id, stream.chunks, chunk.rows, chunk.row_numbers,
                                                 self.settings.retention_s):
                    raise ConnectionError("its import was stopped (cancelled, or ended as interrupted)")
                number = stream.chunks
                stream.chunks += 1
                stream.stored += len(chunk.rows)
                self.store.imports.expect_rows(stream.import_id, len(chunk.rows))
                tasks.process_chunk.apply_async((stream.import_id, number))
        except Exception as exc:  # noqa: BLE001 - the requests not stored answer 503; the client sends again
            error = str(exc)
        finally:
            self.cond.acquire()
        stream.flushing = False
        for ticket, end in zip(tickets, ends):
            if base + end <= stream.stored:
                ticket.done = True
            else:
                ticket.error = error or "not stored"
        if error is not None:
            log.warning("tracking messages not stored", import_id=stream.import_id, error=error)
            stream.failed = error
            for ticket in stream.waiting:
                ticket.error = error
            stream.waiting = []
            self._end(key_id, stream)
        self.cond.notify_all()

    def _end(self, key_id: str, stream: _Stream) -> None:
        """End the stream's import: its total is known, its report follows (lock held)."""
        if self.open.get(key_id) is stream:
            del self.open[key_id]
        # A stream still waiting for its predecessor stored nothing: the next one must wait for that
        # predecessor too, not only for this empty stream (a backlog would otherwise let it overtake).
        self.previous[key_id] = stream.after if stream.after is not None and not stream.chunks else stream.import_id
        try:
            if self.store.work.set_total(stream.import_id, stream.chunks):
                tasks.finalize_import.apply_async((stream.import_id,))
            log.info("tracking stream ended", import_id=stream.import_id, messages=stream.stored)
        except Exception as exc:  # noqa: BLE001 - the sweeper ends it (its producer is silent)
            log.warning("tracking stream not ended; the sweeper will", import_id=stream.import_id, error=str(exc))

    def _flusher(self) -> None:
        """Ends streams that lived ``BACKFILL_TRACK_IMPORT_S``, beats the others (also while requests wait
        on them); on stopping, stores what waits and ends them all."""
        while True:
            with self.cond:
                self.cond.wait(0.1)
                now = time.monotonic()
                for key_id, stream in list(self.open.items()):
                    if stream.failed:
                        continue
                    if now - stream.beat >= HEARTBEAT_S:
                        self._beat(stream)
                    if stream.flushing or (stream.waiting and not self.stopping):
                        continue
                    if stream.waiting:
                        self._flush(key_id, stream)
                    elif self.stopping or now - stream.opened >= self.settings.track_import_s:
                        self._end(key_id, stream)
                if self.stopping and (not self.open or time.monotonic() > self.stop_by):
                    return

    def _beat(self, stream: _Stream) -> None:
        try:
            self.store.work.heartbeat(stream.import_id)
            stream.beat = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - tried again at the next tick
            log.warning("tracking stream heartbeat failed", import_id=stream.import_id, error=str(exc))

    def close(self) -> None:
        """Store what waits and end every stream (the service is stopping)."""
        with self.cond:
            self.stopping = True
            self.stop_by = time.monotonic() + 20
            self.cond.notify_all()
        self.thread.join(timeout=30)


def tracking_key(store, presented: list[str | None], how: str) -> ApiKey:
    """The first of ``presented`` that is a live backfill key, if it may track; else 401 (``how``: how to
    send one) or 403 (a key of another scope)."""
    for candidate in presented:
        key = store.apikeys.check(candidate) if candidate else None
        if key is not None and key.revoked_ms is None:
            if not key.allows("track"):
                raise TrackingError(403, "forbidden", f"API key {key.id} is {key.scope}-only: this needs a track key")
            return key
    reason = "unknown or revoked key" if any(presented) else "no key"
    raise TrackingError(401, "unauthorized", f"{reason}: {how}", {"WWW-Authenticate": 'Basic realm="backfill"'})


def write_key(svc: ServiceDep, user: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
              token: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiKey:
    """A dependency: the tracking key sent as the HTTP Basic user name (or as a bearer token)."""
    return tracking_key(svc.store, [user.username if user else None, token.credentials if token else None],
                        "send the write key as the HTTP Basic user name")


router = APIRouter(tags=["tracking"])
_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}}


async def _take(request: Request, svc: Service, key: ApiKey, call: str | None) -> dict:
    await svc.streams.take(key, await bounded_body(request), call, request.headers.get("content-encoding"))
    return {"success": True}


#: The write key a tracking call is made with (401/403 otherwise).
WriteKey = Annotated[ApiKey, Depends(write_key)]


@router.post("/v1/batch", openapi_extra=_BODY)
async def batch(request: Request, svc: ServiceDep, key: WriteKey) -> dict:
    """Segment's batch call: ``{"batch": [messages], "sentAt": ...}``, gzipped or not; answered once
    every message is stored."""
    return await _take(request, svc, key, None)


def _single(call: str):
    # the call is the path's, bound here: a parameter with a default would be a query parameter too
    async def one(request: Request, svc: ServiceDep, key: WriteKey) -> dict:
        return await _take(request, svc, key, call)

    one.__doc__ = f"Segment's {call} call: one message (its type is {call})."
    return one


for _call in CALLS:
    router.post(f"/v1/{_call}", openapi_extra=_BODY, name=_call)(_single(_call))
