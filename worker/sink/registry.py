"""Which results store the sinks of one Redis write: registered there by the first sink (or ``backfill
db upgrade``), so a sink that would write somewhere else refuses instead of splitting the results.

Two workers on one ``REDIS_URL`` with different homes and no ``DATABASE_URL`` would each drain part of
the outbox into a SQLite file of their own: every report would say "stored", and each file would hold
part of it. A store is known by the id it keeps in itself (``store_meta``, made at random once), not by
how it is reached, so the same PostgreSQL behind two host names is one store, and two SQLite files are
two. The registration is set once (SET NX); ``backfill db register --replace`` moves it on purpose.
"""
from __future__ import annotations

import dataclasses
import time

import orjson

from worker import keys
from worker.errors import ConfigError


@dataclasses.dataclass(frozen=True, slots=True)
class StoreIdentity:
    """A results store: its own id, and where it is (for people: host and path, or server and database)."""

    store_id: str
    where: str


class OtherStore(ConfigError):
    """This sink's database is not the store this Redis's sinks write."""


def identity_of(results) -> StoreIdentity:
    """The identity of an open results store (its id is made on first use)."""
    return StoreIdentity(results.store_id(), results.place())


def registered(client) -> StoreIdentity | None:
    """The store registered in this Redis, or None."""
    raw = client.get(keys.RESULTS_STORE)
    if raw is None:
        return None
    try:
        found = orjson.loads(raw)
        return StoreIdentity(str(found["store_id"]), str(found["where"]))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return StoreIdentity("?", f"an unreadable registration ({raw[:60]!r})")


def register(client, mine: StoreIdentity) -> bool:
    """Register ``mine`` unless a store is registered; True when it was now. A different store
    registered is :class:`OtherStore`, whose one line names both and what to do."""
    if client.set(keys.RESULTS_STORE, _value(mine), nx=True):
        return True
    theirs = registered(client)
    if theirs is None:  # (removed meanwhile: try once more)
        return register(client, mine)
    if theirs.store_id != mine.store_id:
        raise OtherStore(mismatch(mine, theirs))
    return False


def replace(client, mine: StoreIdentity) -> StoreIdentity | None:
    """Make ``mine`` the registered store whatever was before (after moving the results on purpose);
    the one it replaces, or None."""
    before = registered(client)
    client.set(keys.RESULTS_STORE, _value(mine))
    return before


def mismatch(mine: StoreIdentity, theirs: StoreIdentity) -> str:
    """The refusal: both stores, and the ways out."""
    return (f"the results database here, {mine.where} (store {mine.store_id}), is not the one the sinks on this "
            f"Redis write, {theirs.where} (store {theirs.store_id}): set DATABASE_URL to that database on every "
            "host that runs a sink, or run the workers here with --no-sink; if the results moved here on "
            "purpose, run `backfill db register --replace` here")


def _value(identity: StoreIdentity) -> bytes:
    return orjson.dumps({"store_id": identity.store_id, "where": identity.where, "at_ms": int(time.time() * 1000)})


def claim(client, results) -> StoreIdentity:
    """Register ``results`` as this Redis's store, or refuse (:class:`OtherStore`) when another one is:
    what a sink does before its first batch, and again now and then while it runs (a registration
    replaced meanwhile stops it; one lost with Redis's data is made again)."""
    mine = identity_of(results)
    register(client, mine)
    return mine
