"""The production deployment files cannot run here (no Docker engine, no cluster); they are parsed
and checked: every service is there with its command, its Kafka and PostgreSQL settings, health
probes, and partitions and replicas as parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
COMMANDS = {
    "trajectory": ["python", "-m", "services.trajectory", "worker"],
    "mediation": ["python", "-m", "services", "serve"],
    "notify": ["python", "-m", "services.notify", "worker"],
}


def test_compose_runs_each_service_on_kafka_and_postgres():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    svc = doc["services"]
    assert {"kafka", "postgres", *COMMANDS} <= set(svc)
    for name, cmd in COMMANDS.items():
        s = svc[name]
        assert s["command"] == cmd
        env = s["environment"]
        assert env["XJ_BUS"] == "kafka"
        assert env["XJ_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["XJ_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert "${PARTITIONS" in str(env["XJ_PARTITIONS"])
        assert s["healthcheck"]["test"], name
        assert set(s["depends_on"]) == {"kafka", "postgres"}
    assert "${TRAJECTORY_REPLICAS" in str(svc["trajectory"]["deploy"]["replicas"])
    assert "/readyz" in " ".join(svc["mediation"]["healthcheck"]["test"])
    kafka = svc["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "${PARTITIONS" in str(kafka["KAFKA_NUM_PARTITIONS"])


def load_k8s() -> list[dict]:
    docs: list[dict] = []
    for f in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def test_kubernetes_manifests_are_complete():
    docs = load_k8s()
    kust = next(d for d in docs if d.get("kind") == "Kustomization")
    listed = set(kust["resources"])
    assert listed == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    params = dict(x.split("=", 1) for x in kust["configMapGenerator"][0]["literals"])
    assert params["XJ_BUS"] == "kafka" and int(params["XJ_PARTITIONS"]) >= 1
    replicas = {r["name"]: r["count"] for r in kust["replicas"]}
    assert set(replicas) == set(COMMANDS)
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    assert set(deployments) == set(COMMANDS)
    for name, d in deployments.items():
        c = d["spec"]["template"]["spec"]["containers"][0]
        assert c["command"] == COMMANDS[name]
        refs = {next(iter(r.values()))["name"] for r in c["envFrom"]}
        assert refs == {"xianjie-env", "xianjie-db"}
        assert c["readinessProbe"] and c["livenessProbe"], name
    med = deployments["mediation"]["spec"]["template"]["spec"]["containers"][0]
    assert med["readinessProbe"]["httpGet"]["path"] == "/readyz"
    sts = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "StatefulSet"}
    assert {"kafka", "postgres"} <= set(sts)
    kenv = {e["name"]: e for e in sts["kafka"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert kenv["KAFKA_PROCESS_ROLES"]["value"] == "broker,controller"
    assert kenv["KAFKA_NUM_PARTITIONS"]["valueFrom"]["configMapKeyRef"]["key"] == "XJ_PARTITIONS"
