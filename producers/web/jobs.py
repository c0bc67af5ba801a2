"""The producer work of the HTTP service, off the request path.

A request answers as soon as its file is on disk (an upload) or its URL is checked: the
import is recorded as ``accepted`` under an id reserved for it, and a thread of a small pool
(``BACKFILL_API_PRODUCERS``) downloads the URL, scans the file and queues its chunks, as
``backfill import`` does (:func:`producers.api.enqueue_import`). The file is deleted once its
chunks are queued (they are in Redis from then on), or once it is refused.

If the service stops while it queues, the import ends ``interrupted`` with what was queued
(the sweeper's rule for a producer gone silent), as for any producer.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from producers import api
from producers.web.fetch import fetch, redact
from producers.web.models import as_fields
from worker.errors import ConfigError, FileProblem
from worker.logs import get_logger
from worker.settings import Settings
from worker.spec import new_import_id

log = get_logger("backfill.api")


class Producers:
    """Imports accepted by this process, scanned and queued by a pool of threads."""

    def __init__(self, settings: Settings, store) -> None:
        self.settings = settings
        self.store = store
        if not settings.api_upload_dir:
            settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir = Path(settings.api_upload_dir) if settings.api_upload_dir else settings.home / "uploads"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pool = ThreadPoolExecutor(settings.api_producers, thread_name_prefix="backfill-producer")

    def reserve(self) -> tuple[str, Path]:
        """A new import id and the path its file is written to (created empty, readable by this user only)."""
        import_id = new_import_id()
        path = self.dir / f"{import_id}.upload"
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return import_id, path

    def start_file(self, import_id: str, path: Path, source: str, options: dict[str, Any]) -> None:
        """Record the import as accepted and queue its file (already on disk at ``path``)."""
        self.store.imports.accept(import_id, source, self.settings.retention_s)
        self.pool.submit(self._run, import_id, path, source, options, None)

    def start_url(self, import_id: str, path: Path, url: str, options: dict[str, Any]) -> None:
        """Record the import as accepted, download ``url`` to ``path``, then queue it. The import's source
        is the URL without its secrets (:func:`producers.web.fetch.redact`): every read key sees it."""
        source = redact(url)
        self.store.imports.accept(import_id, source, self.settings.retention_s)
        self.pool.submit(self._run, import_id, path, source, options, url)

    def _run(self, import_id: str, path: Path, source: str, options: dict[str, Any], url: str | None) -> None:
        try:
            if url is not None:
                try:
                    size = fetch(url, path, max_bytes=self.settings.api_max_upload_bytes,
                                 timeout_s=self.settings.api_fetch_timeout_s, allow=self.settings.api_fetch_allow)
                except FileProblem as problem:
                    self._refuse(import_id, source, problem)
                    return
                log.info("data_file_url downloaded", import_id=import_id, bytes=size)
            handle = api.enqueue_import(path, import_id=import_id, source=source, settings=self.settings,
                                        background=False, **options)
            handle.queued()
        except ConfigError as exc:  # an option the file refuses (a dry run of a downloaded Segment file)
            self._refuse(import_id, source, FileProblem("invalid_option", as_fields(str(exc))))
        except Exception as exc:  # noqa: BLE001 - the import says what happened; the service goes on
            log.exception("import could not be queued", import_id=import_id)
            if self.store.imports.state(import_id).get("status") == "accepted":
                self._refuse(import_id, source, FileProblem("queueing_failed", f"the import could not be queued: {exc}"))
        finally:
            path.unlink(missing_ok=True)

    def _refuse(self, import_id: str, source: str, problem: FileProblem) -> None:
        from worker import tasks

        self.store.imports.refuse(import_id, source, problem.code, str(problem))
        log.warning("import refused", import_id=import_id, code=problem.code, reason=str(problem))
        tasks.run_finalize(self.store, import_id, self.settings)

    def close(self) -> None:
        """Stop taking work once every accepted import is queued (a graceful stop waits for them)."""
        self.pool.shutdown(wait=True)
