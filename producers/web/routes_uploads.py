"""Staged uploads (:mod:`producers.web.staged`): a file sent once, read under one set of options after
another (``inspect``: how the import would read it, and its first rows as the workers would judge
them), then imported from its ``upload_id`` (``POST /v1/imports``), a dry run first if need be."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from producers.api import check_file_options, check_options, inspect
from producers.preview import describe, sample
from producers.source import Source
from producers.split import header_of
from producers.text import check_text
from producers.web.checks import check_import, check_length, media, validated
from producers.web.deps import READ, WRITE, Service, ServiceDep
from producers.web.models import ApiError, Inspection, InspectRequest, Upload, as_fields
from producers.web.routes_imports import FORM_SLACK, JSON_LIMIT, RAW
from producers.web.staged import public
from producers.web.uploads import UploadError, read_body, read_form, read_small
from worker.cells import column_letter
from worker.errors import ConfigError, FileProblem

#: The query parameters an upload takes: its name (``source`` as ``POST /v1/imports`` calls it).
NAMES = frozenset({"name", "source"})
#: The media types of a raw body (a gzipped file is read as the CLI reads a .gz).
RAW_UPLOAD = (*RAW, "application/gzip")
_FILE = {"type": "string", "format": "binary"}
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": _FILE}}},
    **{kind: {"schema": _FILE} for kind in RAW_UPLOAD}}}}
_INSPECT_BODY = {"requestBody": {"required": False, "content": {
    "application/json": {"schema": InspectRequest.model_json_schema()}}}}
_NO_UPLOAD: dict[int | str, dict[str, Any]] = {404: {"description": "no such upload (unknown, deleted or expired)"}}

router = APIRouter(tags=["uploads"])


@router.post("/v1/uploads", status_code=201, response_model=Upload, dependencies=[WRITE], openapi_extra=_UPLOAD_BODY,
             responses={429: {"description": "the service keeps BACKFILL_API_STAGED_MAX uploads already"}})
async def create_upload(request: Request, svc: ServiceDep) -> JSONResponse:
    """Stage a file, to inspect and import it later without sending it again: a multipart form (the
    file in a field named ``file``, nothing else), or a raw body (``text/csv``, ``text/plain``,
    ``application/octet-stream``, ``application/gzip``; its name in ``?name=`` or ``?source=``; any other
    query parameter is refused, 422). Kept
    ``BACKFILL_API_STAGED_TTL_S`` (``expires_at``); 413 over ``BACKFILL_API_MAX_UPLOAD_BYTES``; 429
    ``too_many_uploads`` while the service keeps ``BACKFILL_API_STAGED_MAX`` of them."""
    content_type, kind = media(request)
    limit = svc.settings.api_max_upload_bytes
    check_length(request, limit + FORM_SLACK)
    if kind != "multipart/form-data" and kind not in RAW_UPLOAD:
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data (a file field) or the file as "
                       "text/csv, text/plain, application/octet-stream or application/gzip")
    extra = sorted(set(request.query_params) - NAMES)
    if extra:
        raise ApiError(422, "invalid_option", "an upload takes only its name (?name=, or ?source= as POST "
                       f"/v1/imports takes it); give the options to inspect and to the import (not {', '.join(extra)})")
    staged = svc.producers.staged
    upload_id, path = staged.reserve()
    try:
        if kind == "multipart/form-data":
            form = await read_form(request.stream(), content_type, path, limit)
            if form.fields:
                raise ApiError(422, "invalid_option", "an upload takes only its file; give the options to inspect "
                               f"and to the import (not {', '.join(sorted(form.fields))})")
            name, size = form.filename or "upload.csv", form.size
        else:
            name = _name(request.query_params.get("name") or request.query_params.get("source") or "upload.csv")
            size = await read_body(request.stream(), path, limit)
        meta = staged.keep(upload_id, _name(name), size)
    except UploadError as exc:
        staged.abandon(upload_id)
        raise ApiError(exc.status, exc.code, str(exc)) from None
    except BaseException:
        staged.abandon(upload_id)
        raise
    return JSONResponse(public(meta), 201, headers={"Location": f"/v1/uploads/{upload_id}"})


def _name(name: str) -> str:
    """The upload's name: its last part, as a form's file name is taken (it never names a path here: the
    files are named by their ids), with no control character (422)."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1] or "upload.csv"
    try:
        return check_text("file name", name)
    except ConfigError as exc:
        raise ApiError(422, "invalid_option", str(exc)) from None


@router.get("/v1/uploads/{upload_id}", response_model=Upload, dependencies=[READ], responses=_NO_UPLOAD)
def get_upload(upload_id: str, svc: ServiceDep) -> JSONResponse:
    """A staged upload: its name, size and when it expires."""
    return JSONResponse(public(svc.producers.staged.get(upload_id)))


@router.delete("/v1/uploads/{upload_id}", status_code=204, dependencies=[WRITE], responses=_NO_UPLOAD,
               response_class=Response)
def delete_upload(upload_id: str, svc: ServiceDep) -> Response:
    """Delete a staged upload (imports already started from it go on)."""
    svc.producers.staged.delete(upload_id)
    return Response(status_code=204)


@router.post("/v1/uploads/{upload_id}/inspect", dependencies=[WRITE], openapi_extra=_INSPECT_BODY,
             responses={200: {"model": Inspection}, **_NO_UPLOAD})
async def inspect_upload(upload_id: str, request: Request, svc: ServiceDep) -> JSONResponse:
    """How an import with these options (``POST /v1/imports``'s, as JSON) would read the upload, and
    ``sample`` (1 to 200, default 20) of its first rows as the workers would judge them. ``ok`` true:
    what ``backfill inspect --json`` prints, and ``sample``: ``{"row", "cells", "outcome", "problems"}``
    each, ``outcome`` ok, error or warning, each problem ``{"level", "code", "column" (a letter),
    "name" (the header), "message"}``. What only Redis can tell is left out of the sample: unknown
    people, duplicates, event ids used again, a people file's directory rules
    (:mod:`producers.preview`). ``ok`` false: the import would refuse the file (``refusal``: ``code``
    and ``message``, which says what to do; and ``columns``, the header's names with no role, when the
    file has a header to map). Options wrong in themselves: 422 ``invalid_option``."""
    if media(request)[1] not in ("application/json", ""):
        raise ApiError(415, "unsupported_media_type", "send the options as application/json")
    check_length(request, JSON_LIMIT)
    try:
        body = await read_small(request.stream(), JSON_LIMIT, "a JSON request")
        data = orjson.loads(body) if body.strip() else {}
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
    options = validated(InspectRequest, data)
    name = svc.producers.staged.get(upload_id)["name"]
    check_import(options, name)
    return JSONResponse(await run_in_threadpool(_inspect, svc, upload_id, options))


def _inspect(svc: Service, upload_id: str, options: InspectRequest) -> dict[str, Any]:
    """The inspection, off the event loop: the scan reads the whole file (as the import's does), so at most
    ``BACKFILL_API_PRODUCERS`` run at once."""
    with svc.producers.inspections, svc.producers.staged.reading(upload_id) as (path, meta):
        name = meta["name"]
        try:
            formats, _ = check_options(date_formats=options.date_formats, timezone=options.timezone, dst=options.dst)
            check_file_options(path, dry_run=options.dry_run, kind=options.type)
            source, plan = inspect(path, encoding=options.encoding, delimiter=options.delimiter,
                                   dialect=options.dialect, identifier=options.identifier, kind=options.type,
                                   mapping=options.mapping, skip=tuple(options.skip),
                                   data_to_process=options.data_to_process, settings=svc.settings)
        except FileProblem as problem:
            return _refused(problem.code, str(problem).replace(str(path), name), _header(path, svc))
        except ConfigError as exc:
            return _refused("invalid_option", as_fields(str(exc)).replace(str(path), name), _header(path, svc))
        try:
            rows = sample(source, plan, options.sample, kind=options.type, timezone=options.timezone,
                          date_formats=formats, dst=options.dst, empty_cells=options.empty_cells,
                          data_to_process=options.data_to_process, clock_skew_s=svc.settings.clock_skew_s)
        except FileProblem as problem:  # (the scan read the file whole: only a file changed under it)
            return _refused(problem.code, str(problem).replace(str(path), name))
        finally:
            source.close()
    return {"ok": True, **describe(name, plan), "sample": rows}


def _refused(code: str, message: str, header: list[str] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"ok": False, "refusal": {"code": code, "message": message}}
    if header:
        answer["columns"] = [{"column": column_letter(i), "name": name, "role": "", "first_values": []}
                             for i, name in enumerate(header)]
    return answer


def _header(path: Path, svc: Service) -> list[str]:
    """The header of a refused file, so that its columns can be mapped or skipped to settle the refusal
    (a file without a person column, two columns of one role...)."""
    with Source.open(path) as source:
        return header_of(source, svc.settings.max_columns)
