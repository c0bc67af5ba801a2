"""deploy/ agrees with the worker: queue names, grace periods, timeouts, Redis persistence.

Each file is loaded as its tool would read it (YAML, systemd's INI, the Dockerfile's JSON
CMD) and checked against worker/keys.py and worker/settings.py, so a change on one side that
the other misses fails here.
"""
from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import yaml

from worker import keys
from worker.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
QUEUES = f"{keys.QUEUE_IMPORTS},{keys.QUEUE_REPORTS}"


def _queues(command: list[str]) -> str:
    return command[command.index("-Q") + 1]


def _seconds(value: str | int) -> int:
    found = re.fullmatch(r"(\d+)(s|m)?", str(value))
    assert found, value
    return int(found.group(1)) * (60 if found.group(2) == "m" else 1)


def _check_settings(env: dict[str, str], grace_s: int) -> None:
    settings = Settings.from_env(env)  # raises when the timeouts contradict each other
    assert settings.redis_url, "the deployment must name its Redis"
    # SIGTERM lets the chunk in hand finish: the platform must wait longer than a chunk may take
    assert grace_s > settings.chunk_time_limit_s and grace_s > settings.soft_shutdown_s
    assert settings.visibility_timeout_s > settings.chunk_time_limit_s


def test_compose():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    worker = services["worker"]
    assert _queues(worker["command"]) == QUEUES
    _check_settings(worker["environment"], _seconds(worker["stop_grace_period"]))
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--appendfsync everysec" in redis_command
    assert "--maxmemory-policy noeviction" in redis_command
    assert "beat" in services["beat"]["command"] and "deploy" not in services["beat"]  # one beat, never scaled
    assert "flower" in services["flower"]["command"] and services["flower"]["ports"] == ["5555:5555"]
    assert services["metrics"]["command"][:2] == ["backfill", "metrics"]


def _k8s() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in (DEPLOY / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def test_kubernetes():
    docs = _k8s()
    config = docs[("ConfigMap", "backfill")]["data"]
    worker = docs[("Deployment", "backfill-worker")]["spec"]["template"]["spec"]
    assert _queues(worker["containers"][0]["command"]) == QUEUES
    _check_settings(config, worker["terminationGracePeriodSeconds"])
    scaled = docs[("ScaledObject", "backfill-worker")]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "backfill-worker"
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == keys.QUEUE_IMPORTS
    assert trigger["metadata"]["address"].split(":")[0] == config["REDIS_URL"].split("//")[1].split(":")[0]
    assert docs[("Deployment", "backfill-beat")]["spec"]["replicas"] == 1
    flower = docs[("Deployment", "backfill-flower")]["spec"]["template"]["spec"]["containers"][0]
    assert "flower" in flower["command"]
    redis_args = " ".join(docs[("StatefulSet", "redis")]["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "--appendonly yes" in redis_args and "noeviction" in redis_args


def _unit(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / "systemd" / name)
    return parser["Service"]


def test_systemd():
    env = dict(line.split("=", 1) for line in (DEPLOY / "systemd" / "backfill.env").read_text().splitlines()
               if line and not line.startswith("#"))
    worker = _unit("backfill-worker@.service")
    assert _queues(worker["ExecStart"].split()) == QUEUES
    assert worker["KillSignal"] == "SIGTERM" and worker["Restart"] == "always"
    _check_settings(env, _seconds(worker["TimeoutStopSec"]))
    assert "beat" in _unit("backfill-beat.service")["ExecStart"]
    assert "metrics" in _unit("backfill-metrics.service")["ExecStart"]
    assert "flower" in _unit("backfill-flower.service")["ExecStart"]


def test_dockerfile_default_command_is_a_worker_on_both_queues():
    cmd = next(line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    assert _queues(json.loads(cmd[4:])) == QUEUES
