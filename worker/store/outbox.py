"""The outbox: the stream of what the results database must hold, read by sinks in a consumer
group, acknowledged, trimmed.

Every sink is a consumer of :data:`keys.SINK_GROUP`. It reads new entries, or first claims the
entries a dead sink left pending too long (XAUTOCLAIM), writes them to the results store, then
acknowledges them (ack.lua: XACK, and counts what each entry held, once). Entries that every group has acknowledged are trimmed (XTRIM MINID),
so the stream holds at most what is not yet stored. An entry the database refuses is set aside
(dead.lua: copied to the dead-letter stream and acknowledged in one step); the dead letters are an
Outbox too (:func:`dead_letters`), with no group: storing one deletes it.
"""
from __future__ import annotations

import redis

from worker import keys
from worker.store import clock
from worker.store.lua import script

Entry = tuple[bytes, dict[bytes, bytes]]


class Outbox:
    """One sink's view of the outbox."""

    def __init__(self, client: redis.Redis, consumer: str, stream: str = keys.OUTBOX,
                 group: str = keys.SINK_GROUP) -> None:
        self.r, self.consumer, self.stream, self.group = client, consumer, stream, group
        self._ack = client.register_script(script("ack.lua"))
        self._dead = client.register_script(script("dead.lua"))

    def ensure_group(self, forget_idle_ms: int = 86_400_000) -> None:
        """Create the group (from the stream's start, so nothing already there is missed) if it is not
        there, and forget the consumers (sinks of earlier runs) idle for ``forget_idle_ms`` that hold
        nothing pending: every restart is a new consumer name."""
        try:
            self.r.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        for consumer in self.r.xinfo_consumers(self.stream, self.group):
            if consumer["pending"] == 0 and consumer["idle"] > forget_idle_ms and consumer["name"] != self.consumer:
                self.r.xgroup_delconsumer(self.stream, self.group, consumer["name"])

    def claim_dead(self, idle_ms: int, count: int) -> list[Entry]:
        """Entries another sink read and did not acknowledge for ``idle_ms`` (it died): now this sink's."""
        _, entries, *_ = self.r.xautoclaim(self.stream, self.group, self.consumer, idle_ms, "0-0", count=count)
        return [e for e in entries if e[1]]  # (an entry trimmed meanwhile comes back empty)

    def undone(self, import_ids: set[str]) -> set[str]:
        """Which of these imports were taken back (``backfill undo``): their entries are not stored."""
        if not import_ids:
            return set()
        ordered = sorted(import_ids)
        return {i for i, gone in zip(ordered, self.r.smismember(keys.UNDONE, ordered)) if gone}

    def beat(self) -> None:
        """This sink is alive (the count of running sinks reads these)."""
        self.r.zadd(keys.SINKS, {self.consumer: clock.now_ms(self.r)})  # (compared with Redis's clock)

    def read(self, count: int, block_ms: int) -> list[Entry]:
        """New entries for this sink, waiting up to ``block_ms`` for some."""
        answer = self.r.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms)
        return answer[0][1] if answer else []

    def ack(self, entries: list[tuple[bytes, str, int, int, int, int]]) -> int:
        """These entries are stored: (entry id, import id or "", events, people, deliveries, late duplicates
        left out) each; how many were acknowledged now (an entry acknowledged before is not counted again)."""
        if not entries:
            return 0
        args = [value for entry in entries for value in entry]
        return int(self._ack(keys=[self.stream, keys.METRICS], args=[self.group, keys.import_hash(""), *args]))

    def set_aside(self, refused: list[tuple[Entry, str]], at_ms: int) -> int:
        """Move these entries, each with why the database refused it, to the dead letters and acknowledge
        them, in one step; how many were moved now (one another sink settled meanwhile is left alone)."""
        args: list[object] = [self.group, keys.import_hash(""), at_ms]
        for (entry_id, fields), message in refused:
            args += [entry_id, fields.get(b"import", b""), message, len(fields)]
            for name, value in fields.items():
                args += [name, value]
        if len(args) == 3:
            return 0
        return int(self._dead(keys=[self.stream, keys.SINK_DEAD, keys.METRICS], args=args))

    def page(self, after: bytes | str, count: int) -> list[Entry]:
        """Up to ``count`` entries of the stream after the entry ``after`` ("-": from its start)."""
        entries = self.r.xrange(self.stream, min=after if after == "-" else f"({_text(after)}", count=count)
        return [e for e in entries if e[1]]

    def trim(self) -> int:
        """Remove the entries every group has acknowledged; how many were removed."""
        groups = self.r.xinfo_groups(self.stream)
        if not groups:
            return 0
        floors = []
        for group in groups:
            pending = self.r.xpending(self.stream, group["name"])
            floors.append(pending["min"] if pending["pending"] else _next(group["last-delivered-id"]))
        return int(self.r.xtrim(self.stream, minid=min(floors, key=_id_key), approximate=False))

    def backlog(self) -> tuple[int, float]:
        """(entries not yet stored, age in seconds of the oldest): acknowledged entries are trimmed after
        every batch, so what the stream holds is what waits (give or take the batch in hand)."""
        length = self.r.xlen(self.stream)
        first = self.r.xrange(self.stream, count=1)
        return length, age_s(first[0][0], clock.now_ms(self.r) / 1000) if first else 0.0


def dead_letters(client: redis.Redis) -> Outbox:
    """The dead letters (:data:`keys.SINK_DEAD`) as an outbox with no group: :meth:`Outbox.ack` deletes
    an entry stored from there, counting it as stored in its import and no longer dead (ack.lua)."""
    return Outbox(client, "", stream=keys.SINK_DEAD, group="")


def dead_fields(fields: dict[bytes, bytes]) -> tuple[dict[bytes, bytes], str]:
    """A dead letter's fields as the outbox entry had them, and the database's message."""
    return ({k: v for k, v in fields.items() if not k.startswith(b"dead_")},
            fields.get(b"dead_error", b"").decode(errors="replace"))


def _text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def age_s(entry_id: bytes | str, now: float) -> float:
    """Seconds since the entry was appended (its id starts with that moment's ms)."""
    return max(now - _id_key(entry_id)[0] / 1000, 0.0)


def _id_key(entry_id: bytes | str) -> tuple[int, int]:
    ms, seq = (entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")
    return int(ms), int(seq)


def _next(entry_id: bytes | str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"

