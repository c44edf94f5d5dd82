"""Read your writes at scale: Kafka, PostgreSQL, ``services serve`` (the HTTP door) and TWO trajectory workers as OS
processes (API_CONTRACT, "Evidence: what the system promises").

- Uploaded: every public scenario's feeds go up over HTTP in pieces (event ids renumbered from 1
  per platform and rider); each incident's case is opened and its evidence asked for at once. The
  packet's assessment equals ``assess DIR`` on the same files. So does the time check's whole
  ``location_check`` on a simulated day of late reports (a second pass named, a pass hidden in a
  GPS outage, a plain one).
- Streamed: a rider's day is produced straight into the feed topics (acknowledged by the broker),
  and the case is opened and evidence asked for the moment the producer returns. The worker that
  takes the request waits until every feed partition is stored up to its end, whichever worker
  reads it, and the packet again equals ``assess``.
"""

from __future__ import annotations

import random
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import orjson
import pytest

from services.embedded import free_port
from services.trajectory.entrypoints.replay import ensure_topics
from shared import topics
from tests.integration.kafka.procs import (
    ROOT,
    base_env,
    cli,
    processes,
    readyz,
    start_group_at_end,
    start_worker_at_end,
    wait,
)
from tests.support.evidence_path import (
    DAYS,
    batch_answers,
    differences,
    late_day,
    open_and_request,
    packet_assessment,
    upload,
)
from tests.support.renumber import renumbered

pytestmark = pytest.mark.integration

STREAMED = next(d for d in DAYS if d.name == "seed-case-accepted")
UPLOADED = [d for d in DAYS if d is not STREAMED]
LATE = "late"


def as_other_rider(day: Path, out: Path) -> Path:
    """``day`` with its rider renamed (the two seed-case variants are one rider on one day)."""
    out.mkdir()
    [rider] = {orjson.loads(x)["rider_id"] for x in (day / "incidents.jsonl").read_bytes().splitlines() if x.strip()}
    for name in ("platform.jsonl", "gps.jsonl", "incidents.jsonl"):
        text = (day / name).read_text()
        (out / name).write_text(text.replace(f'"{rider}"', f'"{rider}-streamed"'))
    return out


def incidents(day: Path) -> list[dict]:
    return [orjson.loads(x) for x in (day / "incidents.jsonl").read_bytes().splitlines() if x.strip()]


def test_evidence_right_after_feeds_equals_assess_with_two_workers(kafka_bootstrap: str, fresh_database,
                                                                    tmp_path: Path) -> None:
    port = free_port()
    env = base_env(XJ_DATABASE_URL=fresh_database("postgresql"), XJ_DATA_DIR=str(tmp_path / "var"),
                   XJ_KAFKA_BOOTSTRAP=kafka_bootstrap, XJ_BUS="kafka", XJ_HTTP_PORT=str(port),
                   XJ_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", XJ_PARTITIONS="6",
                   XJ_WORKER_GROUP=f"xj-ryw-{uuid.uuid4().hex[:8]}",
                   XJ_MEDIATION_GROUP=f"xj-ryw-med-{uuid.uuid4().hex[:8]}", XJ_GAP_SETTLE_S="0.2")
    ensure_topics(kafka_bootstrap, (*topics.ALL, *map(topics.dead_letter, topics.ALL)), 6)
    assert start_worker_at_end(kafka_bootstrap, env["XJ_WORKER_GROUP"])
    start_group_at_end(kafka_bootstrap, env["XJ_MEDIATION_GROUP"], (topics.ASSESSMENT_READY,))
    mediator = cli(env, "services.mediation", "users", "add", "--role", "mediator", "--name", "王调解")
    cli(env, "services.mediation", "users", "add", "--role", "insurer", "--name", "PICC", "--insurer", "PICC")
    feed = cli(env, "services.mediation", "users", "add", "--role", "feed", "--name", "platform feed")
    streamed = as_other_rider(STREAMED, tmp_path / STREAMED.name)
    want = {d.name: batch_answers(d, env) for d in [*UPLOADED, streamed]}
    late, want[LATE], timed = late_day(tmp_path, env)  # reported times off: the time check

    with processes(tmp_path, env) as procs:
        procs.start("worker-a", "services.trajectory", "worker")
        procs.start("worker-b", "services.trajectory", "worker")
        procs.start("mediation", "services", "serve")
        base = f"http://127.0.0.1:{port}"
        wait("mediation /readyz", lambda: readyz(base), 60, procs.check_alive)
        m = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {mediator}"}, timeout=60)
        f = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {feed}"}, timeout=120)
        with m, f:
            rng = random.Random(7)
            cases: dict[tuple[str, str], str] = {}
            for day in UPLOADED:
                upload(f, renumbered((day / "platform.jsonl").read_bytes()), (day / "gps.jsonl").read_bytes(), rng)
                for inc in incidents(day):
                    cases[(day.name, inc["incident_id"])] = open_and_request(m, inc)
            upload(f, (late / "platform.jsonl").read_bytes(), (late / "gps.jsonl").read_bytes(), rng)
            for inc in incidents(late):
                if inc["incident_id"] in timed:
                    cases[(LATE, inc["incident_id"])] = open_and_request(m, inc)

            # streamed: produced into the topics, acknowledged, and asked about at once
            r = subprocess.run([sys.executable, "-m", "services.trajectory", "replay", str(streamed), "--speedup", "0"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
            for inc in incidents(streamed):
                cases[(streamed.name, inc["incident_id"])] = open_and_request(m, inc)

            wrong = {}
            for (name, iid), cid in cases.items():
                served = packet_assessment(m, cid, timeout=180)
                d = differences(served, want[name][iid])
                if name == LATE and served.get("location_check") != want[name][iid]["location_check"]:
                    d.append("location_check")
                if d:
                    wrong[(name, iid)] = d
            assert wrong == {}, f"{len(wrong)} of {len(cases)} packets differ from assess: {wrong}"
        procs.check_alive()
