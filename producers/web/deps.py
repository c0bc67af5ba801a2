"""What the routers share: the service's context (store and settings), its jobs (built once by
:func:`producers.web.app.create_app`, kept on ``app.state``), the API key checks, and an import's state.

Routes take them as FastAPI dependencies (``svc: ServiceDep``, ``dependencies=[READ]``), so that no
router holds a module global and a test can build several apps side by side.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producers.console.sessions import COOKIE, Attempts, SignIns, key_of
from producers.web.jobs import Producers
from producers.web.models import ApiError
from worker.context import Context
from worker.settings import Settings
from worker.store import Store
from worker.store.apikeys import ApiKey

#: The OpenAPI document's answer for an import id that is unknown (expired, or never made).
NO_IMPORT: dict[int | str, dict[str, Any]] = {404: {"description": "no such import"}}

if TYPE_CHECKING:
    from producers.web.tracking import Streams

_bearer = HTTPBearer(auto_error=False, description="An API key from `backfill keys create`.")


@dataclasses.dataclass
class Service:
    """One service's shared parts: its context (settings and store), the producer jobs, the tracking streams."""

    context: Context
    producers: Producers
    streams: Streams

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @property
    def store(self) -> Store:
        return self.context.store

    @functools.cached_property
    def sign_ins(self) -> SignIns:
        """The web console's sign-ins (:mod:`producers.console.sessions`)."""
        return SignIns(self.store.r, self.store.apikeys, self.settings.console_session_s)

    @functools.cached_property
    def sign_in_attempts(self) -> Attempts:
        """The console's refused sign-ins by client address (:class:`producers.console.sessions.Attempts`)."""
        return Attempts(self.store.r, self.settings.console_signin_failures, self.settings.console_signin_window_s)


def service(request: Request) -> Service:
    """The service of the app that took ``request``."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(service)]


def key_with(need: str):
    """A dependency: the request's API key (``Authorization: Bearer``, or the web console's sign-in cookie:
    :func:`producers.console.sessions.key_of`, whose changes need the CSRF header), if it allows ``need``;
    else 401 (none, unknown or revoked) or 403 (a key of another scope, a console change without its CSRF
    token)."""

    def check(request: Request, svc: ServiceDep,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiKey:
        unauthorized = {"WWW-Authenticate": "Bearer"}
        if credentials is None and COOKIE in request.cookies:
            key = key_of(request, svc.sign_ins)
        elif credentials is None:
            raise ApiError(401, "unauthorized", "no API key: send Authorization: Bearer <key>", unauthorized)
        else:
            found = svc.store.apikeys.check(credentials.credentials)
            if found is None:
                raise ApiError(401, "unauthorized", "unknown API key", unauthorized)
            if found.revoked_ms is not None:
                raise ApiError(401, "unauthorized", f"API key {found.id} was revoked", unauthorized)
            key = found
        if not key.allows(need):
            raise ApiError(403, "forbidden", f"API key {key.id} is {key.scope}-only: this needs an {need} key")
        return key

    return check


READ, WRITE = Depends(key_with("read")), Depends(key_with("import"))


def state_of(svc: Service, import_id: str) -> dict[str, str]:
    """An import's state; 404 when it is unknown or expired."""
    state = svc.store.imports.state(import_id)
    if not state:
        raise ApiError(404, "not_found", str(svc.store.guard.unknown(import_id, svc.settings.retention_s)))
    return state
