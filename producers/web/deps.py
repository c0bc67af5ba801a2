"""What the routers share: the service's context (store and settings), its jobs (built once by
:func:`producers.web.app.create_app`, kept on ``app.state``), the API key checks, and an import's state.

Routes take them as FastAPI dependencies (``svc: ServiceDep``, ``dependencies=[READ]``), so that no
router holds a module global and a test can build several apps side by side.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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


def service(request: Request) -> Service:
    """The service of the app that took ``request``."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(service)]


def key_with(need: str):
    """A dependency: the request's API key (``Authorization: Bearer``), if it allows ``need``; else 401
    (none, unknown or revoked) or 403 (a key of another scope)."""

    def check(svc: ServiceDep,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiKey:
        unauthorized = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise ApiError(401, "unauthorized", "no API key: send Authorization: Bearer <key>", unauthorized)
        key = svc.store.apikeys.check(credentials.credentials)
        if key is None:
            raise ApiError(401, "unauthorized", "unknown API key", unauthorized)
        if key.revoked_ms is not None:
            raise ApiError(401, "unauthorized", f"API key {key.id} was revoked", unauthorized)
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
