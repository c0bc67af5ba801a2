"""The Redis guard: every process that writes checks, at start and then every ``BACKFILL_REDIS_CHECK_S``,
that Redis evicts nothing and still holds the data it met (decided by :mod:`worker.redis_health`).

One :class:`Guard` per process and Redis (the :class:`~worker.store.Store` holds it). Its first check
meets the data epoch, writing one if there is none (a Redis used for the first time); later checks compare.
A memory policy that evicts raises :class:`~worker.errors.RedisMisconfigured` at every check until it is
fixed (between two checks, from memory: no round trip). Found at a process's first check, the caller says it
(a command's one line, a worker's exit); found later, it is logged once, and once more when fixed. A lost epoch is logged once, counted once per loss across processes (in the new epoch: epoch.lua),
and reported to the caller once, who then does what its role needs (a sink creates its group again).
"""
from __future__ import annotations

import secrets
import threading
import time

import redis
import structlog

from worker import keys
from worker.errors import ImportNotFound, RedisMisconfigured
from worker.logs import get_logger
from worker.redis_health import Epoch, data_lost, eviction_problem, lost_message, persistence_warning, unknown_import
from worker.spec import import_id_ms
from worker.store.client import TRANSIENT
from worker.store.clock import now_ms
from worker.store.lua import script


def _log() -> structlog.stdlib.BoundLogger:
    # (looked up when first needed: importing the store must not read the settings, which may be wrong)
    return get_logger("backfill.redis")


class Guard:
    """This process's checks of its Redis."""

    def __init__(self, client: redis.Redis, every_s: float = 10.0) -> None:
        self.r = client
        #: how often :meth:`check` asks Redis (BACKFILL_REDIS_CHECK_S)
        self.every_s = every_s
        #: the epoch this process met (None until its first check reached Redis)
        self.epoch: Epoch | None = None
        #: Redis lost its data since this process met it (at least once)
        self.lost = False
        #: the memory policy Redis said last ("" until known, or when INFO does not say)
        self.policy = ""
        self._problem: str | None = None
        self._policy_checked = False
        self._due = 0.0
        self._lock = threading.Lock()
        self._lost_script = client.register_script(script("epoch.lua")) if client is not None else None

    def check(self, force: bool = False) -> bool:
        """Check Redis now if a check is due (or ``force``); raises RedisMisconfigured while its memory
        policy evicts, and Redis's own errors (unreachable: a transient failure) as they come. True once
        for each loss of data this process finds (said in the log once, counted once)."""
        with self._lock:
            now = time.monotonic()
            if not force and now < self._due:
                if self._problem:
                    raise RedisMisconfigured(self._problem)
                return False
            self._due = now + self.every_s
            lost = self._check_epoch()  # (first: a loss is found whatever the policy)
            self._check_policy()
            return lost

    def start(self) -> None:
        """The first check of a long-running process that writes: RedisMisconfigured for a Redis that evicts
        keys (refused before anything), a warning for one with no append-only file. A Redis that does not
        answer yet is no reason not to start: the checks run again as the process works."""
        try:
            self.check(force=True)
        except TRANSIENT:
            return
        self.warn_persistence()

    def watch(self) -> bool:
        """:meth:`check`, for a process that only reads (a command waiting): problems are said in the log,
        a memory policy that evicts is not raised. True once for each loss of data found."""
        try:
            return self.check()
        except RedisMisconfigured:
            return False

    def warn_persistence(self) -> None:
        """Log once, at the start of a long-running process, a Redis that keeps no append-only file."""
        try:
            warning = persistence_warning(self.r.info("persistence"))
        except redis.RedisError:
            return
        if warning:
            _log().warning(warning)

    def _check_policy(self) -> None:
        try:
            memory = self.r.info("memory")
        except redis.ResponseError as exc:  # INFO refused (renamed by a provider): nothing to go on
            if self.policy != "?":
                _log().warning("Redis does not answer INFO: its memory policy cannot be checked "
                            "(backfill needs maxmemory-policy noeviction)", error=str(exc))
            self.policy = "?"
            return
        self.policy = str(memory.get("maxmemory_policy", "") or "")
        problem = eviction_problem(memory)
        if problem and problem != self._problem and self._policy_checked:
            _log().error(problem)
        elif self._problem and not problem:
            _log().info("Redis's maxmemory-policy is noeviction now: going on")
        self._problem, self._policy_checked = problem, True
        if problem:
            raise RedisMisconfigured(problem)

    def _check_epoch(self) -> bool:
        if self.epoch is None:
            self.epoch = self._meet()
            return False
        current = Epoch.parse(self.r.get(keys.EPOCH))
        if not data_lost(self.epoch, current):
            self.epoch = current  # (the same epoch; its count of losses may have grown)
            return False
        losses = self.epoch.losses + 1
        fresh = Epoch(secrets.token_hex(8), now_ms(self.r), losses)
        assert self._lost_script is not None  # (a guard without a client never gets here: no epoch met)
        held, counted = self._lost_script(keys=[keys.EPOCH], args=[self.epoch.id, fresh.raw, losses])
        held = held.decode() if isinstance(held, bytes) else held
        if int(counted) == -1:
            return False
        _log().error(lost_message(), epoch_met=self.epoch.raw, epoch_now=held)
        self.epoch = Epoch.parse(held)
        self.lost = True
        return True

    def _meet(self) -> Epoch | None:
        """The epoch Redis holds, written first if there is none (a Redis used for the first time)."""
        fresh = Epoch(secrets.token_hex(8), now_ms(self.r))
        pipe = self.r.pipeline()
        pipe.set(keys.EPOCH, fresh.raw, nx=True)
        pipe.get(keys.EPOCH)
        return Epoch.parse(pipe.execute()[1])

    def unknown(self, import_id: str, retention_s: int) -> ImportNotFound:
        """The error for an import Redis does not know, saying whether Redis lost its data."""
        try:
            self.check(force=True)
        except Exception:  # noqa: BLE001 - the message is made with what is known
            pass
        try:
            epoch = Epoch.parse(self.r.get(keys.EPOCH))
        except redis.RedisError:
            epoch = None
        return ImportNotFound(unknown_import(import_id, made_ms=import_id_ms(import_id), epoch=epoch,
                                             lost_here=self.lost, now_ms=now_ms(self.r), retention_s=retention_s))
