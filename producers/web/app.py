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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from producers.api import ImportHandle, check_options
from producers.web.jobs import Producers
from producers.web.uploads import UploadError, read_body, read_form
from worker.errors import ConfigError, ImportNotFound
from worker.settings import Settings, get_settings
from worker.store.apikeys import ApiKey

#: How many imports a page of ``GET /v1/imports`` holds at most.
PAGE_MAX = 100
_bearer = HTTPBearer(auto_error=False, description="An API key from `backfill keys create`.")


class ApiError(Exception):
    """An answer other than 2xx, with a stable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers


class ImportOptions(BaseModel):
    """The options of ``backfill import``, by the same names (``type`` is ``--type``)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["events", "people"] = "events"
    identifier: Literal["id", "email", "cio_id"] | None = None
    dialect: Literal["vero", "customerio"] | None = None
    data_to_process: Literal["all", "only_new", "only_existing"] = "all"
    empty_cells: Literal["ignore", "clear"] = "ignore"
    #: {column: name}: as --map COLUMN=NAME
    mapping: dict[str, str] = Field(default_factory=dict)
    skip: list[str] = Field(default_factory=list)
    trigger: bool = False
    trigger_window: str = "72h"
    timezone: str = "UTC"
    create_people: bool = False
    dry_run: bool = False
    encoding: str | None = None
    delimiter: str | None = None
    date_formats: list[str] = Field(default_factory=list)

    def producer_args(self) -> dict[str, Any]:
        """The keyword arguments of :func:`producers.api.enqueue_import`."""
        people = {"data_to_process": self.data_to_process, "empty_cells": self.empty_cells} \
            if self.type == "people" else {}
        return dict(kind=self.type, identifier=self.identifier, dialect=self.dialect, mapping=self.mapping,
                    skip=tuple(self.skip), trigger=self.trigger, trigger_window=self.trigger_window,
                    timezone=self.timezone, create_people=self.create_people, dry_run=self.dry_run,
                    encoding=self.encoding, delimiter=self.delimiter, date_formats=tuple(self.date_formats), **people)


class UrlImport(ImportOptions):
    """An import of a file the service downloads (http or https; see producers.web.fetch)."""

    data_file_url: str


class Accepted(BaseModel):
    import_id: str
    status: str
    url: str


class ImportSummary(BaseModel):
    import_id: str
    status: str
    source: str | None = None
    created_ms: int | None = None
    rows_expected: int = 0
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    errors: int = 0
    warnings: int = 0
    events_stored: int = 0
    waiting: str = ""
    failure_code: str | None = None
    failure: str | None = None


class ImportPage(BaseModel):
    imports: list[ImportSummary]
    next_offset: int | None = None


class Cancelled(BaseModel):
    import_id: str
    cancelled: bool
    status: str


_INTS = ("created_ms", "rows_expected", "rows", "imported", "duplicates", "errors", "warnings", "events_stored")


def summary(import_id: str, state: dict[str, str]) -> ImportSummary:
    """What ``GET /v1/imports/{id}`` says of an import, from its stored state. Pure."""
    return ImportSummary(import_id=import_id, status=state.get("status", "unknown"), source=state.get("source"),
                         waiting=state.get("waiting", ""), failure_code=state.get("failure_code"),
                         failure=state.get("failure"),
                         **{k: int(float(state[k])) for k in _INTS if state.get(k)})


def form_options(fields: dict[str, list[str]]) -> dict[str, Any]:
    """A multipart form's fields as import options: lists stay lists, ``mapping`` is a JSON object,
    ``map`` is repeated ``COLUMN=NAME`` (as the CLI's --map). Pure."""
    lists = {"skip", "date_formats"}
    options: dict[str, Any] = {}
    for name, values in fields.items():
        if name == "mapping":
            try:
                loaded = orjson.loads(values[-1])
            except orjson.JSONDecodeError:
                loaded = None
            if not isinstance(loaded, dict):
                raise ApiError(422, "invalid_option", "mapping must be a JSON object {column: name}")
            options.setdefault("mapping", {}).update(loaded)
        elif name == "map":
            pairs = [v.partition("=") for v in values]
            if any(not sep or not column for column, sep, _ in pairs):
                raise ApiError(422, "invalid_option", "map must be COLUMN=NAME")
            options.setdefault("mapping", {}).update({c.strip(): n.strip() for c, _, n in pairs})
        else:
            options[name] = values if name in lists else values[-1]
    return options


def create_app(settings: Settings | None = None) -> FastAPI:
    """The HTTP service, on the store and settings of this process."""
    settings = settings or get_settings()
    from worker import tasks

    store = tasks.store()
    producers = Producers(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        producers.close()

    app = FastAPI(title="backfill", version="1", lifespan=lifespan,
                  description="Imports of CSV files of events and people: upload, poll, read the report and "
                              "the errors file, cancel.")

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": {"code": exc.code, "message": str(exc)}}, exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": {"code": "invalid_request", "message": _first_problem(exc.errors()),
                                       "details": orjson.loads(orjson.dumps(exc.errors(), default=str))}}, 422)

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
            raise ApiError(404, "not_found", f"no import {import_id!r} (unknown, or expired after its retention)")
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
        content_type = request.headers.get("content-type", "")
        kind = content_type.split(";", 1)[0].strip().lower()
        import_id, path = producers.reserve()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > settings.api_max_upload_bytes + 1024 * 1024:
            raise ApiError(413, "too_large", f"the request is {int(declared):,} bytes; the limit is "
                           f"{settings.api_max_upload_bytes:,} (BACKFILL_API_MAX_UPLOAD_BYTES)")
        try:
            if kind == "application/json":
                body = await request.body()
                if len(body) > 1024 * 1024:
                    raise ApiError(413, "too_large", "a JSON request is at most 1 MB")
                try:
                    data = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
                job = _validated(UrlImport, data)
                options = ImportOptions.model_validate(job.model_dump(exclude={"data_file_url"}))
                _check(options)
                from producers.web.fetch import check_url

                try:
                    check_url(job.data_file_url)
                except Exception as exc:  # noqa: BLE001 - a FileProblem: the URL is refused now
                    raise ApiError(422, getattr(exc, "code", "url_invalid"), str(exc)) from None
                producers.start_url(import_id, path, job.data_file_url, options.producer_args())
            elif kind == "multipart/form-data":
                form = await read_form(request.stream(), content_type, path, settings.api_max_upload_bytes)
                options = _validated(ImportOptions, form_options(form.fields))
                _check(options)
                producers.start_file(import_id, path, form.filename or "upload.csv", options.producer_args())
            elif kind in ("text/csv", "application/octet-stream", "text/plain"):
                options = _validated(ImportOptions, form_options(
                    {k: request.query_params.getlist(k) for k in request.query_params if k != "source"}))
                _check(options)
                await read_body(request.stream(), path, settings.api_max_upload_bytes)
                producers.start_file(import_id, path, request.query_params.get("source", "upload.csv"),
                                     options.producer_args())
            else:
                raise ApiError(415, "unsupported_media_type", "send multipart/form-data (a file field), text/csv, "
                               "or application/json with a data_file_url")
        except UploadError as exc:
            path.unlink(missing_ok=True)
            raise ApiError(exc.status, exc.code, str(exc)) from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        url = f"/v1/imports/{import_id}"
        return JSONResponse({"import_id": import_id, "status": "accepted", "url": url}, 202, headers={"Location": url})

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
        state_of(import_id)
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

    @app.get("/v1/campaigns", tags=["campaigns"], dependencies=[read])
    def list_campaigns() -> JSONResponse:
        """The campaigns events trigger (as ``backfill campaigns list --json``)."""
        import dataclasses

        return JSONResponse([dataclasses.asdict(c) for c in sorted(store.triggers.campaigns(), key=lambda c: c.name)])

    @app.get("/v1/people/{who}", tags=["people"], dependencies=[read], responses={404: {"description": "no such person"}})
    def get_person(who: str, by: Literal["cio_id", "id", "email"] | None = None) -> JSONResponse:
        """A person by cio_id, id or e-mail (``by`` says which; default: tried in that order), as
        ``backfill people show --json`` prints them."""
        from producers.cli.directory import person_json

        found = person_json(who, by)
        if found is None:
            raise ApiError(404, "not_found", f"no person with {by or 'cio_id, id or e-mail'} {who!r}")
        return JSONResponse(found)

    return app


def _validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_option", _first_problem(exc.errors())) from None


def _check(options: ImportOptions) -> None:
    try:
        check_options(kind=options.type, data_to_process=options.data_to_process, empty_cells=options.empty_cells,
                      date_formats=options.date_formats, timezone=options.timezone,
                      trigger_window=options.trigger_window, delimiter=options.delimiter)
    except ConfigError as exc:
        raise ApiError(422, "invalid_option", str(exc)) from None


def _first_problem(errors) -> str:
    """One sentence for a list of pydantic errors: the first, with where it is."""
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
