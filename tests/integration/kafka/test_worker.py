"""The trajectory worker as its own OS process on a real Kafka and PostgreSQL: the seed case's
feeds replayed with ``python -m services.trajectory replay`` are stored, its gaps are flagged as the
batch engine classifies them, a bad line goes to the dead-letter topic, and an assessment request
is answered."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest
from sqlalchemy import create_engine, text

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.adapters.store import FeedStore
from services.trajectory.domain.assess import analyse
from services.trajectory.domain.model import Params
from shared import topics
from shared.events import AssessmentRequested, Envelope

from .procs import (
    Partition,
    Record,
    end_offsets,
    flush,
    partitions,
    producer,
    read_since,
    start_worker_at_end,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"


def read_topic(bootstrap: str, topic: str, since: dict[Partition, int], until: Callable[[list[Record]], bool],
               timeout: float = 60.0) -> list[Record]:
    """The topic's records from ``since`` on (from the start of partitions that ``since`` lacks:
    the topic may not have existed when it was taken)."""
    return read_since(bootstrap, {tp: since.get(tp, 0) for tp in partitions(bootstrap, topic)}, until, timeout)


def test_worker_stores_flags_dead_letters_and_answers(kafka_bootstrap: str, fresh_database, tmp_path: Path) -> None:
    url = fresh_database("postgresql")
    env = {**os.environ, "XJ_DATABASE_URL": url, "XJ_DATA_DIR": str(tmp_path), "XJ_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "XJ_WORKER_GROUP": f"xj-test-{uuid.uuid4().hex[:8]}", "XJ_GAP_SETTLE_S": "0.2",
           "XJ_GAP_SYNC_MAX_S": "120"}  # a ping watermark that never moved would hold the flags past the wait below
    feeds = load_dir(SEED, "Asia/Shanghai")
    [day] = feeds.days.values()
    rider = day.rider_id
    batch = [g for g in analyse(day, Params()).timeline.gaps if np.isfinite(g.start) and np.isfinite(g.end)]
    # the topics exist before anyone subscribes (replay creates them with 6 partitions)
    subprocess.run([sys.executable, "-m", "services.trajectory", "replay", str(tmp_path / "none")], env=env,
                   capture_output=True, timeout=60)
    # a fresh group starts at the topics' end, not at earlier tests' replays of the same rider
    assert start_worker_at_end(kafka_bootstrap, env["XJ_WORKER_GROUP"])
    since = {t: end_offsets(kafka_bootstrap, (t,)) for t in (topics.GAP_FLAGGED, topics.ASSESSMENT_READY,
                                                          topics.dead_letter(topics.GPS))}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "services.trajectory", "worker"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=log)
    try:
        began = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "services.trajectory", "replay", str(SEED), "--speedup", "0"],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "platform events" in r.stderr and r.stdout == ""
        prod = producer(kafka_bootstrap)
        prod.produce(topics.GPS, key=rider.encode(), value=b'{"rider_id": "' + rider.encode() + b'", "ts": "never"}')
        flush(prod)

        def mine(recs: list) -> list:
            return [orjson.loads(m.value)["data"] for m in recs if m.key == rider.encode()]

        flags = mine(read_topic(kafka_bootstrap, topics.GAP_FLAGGED, since[topics.GAP_FLAGGED],
                                lambda got: len(mine(got)) >= len(batch), timeout=90))
        latency = time.monotonic() - began
        got = {(datetime.fromisoformat(f["start"]).timestamp(), f["phase"]) for f in flags}
        want = {(round(g.start, 3), g.phase.value) for g in batch}
        assert {(round(s, 3), p) for s, p in got} >= want, (flags, batch)

        dead = read_topic(kafka_bootstrap, topics.dead_letter(topics.GPS), since[topics.dead_letter(topics.GPS)],
                          lambda got: any(m.key == rider.encode() for m in got), timeout=30)
        assert any(dict(m.headers).get("error") for m in dead if m.key == rider.encode())

        inc = feeds.incidents[0]
        case_id = f"case-{uuid.uuid4().hex[:8]}"
        req = AssessmentRequested(request_id=f"req-{case_id}", case_id=case_id, rider_id=rider,
                                  incident_at=datetime.fromtimestamp(inc.at, UTC))
        prod.produce(topics.ASSESSMENT_REQUESTED, key=rider.encode(),
                     value=req.envelope(key=rider, producer="test").to_bytes())
        flush(prod)
        ready = read_topic(kafka_bootstrap, topics.ASSESSMENT_READY, since[topics.ASSESSMENT_READY],
                           lambda got: any(m.key == case_id.encode() for m in got), timeout=60)
        [reply] = [Envelope.from_bytes(m.value) for m in ready if m.key == case_id.encode()]
        assert reply.type == "AssessmentReady"
        truth = orjson.loads((SEED / "truth.jsonl").read_bytes().splitlines()[0])
        assert reply.data["assessment"]["phase"] == truth["phase"]

        engine = create_engine(url)
        with engine.connect() as c:
            pings = FeedStore(engine).pings(rider)
            holds = c.execute(text("SELECT count(*) FROM trajectory_evidence_hold")).scalar()
        engine.dispose()
        assert pings and pings > 800 and holds == 1
        print(f"seed case: {len(flags)} gaps flagged within {latency:.1f} s of the replay's start")

        # live: a rider's pings stored and the stream quiet, then the delivery and the next order's
        # events; the gap is judged at once (the worker's ping watermark moves while nothing comes)
        live = f"R-LIVE-{uuid.uuid4().hex[:6]}"
        seed = [orjson.loads(x) for x in (SEED / "platform.jsonl").read_bytes().splitlines() if x.strip()]
        split = next(i for i, e in enumerate(seed) if e["type"] == "delivered")
        def send(topic: str, values: list[bytes]) -> None:
            for v in values:
                prod.produce(topic, key=live.encode(), value=v)
            flush(prod)

        def events(part: list[dict]) -> list[bytes]:
            return [orjson.dumps({**e, "rider_id": live, "event_id": f"{live}-{e['event_id']}"}) for e in part]

        send(topics.GPS, [x.replace(rider.encode(), live.encode())
                          for x in (SEED / "gps.jsonl").read_bytes().splitlines() if x.strip()])
        send(topics.PLATFORM_EVENTS, events(seed[:split]))
        engine = create_engine(url)
        deadline = time.monotonic() + 60
        while FeedStore(engine).pings(live) < 890 and time.monotonic() < deadline:
            time.sleep(0.2)
        engine.dispose()
        time.sleep(1.0)  # quiet
        since_live = end_offsets(kafka_bootstrap, (topics.GAP_FLAGGED,))
        sent = time.monotonic()
        send(topics.PLATFORM_EVENTS, events(seed[split:split + 3]))
        got = read_topic(kafka_bootstrap, topics.GAP_FLAGGED, since_live,
                         lambda recs: any(m.key == live.encode() for m in recs), timeout=60)
        took = time.monotonic() - sent
        [flag] = [orjson.loads(m.value)["data"] for m in got if m.key == live.encode()]
        assert flag["phase"] == "connecting" and took < 15, (flag, took)  # settle 0.2 s; a stuck watermark: 120 s
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
