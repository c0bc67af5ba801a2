"""What a ``read`` key may ask: the imports (a page, one, its report, its errors and warnings files),
the campaigns, a person."""
from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse

from producers.api import ImportHandle
from producers.lookup import person_json
from producers.web.deps import NO_IMPORT, READ, Service, ServiceDep, state_of
from producers.web.models import ApiError, ImportPage, ImportSummary, summary

#: How many imports a page of ``GET /v1/imports`` holds at most.
PAGE_MAX = 100
_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {}}}}

router = APIRouter(dependencies=[READ])


@router.get("/v1/imports", response_model=ImportPage, tags=["imports"])
def list_imports(svc: ServiceDep, limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 20,
                 offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> ImportPage:
    """The most recent imports, newest first; ``next_offset`` pages on."""
    ids = svc.store.imports.recent(offset + limit + 1, svc.settings.retention_s)
    page = ids[offset:offset + limit]
    found = [summary(i, s) for i in page if (s := svc.store.imports.state(i))]
    return ImportPage(imports=found, next_offset=offset + limit if len(ids) > offset + limit else None)


@router.get("/v1/imports/{import_id}", response_model=ImportSummary, tags=["imports"], responses=NO_IMPORT)
def get_import(import_id: str, svc: ServiceDep) -> ImportSummary:
    """An import's status and progress."""
    return summary(import_id, state_of(svc, import_id))


@router.get("/v1/imports/{import_id}/report", tags=["imports"],
            responses={**NO_IMPORT, 409: {"description": "not finished yet"}})
def get_report(import_id: str, svc: ServiceDep) -> JSONResponse:
    """The import's final report (as ``backfill report --json``); 409 while it runs."""
    state = state_of(svc, import_id)
    report = ImportHandle(import_id, svc.context).report() if state.get("report") else None
    if report is None:
        raise ApiError(409, "not_finished", f"import {import_id} has not finished ({state.get('status')})")
    return JSONResponse(report)


def _problems(svc: Service, import_id: str, kind: str) -> StreamingResponse:
    state = state_of(svc, import_id)
    if not state.get("report"):  # (a partial file would read as "no errors" to a script that polls it)
        raise ApiError(409, "not_finished", f"import {import_id} has not finished ({state.get('status')}): its "
                       f"{kind} file is complete once it has")
    pieces = ImportHandle(import_id, svc.context).problems_csv(kind)
    return StreamingResponse(pieces, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{import_id}-{kind}.csv"'})


@router.get("/v1/imports/{import_id}/errors.csv", tags=["imports"], response_class=StreamingResponse, responses=_CSV)
def get_errors(import_id: str, svc: ServiceDep) -> StreamingResponse:
    """The rows that were not imported, with ``_row`` and ``_errors``: fix them, import the file again."""
    return _problems(svc, import_id, "errors")


@router.get("/v1/imports/{import_id}/warnings.csv", tags=["imports"], response_class=StreamingResponse,
            responses=_CSV)
def get_warnings(import_id: str, svc: ServiceDep) -> StreamingResponse:
    """The rows imported with a warning, with ``_row`` and ``_warnings``."""
    return _problems(svc, import_id, "warnings")


@router.get("/v1/campaigns", tags=["campaigns"])
def list_campaigns(svc: ServiceDep) -> JSONResponse:
    """The campaigns events trigger (as ``backfill campaigns list --json``)."""
    campaigns = sorted(svc.store.triggers.campaigns(), key=lambda c: c.name)
    return JSONResponse([dataclasses.asdict(c) for c in campaigns])


@router.get("/v1/people/{who:path}", tags=["people"], responses={404: {"description": "no such person"}})
def get_person(who: str, svc: ServiceDep, by: Literal["cio_id", "id", "email"] | None = None) -> JSONResponse:
    """A person by cio_id, id or e-mail (``by`` says which; default: tried in that order), as
    ``backfill people show --json`` prints them. An id may hold ``/`` (sent as is, or as ``%2F``)."""
    found = person_json(svc.context, who, by)
    if found is None:
        raise ApiError(404, "not_found", f"no person with {by or 'cio_id, id or e-mail'} {who!r}")
    return JSONResponse(found)
