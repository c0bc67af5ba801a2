"""Every answer other than 2xx in one shape: ``{"error": {"code": ..., "message": ...}}`` with a stable
code (and Segment's ``code`` and ``message`` at the top on the tracking endpoints)."""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from producers.web.models import ApiError, first_problem
from producers.web.tracking import speaks_segment
from worker.errors import RedisMisconfigured
from worker.logs import get_logger
from worker.store import TRANSIENT

log = get_logger("backfill.api")


def install(app: FastAPI) -> None:
    """Add the exception handlers that shape the errors to ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http)
    for transient in TRANSIENT:
        app.add_exception_handler(transient, _unavailable)
    app.add_exception_handler(RedisMisconfigured, _misconfigured)
    app.add_exception_handler(RequestValidationError, _invalid)


# Starlette types a handler as taking any Exception; each is installed for one class (install above).
#: The paths whose answers are the API's JSON whatever the client accepts.
API_PATHS = ("/v1/", "/api/", "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc")


def _console(request: Request) -> bool:
    """A browser's request for a console page (not the API's): its errors are pages."""
    path = request.url.path
    return not path.startswith(API_PATHS) and "text/html" in request.headers.get("accept", "")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error(request, exc.status, exc.code, str(exc), exc.headers)


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    # FastAPI's own answers (an unknown path, a method a path does not take) in the same shape
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error(request, exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("Redis did not answer", error=f"{type(exc).__name__}: {exc}")
    return error(request, 503, "unavailable", f"Redis did not answer: {exc}", {"Retry-After": "5"})


async def _misconfigured(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": {"code": "redis_misconfigured", "message": str(exc)}}, 503,
                        headers={"Retry-After": "60"})


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error(request, 422, "invalid_request", first_problem(exc.errors()), None,
                 details=orjson.loads(orjson.dumps(exc.errors(), default=str)))


def error(request: Request, status: int, code: str, message: str, headers: dict[str, str] | None,
          **extra: Any) -> Response:
    """An answer other than 2xx: ``{"error": {"code", "message"}}``; on the tracking endpoints also
    Segment's ``code`` and ``message`` at the top, which its libraries read; outside the API, to a
    browser, the web console's page saying the same (:func:`producers.console.pages.error_page`)."""
    if _console(request):
        from producers.console.pages import error_page

        return error_page(request, status, code, message, headers)
    body: dict[str, Any] = {"error": {"code": code, "message": message, **extra}}
    if speaks_segment(request.url.path):
        body = {"success": False, "code": code, "message": message, **body}
    return JSONResponse(body, status, headers=headers)
