"""Campaigns and their triggers: the campaigns by name, scheduled triggers, the deliveries stream.

Commits schedule triggers in a time-ordered set (``keys.TRIGGERS_ZSET``, score =
due ms) or append them to the deliveries stream when they are sent now; beat
moves the due ones across (move_due.lua).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import redis

from worker import keys
from worker.cells import nfc
from worker.events.rules import Campaign
from worker.store.lua import script


class Triggers:
    """Campaign definitions, scheduled triggers and deliveries."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._move_due = client.register_script(script("move_due.lua"))

    def campaigns(self) -> list[Campaign]:
        """Every campaign."""
        return [Campaign(**orjson.loads(v)) for v in self.r.hvals(keys.CAMPAIGNS)]

    def add_campaign(self, campaign: Campaign) -> None:
        """Create or replace a campaign by name."""
        self.r.hset(keys.CAMPAIGNS, campaign.name, orjson.dumps(dataclasses.asdict(campaign)))

    def remove_campaign(self, name: str) -> bool:
        """Delete a campaign; False when there was none of that name (compared composed, as it was stored)."""
        return bool(self.r.hdel(keys.CAMPAIGNS, nfc(name)))

    def drop_scheduled(self, import_id: str) -> int:
        """Remove the triggers an import scheduled that are not sent yet (an import taken back); how many."""
        gone = [member for member, _ in self.r.zscan_iter(keys.TRIGGERS_ZSET, count=1000)
                if orjson.loads(member).get("import") == import_id]
        for at in range(0, len(gone), 1000):
            self.r.zrem(keys.TRIGGERS_ZSET, *gone[at:at + 1000])
        return len(gone)

    def move_due(self, at_ms: int, limit: int = 1000) -> int:
        """Move due scheduled triggers to the deliveries stream; how many moved."""
        return int(self._move_due(keys=[keys.TRIGGERS_ZSET, keys.DELIVERIES_STREAM, keys.OUTBOX], args=[at_ms, limit]))

    def scheduled(self) -> list[tuple[dict[str, Any], float]]:
        """Every scheduled trigger and its due time (ms)."""
        return [(orjson.loads(m), s) for m, s in self.r.zrange(keys.TRIGGERS_ZSET, 0, -1, withscores=True)]

    def deliveries(self) -> list[dict[str, Any]]:
        """Every message in the deliveries stream (for inspection and tests)."""
        return [orjson.loads(f[b"message"]) for _, f in self.r.xrange(keys.DELIVERIES_STREAM)]
