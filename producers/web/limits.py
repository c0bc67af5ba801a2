"""How long a request may take to arrive: the bound in front of the HTTP service.

uvicorn closes a keep-alive connection left idle (``timeout_keep_alive``, 5 s) and h11 refuses
headers over 16 KB, but nothing stops a sender that is merely slow: a request line sent a byte a
second held its connection as long as the sender liked. So:

- :class:`BoundedH11` (uvicorn's h11 protocol): a request's line and headers must all arrive within
  ``BACKFILL_API_HEADER_TIMEOUT_S`` of the connection opening or of the previous answer, or the
  connection is answered 408 and closed; a body still coming after the answer (a 413 given before
  it was read) is read and dropped for at most ``BACKFILL_API_BODY_TIMEOUT_S``, then the connection
  is closed;
- :class:`BodyDeadline` (ASGI): while an endpoint reads a body, the body may fall at most
  ``BACKFILL_API_BODY_TIMEOUT_S`` behind a pace of :data:`MIN_BODY_RATE` bytes a second (its
  ``n``-th byte due by then + ``n`` / rate), so it may pause that long at most and a slower one is
  cut off; a read never waits longer than that timeout either. Else the request is answered 408
  and the connection closed.
"""
from __future__ import annotations

import asyncio

import h11
import orjson
from uvicorn.protocols.http.h11_impl import H11Protocol

from producers.web.models import ApiError

#: The pace a body must keep (bytes a second), give or take the body timeout.
MIN_BODY_RATE = 1024


class SlowRequest(ApiError):
    """A request that did not arrive in time: 408, and the connection is closed."""

    def __init__(self, message: str) -> None:
        super().__init__(408, "request_timeout", message, {"Connection": "close"})


def _timed_out(message: str) -> bytes:
    body = orjson.dumps({"error": {"code": "request_timeout", "message": message}})
    return (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


class BoundedH11(H11Protocol):
    """uvicorn's h11 protocol with a header timeout and a bound on dropping a body no one reads
    (:func:`protocol` sets both)."""

    header_timeout_s = 10.0
    linger_s = 30.0

    def connection_made(self, transport) -> None:
        self._headers_timer: asyncio.TimerHandle | None = None
        self._linger_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._await_headers()  # (a timer already running keeps its deadline)
        else:  # the request line and headers are in
            self._headers_timer = _cancelled(self._headers_timer)
        if self.conn.their_state is not h11.SEND_BODY:
            self._linger_timer = _cancelled(self._linger_timer)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.conn.their_state is h11.IDLE:
            self._await_headers()
        elif self.conn.their_state is h11.SEND_BODY and self._linger_timer is None:
            # answered before the body was read (413...): uvicorn drops the rest as it comes, for so long
            self._linger_timer = self.loop.call_later(self.linger_s, self._close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_timer = _cancelled(self._headers_timer)
        self._linger_timer = _cancelled(self._linger_timer)
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        if self._headers_timer is None:
            self._headers_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        self._headers_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        # a request begun is answered; a connection idle between requests is only closed (an answer
        # then could cross a request the client is just sending, and be read as its answer)
        if self.conn.trailing_data[0] and (self.cycle is None or self.cycle.response_complete):
            self.transport.write(_timed_out(f"the request's headers did not arrive within {self.header_timeout_s:g} s "
                                            "(BACKFILL_API_HEADER_TIMEOUT_S)"))
        self._close()

    def _close(self) -> None:
        self._linger_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def _cancelled(timer: asyncio.TimerHandle | None) -> asyncio.TimerHandle | None:
    """Cancel ``timer`` (if any); None, to put in its place."""
    if timer is not None:
        timer.cancel()
    return None


def protocol(header_timeout_s: float, body_timeout_s: float) -> type[BoundedH11]:
    """The protocol class ``uvicorn.run(http=...)`` takes, with these limits."""
    return type("BoundedH11", (BoundedH11,), {"header_timeout_s": header_timeout_s, "linger_s": body_timeout_s})


class BodyDeadline:
    """ASGI middleware: a request's body must keep arriving while it is read (see the module's rules)."""

    def __init__(self, app, timeout_s: float) -> None:
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        started: float | None = None
        received, done = 0, False

        async def timed_receive():
            nonlocal started, received, done
            if done:  # the body is in: what follows is a wait for the client to go (StreamingResponse)
                return await receive()
            now = loop.time()
            started = now if started is None else started
            allowed = min(self.timeout_s, started + self.timeout_s + received / MIN_BODY_RATE - now)
            try:
                message = await asyncio.wait_for(receive(), max(allowed, 0.001))
            except TimeoutError:
                raise SlowRequest(f"the request's body stalled: {received:,} bytes in {now - started:.0f} s (a body may fall "
                                  f"at most BACKFILL_API_BODY_TIMEOUT_S, {self.timeout_s:g} s, behind a pace of "
                                  f"{MIN_BODY_RATE:,} bytes a second)") from None
            received += len(message.get("body", b""))
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
