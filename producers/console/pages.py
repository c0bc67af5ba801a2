"""The console's pages: sign in and out, the imports, an import's report and pictures, its error rows by
code, the new import wizard. Server-rendered (Jinja2 templates in this package); what changes while
the page is open (progress, the list) and every action (import, cancel, retry, undo) goes through the
``/v1`` API from the page's own script, with the sign-in's cookie and CSRF header (the API's rules
and functions, not a copy of them).
"""
from __future__ import annotations

import hmac
import itertools
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from producers.api import report_of
from producers.cli.render import report_lines
from producers.console import sessions
from producers.console.figures import figures
from producers.web.deps import ServiceDep
from producers.web.models import summary
from producers.web.uploads import UploadError, read_small

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
#: Error rows a page of one code shows.
CODE_ROWS = 200
#: The sign-in form's largest body.
FORM_LIMIT = 16 * 1024
#: The final statuses (as the API says them).
FINAL = ("completed", "completed_with_errors", "failed", "cancelled", "interrupted", "partially_failed")

#: Every page's headers: its script and style from this site only (no inline script: an injected one would
#: not run), no framing (a confirmation cannot be clicked through another site's page), a Referer only
#: to this site, and not kept in a cache (a page shows what a key may see).
HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                      "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
           "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin", "X-Content-Type-Options": "nosniff",
           "Cache-Control": "no-store"}

router = APIRouter(include_in_schema=False)


def page(path: str):
    """A page's route: GET, and HEAD as HTTP asks of every GET (a link checker or a monitor asks HEAD:
    the same status and headers, no body)."""
    return router.api_route(path, methods=["GET", "HEAD"])


def _page(request: Request, name: str, sign_in: sessions.SignIn | None, status: int = 200,
          headers: dict[str, str] | None = None, **values: Any) -> HTMLResponse:
    writes = sign_in is not None and sign_in.key.allows("import")
    return templates.TemplateResponse(request, name, {"sign_in": sign_in, "writes": writes, "final": FINAL,
                                                      **values}, status_code=status, headers={**HEADERS, **(headers or {})})


#: The titles of the console's error pages.
ERROR_TITLES = {404: "Not found", 405: "Not allowed here", 503: "Unavailable"}


def error_page(request: Request, status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> HTMLResponse:
    """An error answered to a browser outside the API (an unknown page, a method a page does not take,
    Redis not answering): a page saying so, with the console's headers, not the API's JSON."""
    return _page(request, "message.html", None, status, headers, title=ERROR_TITLES.get(status, "Refused"),
                 message=f"{message} ({code}, {status}).")


def _signed_in(request: Request, svc: ServiceDep) -> sessions.SignIn | None:
    return sessions.signed_in(request, svc.sign_ins)


def _to_sign_in() -> RedirectResponse:
    return RedirectResponse("/signin", 303)


@page("/signin")
def sign_in_page(request: Request, svc: ServiceDep) -> Response:
    """The sign-in form (a signed-in browser goes to the imports)."""
    if _signed_in(request, svc):
        return RedirectResponse("/", 303)
    return _page(request, "signin.html", None)


async def _form(request: Request) -> dict[str, str] | UploadError:
    """The form's fields, or why it cannot be read (a page says so: never a 500, never "unknown key" for a
    key sent in a body of another kind)."""
    from urllib.parse import parse_qs

    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return UploadError(415, "unsupported_media_type", "the form is sent as application/x-www-form-urlencoded "
                           "(as the console's page sends it)")
    try:
        body = await read_small(request.stream(), FORM_LIMIT, "the form")
    except UploadError as exc:
        return exc
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


@router.post("/signin")
async def sign_in(request: Request, svc: ServiceDep) -> Response:
    """Check the key sent once, start a sign-in, set its cookie (the token only)."""
    if not sessions.same_origin(request):
        return _page(request, "signin.html", None, 403, error="This form must be sent from the console's own page.")
    address = request.client.host if request.client else "unknown"
    wait_s = svc.sign_in_attempts.wait_s(address)
    if wait_s:
        return _page(request, "signin.html", None, 429, {"Retry-After": str(wait_s)},
                     error=f"Too many refused sign-ins from this address: try again in {wait_s} s.")
    form = await _form(request)
    if isinstance(form, UploadError):
        return _page(request, "signin.html", None, form.status, error=f"Not signed in: {form}.")
    key_text = form.get("key", "").strip()
    key = svc.store.apikeys.check(key_text) if key_text else None
    if key is None or key.revoked_ms is not None:
        svc.sign_in_attempts.refused(address)
        message = "That key was revoked." if key else "Unknown API key: paste a key from `backfill keys create`."
        return _page(request, "signin.html", None, 401, error=message)
    if not (key.allows("read") or key.allows("import")):
        svc.sign_in_attempts.refused(address)
        return _page(request, "signin.html", None, 403, error=f"Key {key.id} is a {key.scope} key: the console "
                     "needs a read or import key.")
    earlier = request.cookies.get(sessions.COOKIE)
    if earlier:  # (a sign-in replaces the browser's earlier one: its token ends here, not in 8 hours)
        svc.sign_ins.end(earlier)
    started = svc.sign_ins.start(key)
    response = RedirectResponse("/", 303)
    sessions.set_cookie(response, request, started, svc.settings.console_session_s)
    return response


@router.post("/signout")
async def sign_out(request: Request, svc: ServiceDep) -> Response:
    """End the sign-in (its CSRF token and this site's Origin required), remove the cookie."""
    current = _signed_in(request, svc)
    if current is None:
        return _to_sign_in()
    form = await _form(request)
    token = "" if isinstance(form, UploadError) else form.get(sessions.CSRF_FIELD, "")
    if not sessions.same_origin(request) or not hmac.compare_digest(token.encode(), current.csrf.encode()):
        return _page(request, "message.html", current, 403, title="Not signed out",
                     message="The sign-out form must be sent from the console's own page.")
    svc.sign_ins.end(current.token)
    response = _to_sign_in()
    sessions.clear_cookie(response, request)
    return response


@page("/")
def imports_page(request: Request, svc: ServiceDep) -> Response:
    """The imports, newest first, kept up to date by the page's script."""
    current = _signed_in(request, svc)
    return _page(request, "imports.html", current) if current else _to_sign_in()


@page("/new")
def new_import_page(request: Request, svc: ServiceDep) -> Response:
    """The new import wizard (an import key's)."""
    current = _signed_in(request, svc)
    if current is None:
        return _to_sign_in()
    if not current.key.allows("import"):
        return _page(request, "message.html", current, 403, title="Read-only key",
                     message=f"Key {current.key.id} may read, not import: sign in with an import key.")
    return _page(request, "new.html", current)


def _import_of(request: Request, svc: ServiceDep,
               import_id: str) -> tuple[sessions.SignIn | None, dict[str, str], Response | None]:
    """The sign-in and the import's state, or the answer instead of the page (sign in; no such import)."""
    current = _signed_in(request, svc)
    if current is None:
        return None, {}, _to_sign_in()
    state = svc.store.imports.state(import_id)
    if not state:
        return current, {}, _page(request, "message.html", current, 404, title="No such import",
                                  message=str(svc.store.guard.unknown(import_id, svc.settings.retention_s)))
    return current, state, None


@page("/imports/{import_id}")
def import_page(import_id: str, request: Request, svc: ServiceDep) -> Response:
    """An import: its progress while it runs; then its report as the terminal prints it, and its pictures."""
    current, state, refused = _import_of(request, svc, import_id)
    if refused is not None or current is None:
        return refused or _to_sign_in()
    report = report_of(state)  # (from the state just read: no second read of the import)
    return _page(request, "import.html", current, import_id=import_id, summary=summary(import_id, state),
                 report=report, lines=report_lines(report) if report else [],
                 figures=figures(svc.context, import_id, report) if report else [])


@page("/imports/{import_id}/errors")
def error_rows_page(import_id: str, request: Request, svc: ServiceDep, code: str = "") -> Response:
    """An import's error rows of one problem code (the first :data:`CODE_ROWS`)."""
    current, state, refused = _import_of(request, svc, import_id)
    if refused is not None or current is None:
        return refused or _to_sign_in()
    found = (p for p in svc.store.imports.problems(import_id, "errors") if not code or code in (p.get("codes") or []))
    rows = sorted(itertools.islice(found, CODE_ROWS), key=lambda p: p["row"])
    return _page(request, "errors.html", current, import_id=import_id, code=code, rows=rows, most=CODE_ROWS)
