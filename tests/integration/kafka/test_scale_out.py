"""Scale-out on a real Kafka and PostgreSQL: two trajectory workers (OS processes) in one consumer
group split the 6 partitions of the feed topics; a simulated day of 6 riders is replayed and one
worker is killed (SIGKILL) in the middle of it; the survivor takes its partitions over from their
committed offsets. Afterwards every incident's assessment, asked over Kafka
(``trajectory.assessment-requested`` → ``trajectory.assessment-ready``), has the phase and
continuous-delivery finding that ``python -m services.trajectory assess`` gives on the same files."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from services.trajectory.entrypoints.replay import ensure_topics
from services.trajectory.entrypoints.stream import consumer_groups
from shared import topics
from shared.events import AssessmentReady, AssessmentRequested, Envelope, decode
from tests.integration.kafka.procs import (
    ROOT,
    base_env,
    end_offsets,
    flush,
    processes,
    producer,
    read_since,
    simulated_day,
    start_worker_at_end,
    wait,
    worker_lag,
)

pytestmark = pytest.mark.integration

FEEDS = (topics.PLATFORM_EVENTS, topics.GPS)


def members(bootstrap: str, group: str) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "xj-test-groups", "log_level": 4})
    desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
    return len(desc.members) if desc.state == ConsumerGroupState.STABLE else -1


def test_two_workers_one_killed_assessments_equal_batch(kafka_bootstrap: str, fresh_database, tmp_path: Path) -> None:
    began = time.monotonic()
    day = tmp_path / "day"
    env = base_env(XJ_DATABASE_URL=fresh_database("postgresql"), XJ_DATA_DIR=str(tmp_path / "var"),
                   XJ_KAFKA_BOOTSTRAP=kafka_bootstrap, XJ_WORKER_GROUP=f"xj-scale-{uuid.uuid4().hex[:8]}",
                   XJ_PARTITIONS="6", XJ_GAP_SETTLE_S="0.2")
    group = env["XJ_WORKER_GROUP"]
    run = dict(cwd=ROOT, env=env, capture_output=True, timeout=120)
    batch, incidents = simulated_day(day, run, riders=6, seed=3)
    assert len(incidents) == len(batch) >= 6

    consumed = (*FEEDS, topics.ASSESSMENT_REQUESTED)
    ensure_topics(kafka_bootstrap, (*consumed, *map(topics.dead_letter, consumed), topics.ASSESSMENT_READY,
                                    topics.GAP_FLAGGED), 6)
    assert start_worker_at_end(kafka_bootstrap, group)
    # a migrated database before two processes start on it
    r = subprocess.run([sys.executable, "-c", "from services.bootstrap import database; from shared.config import "
                        "Settings; database(Settings(), ('trajectory',)).dispose()"], **run)
    assert r.returncode == 0, r.stderr

    with processes(tmp_path, env) as procs:
        a = procs.start("worker-a", "services.trajectory", "worker", "--loglevel", "info")
        b = procs.start("worker-b", "services.trajectory", "worker", "--loglevel", "info")
        wait("both workers ready", lambda: all("Worker]: Ready" in p.log.read_text(errors="replace") for p in (a, b)),
             60, procs.check_alive)
        wait("stable groups of two", lambda: all(members(kafka_bootstrap, g) == 2 for g in consumer_groups(group)),
             40, procs.check_alive)

        replay = subprocess.Popen([sys.executable, "-m", "services.trajectory", "replay", str(day),
                                   "--speedup", "4000"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        try:
            time.sleep(4.0)
            assert replay.poll() is None, "the replay ended before the kill: lower --speedup"
            procs.kill(b)  # SIGKILL mid-stream: no goodbye to the group, uncommitted batches in hand
            killed_at = time.monotonic()
            out, err = replay.communicate(timeout=90)
        finally:
            if replay.poll() is None:
                replay.kill()
                replay.wait()
        assert replay.returncode == 0, err
        # the survivor takes the dead member's partitions once its session times out (10 s)
        wait("the group consumed every feed message", lambda: worker_lag(kafka_bootstrap, group, FEEDS) == 0, 90, procs.check_alive)
        took_over = time.monotonic() - killed_at

        since = end_offsets(kafka_bootstrap, (topics.ASSESSMENT_READY,))
        run_id = uuid.uuid4().hex[:8]
        prod = producer(kafka_bootstrap)
        cases = {}
        for inc in incidents:
            case_id = f"scale-{run_id}-{inc['incident_id']}"
            cases[case_id] = inc["incident_id"]
            loc = inc.get("location")
            req = AssessmentRequested(request_id=f"req-{case_id}", case_id=case_id, rider_id=inc["rider_id"],
                                      incident_at=datetime.fromisoformat(inc["at"]),
                                      location=(loc["lat"], loc["lon"]) if loc else None)
            prod.produce(topics.ASSESSMENT_REQUESTED, key=inc["rider_id"].encode(),
                         value=req.envelope(key=inc["rider_id"], producer="test").to_bytes())
        flush(prod)

        def mine(recs: list) -> dict[str, AssessmentReady]:
            out: dict[str, AssessmentReady] = {}
            for m in recs:
                key = m.key.decode() if m.key else ""
                if key in cases:
                    ev = decode(Envelope.from_bytes(m.value))
                    assert isinstance(ev, AssessmentReady), ev
                    out[key] = ev
            return out

        ready = mine(read_since(kafka_bootstrap, since, lambda got: len(mine(got)) == len(cases), timeout=90,
                               check=procs.check_alive))
        assert set(ready) == set(cases)
        diffs = []
        for case_id, ev in ready.items():
            want = batch[cases[case_id]]
            got = ev.assessment
            if (got["phase"], got["continuous_delivery"]) != (want["phase"], want["continuous_delivery"]):
                diffs.append((cases[case_id], got["phase"], got["continuous_delivery"], want["phase"],
                              want["continuous_delivery"]))
        assert not diffs, diffs
        assert a.popen.poll() is None, a.tail()
    riders = len({i["rider_id"] for i in incidents})
    print(f"scale-out: {riders} riders, {len(cases)} incidents equal to batch; survivor caught up "
          f"{took_over:.1f} s after the kill; {time.monotonic() - began:.1f} s in all")
