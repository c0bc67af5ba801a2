"""What the imports endpoints check of a request before it is accepted: its media type and declared
length, its options (as the CLI checks them), and the upload file it spools (removed when the request
fails). Each problem is an :class:`~producers.web.models.ApiError` with its HTTP status."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from producers.api import check_file_options, check_options
from producers.web.models import ApiError, ImportOptions, as_fields, first_problem
from producers.web.uploads import UploadError
from worker.errors import ConfigError


def media(request: Request) -> tuple[str, str]:
    """The request's Content-Type, whole and as its bare media type."""
    content_type = request.headers.get("content-type", "")
    return content_type, content_type.split(";", 1)[0].strip().lower()


@contextlib.contextmanager
def spooled(path: Path) -> Iterator[None]:
    """An upload's file is removed when its request fails; an UploadError becomes its HTTP answer."""
    try:
        yield
    except UploadError as exc:
        path.unlink(missing_ok=True)
        raise ApiError(exc.status, exc.code, str(exc)) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def accepted(import_id: str) -> JSONResponse:
    url = f"/v1/imports/{import_id}"
    return JSONResponse({"import_id": import_id, "status": "accepted", "url": url}, 202, headers={"Location": url})


def validated(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_option", first_problem(exc.errors())) from None


def check_import(options: ImportOptions, source: str) -> None:
    """The options (and the name the import will be known by), checked as the CLI checks them; 422."""
    try:
        check_options(kind=options.type, data_to_process=options.data_to_process, empty_cells=options.empty_cells,
                      date_formats=options.date_formats, timezone=options.timezone, dst=options.dst,
                      trigger_window=options.trigger_window, delimiter=options.delimiter, encoding=options.encoding,
                      mapping=options.mapping, skip=options.skip, source=source, trigger=options.trigger,
                      create_people=options.create_people)
    except ConfigError as exc:
        raise ApiError(422, "invalid_option", as_fields(str(exc))) from None


def check_file(options: ImportOptions, path: str | Path, content: bool = True) -> None:
    """The options that depend on the file (a dry run or a --type of Segment messages), before the 202; 422."""
    try:
        check_file_options(path, dry_run=options.dry_run, kind=options.type, content=content)
    except ConfigError as exc:
        raise ApiError(422, "invalid_option", as_fields(str(exc))) from None


def check_length(request: Request, limit: int) -> None:
    """413 for a request whose Content-Length is over ``limit`` (before any file is made for it)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the request is {int(declared):,} bytes; the limit is {limit:,} "
                       "(BACKFILL_API_MAX_UPLOAD_BYTES, and 1 MB for JSON)")
