"""The producer work of the HTTP service, off the request path.

A request answers as soon as its file is on disk (an upload) or its URL is checked: the
import is recorded as ``accepted`` under an id reserved for it, and a thread of a small pool
(``BACKFILL_API_PRODUCERS``) downloads the URL, scans the file and queues its chunks, as
``backfill import`` does (:func:`producers.api.enqueue_import`). The file is deleted once its
chunks are queued (they are in Redis from then on), or once it is refused.

The service is an accepted import's producer from the moment it answers: it beats for every
import it holds until that import's file is queued, so a killed service's imports end
``interrupted`` by the sweeper's rule for a producer gone silent (with what was queued, if
anything), as for any producer. A service that starts again deletes the upload files left by one
that was killed (their imports ended, or silent past the producer timeout, which it ends itself).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from producers import api
from producers.web.fetch import fetch, redact
from producers.web.models import as_fields
from producers.web.staged import Staged
from worker import tasks
from worker.context import Context
from worker.errors import ConfigError, FileProblem, ImportNotFound, RedisMisconfigured
from worker.logs import get_logger
from worker.spec import new_import_id
from worker.store import now_ms

log = get_logger("backfill.api")
#: How often the service says it is alive for the imports it holds (the sweeper ends silent ones).
HEARTBEAT_S = 5.0


class Producers:
    """Imports accepted by this process, scanned and queued by a pool of threads."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.settings = settings = context.settings
        self.store = context.store
        if not settings.api_upload_dir:
            settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir = Path(settings.api_upload_dir) if settings.api_upload_dir else settings.home / "uploads"
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        #: the staged uploads (POST /v1/uploads), in the same dir
        self.staged = Staged(self.dir, settings.api_staged_ttl_s, settings.api_staged_max)
        self.pool = ThreadPoolExecutor(settings.api_producers, thread_name_prefix="backfill-producer")
        #: staged uploads inspected at once (each scans its whole file, as an import does): as many as imports
        self.inspections = threading.BoundedSemaphore(settings.api_producers)
        #: imports accepted and not yet queued (or refused) by this process: it beats for them
        self.held: set[str] = set()
        self._stop = threading.Event()
        self.clean_leftovers()
        self._beats = threading.Thread(target=self._beat, name="backfill-producer-beat", daemon=True)
        self._beats.start()

    def clean_leftovers(self) -> int:
        """Delete the upload files a killed service left behind: those of imports that ended or that are
        unknown, and those silent past the producer timeout (ended here as ``interrupted``), and the staged
        uploads that expired (live ones stay: they outlive a restart). Returns how many files were deleted.
        Files of imports another live service still holds are left alone."""
        deleted = self.staged.sweep(force=True)
        for path in self.dir.glob("*.upload"):
            import_id = path.name.removesuffix(".upload")
            state = self.store.imports.state(import_id)
            if state and "report" not in state:
                beat = self.store.work.last_beat(import_id)
                # (Redis's clock, as the beats are: read only here, so a service starts while Redis is down)
                if beat is not None and beat >= now_ms(self.store.r) - int(self.settings.producer_timeout_s * 1000):
                    continue  # held by a live producer
                self._end_interrupted(import_id)
            path.unlink(missing_ok=True)
            deleted += 1
        if deleted:
            log.warning("deleted upload files a stopped service left behind", files=deleted)
        return deleted

    def _end_interrupted(self, import_id: str) -> None:
        stopped, due = self.store.imports.stop(import_id, "interrupted")
        if due:
            tasks.finalize_import.apply_async((import_id,))

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            for import_id in list(self.held):
                try:
                    self.store.work.heartbeat(import_id)
                except Exception as exc:  # noqa: BLE001 - tried again at the next beat
                    log.warning("producer heartbeat failed", import_id=import_id, error=str(exc))
            try:
                self.staged.sweep()  # (every SWEEP_S: expired uploads nobody asks for)
            except OSError as exc:
                log.warning("expired uploads not deleted", error=str(exc))

    def reserve(self) -> tuple[str, Path]:
        """A new import id and the path its file is written to (created empty, readable by this user only)."""
        import_id = new_import_id()
        path = self.dir / f"{import_id}.upload"
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return import_id, path

    def start_file(self, import_id: str, path: Path, source: str, options: dict[str, Any]) -> None:
        """Record the import as accepted and queue its file (already on disk at ``path``)."""
        self.store.imports.accept(import_id, source, self.settings.retention_s)
        self.held.add(import_id)
        self.pool.submit(self._run, import_id, path, source, options, None)

    def start_url(self, import_id: str, path: Path, url: str, options: dict[str, Any]) -> None:
        """Record the import as accepted, download ``url`` to ``path``, then queue it. The import's source
        is the URL without its secrets (:func:`producers.web.fetch.redact`): every read key sees it."""
        source = redact(url)
        self.store.imports.accept(import_id, source, self.settings.retention_s)
        self.held.add(import_id)
        self.pool.submit(self._run, import_id, path, source, options, url)

    def _run(self, import_id: str, path: Path, source: str, options: dict[str, Any], url: str | None) -> None:
        try:
            if self.store.imports.state(import_id).get("stop"):
                return  # cancelled while it waited for a thread: the cancel ended it
            if url is not None:
                try:
                    size = fetch(url, path, max_bytes=self.settings.api_max_upload_bytes,
                                 timeout_s=self.settings.api_fetch_timeout_s, allow=self.settings.api_fetch_allow)
                except FileProblem as problem:
                    self._refuse(import_id, source, problem)
                    return
                log.info("data_file_url downloaded", import_id=import_id, bytes=size)
            handle = api.enqueue_import(path, import_id=import_id, source=source, context=self.context,
                                        background=False, **options)
            handle.queued()
        except ConfigError as exc:  # an option the file refuses (a dry run of a downloaded Segment file)
            self._refuse(import_id, source, FileProblem("invalid_option", as_fields(str(exc))))
        except ImportNotFound as exc:  # Redis lost its data: nothing is left of the import to end
            log.error("import lost with Redis's data: not queued", import_id=import_id, error=str(exc))
        except RedisMisconfigured as exc:  # (the one line was logged by the store's guard)
            self._refuse(import_id, source, FileProblem("redis_misconfigured", str(exc)))
        except Exception as exc:  # noqa: BLE001 - the import says what happened; the service goes on
            log.exception("import could not be queued", import_id=import_id)
            if self.store.imports.state(import_id).get("status") == "accepted":
                self._refuse(import_id, source, FileProblem("queueing_failed", f"the import could not be queued: {exc}"))
        finally:
            self.held.discard(import_id)
            path.unlink(missing_ok=True)

    def _refuse(self, import_id: str, source: str, problem: FileProblem) -> None:
        if self.store.imports.refuse(import_id, source, problem.code, str(problem)):
            log.warning("import refused", import_id=import_id, code=problem.code, reason=str(problem))
            tasks.run_finalize(self.store, import_id, self.settings)

    def close(self) -> None:
        """Stop taking work once every accepted import is queued (a graceful stop waits for them)."""
        self.pool.shutdown(wait=True)
        self._stop.set()
