"""deploy/ agrees with the worker: queue names, grace periods, timeouts, Redis persistence, metrics.

Each file is loaded as its tool would read it (YAML, systemd's INI, the Dockerfile's JSON
CMD, Grafana's JSON model, Prometheus' rule file) and checked against worker/keys.py,
worker/settings.py and the metrics the endpoint really exposes (worker/ops/metrics.py), so a
change on one side that the other misses fails here. Where promtool is installed (Debian's
`prometheus` package), the alert rules are also compiled and unit-tested with it.
"""
from __future__ import annotations

import collections
import configparser
import copy
import dataclasses
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from worker import keys
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
QUEUES = f"{keys.QUEUE_IMPORTS},{keys.QUEUE_REPORTS}"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
PROBED = {"backfill-worker", "backfill-metrics", "backfill-flower", "backfill-sink", "postgres", "backfill-api"}  # workloads that must have probes


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


def _check_image(image: str) -> None:
    """A tag, never `latest`; backfill's own image is tagged with pyproject.toml's version."""
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag and tag, f"{image}: no tag (that is `latest`)"
    assert tag != "latest", f"{image}: pin a version"
    if name.rsplit("/", 1)[-1] == "backfill":
        assert tag == VERSION, f"{image}: backfill's image is tagged {VERSION} (pyproject.toml)"


def _dockerfile_uid() -> int:
    user = next(line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("USER "))
    found = re.fullmatch(r"USER (\d+)(?::(\d+))?", user.strip())
    assert found, f"{user!r}: a numeric USER lets runAsNonRoot check it"
    return int(found.group(1))


# --- compose -------------------------------------------------------------------------------------


def _published(port: str | int | dict) -> tuple[str, str]:
    """(host address, container port) of one `ports:` entry."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), str(port["target"])
    parts = str(port).rsplit(":", 2)
    return (parts[0] if len(parts) == 3 else ""), parts[-1].split("/")[0]


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
    assert services["metrics"]["command"][:2] == ["backfill", "metrics"]
    # the results database: its schema first, then the sinks (the workers run none: celery, not backfill worker)
    assert services["migrate"]["command"] == ["backfill", "db", "upgrade"]
    assert services["sink"]["command"][:2] == ["backfill", "sink"]
    assert services["sink"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert "postgres:5432" in worker["environment"]["DATABASE_URL"] and "ports" not in services["postgres"]
    for name, service in services.items():
        _check_image(service["image"])
        # Flower, metrics and Redis have no auth (Flower's is basic): the host publishes them locally only
        for port in service.get("ports", []):
            assert _published(port)[0] == "127.0.0.1", f"{name} publishes {port} on every interface"
    assert {_published(p)[1] for p in services["flower"]["ports"]} == {"5555"}
    assert {_published(p)[1] for p in services["metrics"]["ports"]} == {"9808"}
    # the HTTP API: backfill serve, published locally (TLS is a proxy's), its uploads on the writable /tmp
    api = services["api"]
    assert api["command"][:2] == ["backfill", "serve"] and {_published(p)[1] for p in api["ports"]} == {"8080"}
    assert api["environment"]["BACKFILL_API_UPLOAD_DIR"].startswith("/tmp/") and "/readyz" in " ".join(
        api["healthcheck"]["test"])
    _check_settings(api["environment"], 1000)
    # Flower asks for a password, and will not start without one (an empty one would let anyone in)
    flower = services["flower"]
    flower_command = " ".join(flower["command"])
    assert "celery -A worker.app flower" in flower_command and "--port=5555" in flower_command
    assert "FLOWER_BASIC_AUTH" in flower["environment"] and 'test -n "$$FLOWER_BASIC_AUTH"' in flower_command
    _check_settings(flower["environment"], 1000)  # the merge kept the shared settings


# --- Kubernetes ----------------------------------------------------------------------------------


def _k8s() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in (DEPLOY / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in docs, f"{key} defined twice"
            docs[key] = doc
    return docs


def _workloads(docs: dict) -> dict[str, dict]:
    return {name: doc["spec"]["template"]["spec"] for (kind, name), doc in docs.items()
            if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job")}


def _container_env(docs: dict, container: dict) -> dict[str, str]:
    """The container's environment as KEDA resolves it: envFrom ConfigMaps, then literal `env` values."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(docs[("ConfigMap", source["configMapRef"]["name"])]["data"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def _host_port(url_or_address: str) -> tuple[str, int]:
    found = re.fullmatch(r"(?:rediss?://)?(?:[^@/]*@)?([^:/]+):(\d+)(?:/\d*)?", url_or_address)
    assert found, url_or_address
    return found.group(1), int(found.group(2))


def test_kubernetes():
    docs = _k8s()
    config = docs[("ConfigMap", "backfill")]["data"]
    worker = docs[("Deployment", "backfill-worker")]["spec"]["template"]["spec"]
    assert _queues(worker["containers"][0]["command"]) == QUEUES
    _check_settings(config, worker["terminationGracePeriodSeconds"])
    assert docs[("Deployment", "backfill-beat")]["spec"]["replicas"] == 1
    flower = docs[("Deployment", "backfill-flower")]["spec"]["template"]["spec"]["containers"][0]
    assert "celery -A worker.app flower" in " ".join(flower["command"])
    assert 'test -n "$FLOWER_BASIC_AUTH"' in " ".join(flower["command"])
    [auth] = [e for e in flower["env"] if e["name"] == "FLOWER_BASIC_AUTH"]
    assert "secretKeyRef" in auth["valueFrom"] and not auth["valueFrom"]["secretKeyRef"].get("optional")
    redis = docs[("StatefulSet", "redis")]["spec"]["template"]["spec"]["containers"][0]
    redis_args = " ".join(redis["command"])
    assert "--appendonly yes" in redis_args and "noeviction" in redis_args
    # noeviction refuses writes at maxmemory: below the container's limit, or the kernel kills Redis first
    maxmemory = re.search(r"--maxmemory (\d+)([kmg]b)\b", redis_args)
    assert maxmemory, "set --maxmemory below the container's memory limit"
    limit = re.fullmatch(r"(\d+)([KMG]i)", redis["resources"]["limits"]["memory"])
    to_bytes = {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    assert int(maxmemory.group(1)) * to_bytes[maxmemory.group(2)] < 0.9 * int(limit.group(1)) * to_bytes[limit.group(2)]
    # one namespace for all (KEDA's Redis address names it)
    namespaces = {doc["metadata"].get("namespace") for (kind, _), doc in docs.items() if kind != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces, namespaces


def test_keda_reaches_this_redis_and_scales_on_imports():
    docs = _k8s()
    scaled = docs[("ScaledObject", "backfill-worker")]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "backfill-worker"
    [trigger] = scaled["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "redis" and meta["listName"] == keys.QUEUE_IMPORTS
    # The operator connects from its own namespace: the address must name this namespace's Redis Service.
    if "addressFromEnv" in meta:
        worker = docs[("Deployment", "backfill-worker")]["spec"]["template"]["spec"]
        source = scaled["scaleTargetRef"].get("envSourceContainerName", worker["containers"][0]["name"])
        [container] = [c for c in worker["containers"] if c["name"] == source]
        address = _container_env(docs, container)[meta["addressFromEnv"]]
    else:
        address = meta["address"]
    host, port = _host_port(address)
    redis_service = docs[("Service", "redis")]
    namespace = redis_service["metadata"]["namespace"]
    assert host == f"redis.{namespace}.svc.cluster.local", f"{address}: not this namespace's Redis, fully qualified"
    assert port == redis_service["spec"]["ports"][0]["port"]
    # ...and the same Redis the workers use
    assert _host_port(docs[("ConfigMap", "backfill")]["data"]["REDIS_URL"]) == (host, port)
    # Beat's ticks (sweeper, trigger mover) and reports go to the `reports` queue, which KEDA does not
    # watch: at least one worker always (idleReplicaCount too). cooldownPeriod only acts on the way to
    # zero (or to idleReplicaCount), so it would only suggest a delay that is not there.
    assert scaled.get("minReplicaCount", 0) >= 1 and scaled.get("idleReplicaCount", 1) >= 1
    assert "cooldownPeriod" not in scaled, "cooldownPeriod does nothing unless minReplicaCount is 0"


def _merged_security(pod: dict, container: dict) -> dict:
    return {**pod.get("securityContext", {}), **container.get("securityContext", {})}


def test_kubernetes_containers_are_pinned_bounded_unprivileged_and_probed():
    docs = _k8s()
    uid = _dockerfile_uid()
    workloads = _workloads(docs)
    assert {"backfill-worker", "backfill-beat", "backfill-metrics", "backfill-flower", "redis", "backfill-sink",
            "postgres", "backfill-api"} <= set(workloads)
    api = workloads["backfill-api"]["containers"][0]
    assert api["command"][:2] == ["backfill", "serve"]
    assert (api["readinessProbe"]["httpGet"]["path"], api["livenessProbe"]["httpGet"]["path"]) == ("/readyz", "/healthz")
    assert docs[("Service", "backfill-api")]["spec"]["selector"] == {"app": "backfill-api"}
    sink = workloads["backfill-sink"]
    assert sink["initContainers"][0]["command"] == ["backfill", "db", "upgrade"]
    assert {"secretRef": {"name": "backfill-db"}} in sink["containers"][0]["envFrom"]
    for name, pod in workloads.items():
        claims = docs.get(("StatefulSet", name), {}).get("spec", {}).get("volumeClaimTemplates", [])
        mounts = {v["name"] for v in pod.get("volumes", [])} | {t["metadata"]["name"] for t in claims}
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name}/{container['name']}"
            _check_image(container["image"])
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), f"{where}: requests"
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), f"{where}: limits"
            security = _merged_security(pod, container)
            assert security.get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
            assert isinstance(security.get("runAsUser"), int) and security["runAsUser"] > 0, f"{where}: runAsUser"
            assert isinstance(security.get("runAsGroup"), int), f"{where}: runAsGroup"
            assert security.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
            assert "ALL" in security.get("capabilities", {}).get("drop", []), f"{where}: drop ALL capabilities"
            assert security.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in mounts, f"{where}: mounts an undefined volume {mount['name']}"
            if container["image"].startswith("backfill:"):
                assert security["runAsUser"] == uid, f"{where}: run as the image's user {uid}"
                # a read-only root: whatever backfill writes (beat's schedule, a spooled stdin) goes to /tmp
                assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}, f"{where}: /tmp"
            if name in PROBED and container in pod["containers"]:  # (init containers take no probes)
                for probe in ("readinessProbe", "livenessProbe"):
                    assert probe in container, f"{where}: {probe}"
                    http = container[probe].get("httpGet")
                    if http:  # the probe's port is one the container listens on
                        ports = [(p["containerPort"], p.get("name")) for p in container["ports"]]
                        assert http["port"] in {x for port in ports for x in port}, f"{where}: {probe} port"
    beat = workloads["backfill-beat"]["containers"][0]["command"]
    assert beat[beat.index("-s") + 1].startswith("/tmp/"), "beat's schedule file must be on the writable /tmp"
    # the worker probe pings this worker by the name it runs under (-n worker@%h: %h is the pod's hostname)
    worker = workloads["backfill-worker"]["containers"][0]
    node = worker["command"][worker["command"].index("-n") + 1]
    for probe in ("readinessProbe", "livenessProbe"):
        ping = " ".join(worker[probe]["exec"]["command"])
        assert "inspect ping" in ping and f'-d "{node.replace("%h", "$HOSTNAME")}"' in ping
    metrics = workloads["backfill-metrics"]["containers"][0]
    assert metrics["livenessProbe"]["httpGet"]["path"] == "/metrics"
    flower = workloads["backfill-flower"]["containers"][0]
    assert flower["livenessProbe"]["httpGet"]["path"] == "/healthcheck"  # Flower serves it without auth


# --- systemd, Dockerfile ---------------------------------------------------------------------------


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
    sink = _unit("backfill-sink.service")
    assert sink["ExecStartPre"].endswith("backfill db upgrade") and sink["ExecStart"].endswith("backfill sink")
    assert env["DATABASE_URL"].startswith("postgresql://")
    api = _unit("backfill-api.service")
    assert api["ExecStart"].endswith("backfill serve") and api["Restart"] == "always"


def test_dockerfile_default_command_is_a_worker_on_both_queues():
    cmd = next(line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    assert _queues(json.loads(cmd[4:])) == QUEUES


def test_dockerfile_runs_as_a_numeric_non_root_user_it_creates():
    text = (DEPLOY / "Dockerfile").read_text()
    uid = _dockerfile_uid()
    assert uid >= 1000
    assert re.search(rf"useradd\b[^\n]*--uid {uid}\b", text), "create the user with the UID USER names"
    assert "-c constraints.txt" in text  # one tag, one set of dependency versions


# --- metrics: alert rules and dashboard ------------------------------------------------------------

METRIC = re.compile(r"\bbackfill_[a-z0-9_]+\b")
LABEL_MATCHER = re.compile(r"\b(outcome|status|queue)\s*(=~|!~|=|!=)\s*\"([^\"]*)\"")


def _exposed() -> tuple[set[str], dict[str, set[str]]]:
    """Series names and label values the metrics endpoint serves, from its own collector (no Redis)."""
    from worker.ops.metrics import RedisCollector
    from worker.store.metrics import Figures

    values = {f.name: ({} if str(f.type).startswith("dict") else 0) for f in dataclasses.fields(Figures)
              if f.default is dataclasses.MISSING}
    values["queues"] = {keys.QUEUE_IMPORTS: 0, keys.QUEUE_REPORTS: 0}
    values["clock_skews"] = {"w1@host": 0.0}
    figures = Figures(**values)
    collector = RedisCollector(None)
    collector.metrics = type("Stub", (), {"figures": staticmethod(lambda: figures)})()
    names: set[str] = set()
    labels: dict[str, set[str]] = collections.defaultdict(set)
    for family in collector.collect():
        for sample in family.samples:
            names.add(sample.name)
            for label, value in sample.labels.items():
                labels[label].add(value)
    return names, labels


def test_the_endpoint_serves_the_documented_metrics():
    names, labels = _exposed()
    base = {"up", "imports_running", "queue_length", "pending_chunks", "oldest_pending_seconds",
            "oldest_producer_silence_seconds", "triggers_scheduled", "triggers_due", "rows_total",
            "imports_total", "sink_lag_entries", "sink_lag_seconds", "rows_stored_total", "sink_dead_letters_total",
            "sink_dead_letters_held", "worker_clock_skew_seconds", "redis_noeviction", "redis_data_lost_total",
            "sink_late_duplicates_total"} | {f"chunk_duration_seconds_{s}" for s in ("bucket", "sum", "count")}
    assert names == {f"backfill_{n}" for n in base}
    assert labels["queue"] == {keys.QUEUE_IMPORTS, keys.QUEUE_REPORTS}
    assert labels["outcome"] == {"imported", "duplicate", "error"}
    assert labels["table"] == {"events", "people", "deliveries"}


def _check_expr(expr: str, where: str) -> set[str]:
    """The backfill series an expression reads, all served, with label values that exist."""
    names, labels = _exposed()
    used = set(METRIC.findall(expr))
    assert used, f"{where}: reads no backfill metric"
    assert used <= names, f"{where}: unknown metric(s) {sorted(used - names)}"
    for label, _, value in LABEL_MATCHER.findall(expr):
        wanted = set(value.split("|"))
        assert wanted <= labels[label], f"{where}: {label} {sorted(wanted - labels[label])} never served"
    return used


def _rules() -> list[dict]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules():
    rules = _rules()
    assert len({r["alert"] for r in rules}) == len(rules), "alert names are unique"
    for rule in rules:
        where = rule.get("alert", "?")
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, where
        assert re.fullmatch(r"Backfill[A-Z]\w+", rule["alert"]), where
        assert re.fullmatch(r"\d+[smhd]", str(rule["for"])), f"{where}: for {rule['for']!r}"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, where
        assert rule["annotations"].get("summary"), where
        _check_expr(rule["expr"], where)

    def only(pattern: str) -> list[str]:
        return [m.group(1) for r in rules if (m := re.fullmatch(pattern, " ".join(r["expr"].split())))]

    assert only(r"backfill_up == (0)") == ["0"]
    assert only(r"backfill_redis_noeviction == (0)") == ["0"]
    assert only(r"increase\(backfill_redis_data_lost_total\[(\w+)\]\) > 0") == ["1h"]
    # thresholds are the settings the workers run with (their defaults, and k8s/config.yaml's values)
    defaults, config = Settings(), _k8s()[("ConfigMap", "backfill")]["data"]
    assert [int(t) for t in only(r"backfill_oldest_pending_seconds > (\d+)")] == [
        int(defaults.requeue_after_s)] == [int(config["BACKFILL_REQUEUE_AFTER_S"])]
    assert [int(t) for t in only(r"backfill_oldest_producer_silence_seconds > (\d+)")] == [
        int(defaults.producer_timeout_s)] == [int(config["BACKFILL_PRODUCER_TIMEOUT_S"])]
    assert [int(t) for t in only(r"abs\(backfill_worker_clock_skew_seconds\) > (\d+)")] == [defaults.clock_skew_s]
    exprs = [" ".join(r["expr"].split()) for r in rules]
    assert any('backfill_queue_length{queue="imports"}' in e for e in exprs)
    [failing] = [e for e in exprs if "backfill_imports_total" in e and "increase(" in e]
    assert {"failed", "partially_failed", "interrupted"} <= set(LABEL_MATCHER.search(failing).group(3).split("|"))


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return out


def _is_variable(datasource: dict | str | None) -> bool:
    uid = datasource.get("uid") if isinstance(datasource, dict) else datasource
    return uid in ("$datasource", "${datasource}")


def test_grafana_dashboard():
    dashboard = json.loads((DEPLOY / "grafana" / "backfill.json").read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert _is_variable(variable["datasource"]), variable["name"]
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert len({p["id"] for p in _panels(dashboard)}) == len(_panels(dashboard)), "panel ids are unique"
    shown: set[str] = set()
    for panel in panels:
        where = panel["title"]
        assert panel["targets"], where
        assert _is_variable(panel.get("datasource")), f"{where}: datasource must be the variable"
        for target in panel["targets"]:
            assert _is_variable(target.get("datasource", panel["datasource"])), where
            shown |= _check_expr(target["expr"], where)
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, where
    names, _ = _exposed()
    histogram = {n for n in names if n.startswith("backfill_chunk_duration_seconds_")}
    assert names - histogram <= shown, f"not on the dashboard: {sorted(names - histogram - shown)}"
    assert "backfill_chunk_duration_seconds_bucket" in shown
    quantiles = " ".join(t["expr"] for p in panels for t in p["targets"] if "histogram_quantile" in t["expr"])
    assert "histogram_quantile(0.5," in quantiles and "histogram_quantile(0.99," in quantiles


# --- with promtool: the rules compile and fire when (and only when) they should ---------------------

# These need promtool (Debian's prometheus package): `make deploy-check` runs them, and fails when it is
# missing; `make test` leaves them out (-m "not promtool") rather than skipping them.
PROMTOOL = shutil.which("promtool") or "promtool"
needs_promtool = pytest.mark.promtool


def _alert(name: str, at: str, *labels: dict) -> dict:
    return {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": dict(lbl)} for lbl in labels]}


ALERT_TESTS = [
    {"interval": "1m",
     "input_series": [
         {"series": 'backfill_up{job="a"}', "values": "1 1 0x20"},
         {"series": 'backfill_oldest_pending_seconds{job="stuck"}', "values": "0+60x45"},
         # a working sweeper re-sends work at 600 s: the age crosses the line one scrape at a time
         {"series": 'backfill_oldest_pending_seconds{job="swept"}', "values": "60+60x10 60+60x10 60+60x10 60+60x10"},
         {"series": 'backfill_oldest_producer_silence_seconds{job="a"}', "values": "0+60x20"},
         {"series": 'backfill_triggers_due{job="a"}', "values": "0 0 3x20"},
         {"series": 'backfill_sink_lag_seconds{job="a"}', "values": "0+60x30"},
         {"series": 'backfill_sink_dead_letters_held{job="a"}', "values": "0 0 0 2 2 0x10"},
         {"series": 'backfill_redis_noeviction{job="a", policy="allkeys-lru"}', "values": "_ _ 0 0 stale"},
         {"series": 'backfill_redis_noeviction{job="a", policy="noeviction"}', "values": "1 1 _ _ 1x10"},
         # lost twice: the count is carried from epoch to epoch (a restart of every process resets it)
         {"series": 'backfill_redis_data_lost_total{job="a"}', "values": "0 0 0 1 1x60 2x20"},
         {"series": 'backfill_imports_total{job="a", status="failed"}', "values": "0 0 0 1x10"},
         {"series": 'backfill_imports_total{job="a", status="completed"}', "values": "0+1x20"},
         {"series": 'backfill_queue_length{job="a", queue="imports"}', "values": "0+20x40"},
         {"series": 'backfill_queue_length{job="flat", queue="imports"}', "values": "500x40"},
         {"series": 'backfill_queue_length{job="a", queue="reports"}', "values": "0+10x40"},
         {"series": 'backfill_rows_total{job="a", outcome="error"}', "values": "0+10x40"},
         {"series": 'backfill_rows_total{job="a", outcome="imported"}', "values": "0+90x40"},
         {"series": 'backfill_chunk_duration_seconds_bucket{job="a", le="120.0"}', "values": "0x40"},
         {"series": 'backfill_chunk_duration_seconds_bucket{job="a", le="300.0"}', "values": "0+10x40"},
         {"series": 'backfill_chunk_duration_seconds_bucket{job="a", le="+Inf"}', "values": "0+10x40"},
         # one worker 10 minutes slow from 2m on, one a second fast (well within the allowance)
         {"series": 'backfill_worker_clock_skew_seconds{job="a", worker="slow@h"}', "values": "0 0 -600x20"},
         {"series": 'backfill_worker_clock_skew_seconds{job="a", worker="fine@h"}', "values": "1x20"},
     ],
     "alert_rule_test": [
         _alert("BackfillRedisDown", "3m"),
         _alert("BackfillRedisDown", "5m", {"severity": "critical", "job": "a"}),
         _alert("BackfillPendingWorkStuck", "15m"),  # over 600 s since 11m: not yet 10 minutes
         _alert("BackfillPendingWorkStuck", "22m", {"severity": "warning", "job": "stuck"}),
         _alert("BackfillSweeperStalled", "33m"),
         _alert("BackfillSweeperStalled", "37m", {"severity": "critical", "job": "stuck"}),
         _alert("BackfillProducerSilent", "6m"),
         _alert("BackfillProducerSilent", "9m", {"severity": "warning", "job": "a"}),
         _alert("BackfillTriggersNotMoved", "6m"),
         _alert("BackfillTriggersNotMoved", "8m", {"severity": "warning", "job": "a"}),
         _alert("BackfillImportsFailing", "2m"),
         _alert("BackfillImportsFailing", "5m", {"severity": "warning", "job": "a", "status": "failed"}),
         _alert("BackfillImportsQueueGrowing", "15m"),
         _alert("BackfillImportsQueueGrowing", "25m", {"severity": "warning", "job": "a", "queue": "imports"}),
         _alert("BackfillReportsQueueBacklog", "25m", {"severity": "warning", "job": "a", "queue": "reports"}),
         _alert("BackfillRowErrorsHigh", "35m", {"severity": "info", "job": "a"}),
         _alert("BackfillChunksSlow", "35m", {"severity": "warning", "job": "a"}),
         _alert("BackfillMetricsAbsent", "15m"),
         _alert("BackfillSinkBehind", "15m"),  # over 600 s since 11m: not yet 10 minutes
         _alert("BackfillSinkBehind", "22m", {"severity": "warning", "job": "a"}),
         _alert("BackfillSinkDeadLetters", "2m"),
         _alert("BackfillSinkDeadLetters", "3m", {"severity": "warning", "job": "a"}),
         _alert("BackfillSinkDeadLetters", "6m"),  # stored again: it resolves
         _alert("BackfillWorkerClockSkewed", "5m"),
         _alert("BackfillWorkerClockSkewed", "8m", {"severity": "warning", "job": "a", "worker": "slow@h"}),
         _alert("BackfillRedisEvicts", "1m"),
         _alert("BackfillRedisEvicts", "3m", {"severity": "critical", "job": "a", "policy": "allkeys-lru"}),
         _alert("BackfillRedisEvicts", "5m"),  # noeviction again: it resolves
         _alert("BackfillRedisDataLost", "2m"),
         _alert("BackfillRedisDataLost", "4m", {"severity": "critical", "job": "a"}),
         _alert("BackfillRedisDataLost", "64m"),  # an hour later: it resolves
         _alert("BackfillRedisDataLost", "66m", {"severity": "critical", "job": "a"}),  # the second loss
     ]},
    {"interval": "1m",
     "input_series": [{"series": 'backfill_pending_chunks{job="a"}', "values": "0x20"}],
     "alert_rule_test": [_alert("BackfillMetricsAbsent", "15m", {"severity": "warning"})]},
]


def _promtool(*args: str) -> None:
    result = subprocess.run([PROMTOOL, *args], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_rules_fire_as_intended(tmp_path):
    _promtool("check", "rules", str(DEPLOY / "prometheus" / "alerts.yaml"))
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations")  # checked above; here only when each alert fires, and with what labels
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    tested = {t["alertname"] for group in ALERT_TESTS for t in group["alert_rule_test"]}
    assert tested == {r["alert"] for r in _rules()}, "every alert has a scenario"
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": copy.deepcopy(ALERT_TESTS)}
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(spec))
    _promtool("test", "rules", str(tmp_path / "test.yaml"))


@needs_promtool
def test_dashboard_queries_parse(tmp_path):
    dashboard = json.loads((DEPLOY / "grafana" / "backfill.json").read_text())
    exprs = [t["expr"] for p in _panels(dashboard) if p["type"] != "row" for t in p["targets"]]
    grafana = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h", "$job": ".*"}
    rules = []
    for index, expr in enumerate(exprs):
        for variable, value in grafana.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool("check", "rules", str(tmp_path / "queries.yaml"))
