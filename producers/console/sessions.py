"""Signing in to the web console with an API key: a sign-in kept in Redis, a cookie that carries only its
token, and a CSRF token per sign-in.

The key is sent once (the sign-in form's POST) and never stored in the browser: the cookie holds a
random 256-bit token (HttpOnly, SameSite=Strict, Secure over TLS), Redis holds the token's SHA-256
with the key's id and the sign-in's CSRF token, for BACKFILL_CONSOLE_SESSION_S. Every request
re-reads the key's record, so a revoked key's sign-ins end at their next request. A request that
changes something (any method but GET and HEAD) must carry the CSRF token (a form field or the
``X-CSRF-Token`` header) and come from this site (its Origin, else its Referer, names this host).
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

import orjson
import redis
from fastapi import Request, Response

from producers.web.models import ApiError
from worker import keys
from worker.store.apikeys import ApiKey, ApiKeys

COOKIE = "backfill_console"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: The methods that change nothing: no CSRF token needed.
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclasses.dataclass(frozen=True, slots=True)
class SignIn:
    """A signed-in browser: its token, the key it signed in with, its CSRF token."""

    token: str
    key: ApiKey
    csrf: str


def _name(token: str) -> str:
    return keys.CONSOLE_SESSION_PREFIX + hashlib.sha256(token.encode()).hexdigest()


class SignIns:
    """The console's sign-ins in Redis (``keys.CONSOLE_SESSION_PREFIX``)."""

    def __init__(self, client: redis.Redis, apikeys: ApiKeys, lifetime_s: int) -> None:
        self.r, self.apikeys, self.lifetime_s = client, apikeys, lifetime_s

    def start(self, key: ApiKey) -> SignIn:
        """A new sign-in for ``key`` (checked by the caller)."""
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.r.set(_name(token), orjson.dumps({"key_id": key.id, "csrf": csrf}), ex=self.lifetime_s)
        return SignIn(token, key, csrf)

    def find(self, token: str) -> SignIn | None:
        """The sign-in of ``token``; None when it is unknown, expired, or its key is gone or revoked (the
        sign-in then ends here)."""
        raw = self.r.get(_name(token))
        if raw is None:
            return None
        data = orjson.loads(raw)
        key = self.apikeys.get(data["key_id"])
        if key is None or key.revoked_ms is not None:
            self.end(token)
            return None
        return SignIn(token, key, data["csrf"])

    def end(self, token: str) -> None:
        """Sign out: the token is forgotten."""
        self.r.delete(_name(token))


class Attempts:
    """The refused sign-ins of each client address in Redis (``keys.CONSOLE_SIGNIN_FAILURES_PREFIX``): at
    most ``most`` in ``window_s`` seconds from the first, so a key cannot be guessed at the form's pace."""

    def __init__(self, client: redis.Redis, most: int, window_s: int) -> None:
        self.r, self.most, self.window_s = client, most, window_s

    def wait_s(self, address: str) -> int:
        """0 when ``address`` may try to sign in; else the seconds until it may again."""
        name = keys.CONSOLE_SIGNIN_FAILURES_PREFIX + address
        count = self.r.get(name)
        if count is None or int(count) < self.most:
            return 0
        return max(int(self.r.ttl(name)), 1)

    def refused(self, address: str) -> None:
        """Count one refused sign-in of ``address`` (the window starts at its first)."""
        name = keys.CONSOLE_SIGNIN_FAILURES_PREFIX + address
        with self.r.pipeline() as pipe:
            pipe.set(name, 0, ex=self.window_s, nx=True)
            pipe.incr(name)
            pipe.execute()


def signed_in(request: Request, sign_ins: SignIns) -> SignIn | None:
    """The request's sign-in (its cookie), or None."""
    token = request.cookies.get(COOKIE)
    return sign_ins.find(token) if token else None


def set_cookie(response: Response, request: Request, sign_in: SignIn, lifetime_s: int) -> None:
    """The sign-in's cookie on ``response``: the token only; Secure when the request came over TLS."""
    response.set_cookie(COOKIE, sign_in.token, max_age=lifetime_s, path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def clear_cookie(response: Response, request: Request) -> None:
    """The cookie removed from the browser."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")


def same_origin(request: Request) -> bool:
    """True when the request names this site as where it comes from: its Origin header, else its Referer
    (a browser sends one of them on every POST); neither is refused."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc.lower() == (request.headers.get("host") or "").lower()


def check_write(request: Request, sign_in: SignIn, presented: str | None) -> None:
    """A change asked with a sign-in's cookie: 403 unless it carries the sign-in's CSRF token and comes from
    this site."""
    if not same_origin(request):
        raise ApiError(403, "csrf", "this request does not come from the console's own pages (Origin)")
    if not presented or not hmac.compare_digest(presented.encode(), sign_in.csrf.encode()):
        raise ApiError(403, "csrf", f"a change through the console needs its CSRF token ({CSRF_HEADER})")


def key_of(request: Request, sign_ins: SignIns) -> ApiKey:
    """The API key behind the request's console cookie, for the ``/v1`` API: 401 when the sign-in is gone
    (signed out, expired, key revoked), 403 when a change lacks its CSRF token or comes from elsewhere."""
    sign_in = signed_in(request, sign_ins)
    if sign_in is None:
        raise ApiError(401, "unauthorized", "the console's sign-in ended (signed out, expired, or its key was "
                       "revoked): sign in again")
    if request.method not in SAFE:
        check_write(request, sign_in, request.headers.get(CSRF_HEADER))
    return sign_in.key
