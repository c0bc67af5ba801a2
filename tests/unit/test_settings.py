"""Settings that contradict each other are refused when read, naming the variables."""
from __future__ import annotations

import pytest

from worker.errors import ConfigError
from worker.settings import Settings


def test_a_people_apply_budget_must_leave_room_before_the_chunk_time_limit():
    # a task applying a people (or Segment) import's chunks would be stopped mid-chunk by the soft limit
    with pytest.raises(ConfigError, match="BACKFILL_PEOPLE_APPLY_BUDGET_S"):
        Settings.from_env({"BACKFILL_CHUNK_SOFT_TIME_LIMIT_S": "20", "BACKFILL_CHUNK_TIME_LIMIT_S": "30"})
    settings = Settings.from_env({"BACKFILL_CHUNK_SOFT_TIME_LIMIT_S": "20", "BACKFILL_CHUNK_TIME_LIMIT_S": "30",
                                  "BACKFILL_PEOPLE_APPLY_BUDGET_S": "10"})
    assert settings.people_apply_budget_s == 10
    assert Settings.from_env({}).people_apply_budget_s == 30
