"""``backfill serve``: the imports API over HTTP, for scripts in any language.

One ASGI app (FastAPI on uvicorn: the OpenAPI document at ``/openapi.json`` comes from the
routes themselves). Every ``/v1`` endpoint needs an API key (``Authorization: Bearer``,
:mod:`worker.store.apikeys`): none, a wrong one or a revoked one is 401; a ``read`` key on a
write is 403. Errors are ``{"error": {"code": ..., "message": ...}}`` with a stable code.

Redis is read with redis-py's blocking client, so the endpoints that read it are plain
functions (FastAPI runs them in its thread pool); the upload is async, streamed to disk
(:mod:`producers.web.uploads`), and the producer work runs in :mod:`producers.web.jobs`.
"""
from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from producers.api import ImportHandle
from producers.text import check_text
from producers.web import trackapi, tracking
from producers.web.fetch import check_url, parse_allow, redact
from producers.web.checks import accepted, check_file, check_import, check_length, media, spooled, validated
from producers.web.jobs import Producers
from producers.web.limits import BodyDeadline
from producers.web.models import (
    ERROR_RESPONSES,
    Accepted,
    ApiError,
    Cancelled,
    ImportOptions,
    ImportPage,
    ImportSummary,
    UrlImport,
    first_problem,
    form_options,
    summary,
)
from producers.web.uploads import read_body, read_form, read_small
from worker.errors import ConfigError, FileProblem, ImportNotFound, RedisMisconfigured
from worker.logs import get_logger
from worker.settings import Settings, get_settings
from worker.store import TRANSIENT
from worker.store.apikeys import ApiKey

log = get_logger("backfill.api")
#: How many imports a page of ``GET /v1/imports`` holds at most.
PAGE_MAX = 100
#: The largest JSON request (a data_file_url and its options).
JSON_LIMIT = 1024 * 1024
#: What a multipart form may add to its file: the boundaries, the part headers, the option fields.
FORM_SLACK = 1024 * 1024
_bearer = HTTPBearer(auto_error=False, description="An API key from `backfill keys create`.")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP service, on the store and settings of this process."""
    settings = settings or get_settings()
    parse_allow(settings.api_fetch_allow)  # (a wrong allowlist stops the service at its start, not a fetch later)
    from worker import tasks

    store = tasks.store()
    store.guard.start()  # a Redis that evicts keys: the service does not start (one line)
    producers = Producers(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        streams.close()
        producers.close()

    app = FastAPI(title="backfill", version="1", lifespan=lifespan, responses=ERROR_RESPONSES,
                  description="Imports of CSV files of events and people: upload, poll, read the report and "
                              "the errors file, cancel; and Segment's tracking calls (/v1/batch...).")
    app.add_middleware(BodyDeadline, timeout_s=settings.api_body_timeout_s)
    streams = tracking.routes(app, store, settings)
    trackapi.routes(app, store, streams)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(request, exc.status, exc.code, str(exc), exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own answers (an unknown path, a method a path does not take) in the same shape
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(request, exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("Redis did not answer", error=f"{type(exc).__name__}: {exc}")
        return _error(request, 503, "unavailable", f"Redis did not answer: {exc}", {"Retry-After": "5"})

    for transient in TRANSIENT:
        app.add_exception_handler(transient, _unavailable)

    @app.exception_handler(RedisMisconfigured)
    async def _misconfigured(_: Request, exc: RedisMisconfigured) -> JSONResponse:
        return JSONResponse({"error": {"code": "redis_misconfigured", "message": str(exc)}}, 503,
                            headers={"Retry-After": "60"})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(request, 422, "invalid_request", first_problem(exc.errors()), None,
                      details=orjson.loads(orjson.dumps(exc.errors(), default=str)))

    def key_with(need: str):
        def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiKey:
            unauthorized = {"WWW-Authenticate": "Bearer"}
            if credentials is None:
                raise ApiError(401, "unauthorized", "no API key: send Authorization: Bearer <key>", unauthorized)
            key = store.apikeys.check(credentials.credentials)
            if key is None:
                raise ApiError(401, "unauthorized", "unknown API key", unauthorized)
            if key.revoked_ms is not None:
                raise ApiError(401, "unauthorized", f"API key {key.id} was revoked", unauthorized)
            if not key.allows(need):
                raise ApiError(403, "forbidden", f"API key {key.id} is {key.scope}-only: this needs an {need} key")
            return key
        return check

    read, write = Depends(key_with("read")), Depends(key_with("import"))

    def state_of(import_id: str) -> dict[str, str]:
        state = store.imports.state(import_id)
        if not state:
            raise ApiError(404, "not_found", str(store.guard.unknown(import_id, settings.retention_s)))
        return state

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict:
        """The process is up."""
        return {"ok": True}

    @app.get("/readyz", tags=["service"], responses={503: {"description": "Redis does not answer"}})
    def readyz() -> Response:
        """Ready to take imports: Redis answers."""
        try:
            store.r.ping()
        except Exception as exc:  # noqa: BLE001 - any failure to reach Redis is "not ready"
            return JSONResponse({"error": {"code": "not_ready", "message": f"Redis does not answer: {exc}"}}, 503)
        return JSONResponse({"ok": True})

    @app.post("/v1/imports", status_code=202, response_model=Accepted, tags=["imports"], dependencies=[write],
              openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": {
                      "type": "object", "required": ["file"],
                      "properties": {"file": {"type": "string", "format": "binary"},
                                     **{name: {"type": "string"} for name in ImportOptions.model_fields}}}},
                  "application/json": {"schema": UrlImport.model_json_schema()},
                  "text/csv": {"schema": {"type": "string", "format": "binary"}},
              }}})
    async def create_import(request: Request) -> JSONResponse:
        """Start an import: a multipart upload (the CSV in a field named ``file``, options in the other
        fields), a raw CSV body (``Content-Type: text/csv``, options in the query string), or JSON with a
        ``data_file_url`` (http or https) and the options. Answers 202 once the file is on disk (or the URL
        taken); poll the import's URL."""
        content_type, kind = media(request)
        check_length(request, JSON_LIMIT if kind == "application/json" else settings.api_max_upload_bytes + FORM_SLACK)
        store.guard.check()  # (at most every BACKFILL_REDIS_CHECK_S) a Redis that evicts keys: 503
        import_id, path = producers.reserve()
        with spooled(path):
            if kind == "application/json":
                try:
                    data = orjson.loads(await read_small(request.stream(), JSON_LIMIT, "a JSON request"))
                except orjson.JSONDecodeError as exc:
                    raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
                job = validated(UrlImport, data)
                options = ImportOptions.model_validate(job.model_dump(exclude={"data_file_url"}))
                try:
                    parts = check_url(job.data_file_url)
                except FileProblem as exc:  # the URL is refused now
                    raise ApiError(422, exc.code, str(exc)) from None
                check_import(options, redact(job.data_file_url))
                check_file(options, parts.path, content=False)
                producers.start_url(import_id, path, job.data_file_url, options.producer_args())
            elif kind == "multipart/form-data":
                form = await read_form(request.stream(), content_type, path, settings.api_max_upload_bytes)
                options = validated(ImportOptions, form_options(form.fields))
                check_import(options, form.filename or "upload.csv")
                check_file(options, path)
                producers.start_file(import_id, path, form.filename or "upload.csv", options.producer_args())
            elif kind in ("text/csv", "application/octet-stream", "text/plain"):
                options = validated(ImportOptions, form_options(
                    {k: request.query_params.getlist(k) for k in request.query_params if k != "source"}))
                source = request.query_params.get("source") or "upload.csv"
                check_import(options, source)
                await read_body(request.stream(), path, settings.api_max_upload_bytes)
                check_file(options, path)
                producers.start_file(import_id, path, source, options.producer_args())
            else:
                raise ApiError(415, "unsupported_media_type", "send multipart/form-data (a file field), text/csv, "
                               "or application/json with a data_file_url")
        return accepted(import_id)

    @app.post("/v1/imports/{import_id}/retry", status_code=202, response_model=Accepted, tags=["imports"],
              dependencies=[write], responses={404: {"description": "no such import"},
                                               409: {"description": "not finished yet"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                                     "properties": {"file": {"type": "string", "format": "binary"}}}},
                  "text/csv": {"schema": {"type": "string", "format": "binary"}}}}})
    async def retry_import(import_id: str, request: Request) -> JSONResponse:
        """Import the corrected failed rows of a finished import (its errors file, fixed) with the options it
        was given, as a new import linked to it: its report also gives the outcome of both (``combined``)."""
        from producers.api import retry_options

        try:
            options = retry_options(import_id)
        except ImportNotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except ConfigError as exc:
            raise ApiError(409, "not_retryable", str(exc)) from None
        content_type, kind = media(request)
        check_length(request, settings.api_max_upload_bytes + FORM_SLACK)
        new_id, path = producers.reserve()
        with spooled(path):
            if kind == "multipart/form-data":
                form = await read_form(request.stream(), content_type, path, settings.api_max_upload_bytes)
                if form.fields:
                    raise ApiError(422, "invalid_option", "a retry takes the original import's options: send only "
                                   f"the file (not {', '.join(sorted(form.fields))})")
                name = form.filename or "retry.csv"
            elif kind in ("text/csv", "application/octet-stream", "text/plain"):
                await read_body(request.stream(), path, settings.api_max_upload_bytes)
                name = "retry.csv"
            else:
                raise ApiError(415, "unsupported_media_type", "send the corrected errors file as multipart/form-data "
                               "(a file field) or text/csv")
            try:
                check_text("file name", name)
            except ConfigError as exc:
                raise ApiError(422, "invalid_option", str(exc)) from None
            producers.start_file(new_id, path, name, options)
        return accepted(new_id)

    @app.get("/v1/imports", response_model=ImportPage, tags=["imports"], dependencies=[read])
    def list_imports(limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
                     offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> ImportPage:
        """The most recent imports, newest first; ``next_offset`` pages on."""
        ids = store.imports.recent(offset + limit + 1, settings.retention_s)
        page = ids[offset:offset + limit]
        found = [summary(i, s) for i in page if (s := store.imports.state(i))]
        return ImportPage(imports=found, next_offset=offset + limit if len(ids) > offset + limit else None)

    @app.get("/v1/imports/{import_id}", response_model=ImportSummary, tags=["imports"], dependencies=[read],
             responses={404: {"description": "no such import"}})
    def get_import(import_id: str) -> ImportSummary:
        """An import's status and progress."""
        return summary(import_id, state_of(import_id))

    @app.get("/v1/imports/{import_id}/report", tags=["imports"], dependencies=[read],
             responses={404: {"description": "no such import"}, 409: {"description": "not finished yet"}})
    def get_report(import_id: str) -> JSONResponse:
        """The import's final report (as ``backfill report --json``); 409 while it runs."""
        state = state_of(import_id)
        report = ImportHandle(import_id).report() if state.get("report") else None
        if report is None:
            raise ApiError(409, "not_finished", f"import {import_id} has not finished ({state.get('status')})")
        return JSONResponse(report)

    def problems(import_id: str, kind: str) -> StreamingResponse:
        state = state_of(import_id)
        if not state.get("report"):  # (a partial file would read as "no errors" to a script that polls it)
            raise ApiError(409, "not_finished", f"import {import_id} has not finished ({state.get('status')}): its "
                           f"{kind} file is complete once it has")
        pieces = ImportHandle(import_id).problems_csv(kind)
        return StreamingResponse(pieces, media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{import_id}-{kind}.csv"'})

    @app.get("/v1/imports/{import_id}/errors.csv", tags=["imports"], dependencies=[read],
             response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
    def get_errors(import_id: str) -> StreamingResponse:
        """The rows that were not imported, with ``_row`` and ``_errors``: fix them, import the file again."""
        return problems(import_id, "errors")

    @app.get("/v1/imports/{import_id}/warnings.csv", tags=["imports"], dependencies=[read],
             response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
    def get_warnings(import_id: str) -> StreamingResponse:
        """The rows imported with a warning, with ``_row`` and ``_warnings``."""
        return problems(import_id, "warnings")

    @app.post("/v1/imports/{import_id}/cancel", response_model=Cancelled, tags=["imports"], dependencies=[write],
              responses={404: {"description": "no such import"}})
    def cancel_import(import_id: str) -> Cancelled:
        """Cancel: no more chunks are queued, queued ones are skipped (their rows become ``cancelled``
        errors), chunks in flight finish; it ends ``cancelled`` with its report. ``cancelled`` is false
        when it had already ended."""
        state_of(import_id)
        try:
            stopped = ImportHandle(import_id).cancel()
        except ImportNotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        return Cancelled(import_id=import_id, cancelled=stopped, status=state_of(import_id).get("status", "unknown"))

    @app.post("/v1/imports/{import_id}/undo", tags=["imports"], dependencies=[write],
              responses={404: {"description": "no such import"},
                         409: {"description": "running, not undoable, or another undo running"}})
    def undo_import_(import_id: str) -> JSONResponse:
        """Take back a finished events import: its events, its dedupe marks (the same file imports
        everything again), its triggers not yet sent, the people it created that nothing else names; the
        triggers sent are listed. Its events a later import also brought stay, as that import's
        (``events_kept``, ``kept_by``). Recorded and idempotent: asked again, it answers what it did
        (``already``)."""
        from producers.undo import undo_import
        try:
            return JSONResponse(undo_import(import_id, settings))
        except ImportNotFound as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        except ConfigError as exc:
            raise ApiError(409, "not_undoable", str(exc)) from None

    @app.get("/v1/campaigns", tags=["campaigns"], dependencies=[read])
    def list_campaigns() -> JSONResponse:
        """The campaigns events trigger (as ``backfill campaigns list --json``)."""
        import dataclasses

        return JSONResponse([dataclasses.asdict(c) for c in sorted(store.triggers.campaigns(), key=lambda c: c.name)])

    @app.get("/v1/people/{who:path}", tags=["people"], dependencies=[read],
             responses={404: {"description": "no such person"}})
    def get_person(who: str, by: Literal["cio_id", "id", "email"] | None = None) -> JSONResponse:
        """A person by cio_id, id or e-mail (``by`` says which; default: tried in that order), as
        ``backfill people show --json`` prints them. An id may hold ``/`` (sent as is, or as ``%2F``)."""
        from producers.cli.directory import person_json

        found = person_json(who, by)
        if found is None:
            raise ApiError(404, "not_found", f"no person with {by or 'cio_id, id or e-mail'} {who!r}")
        return JSONResponse(found)

    return app


def _error(request: Request, status: int, code: str, message: str, headers: dict[str, str] | None,
           **extra: Any) -> JSONResponse:
    """An answer other than 2xx: ``{"error": {"code", "message"}}``; on the tracking endpoints also
    Segment's ``code`` and ``message`` at the top, which its libraries read."""
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    if tracking.speaks_segment(request.url.path):
        body = {"success": False, "code": code, "message": message, **body}
    return JSONResponse(body, status, headers=headers)
