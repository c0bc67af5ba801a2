"""Staged uploads: a file uploaded once (``POST /v1/uploads``), then inspected and imported as often as
needed (a dry run, then the import) without being sent again.

Each is two files in the service's upload dir: ``<upload_id>.staged`` (the bytes, readable by this
user only) and ``<upload_id>.staged.json`` (its name, size and expiry), written once the body is all
in, so a ``.staged`` without it is an upload still arriving. An upload is kept
``BACKFILL_API_STAGED_TTL_S`` from its arrival, and a service keeps at most ``BACKFILL_API_STAGED_MAX``
(those arriving included): one more is refused (429 ``too_many_uploads``) until some are deleted or
expire. Expired ones are deleted when asked for, at every new upload, every :data:`SWEEP_S` and when
the service starts.

What reads a staged file reads its own hard link to it (an import's ``.upload``, an inspection's
``.inspect``), made while the upload is known: a DELETE or an expiry meanwhile removes the upload's
name, never the bytes a reader holds, and nothing is copied (a copy only where the file system takes
no hard link). Nothing here talks to Redis: the files are the store.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from producers.web.models import ApiError

#: How often the service deletes expired uploads when nobody asks for them.
SWEEP_S = 60.0
_ID = re.compile(r"[0-9a-f]{32}")


def not_found(upload_id: str) -> ApiError:
    """The answer for an upload that is unknown, expired or deleted (the same 404 everywhere)."""
    shown = upload_id if _ID.fullmatch(upload_id) else "with that id"
    return ApiError(404, "not_found", f"no upload {shown}: unknown, deleted, or expired "
                    "(uploads are kept BACKFILL_API_STAGED_TTL_S after they arrive): upload the file again")


def iso_utc(ms: int) -> str:
    """ISO 8601 in UTC, to the second: ``2026-12-05T13:40:00Z``. Pure."""
    # Not worker.timestamps.iso (".750Z"): expires_at stays whole seconds as published, cut down: never past the expiry.
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Staged:
    """The staged uploads of one upload dir."""

    def __init__(self, folder: Path, ttl_s: int, max_count: int) -> None:
        self.dir, self.ttl_s, self.max_count = folder, ttl_s, max_count
        self._lock = threading.Lock()  # (the count and the new file: one step)
        self._swept = 0.0

    def _data(self, upload_id: str) -> Path:
        return self.dir / f"{upload_id}.staged"

    def _meta(self, upload_id: str) -> Path:
        return self.dir / f"{upload_id}.staged.json"

    def reserve(self) -> tuple[str, Path]:
        """A new upload id and the file its body is written to (created empty, this user only); 429
        ``too_many_uploads`` when the service already keeps ``max_count``."""
        with self._lock:
            self.sweep(force=True)  # (only live uploads count; the service keeps at most max_count files)
            held = sum(1 for _ in self.dir.glob("*.staged"))
            if held >= self.max_count:
                raise ApiError(429, "too_many_uploads", f"the service keeps {held} uploads, its limit "
                               f"(BACKFILL_API_STAGED_MAX, {self.max_count}): delete some (DELETE "
                               "/v1/uploads/{id}) or wait for them to expire", {"Retry-After": "60"})
            upload_id = secrets.token_hex(16)
            path = self._data(upload_id)
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return upload_id, path

    def abandon(self, upload_id: str) -> None:
        """Forget an upload whose body did not arrive whole."""
        self._data(upload_id).unlink(missing_ok=True)
        self._meta(upload_id).unlink(missing_ok=True)

    def keep(self, upload_id: str, name: str, size: int) -> dict[str, Any]:
        """Record an upload whose body is all in; its metadata."""
        now_ms = int(time.time() * 1000)
        meta = {"upload_id": upload_id, "name": name, "bytes": size, "created_ms": now_ms,
                "expires_ms": now_ms + self.ttl_s * 1000}
        temporary = self.dir / f"{upload_id}.staged.json.part"
        temporary.write_bytes(orjson.dumps(meta))
        os.replace(temporary, self._meta(upload_id))  # (read whole or not at all)
        return meta

    def get(self, upload_id: str) -> dict[str, Any]:
        """An upload's metadata; 404 when it is unknown, still arriving or expired (then deleted)."""
        if not _ID.fullmatch(upload_id):
            raise not_found(upload_id)
        try:
            meta = orjson.loads(self._meta(upload_id).read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            raise not_found(upload_id) from None
        if meta["expires_ms"] <= time.time() * 1000 or not self._data(upload_id).exists():
            self.abandon(upload_id)
            raise not_found(upload_id)
        return meta

    def delete(self, upload_id: str) -> None:
        """Delete an upload (those reading it keep their link); 404 when it is unknown."""
        self.get(upload_id)
        self.abandon(upload_id)

    def link(self, upload_id: str, dest: Path) -> dict[str, Any]:
        """Make ``dest`` (replaced if it exists) the upload's bytes, for a reader of its own; the
        upload's metadata. 404 when it is unknown, or deleted before the link was made."""
        meta = self.get(upload_id)
        source = self._data(upload_id)
        dest.unlink(missing_ok=True)
        try:
            os.link(source, dest)
        except FileNotFoundError:
            raise not_found(upload_id) from None
        except OSError:  # a file system without hard links: a copy, from the file as it is opened now
            try:
                with source.open("rb") as reading, dest.open("xb") as out:
                    shutil.copyfileobj(reading, out, 1024 * 1024)
            except FileNotFoundError:
                dest.unlink(missing_ok=True)
                raise not_found(upload_id) from None
        return meta

    @contextlib.contextmanager
    def reading(self, upload_id: str) -> Iterator[tuple[Path, dict[str, Any]]]:
        """A link of the inspection's own to the upload's bytes (deleted after), and its metadata."""
        path = self.dir / f"{secrets.token_hex(8)}.inspect"
        try:
            meta = self.link(upload_id, path)
            yield path, meta
        finally:
            path.unlink(missing_ok=True)

    def sweep(self, force: bool = False) -> int:
        """Delete expired uploads, metadata without bytes, and what killed requests left (an upload never
        finished, an inspection's link) once older than the TTL; at most every :data:`SWEEP_S` unless
        ``force``. How many uploads were deleted."""
        now = time.time()
        if not force and now - self._swept < SWEEP_S:
            return 0
        self._swept = now
        deleted = 0
        for meta_path in self.dir.glob("*.staged.json"):
            upload_id = meta_path.name.removesuffix(".staged.json")
            try:
                expires_ms = orjson.loads(meta_path.read_bytes())["expires_ms"]
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
                expires_ms = 0
            if expires_ms <= now * 1000 or not self._data(upload_id).exists():
                self.abandon(upload_id)
                deleted += 1
        for pattern in ("*.staged", "*.inspect", "*.staged.json.part"):
            for path in self.dir.glob(pattern):
                if pattern == "*.staged" and self._meta(path.name.removesuffix(".staged")).exists():
                    continue
                with contextlib.suppress(FileNotFoundError):
                    seen = path.stat()  # (a body still arriving moves its mtime; a link made moves its ctime)
                    if max(seen.st_mtime, seen.st_ctime) < now - self.ttl_s:
                        path.unlink(missing_ok=True)
                        deleted += pattern == "*.staged"
        return deleted


def public(meta: dict[str, Any]) -> dict[str, Any]:
    """What the API answers of an upload: ``upload_id``, ``name``, ``bytes``, ``expires_at`` (ISO 8601 UTC). Pure."""
    return {"upload_id": meta["upload_id"], "name": meta["name"], "bytes": meta["bytes"],
            "expires_at": iso_utc(meta["expires_ms"])}
