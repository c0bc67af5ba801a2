"""people_commit.lua's KEYS and ARGV, named: the one place that lays them out (as commit_args.py does for
commit.lua).

:class:`PeopleCommitKeys` holds the script's keys (one field each, in KEYS order) and :class:`PeopleCommitArgs`
its arguments: the fixed ones by name (:meth:`PeopleCommitArgs.fixed`, the script's ARGV_NAMES: a unit test
compares them), then the chunk's error and warning rows. The bulk of a chunk (the import's memory, the index
entries, the people, the anonymous ids tied and the events moved) travels in two arguments, ``items`` (every
item's bytes back to back) and ``ends`` (where each item ends, a little-endian uint32 each), which the script
cuts into one table once: an argument costs redis-py ~0.6 us to pack and Redis ~0.25 us to make into a Lua
string, and a people chunk had ~15 of them a row. Pure: no I/O.
"""
from __future__ import annotations

import dataclasses
import itertools
import struct

import orjson

from worker import keys
from worker.people.directory import Changes, given_identifiers
from worker.segment.anonymous import Attach
from worker.store.commit_args import by_campaign

#: The packed sections, in ``items`` order, and how many items each entry of theirs has.
PACKED = (("seen", 2), ("index", 4), ("people", 3), ("ties", 4), ("moved", 2), ("campaigns", 2))


@dataclasses.dataclass(frozen=True, slots=True)
class PeopleCommitKeys:
    """people_commit.lua's KEYS, in order (the script's header says what each holds)."""

    import_hash: str
    done: str
    chunk_rows: str
    errors: str
    warnings: str
    seen: str
    by_id: str
    by_email: str
    pending: str
    metrics: str
    problem_runs: str
    outbox: str
    anonymous_links: str
    triggers: str
    deliveries: str

    @classmethod
    def of(cls, import_id: str, chunk: int, by_id: str, by_email: str) -> PeopleCommitKeys:
        """The keys of committing ``chunk`` of people import ``import_id`` into the indexes ``by_id`` and
        ``by_email`` (a dry run's shadow ones for a dry run)."""
        return cls(keys.import_hash(import_id), keys.import_done(import_id), keys.import_chunk(import_id, chunk),
                   keys.import_errors(import_id), keys.import_warnings(import_id), keys.import_seen(import_id),
                   by_id, by_email, keys.PENDING, keys.METRICS, keys.import_problem_runs(import_id), keys.OUTBOX,
                   keys.ANONYMOUS_LINKS, keys.TRIGGERS_ZSET, keys.DELIVERIES_STREAM)

    def layout(self) -> list[str]:
        """KEYS as Redis is sent them."""
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


@dataclasses.dataclass(slots=True)
class PeopleCommitArgs:
    """people_commit.lua's ARGV: the fixed arguments (:meth:`fixed`), then the error rows, then the warning
    rows."""

    chunk: int
    dry_run: bool
    now_ms: int
    #: where people's records live (a dry run's shadow prefix for a dry run)
    person_prefix: str
    problem_ttl_s: int
    #: TTL of the import's scratch keys (its memory, a dry run's shadows)
    scratch_ttl_s: int
    import_id: str
    #: the chunk's state (lib.lua's chunk_state)
    state: str
    max_problem_rows: int
    changes: Changes
    errors: list[bytes]
    warnings: list[bytes]
    attach: Attach = dataclasses.field(default_factory=Attach)

    def sections(self) -> dict[str, list[bytes]]:
        """The packed sections' items, by name, in ``items`` order (encoded here, each as its type asks:
        one pass, no type check an item)."""
        changes, attach = self.changes, self.attach
        seen = [x for field, value in changes.seen.items() for x in (field, value.encode())]
        index = [x.encode() for (kind, key), (read, new) in changes.index.items() for x in (kind, key, read, new)]
        people = [x for cio, (read, state) in changes.people.items()
                  for x in (cio.encode(), read.encode(), orjson.dumps(state))]
        ties = [x for anon, count, last, user in attach.ties for x in (anon.encode(), str(count).encode(), last,
                                                                        user.encode())]
        moved = [x for body, outcome in zip(attach.bodies, attach.outcomes)
                 for x in (body, outcome if isinstance(outcome, bytes) else outcome.encode())]
        # the moved events' decisions by kind and campaign, as commit.lua takes a chunk's
        counted = by_campaign(attach.outcomes)[1:]
        campaigns = [x if isinstance(x, bytes) else str(x).encode() for x in counted]
        return {"seen": seen, "index": index, "people": people, "ties": ties, "moved": moved, "campaigns": campaigns}

    def fixed(self) -> dict[str, object]:
        """The fixed arguments by name, in ARGV order (people_commit.lua's ARGV_NAMES)."""
        changes, attach = self.changes, self.attach
        sections = self.sections()
        items = list(itertools.chain.from_iterable(sections[name] for name, _ in PACKED))
        given = given_identifiers(changes)
        given += [["anonymous", anon, attach.owners[user]] for anon, _, _, user in attach.ties if user in attach.owners]
        return {
            "chunk": self.chunk, "dry_run": "1" if self.dry_run else "0", "now_ms": self.now_ms,
            "person_prefix": self.person_prefix, "problem_ttl_s": self.problem_ttl_s, "imported": changes.imported,
            "created": changes.created, "skipped": changes.skipped, "scratch_ttl_s": self.scratch_ttl_s,
            "import_id": self.import_id, "state": self.state, "max_problem_rows": self.max_problem_rows,
            "held_prefix": keys.ANONYMOUS_PREFIX, "given_ids": orjson.dumps(given) if given else "",
            "moved_cio": orjson.dumps(attach.owners),
            **{f"n_{name}": len(sections[name]) // width for name, width in PACKED},
            "items": b"".join(items), "ends": struct.pack(f"<{len(items)}I", *itertools.accumulate(map(len, items))),
            "n_errors": len(self.errors), "n_warnings": len(self.warnings),
        }

    def layout(self) -> list[object]:
        """ARGV as Redis is sent them: the fixed arguments, the error rows, the warning rows."""
        return [*self.fixed().values(), *self.errors, *self.warnings]
