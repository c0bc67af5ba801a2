"""``backfill serve``: the imports API over HTTP, for scripts in any language.

One ASGI app (FastAPI on uvicorn: the OpenAPI document at ``/openapi.json`` comes from the
routes themselves), its routes in one router a resource: the tracking calls
(:mod:`producers.web.tracking`, :mod:`producers.web.trackapi`), health (:mod:`~producers.web.routes_health`),
imports started, retried, cancelled, undone (:mod:`~producers.web.routes_imports`), files staged to
inspect and import later (:mod:`~producers.web.routes_uploads`) and what is read
(:mod:`~producers.web.routes_reads`); the web console at ``/`` (:mod:`producers.console`). They share
the store, settings and jobs built here once
(:mod:`producers.web.deps`). Every ``/v1`` endpoint needs an API key (``Authorization: Bearer``,
:mod:`worker.store.apikeys`): none, a wrong one or a revoked one is 401; a ``read`` key on a
write is 403. Errors are ``{"error": {"code": ..., "message": ...}}`` with a stable code
(:mod:`producers.web.errors`).

Redis is read with redis-py's blocking client, so the endpoints that read it are plain
functions (FastAPI runs them in its thread pool); the upload is async, streamed to disk
(:mod:`producers.web.uploads`), and the producer work runs in :mod:`producers.web.jobs`.
"""
from __future__ import annotations

import contextlib

from fastapi import FastAPI

from producers import console
from producers.web import errors, routes_health, routes_imports, routes_reads, routes_uploads, trackapi, tracking
from producers.web.deps import Service
from producers.web.fetch import parse_allow
from producers.web.jobs import Producers
from producers.web.limits import BodyDeadline
from producers.web.models import ERROR_RESPONSES
from worker.context import Context


def create_app(context: Context) -> FastAPI:
    """The HTTP service on ``context`` (its settings and store: built once by the entry point, ``backfill
    serve`` or a test, and shared by every request)."""
    settings, store = context.settings, context.store
    parse_allow(settings.api_fetch_allow)  # (a wrong allowlist stops the service at its start, not a fetch later)
    store.guard.start()  # a Redis that evicts keys: the service does not start (one line)
    svc = Service(context, Producers(context), tracking.Streams(context))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        svc.streams.close()
        svc.producers.close()

    app = FastAPI(title="backfill", version="1", lifespan=lifespan, responses=ERROR_RESPONSES,
                  description="Imports of CSV files of events and people: upload, poll, read the report and "
                              "the errors file, cancel; and Segment's tracking calls (/v1/batch...).")
    app.state.service = svc
    app.add_middleware(BodyDeadline, timeout_s=settings.api_body_timeout_s)
    for router in (tracking.router, trackapi.router, routes_health.router, routes_imports.router,
                   routes_uploads.router, routes_reads.router):
        app.include_router(router)
    console.install(app)
    errors.install(app)
    return app
