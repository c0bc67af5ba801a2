"""People's cio_ids: "a" and 12 hex digits of a sequence number Redis gives out (people_seq.lua,
commit.lua), never below Redis's clock in microseconds since 2023-11-14.

The floor is what keeps a cio_id from being given twice when the sequence goes back with Redis: a host
crash rolls its append-only file back a second or two, a Redis restarted without persistence starts
empty, and the results database already holds the people created before. Redis's clock went on
meanwhile, so the floor is past every number given before (unless more than a million people a second
were created, for longer than the rollback). Ids made before this rule ("a" and 7 digits) never equal one.
"""
from __future__ import annotations

import redis

from worker.store.lua import script


def cio_of(number: int) -> str:
    """The cio_id of sequence number ``number`` (as lib.lua's cio_of)."""
    return f"a{number:012x}"


class PeopleSeq:
    """New cio_ids from a people sequence (the directory's, or a dry run's shadow one)."""

    def __init__(self, client: redis.Redis) -> None:
        self._next = client.register_script(script("people_seq.lua"))

    def new(self, seq_key: str, count: int, now_ms: int) -> list[str]:
        """``count`` new cio_ids, in order."""
        if count <= 0:
            return []
        last = int(self._next(keys=[seq_key], args=[count, now_ms]))
        return [cio_of(n) for n in range(last - count + 1, last + 1)]
