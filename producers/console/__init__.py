"""The web console of ``backfill serve``, at ``/``: sign in with an API key, follow the imports, start
one from the browser (drop a file, see what inspect reads, map its columns, dry-run, import), read an
import's report and pictures, download its errors, cancel, retry or undo it.

Modules: :mod:`~producers.console.sessions` (signing in: the cookie, the CSRF token, the same-origin
rule; the ``/v1`` API accepts the sign-in through :func:`producers.web.deps.key_with`),
:mod:`~producers.console.pages` (the routes and their templates), :mod:`~producers.console.figures`
(what an import's page pictures, and from where) and :mod:`~producers.console.charts` (the SVG).
Templates and the one small script and stylesheet live in this package (no build step, no CDN: the
service may run offline).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

#: Where the console's script and stylesheet are served.
STATIC = "/console/static"


def install(app: FastAPI) -> None:
    """Add the console's pages and static files to ``app`` (none of them in the OpenAPI document)."""
    from producers.console.pages import router

    app.include_router(router)
    app.mount(STATIC, StaticFiles(directory=Path(__file__).resolve().parent / "static"), name="console-static")
