"""commit.lua's KEYS and ARGV, named: the one place that lays them out.

:class:`CommitKeys` holds the script's keys (one field each, in KEYS order) and :class:`CommitArgs` its
arguments (:meth:`CommitArgs.fixed` names the fixed ones in ARGV order, :meth:`CommitArgs.sections` the
variable-length sections); the two ``layout`` methods turn them into the lists Redis is sent.
commit.lua binds every key and fixed argument by these names, in this order (KEY_NAMES, ARGV_NAMES: a unit
test compares them), and finds each section where this module says it starts (the ``*_at`` arguments),
instead of counting its way there. Pure: no I/O.
"""
from __future__ import annotations

import dataclasses
import re
import struct
from collections import Counter

import orjson

from worker import keys
from worker.events import rules
from worker.events.chunk import ID_RECORD, ChunkOutcome, import_tag

#: A counter outcome's code in a chunk's packed outcomes (:func:`_pack_events`): its place in
#: ``rules.OUTCOMES``, from 1 (commit.lua's OUTCOME_NAMES, in the same order); 0 is an event with decisions.
OUTCOME_CODES = {name: code for code, name in enumerate(rules.OUTCOMES, 1)}
#: Where the sections start in ARGV: after the fixed arguments (:meth:`CommitArgs.fixed`).
SECTIONS = ("errors", "warnings", "ids", "create", "events", "anonymous", "campaigns")
#: One action of an event's decisions (worker/events/chunk.py's trigger_outcome): its kind and its campaign's
#: name as the JSON holds it (escaped: a JSON string is its quote, then runs of anything but a quote or a
#: backslash and escapes, then its quote), found in the text of all the chunk's decisions at once.
_STRING = rb'[^"\\]*(?:\\.[^"\\]*)*'
_ACTION = re.compile(rb'\["([a-z_]+)",-?\d+,\{"delivery_id":"' + _STRING + rb'","campaign":"(' + _STRING + rb')"')


@dataclasses.dataclass(frozen=True, slots=True)
class CommitKeys:
    """commit.lua's KEYS, in order (the script's header says what each holds)."""

    import_hash: str
    done: str
    chunk_rows: str
    errors: str
    warnings: str
    outbox: str
    triggers: str
    deliveries: str
    people_index: str
    people_seq: str
    pending: str
    metrics: str
    problem_runs: str
    event_ids: str
    anonymous_links: str
    undo_marks: str
    duplicates: str
    traced: str

    @classmethod
    def of(cls, import_id: str, chunk: int, identifier: str) -> CommitKeys:
        """The keys of committing ``chunk`` of import ``import_id`` (people matched by ``identifier``)."""
        return cls(keys.import_hash(import_id), keys.import_done(import_id), keys.import_chunk(import_id, chunk),
                   keys.import_errors(import_id), keys.import_warnings(import_id), keys.OUTBOX,
                   keys.TRIGGERS_ZSET, keys.DELIVERIES_STREAM, keys.people_index(identifier), keys.PEOPLE_SEQ,
                   keys.PENDING, keys.METRICS, keys.import_problem_runs(import_id), keys.import_event_ids(import_id),
                   keys.ANONYMOUS_LINKS, keys.UNDO_MARKS, keys.import_duplicates(import_id), keys.TRACED)

    def layout(self) -> list[str]:
        """KEYS as Redis is sent them."""
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


@dataclasses.dataclass(slots=True)
class CommitArgs:
    """commit.lua's ARGV: the fixed arguments (:meth:`fixed`), then the sections (``outcome``'s errors,
    warnings, event-id records, people to create and events, and the held anonymous events), each found at the
    position its ``*_at`` argument gives."""

    #: the step's done-set member: the chunk's number ("<n>e" for a Segment chunk's events step)
    member: str
    dry_run: bool
    now_ms: int
    #: expiry hour of the marks written now
    expiry_h: int
    shard_bits: int
    import_id: str
    identifier: str
    #: the chunk's state (lib.lua's chunk_state)
    state: str
    problem_ttl_s: int
    #: TTL of the import's event-id memory
    ids_ttl_s: int
    max_problem_rows: int
    #: the people the chunk's lookup found, a JSON object (person key -> cio_id)
    known: bytes
    outcome: ChunkOutcome
    anonymous_ttl_s: int = 0

    @property
    def now_h(self) -> int:
        """Now, in hours since the epoch (marks hold their expiry hour)."""
        return self.now_ms // 3_600_000

    def sections(self) -> dict[str, list[object]]:
        """The variable-length sections, by name, in ARGV order; each starts with its count."""
        out = self.outcome
        create: list[object] = [len(out.create)]
        for key, value in out.create:
            create += (key, value, orjson.dumps(value))
        anonymous: list[object] = [len(out.anonymous), keys.ANONYMOUS_PREFIX, self.anonymous_ttl_s]
        for held in out.anonymous:
            anonymous += held
        return {"errors": [len(out.errors), *out.errors], "warnings": [len(out.warnings), *out.warnings],
                "ids": [len(out.ids) // ID_RECORD.size, bytes(out.ids)], "create": create,
                "events": _pack_events(out), "anonymous": anonymous, "campaigns": by_campaign(out.outcomes)}

    def fixed(self, starts: list[int]) -> dict[str, object]:
        """The fixed arguments by name, in ARGV order (commit.lua's ARGV_NAMES); ``starts``: where each
        section starts (1-based, as Lua counts)."""
        return {
            "member": self.member, "dry_run": "1" if self.dry_run else "0", "now_ms": self.now_ms,
            "now_h": self.now_h, "expiry_h": self.expiry_h, "dedupe_prefix": keys.DEDUPE_PREFIX,
            "shard_bits": self.shard_bits, "person_prefix": keys.person(""), "identifier": self.identifier,
            "import_id": self.import_id, "id_tag": import_tag(self.import_id), "problem_ttl_s": self.problem_ttl_s,
            "shadow_prefix": keys.import_shadow(self.import_id) if self.dry_run else "", "state": self.state,
            "ids_ttl_s": self.ids_ttl_s, "known": self.known, "max_problem_rows": self.max_problem_rows,
            **{f"{name}_at": at for name, at in zip(SECTIONS, starts)},
        }

    def layout(self) -> list[object]:
        """ARGV as Redis is sent them: the fixed arguments, then the sections, each where its ``*_at`` says."""
        sections = self.sections()
        starts, at = [], len(self.fixed([0] * len(SECTIONS))) + 1
        for name in SECTIONS:
            starts.append(at)
            at += len(sections[name])
        return [*self.fixed(starts).values(), *(arg for name in SECTIONS for arg in sections[name])]


def by_campaign(outcomes: list[bytes | str]) -> list[object]:
    """The chunk's trigger decisions counted by campaign and kind: n, then n pairs (``<kind>:<campaign name as
    its JSON holds it>``, count), a handful a chunk. commit.lua takes back a duplicate's and adds the rest to
    the import's ``tc:`` counters (the report's ``triggers_by_campaign``), in the commit that counts the
    by-outcome ones. Counter outcomes (an event with no decisions) name no campaign: not counted here."""
    # (one search over the decisions joined: ~0.6 us a decision, half of one search an event)
    counts = Counter(_ACTION.findall(b"\n".join([o for o in outcomes if not isinstance(o, str)])))
    return [len(counts), *(arg for (kind, name), n in sorted(counts.items()) for arg in (kind + b":" + name, n))]


def mark_records(packed_keys: bytes | bytearray) -> bytes:
    """Each 10-byte dedupe key with the shards' prefix in front (``keys.DEDUPE_PREFIX`` + key, one record an
    event, NO_KEY's too): a record's first bytes name the key's shard (its first two bytes after the prefix:
    lib.lua's dedupe_slot; with more shard bits the script adds the third's) and its last 8 bytes are the
    mark's field, so the script's loop over the events only cuts two strings out of it. Made with one join
    (~0.07 us an event here; a comprehension over the keys costs 0.2-0.5)."""
    count = len(packed_keys) // 10
    if count == 0:
        return b""
    prefix = keys.DEDUPE_PREFIX.encode()
    return prefix + prefix.join(struct.unpack("10s" * count, packed_keys))


def _pack_events(outcome: ChunkOutcome) -> list[object]:
    """The events packed (one argument per event would cost more to send than to commit): count, mark
    records, dedupe keys, JSONs, where each JSON ends, then the shared outcome; or "", one byte an event (its
    counter outcome's :data:`OUTCOME_CODES`, or 0 for an event with decisions) and each event's decisions."""
    outcomes = outcome.outcomes
    packed: list[object] = [len(outcomes), mark_records(outcome.keys), bytes(outcome.keys), bytes(outcome.bodies),
                            struct.pack(f"<{len(outcome.ends)}I", *outcome.ends)]
    first = outcomes[0] if outcomes else "passive"
    if isinstance(first, str) and outcomes.count(first) == len(outcomes):
        packed.append(first)  # the usual case: every event has the same counter outcome
    else:
        # A triggering import: most events trigger nothing (a counter outcome), and an argument each cost
        # more to send and to take in than the script's work on them (bench/README.md).
        codes = OUTCOME_CODES
        packed += ["", bytes([codes[o] if isinstance(o, str) else 0 for o in outcomes]),
                   *[o for o in outcomes if not isinstance(o, str)]]
    return packed
