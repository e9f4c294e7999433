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
    text = Metrics().render().decode()
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
    compose = yaml.safe_load((DEPLOY / "compose/docker-compose.yml").read_text())
    assert set(compose["services"]) >= {"runtime", "redis", "prometheus", "grafana", "alertmanager"}
    assert f"{port}:{port}" in compose["services"]["runtime"]["ports"]
    for svc in compose["services"].values():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith(".."):
                assert (DEPLOY / "compose" / src).resolve().exists(), src
    prom = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["dns_sd_configs"][0]["port"] == port
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes/dingskill.yaml").read_text()))
    deploy = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "dingskill"
    )
    assert deploy["spec"]["replicas"] >= 2
    pod = deploy["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["ports"][0]["containerPort"] == port and pod["securityContext"]["runAsNonRoot"]
    assert (
        c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    )
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    k8s_cfg = yaml.safe_load(cm["data"]["config.yaml"])
    assert k8s_cfg["server"]["port"] == port and k8s_cfg["storage"]["type"] == "redis"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((DEPLOY / "systemd/dingskill.service").read_text())
    assert (
        unit["Service"]["User"] == "dingskill"
        and "dingskill run --config" in unit["Service"]["ExecStart"]
    )


def test_runtime_serves_the_probed_paths():
    from dingskill.runtime.server import build_app

    class Fake:
        webhook = None
        config = load_config(None, environ={})
        admin = type("A", (), {"routes": lambda self: []})()

    paths = {r.path for r in build_app(Fake()).routes}
    assert {"/metrics", "/healthz", "/readyz"} <= paths
