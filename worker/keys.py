"""Every Redis key name backfill uses, in one place.

All keys start with ``bf:`` so an operator can find (and size) them with
``SCAN MATCH bf:*``. Celery's own keys (the queue lists ``imports`` and
``reports``, ``unacked``...) are named by kombu, not here.
"""
from __future__ import annotations

PREFIX = "bf:"

#: Celery queue names (kombu keeps each as a Redis list of that name).
QUEUE_IMPORTS = "imports"
QUEUE_REPORTS = "reports"

#: The outbox: a stream of what the results database must hold, appended in the same atomic step as
#: the change it records and drained by the sinks (worker/sink/). Entries: a committed events chunk
#: (fields import, chunk, count, events: event JSONs joined by "\n", decisions: trigger decisions,
#: people: people it created), a committed people chunk (import, chunk, people: each person's new
#: state), scheduled triggers sent (sent, at), a finished import (import, record).
OUTBOX = PREFIX + "outbox"
#: The dead letters: outbox entries the results database refused for what they hold (a NUL in a text, a
#: number out of range), set aside so they block nothing else. Each keeps the entry's own fields plus
#: dead_entry (its outbox id), dead_error (the database's message) and dead_at (ms); ``backfill sink
#: --retry-dead`` writes them again and removes those the database now takes.
SINK_DEAD = PREFIX + "outbox:dead"
#: The results store every sink of this Redis writes: orjson {store_id, where, at_ms}, set by the first
#: sink or ``backfill db upgrade`` (SET NX); a sink whose database has another store id refuses to start
#: (worker/sink/registry.py). ``backfill db register --replace`` points it at another database.
RESULTS_STORE = PREFIX + "results:store"
#: The data epoch: "<random id>:<ms>:<losses>" written (SET NX) by the first process that meets this
#: Redis's data. Every process remembers the epoch it met; finding the key gone or another id later means
#: Redis lost its data (restarted without persistence, or flushed) since (worker/store/guard.py). The
#: losses found so far are carried from epoch to epoch (the metric backfill_redis_data_lost_total).
EPOCH = PREFIX + "epoch"
#: Sorted set of sinks by their last turn (ms): the sinks alive are those seen lately.
SINKS = PREFIX + "sinks"
#: A sink not seen for this long is not counted as running (it turns at least every few seconds).
SINK_ALIVE_MS = 60_000
#: The consumer group of the sinks that write the outbox to the results store.
SINK_GROUP = "sink"
#: Time-ordered set of scheduled triggers: score = due time (ms), member = orjson.
TRIGGERS_ZSET = PREFIX + "triggers"
#: Stream of messages to send now, consumed by the messaging side.
DELIVERIES_STREAM = PREFIX + "deliveries"
#: Hash: campaign name -> orjson {name, event, delay_s}.
CAMPAIGNS = PREFIX + "campaigns"
#: Sorted set of import ids by creation time (ms), for ``backfill status``.
IMPORTS_INDEX = PREFIX + "imports"
#: Set of the imports taken back (``backfill undo``): sinks drop their outbox entries instead of storing them.
UNDONE = PREFIX + "undone"
#: The lease of the one undo running (value: the import it takes back, with a TTL the undo renews): a
#: second undo is refused while it is held.
UNDO_LEASE = PREFIX + "undo"
#: Set (with a TTL the undo renews) while an undo changes the dedupe memory: events commits wait for it
#: (commit.lua), so no commit counts a duplicate of a mark the undo is taking away.
UNDO_MARKS = PREFIX + "undo:marks"
#: Sorted set of the events imports that counted duplicates (see :func:`import_duplicates`): score = ms
#: of the latest such commit. An undo reads those that counted some since its import's first commit.
TRACED = PREFIX + "traced"
#: Hash: API key id -> orjson {id, name, scope, sha256 of the whole key, created_ms, revoked_ms}
#: (``backfill keys``; the key itself is never stored).
API_KEYS = PREFIX + "apikeys"
#: Prefix of a console sign-in (``backfill serve``'s web console): + the SHA-256 of the token its cookie
#: carries (so the keyspace never holds a usable token); orjson {key_id, csrf, created_ms}, with a TTL of
#: BACKFILL_CONSOLE_SESSION_S. Signing out deletes it; a revoked key's sign-ins end at their next request.
CONSOLE_SESSION_PREFIX = PREFIX + "console:session:"
#: Prefix of the count of refused console sign-ins from one client address (+ the address), with a TTL
#: of BACKFILL_CONSOLE_SIGNIN_WINDOW_S from the first: at BACKFILL_CONSOLE_SIGNIN_FAILURES the sign-in
#: form answers 429 until it expires.
CONSOLE_SIGNIN_FAILURES_PREFIX = PREFIX + "console:signin_failures:"

#: People directory: identifier -> cio_id, and one record per person (a string: their state as JSON).
PEOPLE_BY_ID = PREFIX + "people:by_id"
PEOPLE_BY_EMAIL = PREFIX + "people:by_email"
PEOPLE_SEQ = PREFIX + "people:seq"
#: Sorted set of work that must still happen: member ``<import id>/<chunk>`` for a stored chunk not yet
#: committed, ``<import id>/report`` for a report not yet written; score = ms of its last sign of life
#: (queued, started). The sweeper sends again what went quiet (a lost message, a dead worker).
PENDING = PREFIX + "pending"
#: Sorted set of imports whose producer is still queueing chunks: score = its last heartbeat (ms).
#: The sweeper ends imports whose producer went silent (killed, out of memory) as "interrupted".
PRODUCING = PREFIX + "producing"
#: Sorted set of imports whose chunks are all queued (their total is known) and whose report may not be
#: written yet: score = ms when last checked. The sweeper fails the chunks of these that Redis lost
#: (neither committed, pending nor stored: a host crash rolled Redis back), so they end instead of hanging.
CLOSING = PREFIX + "closing"
#: Hash of counters across all imports, for the metrics endpoint: rows_imported, rows_duplicate,
#: rows_error (real runs only), imports_created, imports_<final status>.
METRICS = PREFIX + "metrics"
#: Hash: chunk processing time histogram, field = bucket upper bound in seconds (or "+Inf"),
#: plus "sum" and "count" (see worker/store/metrics.py).
CHUNK_SECONDS = PREFIX + "metrics:chunk_seconds"
#: Hash: worker name -> "<skew s> <ms>": how far that worker's clock was ahead of Redis's (negative: behind)
#: when it last said, by Redis's clock (worker/ops/skew.py); read by the metrics endpoint.
CLOCKS = PREFIX + "clocks"
#: The pending members of an import's report, and of the notification that follows it.
REPORT = "report"
NOTIFY = "notify"
#: Hash: anonymous id -> the userId it was tied to (by an identify or alias carrying it). A Segment
#: event with only that anonymousId is then the person's; with an untied one it is held.
ANONYMOUS_LINKS = PREFIX + "anon:links"
#: An anonymous id's held events are the list ``ANONYMOUS_PREFIX + <anonymous id>`` (orjson each), kept
#: until an identify or alias ties the id to a person, or until they expire.
ANONYMOUS_PREFIX = PREFIX + "anon:events:"
#: Dedupe shards are ``DEDUPE_PREFIX + <the key's first 2 bytes>``, and with BACKFILL_DEDUPE_SHARD_BITS
#: above 16 a third byte: the next (bits - 16) bits of the key (worker/store/events.py ``_slot``, lib.lua).
#: A mark's value is its expiry hour, and for an event id 16 bytes more: the tag of the import that used
#: it first and what that import remembers of it (lib.lua's mark_hour, commit.lua).
DEDUPE_PREFIX = PREFIX + "dd:"


def person(cio_id: str) -> str:
    """One person's record: their identifiers and attributes, one JSON object (a hash of fields before)."""
    return f"{PREFIX}person:{cio_id}"


def people_index(identifier: str) -> str:
    """The index hash for an identifier kind: ``id`` or ``email``."""
    return PEOPLE_BY_EMAIL if identifier == "email" else PEOPLE_BY_ID


def import_hash(import_id: str) -> str:
    """Hash: the import's spec, status, counters and report."""
    return f"{PREFIX}imp:{import_id}"


def import_done(import_id: str) -> str:
    """Set of chunk numbers already committed: the per-chunk done-markers."""
    return f"{PREFIX}imp:{import_id}:done"


def import_chunk(import_id: str, chunk: int) -> str:
    """A chunk's rows (orjson), written by the producer, deleted by the chunk's commit."""
    return f"{import_chunk_prefix(import_id)}{chunk}"


def pending_member(import_id: str, part: int | str) -> str:
    """The :data:`PENDING` member of a chunk (its number) or of the report (:data:`REPORT`)."""
    return f"{import_id}/{part}"


def import_tries(import_id: str) -> str:
    """Hash: ``<chunk>:<token>`` of each delivery in flight; one left behind is a delivery whose worker died."""
    return f"{PREFIX}imp:{import_id}:tries"


def import_errors(import_id: str) -> str:
    """List of error rows (orjson), rendered as the errors CSV."""
    return f"{PREFIX}imp:{import_id}:errors"


def import_problem_runs(import_id: str) -> str:
    """Hash: ``e<chunk>``/``w<chunk>`` -> "start:count" of that chunk's rows in the errors/warnings list."""
    return f"{PREFIX}imp:{import_id}:runs"


def import_warnings(import_id: str) -> str:
    """List of warning rows (orjson), rendered as the warnings CSV."""
    return f"{PREFIX}imp:{import_id}:warnings"


def import_shadow(import_id: str) -> str:
    """Prefix of a dry run's shadow keys (the dedupe marks and people it would have written)."""
    return f"{PREFIX}imp:{import_id}:dry:"


def import_event_ids(import_id: str) -> str:
    """Hash: an events import's memory of the event ids whose dedupe marks another import wrote (a
    re-import), and of every id in a dry run (digest -> content digest and first row), for the warning on
    an id reused for a different event; deleted when the report is written. An id whose mark the import
    wrote is remembered in the mark (commit.lua)."""
    return f"{PREFIX}imp:{import_id}:ids"


def import_duplicates(import_id: str) -> str:
    """Hash: what an import's chunks counted as duplicates (field = chunk; value = ``<ms>:<expiry hour>:``,
    then their 10-byte dedupe keys, then their rows as 4 bytes each), so an undo of the import that held
    those events leaves them to this one; kept for the retention."""
    return f"{PREFIX}imp:{import_id}:dups"


#: The keys under a dry run's shadow prefix that finalize deletes (dedupe marks, people created by
#: events, the shadow directory's indexes and sequence); shadow person records expire by themselves.
SHADOW_PARTS = ("dd", "people", "by_id", "by_email", "seq")


def import_seen(import_id: str) -> str:
    """Hash: a people import's memory of identifiers on earlier rows (for its file-level warnings)."""
    return f"{PREFIX}imp:{import_id}:seen"


def import_apply_lease(import_id: str) -> str:
    """Lease of the one worker applying a people import's chunks, in file order."""
    return f"{PREFIX}imp:{import_id}:lease"


def import_chunk_prefix(import_id: str) -> str:
    """Prefix of an import's chunk keys (Lua builds ``prefix .. n``)."""
    return f"{PREFIX}imp:{import_id}:chunk:"


def import_finalized(import_id: str) -> str:
    """Set once, by the one finalize_import run that writes the report."""
    return f"{PREFIX}imp:{import_id}:finalized"


def import_keys(import_id: str) -> list[str]:
    """Every key of one import that expires with its retention: hash and marker first (finalize.lua)."""
    return [
        import_hash(import_id),
        import_finalized(import_id),
        import_done(import_id),
        import_errors(import_id),
        import_warnings(import_id),
        import_tries(import_id),
        import_problem_runs(import_id),
    ]
