"""The deployment templates agree with each other and with the runtime."""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path

import yaml
from dingskill.runtime.config import load_config
from dingskill.runtime.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _exported_metrics() -> set[str]:
    from dingskill.runtime.broker.metrics import BrokerMetrics

    m = Metrics()
    BrokerMetrics(m.registry)  # the gateway's, workers' and audit-writer's /metrics
    text = m.render().decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if kind == "counter":
                names.add(name if name.endswith("_total") else f"{name}_total")
    return names


def _names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:dingskill|process)_[a-z0-9_]+)", expr))


def test_every_dashboard_and_alert_metric_is_exported():
    exported = _exported_metrics()
    dash = json.loads((DEPLOY / "grafana/dashboards/dingskill.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = set().union(*(_names_in(e) for e in exprs))
    assert used and used <= exported, sorted(used - exported)
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for topic in ("p99", "success rate", "error rate", "resources"):
        assert topic in titles


def test_ports_paths_and_users_match_the_config():
    cfg = load_config(
        DEPLOY / "config.yaml", environ={"DINGSKILL_APP_KEY": "k", "DINGSKILL_APP_SECRET": "s"}
    )
    port = cfg.get("server.port")
    docker = (DEPLOY / "Dockerfile").read_text()
    assert f"EXPOSE {port}" in docker and f"127.0.0.1:{port}/healthz" in docker
    assert re.search(r"^USER 10001", docker, re.M) and "USER root" not in docker
    # services listen beyond their own loopback (probes, port mappings, scrapes reach them)
    assert cfg.get("server.host") == "0.0.0.0"
    compose = yaml.safe_load((DEPLOY / "compose/docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {
        "gateway",
        "worker",
        "audit-writer",
        "rabbitmq",
        "redis",
        "prometheus",
        "grafana",
        "alertmanager",
    }
    assert f"{port}:{port}" in services["gateway"]["ports"]
    for name in ("gateway", "worker", "audit-writer"):
        assert services[name]["command"][0] == name
        assert services[name]["command"][1:] == ["--config", "/etc/dingskill/config.yaml"]
        assert "DINGSKILL_BROKER_URL" in services[name]["environment"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["audit-writer"]["deploy"]["replicas"] == 1  # the single writer
    assert 'ENTRYPOINT ["dingskill"]' in docker and ".[broker]" in docker
    for svc in services.values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith(".."):
                assert (DEPLOY / "compose" / src).resolve().exists(), src
    prom = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["dns_sd_configs"][0]["port"] == port
    assert set(job["dns_sd_configs"][0]["names"]) == {"gateway", "worker", "audit-writer"}
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes/dingskill.yaml").read_text()))
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for name, command in (
        ("dingskill-gateway", "gateway"),
        ("dingskill-worker", "worker"),
        ("dingskill-audit-writer", "audit-writer"),
    ):
        deploy = by[("Deployment", name)]
        pod = deploy["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert c["args"] == [command, "--config", "/etc/dingskill/config.yaml"]
        assert c["ports"][0]["containerPort"] == port and pod["securityContext"]["runAsNonRoot"]
        assert (
            c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        )
    assert by[("Deployment", "dingskill-gateway")]["spec"]["replicas"] >= 2
    assert by[("Deployment", "dingskill-audit-writer")]["spec"]["replicas"] == 1
    for name in ("dingskill-gateway", "dingskill-worker"):
        assert by[("PodDisruptionBudget", name)]["spec"]["minAvailable"] >= 1
    scaled = by[("ScaledObject", "dingskill-worker")]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "dingskill-worker"
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert _names_in(query) <= _exported_metrics() and "queue_depth" in query
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    k8s_cfg = yaml.safe_load(cm["data"]["config.yaml"])
    assert k8s_cfg["server"]["port"] == port and k8s_cfg["storage"]["type"] == "redis"
    assert k8s_cfg["server"]["host"] == "0.0.0.0"
    for key in ("queue", "shards", "max_attempts"):  # the same topology everywhere
        assert k8s_cfg["broker"][key] == cfg.get(f"broker.{key}"), key
    systemd = DEPLOY / "systemd"
    for unit_file, command in (
        ("dingskill.service", "dingskill run --config"),
        ("dingskill-gateway.service", "dingskill gateway --config"),
        ("dingskill-worker@.service", "dingskill worker --config"),
        ("dingskill-audit-writer.service", "dingskill audit-writer --config"),
    ):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read_string((systemd / unit_file).read_text())
        assert unit["Service"]["User"] == "dingskill" and command in unit["Service"]["ExecStart"]
        assert "/etc/dingskill/config.yaml" in unit["Service"]["ExecStart"]


def test_broker_alerts_cover_dead_letters_backlog_and_consumers():
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    for name in (
        "dingskill_broker_queue_depth",
        "dingskill_broker_consumers",
        "dingskill_broker_publish_failures_total",
    ):
        assert name in exprs
    dash = json.loads((DEPLOY / "grafana/dashboards/dingskill.json").read_text())
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for topic in ("queue depth", "consumers", "dead letters", "publish-to-confirm"):
        assert topic in titles


def test_runtime_serves_the_probed_paths():
    from dingskill.runtime.server import build_app

    class Fake:
        webhook = None
        config = load_config(None, environ={})
        admin = type("A", (), {"routes": lambda self: []})()

    paths = {r.path for r in build_app(Fake()).routes}
    assert {"/metrics", "/healthz", "/readyz"} <= paths
    from dingskill.runtime.broker.service import service_app

    async def ready():
        return {}

    assert {"/metrics", "/healthz", "/readyz"} <= {
        r.path for r in service_app(Metrics(), ready).routes
    }


def test_each_service_logs_in_as_its_own_rabbitmq_user():
    """Compose, Kubernetes and systemd give the gateway, the workers and the audit-writer
    each their own broker user (made by deploy/rabbitmq/users.sh, which deletes guest), and
    the message keys only to gateways and workers (tests/broker/test_users.py runs the
    script against a real node)."""
    script = (DEPLOY / "rabbitmq" / "users.sh").read_text()
    for user in ("dingskill-gateway", "dingskill-worker", "dingskill-audit", "dingskill-ops"):
        assert f"user {user} " in script
    assert "delete_user guest" in script

    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    svc = compose["services"]
    for name, user in (
        ("gateway", "dingskill-gateway"),
        ("worker", "dingskill-worker"),
        ("audit-writer", "dingskill-audit"),
    ):
        env = svc[name]["environment"]
        assert env["DINGSKILL_BROKER_URL"].startswith(f"amqp://{user}:"), name
        assert ("DINGSKILL_BROKER_KEYS" in env) == (name != "audit-writer"), name
    assert any("users.sh" in v for v in svc["rabbitmq"]["volumes"])

    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "dingskill.yaml").read_text()))
    secrets = {}
    for d in docs:
        if d and d["kind"] in ("Deployment", "StatefulSet"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                secrets[c["name"]] = {s["secretRef"]["name"] for s in c.get("envFrom", [])}
    assert "dingskill-broker-gateway" in secrets["gateway"]
    assert "dingskill-broker-worker" in secrets["worker"]
    assert "dingskill-broker-audit" in secrets["audit-writer"]
    assert secrets["rabbitmq"] == {"dingskill-rabbitmq-users"}

    units = DEPLOY / "systemd"
    for unit, env in (
        ("dingskill-gateway.service", "broker-gateway.env"),
        ("dingskill-worker@.service", "broker-worker.env"),
        ("dingskill-audit-writer.service", "broker-audit.env"),
    ):
        text = (units / unit).read_text()
        assert f"EnvironmentFile=/etc/dingskill/{env}" in text
        assert "dingskill-rabbitmq-users.service" in text
    assert "rabbitmq-users.sh" in (units / "dingskill-rabbitmq-users.service").read_text()
