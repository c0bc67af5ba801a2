"""What backfill needs of Redis, decided from INFO fields and the data epoch (worker/redis_health.py)."""
from __future__ import annotations

import pytest

from worker.redis_health import Epoch, data_lost, eviction_problem, persistence_warning, unknown_import
from worker.spec import import_id_ms, new_import_id


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "allkeys-lfu", "volatile-ttl", "allkeys-random"])
def test_every_policy_that_evicts_is_refused_in_one_line_saying_how_to_fix_it(policy):
    problem = eviction_problem({"maxmemory_policy": policy, "used_memory": 1})
    assert problem is not None and "\n" not in problem
    assert policy in problem and "CONFIG SET maxmemory-policy noeviction" in problem


@pytest.mark.parametrize("memory", [{"maxmemory_policy": "noeviction"}, {}, {"maxmemory_policy": ""}])
def test_noeviction_or_a_redis_that_does_not_say_goes_on(memory):
    assert eviction_problem(memory) is None


def test_a_redis_without_an_append_only_file_is_warned_of():
    assert "appendonly yes" in persistence_warning({"aof_enabled": 0})
    assert persistence_warning({"aof_enabled": 1}) is None


def test_an_epoch_reads_back_as_written_and_only_its_id_says_whether_data_was_lost():
    met = Epoch("abc", 1_700_000_000_000, 2)
    assert Epoch.parse(met.raw.encode()) == met
    assert Epoch.parse(None) is None and Epoch.parse(b"junk") is None and Epoch.parse("a:b:c") is None
    assert not data_lost(met, Epoch("abc", 1_700_000_000_000, 3))  # the same data, one more loss counted
    assert data_lost(met, None) and data_lost(met, Epoch("def", 1_700_000_000_001, 3))
    assert not data_lost(None, None)  # a process that met nothing yet cannot tell


def test_an_unknown_import_says_whether_redis_lost_it():
    import_id = new_import_id()
    made = import_id_ms(import_id)
    assert made is not None and import_id_ms("not-an-id") is None
    later = Epoch("e", made + 60_000)
    said = unknown_import(import_id, made_ms=made, epoch=later, lost_here=False, now_ms=made + 120_000,
                          retention_s=86_400)
    assert said.startswith(f"import {import_id} is unknown to Redis: lost or expired; Redis's data begins at ")
    assert said.endswith("after this import was made: Redis lost it")
    # past its retention, or made after the data began: expired, or never known; nothing more is claimed
    for epoch, now in ((later, made + 2 * 86_400_000), (Epoch("e", made - 1), made + 1)):
        assert unknown_import(import_id, made_ms=made, epoch=epoch, lost_here=False, now_ms=now,
                              retention_s=86_400) == f"import {import_id} is unknown to Redis: lost or expired"
    assert "Redis lost its data meanwhile" in unknown_import(import_id, made_ms=None, epoch=None, lost_here=True,
                                                             now_ms=0, retention_s=1)
