"""What an ``import`` key may do to imports: start one (an upload, a raw CSV body or a URL), retry its
corrected failed rows, cancel it, undo it."""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from producers.api import ImportHandle, retry_options, undo_import
from producers.text import check_text
from producers.web.checks import accepted, check_file, check_import, check_length, media, spooled, validated
from producers.web.deps import NO_IMPORT, WRITE, ServiceDep, state_of
from producers.web.fetch import check_url, redact
from producers.web.models import Accepted, ApiError, Cancelled, ImportOptions, JsonImport, form_options
from producers.web.uploads import read_body, read_form, read_small
from worker.errors import ConfigError, FileProblem, ImportNotFound

#: The largest JSON request (a data_file_url and its options).
JSON_LIMIT = 1024 * 1024
#: What a multipart form may add to its file: the boundaries, the part headers, the option fields.
FORM_SLACK = 1024 * 1024
#: The media types of a raw CSV body.
RAW = ("text/csv", "application/octet-stream", "text/plain")
_FILE = {"type": "string", "format": "binary"}
_CREATE_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": _FILE, **{name: {"type": "string"} for name in ImportOptions.model_fields}}}},
    "application/json": {"schema": JsonImport.model_json_schema()},
    "text/csv": {"schema": _FILE},
}}}
_RETRY_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": _FILE}}},
    "text/csv": {"schema": _FILE}}}}

router = APIRouter(tags=["imports"], dependencies=[WRITE])


@router.post("/v1/imports", status_code=202, response_model=Accepted, openapi_extra=_CREATE_BODY)
async def create_import(request: Request, svc: ServiceDep) -> JSONResponse:
    """Start an import: a multipart upload (the CSV in a field named ``file``, options in the other
    fields), a raw CSV body (``Content-Type: text/csv``, options in the query string), or JSON with the
    options and either a ``data_file_url`` (http or https) or the ``upload_id`` of a staged upload (``POST
    /v1/uploads``: it stays, for the next import of it; an unknown or expired one is 404 ``not_found``).
    Answers 202 once the file is on disk (or the URL taken); poll the import's URL."""
    settings, producers = svc.settings, svc.producers
    content_type, kind = media(request)
    check_length(request, JSON_LIMIT if kind == "application/json" else settings.api_max_upload_bytes + FORM_SLACK)
    svc.store.guard.check()  # (at most every BACKFILL_REDIS_CHECK_S) a Redis that evicts keys: 503
    import_id, path = producers.reserve()
    with spooled(path):
        if kind == "application/json":
            try:
                data = orjson.loads(await read_small(request.stream(), JSON_LIMIT, "a JSON request"))
            except orjson.JSONDecodeError as exc:
                raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
            job = validated(JsonImport, data)
            if (job.data_file_url is None) == (job.upload_id is None):
                raise ApiError(422, "invalid_option", "give exactly one of data_file_url (a file to download) and "
                               "upload_id (a file uploaded to POST /v1/uploads)")
            options = ImportOptions.model_validate(job.model_dump(exclude={"data_file_url", "upload_id"}))
            url = job.data_file_url
            if url is None:  # the staged file stays for the next use: the import reads a link of its own
                name = producers.staged.link(job.upload_id or "", path)["name"]
                check_import(options, name)
                check_file(options, path)
                producers.start_file(import_id, path, name, options.producer_args())
                return accepted(import_id)
            try:
                parts = check_url(url)
            except FileProblem as exc:  # the URL is refused now
                raise ApiError(422, exc.code, str(exc)) from None
            check_import(options, redact(url))
            check_file(options, parts.path, content=False)
            producers.start_url(import_id, path, url, options.producer_args())
        elif kind == "multipart/form-data":
            form = await read_form(request.stream(), content_type, path, settings.api_max_upload_bytes)
            options = validated(ImportOptions, form_options(form.fields))
            check_import(options, form.filename or "upload.csv")
            check_file(options, path)
            producers.start_file(import_id, path, form.filename or "upload.csv", options.producer_args())
        elif kind in RAW:
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


@router.post("/v1/imports/{import_id}/retry", status_code=202, response_model=Accepted, openapi_extra=_RETRY_BODY,
             responses={**NO_IMPORT, 409: {"description": "not finished yet"}})
async def retry_import(import_id: str, request: Request, svc: ServiceDep) -> JSONResponse:
    """Import the corrected failed rows of a finished import (its errors file, fixed) with the options it
    was given, as a new import linked to it: its report also gives the outcome of both (``combined``)."""
    try:
        options = retry_options(import_id, context=svc.context)
    except ImportNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except ConfigError as exc:
        raise ApiError(409, "not_retryable", str(exc)) from None
    content_type, kind = media(request)
    limit = svc.settings.api_max_upload_bytes
    check_length(request, limit + FORM_SLACK)
    new_id, path = svc.producers.reserve()
    with spooled(path):
        if kind == "multipart/form-data":
            form = await read_form(request.stream(), content_type, path, limit)
            if form.fields:
                raise ApiError(422, "invalid_option", "a retry takes the original import's options: send only "
                               f"the file (not {', '.join(sorted(form.fields))})")
            name = form.filename or "retry.csv"
        elif kind in RAW:
            await read_body(request.stream(), path, limit)
            name = "retry.csv"
        else:
            raise ApiError(415, "unsupported_media_type", "send the corrected errors file as multipart/form-data "
                           "(a file field) or text/csv")
        try:
            check_text("file name", name)
        except ConfigError as exc:
            raise ApiError(422, "invalid_option", str(exc)) from None
        svc.producers.start_file(new_id, path, name, options)
    return accepted(new_id)


@router.post("/v1/imports/{import_id}/cancel", response_model=Cancelled, responses=NO_IMPORT)
def cancel_import(import_id: str, svc: ServiceDep) -> Cancelled:
    """Cancel: no more chunks are queued, queued ones are skipped (their rows become ``cancelled``
    errors), chunks in flight finish; it ends ``cancelled`` with its report. ``cancelled`` is false
    when it had already ended."""
    state_of(svc, import_id)
    try:
        stopped = ImportHandle(import_id, svc.context).cancel()
    except ImportNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return Cancelled(import_id=import_id, cancelled=stopped, status=state_of(svc, import_id).get("status", "unknown"))


@router.post("/v1/imports/{import_id}/undo",
             responses={**NO_IMPORT, 409: {"description": "running, not undoable, or another undo running"}})
def undo_import_(import_id: str, svc: ServiceDep) -> JSONResponse:
    """Take back a finished events import: its events, its dedupe marks (the same file imports
    everything again), its triggers not yet sent, the people it created that nothing else names; the
    triggers sent are listed. Its events a later import also brought stay, as that import's
    (``events_kept``, ``kept_by``). Recorded and idempotent: asked again, it answers what it did
    (``already``)."""
    try:
        return JSONResponse(undo_import(import_id, context=svc.context))
    except ImportNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except ConfigError as exc:
        raise ApiError(409, "not_undoable", str(exc)) from None
