"""API keys of the HTTP service: created, listed, revoked, and checked on every request.

A key is ``bfk_<id>_<secret>``: the id names it (to list and revoke it), the secret is 32
random bytes. Only the key's SHA-256 is stored (a key has 256 bits of chance: a slow hash
would add nothing but time to every request). Scopes: ``read`` (every GET),
``import`` (reads, and every write: imports, cancel, retry, undo, tracking calls) and
``track`` (only the tracking endpoints: a write key to give to Segment's libraries).
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
from typing import Any

import orjson
import redis

from worker import keys
from worker.errors import ConfigError
from worker.store import clock

#: What each scope may do: a key of one of these may call the endpoints that need any scope listed.
SCOPES = {"read": {"read"}, "import": {"read", "import", "track"}, "track": {"track"}}
PREFIX = "bfk_"


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    """A key's record (its secret is never kept)."""

    id: str
    name: str
    scope: str
    created_ms: int
    revoked_ms: int | None = None

    def allows(self, need: str) -> bool:
        """True when this key may call an endpoint that needs ``need`` ("read" or "import")."""
        return self.revoked_ms is None and need in SCOPES.get(self.scope, set())


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The keys in Redis (``keys.API_KEYS``)."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def create(self, name: str, scope: str) -> tuple[ApiKey, str]:
        """A new key: its record and the key itself, shown once."""
        if scope not in SCOPES:
            raise ConfigError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
        key_id = secrets.token_hex(4)
        secret = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, name, scope, clock.now_ms(self.r))
        self.r.hset(keys.API_KEYS, key_id, orjson.dumps({**dataclasses.asdict(record), "sha256": _digest(secret)}))
        return record, secret

    def all(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        found = [self._record(orjson.loads(raw)) for raw in self.r.hvals(keys.API_KEYS)]
        return sorted(found, key=lambda k: k.created_ms)

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by its id (it stays listed, as revoked); False when no such key."""
        raw = self.r.hget(keys.API_KEYS, key_id)
        if raw is None:
            return False
        data = orjson.loads(raw)
        if data.get("revoked_ms") is None:
            data["revoked_ms"] = clock.now_ms(self.r)
            self.r.hset(keys.API_KEYS, key_id, orjson.dumps(data))
        return True

    def check(self, presented: str) -> ApiKey | None:
        """The record of the key ``presented`` (revoked or not), or None when it is no key of ours."""
        if not presented.startswith(PREFIX) or presented.count("_") < 2:
            return None
        key_id = presented[len(PREFIX):].split("_", 1)[0]
        raw = self.r.hget(keys.API_KEYS, key_id)
        if raw is None:
            return None
        data = orjson.loads(raw)
        if not hmac.compare_digest(data["sha256"], _digest(presented)):
            return None
        return self._record(data)

    def get(self, key_id: str) -> ApiKey | None:
        """The record of the key named ``key_id`` (revoked or not), or None when there is none: what a
        console sign-in, which keeps only the key's id, checks on every request."""
        raw = self.r.hget(keys.API_KEYS, key_id)
        return None if raw is None else self._record(orjson.loads(raw))

    @staticmethod
    def _record(data: dict[str, Any]) -> ApiKey:
        return ApiKey(data["id"], data["name"], data["scope"], data["created_ms"], data.get("revoked_ms"))
