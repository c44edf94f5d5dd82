"""Group 1: the Kafka broker killed (SIGKILL) and restarted while a day of a hundred riders is
replayed into it. Afterwards every ping and platform event of the day is stored exactly once, and
every incident's assessment from the stored feeds equals the batch engine's on the files."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.trajectory.adapters.feeds import read_gps, read_platform
from services.trajectory.adapters.store import FeedStore, event_uid, ping_keys
from services.trajectory.domain.model import Params
from services.trajectory.entrypoints.replay import ensure_topics
from services.trajectory.service_layer.handlers import assess_request
from shared import topics
from shared.events import AssessmentRequested
from tests.integration.kafka.procs import base_env, processes, simulated_day, wait, worker_lag

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TZ = "Asia/Shanghai"


def day_truth(day: Path) -> tuple[int, int, int]:
    """Distinct pings, distinct platform events and unreadable lines of a day's files, as the store
    identifies them."""
    gps, gps_bad = read_gps((day / "gps.jsonl").read_bytes(), "gps.jsonl", TZ)
    keys = ping_keys(gps.lat, gps.lon, gps.accuracy)
    pings = len(set(zip(gps.rider.to_list(), gps.t.tolist(), keys.tolist(), strict=True)))
    lines = (day / "platform.jsonl").read_bytes().splitlines()
    events, ev_bad = read_platform((day / "platform.jsonl").read_bytes(), "platform.jsonl", TZ)
    uids = {event_uid(ev, lines[ev.line - 1].strip()) for ev, _ in events}
    return pings, len(uids), len(gps_bad) + len(ev_bad)


def stored(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as c:
        return (FeedStore(engine).pings(),  # distinct fixes, as they are read
                int(c.execute(sa.text("SELECT count(*) FROM trajectory_platform_event")).scalar() or 0))


@pytest.mark.faults_full
def test_broker_killed_and_restarted_during_a_hundred_rider_replay(private_kafka, fresh_database, tmp_path: Path,
                                                                   reliability) -> None:
    day = tmp_path / "day"
    url = fresh_database("postgresql")
    env = base_env(XJ_DATABASE_URL=url, XJ_DATA_DIR=str(tmp_path / "var"), XJ_KAFKA_BOOTSTRAP=private_kafka.bootstrap,
                   XJ_WORKER_GROUP=f"xj-fault-{uuid.uuid4().hex[:8]}", XJ_PARTITIONS="6")
    run = dict(cwd=ROOT, env=env, capture_output=True, timeout=300)
    batch, incidents = simulated_day(day, run, riders=100, seed=17)
    want_pings, want_events, unreadable = day_truth(day)
    assert unreadable == 0 and len(batch) == len(incidents) >= 100

    consumed = (topics.PLATFORM_EVENTS, topics.GPS, topics.ASSESSMENT_REQUESTED)
    ensure_topics(private_kafka.bootstrap, (*consumed, *map(topics.dead_letter, consumed), topics.ASSESSMENT_READY,
                                            topics.GAP_FLAGGED), 6)
    r = subprocess.run([sys.executable, "-c", "from services.bootstrap import database; from shared.config import "
                        "Settings; database(Settings(), ('trajectory',)).dispose()"], **run)
    assert r.returncode == 0, r.stderr
    engine = sa.create_engine(url)
    try:
        with processes(tmp_path, env) as procs:
            w = procs.start("worker", "services.trajectory", "worker", "--loglevel", "info")
            wait("the worker ready", lambda: "Worker]: Ready" in w.log.read_text(errors="replace"), 60,
                 procs.check_alive)
            replay = subprocess.Popen([sys.executable, "-m", "services.trajectory", "replay", str(day),
                                       "--speedup", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
            try:
                # the broker dies a third of the way into the day: some stored, most still to come
                wait("a third of the pings stored", lambda: stored(engine)[0] >= want_pings // 3, 180,
                     procs.check_alive)
                at_kill = stored(engine)
                private_kafka.kill()
                killed = time.monotonic()
                time.sleep(5.0)
                restart_s = private_kafka.start()
                down_s = time.monotonic() - killed
                out, err = replay.communicate(timeout=600)
            finally:
                if replay.poll() is None:
                    replay.kill()
                    replay.wait()
            assert replay.returncode == 0, err.decode(errors="replace")[-2000:]
            wait("the worker's groups committed every feed record",
                 lambda: worker_lag(private_kafka.bootstrap, env["XJ_WORKER_GROUP"],
                                    (topics.GPS, topics.PLATFORM_EVENTS)) == 0, 240, procs.check_alive)
            caught_up = time.monotonic() - killed
            pings, events = stored(engine)
            procs.check_alive()  # the worker lived through the outage: no restart by a supervisor
    finally:
        engine.dispose()

    store = FeedStore(sa.create_engine(url))
    diffs = []
    for inc in incidents:
        loc = inc.get("location")
        req = AssessmentRequested(request_id=f"r-{inc['incident_id']}", case_id=f"c-{inc['incident_id']}",
                                  rider_id=inc["rider_id"], incident_at=inc["at"],
                                  location=(loc["lat"], loc["lon"]) if loc else None)
        got = assess_request(store, req, Params(), TZ)
        want = batch[inc["incident_id"]]
        a = getattr(got, "assessment", None) or {}
        if (a.get("phase"), a.get("continuous_delivery")) != (want["phase"], want["continuous_delivery"]):
            diffs.append((inc["incident_id"], a.get("phase"), want["phase"]))
    store.engine.dispose()

    lost = max(0, want_pings - pings) + max(0, want_events - events)
    duplicated = max(0, pings - want_pings) + max(0, events - want_events)
    reliability.record(
        1, "broker SIGKILLed a third into a 100-rider day, restarted 5 s later",
        load=f"100 simulated riders: {want_pings:,} pings + {want_events:,} platform events replayed at full speed "
             "(idempotent producer), one trajectory worker on PostgreSQL",
        injected=f"SIGKILL of the only broker with {at_kill[0]:,} pings stored; down {down_s:.1f} s "
                 f"(restart took {restart_s:.1f} s)",
        lost=lost, duplicated=duplicated, leaked=0,
        detail=f"{pings:,}/{want_pings:,} pings and {events:,}/{want_events:,} events stored once; "
               f"{len(incidents) - len(diffs)}/{len(incidents)} assessments equal the batch engine's; "
               f"worker caught up {caught_up:.0f} s after the kill without a restart")
    assert lost == 0 and duplicated == 0
    assert not diffs, diffs
