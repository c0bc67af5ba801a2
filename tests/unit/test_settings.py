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


def test_a_backfill_variable_that_is_no_setting_is_refused_naming_the_closest():
    # the README's table once abbreviated BACKFILL_CHUNK_TIME_LIMIT_S as _TIME_LIMIT_S: the name it led
    # to was silently ignored, the limit left at its default
    with pytest.raises(ConfigError, match=r"BACKFILL_TIME_LIMIT_S is not a setting \(did you mean "
                                          r"BACKFILL_CHUNK_TIME_LIMIT_S\?\)"):
        Settings.from_env({"BACKFILL_TIME_LIMIT_S": "60"})
    with pytest.raises(ConfigError, match=r"BACKFILL_REDIS_URL is not a setting \(did you mean REDIS_URL\?\)"):
        Settings.from_env({"BACKFILL_REDIS_URL": "redis://h:6379/0"})
    with pytest.raises(ConfigError) as refused:  # every one in one error; a name like none: no guess
        Settings.from_env({"BACKFILL_CHUNKROWS": "10", "BACKFILL_XYZ": "1", "BACKFILL_CHUNK_ROWS": "10"})
    assert str(refused.value).startswith("BACKFILL_CHUNKROWS is not a setting (did you mean BACKFILL_CHUNK_ROWS?); "
                                         "BACKFILL_XYZ is not a setting (")
    with pytest.raises(ConfigError, match="BACKFILL_TRIGGER_WINDOW_S is no longer a setting: .*--trigger-window"):
        Settings.from_env({"BACKFILL_TRIGGER_WINDOW_S": "0"})


def test_other_variables_are_left_alone():
    settings = Settings.from_env({"BACKFILL_TEST_DATABASE_URL": "postgresql://h/db",  # read by the tests
                                  "CHAOS_SLOW_MS": "50", "PATH": "/bin", "backfill_home": "/x"})
    assert settings == Settings.from_env({})


def test_a_process_default_yields_to_the_environment_and_travels_to_a_child():
    assert Settings.from_env({}, defaults={"embedded": True}).embedded is True
    assert Settings.from_env({"BACKFILL_EMBEDDED": "0"}, defaults={"embedded": True}).embedded is False
    chosen = Settings.from_env({}, defaults={"embedded": True, "worker_sink": True, "chunk_rows": 7})
    assert chosen.as_environ("embedded", "worker_sink", "chunk_rows", "redis_url") == {
        "BACKFILL_EMBEDDED": "1", "BACKFILL_WORKER_SINK": "1", "BACKFILL_CHUNK_ROWS": "7", "REDIS_URL": ""}
    again = Settings.from_env(chosen.as_environ("embedded", "worker_sink", "chunk_rows"))
    assert (again.embedded, again.worker_sink, again.chunk_rows) == (True, True, 7)


def test_a_log_level_logging_does_not_know_is_refused():
    with pytest.raises(ConfigError, match="BACKFILL_LOG_LEVEL"):
        Settings.from_env({"BACKFILL_LOG_LEVEL": "VERBOSE"})
    assert Settings.from_env({"BACKFILL_LOG_LEVEL": "warning"}).log_level == "warning"


def test_the_command_line_chooses_its_settings_without_changing_the_environment(monkeypatch):
    """`backfill` uses the embedded Redis by default: it says so to its settings, not to os.environ (which
    its child processes and a script calling it in-process would inherit)."""
    import os

    import click
    import pytest
    from click.testing import CliRunner

    from producers.cli import main
    from worker.settings import get_settings, reset_settings

    monkeypatch.delenv("BACKFILL_EMBEDDED", raising=False)
    before = dict(os.environ)
    try:
        ctx = main.make_context("backfill", ["events", "--limit", "0"])
        with pytest.raises(click.UsageError):  # refused as bad usage, after the settings were read
            main.invoke(ctx)
        assert ctx.obj.settings.embedded is True  # the command's own settings, passed down
        assert dict(os.environ) == before
        assert get_settings().embedded is False  # nothing process-wide was steered
        done = CliRunner().invoke(main, ["events"], env={"BACKFILL_TIME_LIMIT_S": "60"})
        assert done.exit_code == 1 and done.output.strip() == (
            "Error: BACKFILL_TIME_LIMIT_S is not a setting (did you mean BACKFILL_CHUNK_TIME_LIMIT_S?) "
            "(the README's Settings table lists every setting)")
    finally:
        reset_settings()


def test_the_deployment_files_set_only_settings():
    """A deployment setting a name that is no setting would now stop at its start: none does."""
    import re
    from pathlib import Path

    from worker.settings import env_names

    root = Path(__file__).resolve().parents[2]
    files = [p for folder in ("deploy", "bench", "docs", ".ci") for p in (root / folder).rglob("*") if p.is_file()]
    named = {name for path in [*files, root / "Makefile"]
             for name in re.findall(r"\bBACKFILL_[A-Z][A-Z0-9_]*", path.read_text(errors="replace"))}
    assert len(named) > 10 and named - set(env_names()) <= {"BACKFILL_TEST_DATABASE_URL"}  # (read by the tests)
    Settings.from_env({"BACKFILL_TEST_DATABASE_URL": "postgresql://h/db"})
