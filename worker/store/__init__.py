"""The Redis edge: every read and write of backfill's data goes through here.

One :class:`Store` per process holds one connection pool and a part per concern,
each in its own module: ``imports`` (imports and their reports), ``work`` (stored
chunks, deliveries, pending work), ``events`` (event commits and the dedupe
memory), ``people`` (the people directory), ``triggers`` (campaigns, scheduled
triggers, deliveries), ``metrics`` (the shared figures), ``apikeys`` (the HTTP
service's keys), ``undoing`` (an undo's leases and the duplicates it reads), and the ``guard`` that
checks Redis itself (its memory policy, its data epoch: :mod:`worker.store.guard`). Key names come from
:mod:`worker.keys`; multi-key changes are Lua scripts in ``scripts/``, each key
and argument commented there.
"""
from __future__ import annotations

import redis

from worker.store import clock
from worker.store.apikeys import ApiKeys
from worker.store.client import TRANSIENT, connect
from worker.store.clock import now_ms
from worker.store.events import CommitResult, Events
from worker.store.guard import Guard
from worker.store.imports import Imports
from worker.store.metrics import Metrics
from worker.store.people import People
from worker.store.triggers import Triggers
from worker.store.undoing import Undoing
from worker.store.work import Work

__all__ = ["TRANSIENT", "CommitResult", "Store", "connect", "now_ms"]


class Store:
    """backfill's data in one Redis, by concern."""

    def __init__(self, client: redis.Redis, *, check_every_s: float = 10.0) -> None:
        self.r = client
        self.imports = Imports(client)
        self.work = Work(client)
        self.events = Events(client)
        self.people = People(client)
        self.triggers = Triggers(client)
        self.metrics = Metrics(client)
        self.apikeys = ApiKeys(client)
        self.undoing = Undoing(client)
        self.guard = Guard(client, check_every_s)

    def now(self) -> float:
        """Redis's clock (Unix seconds), the one every worker decides by, in one round trip (see
        :mod:`worker.store.clock`)."""
        return clock.now(self.r)
