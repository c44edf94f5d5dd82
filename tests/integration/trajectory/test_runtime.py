"""The embedded runtime: its settings, its schedule of retention, evidence that survives it."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.trajectory.adapters.store import FeedStore
from services.trajectory.entrypoints.worker import purge_once
from services.trajectory.settings import TrajectorySettings
from shared import topics

from .helpers import SEED, publish_dir, replies, request, request_for, running, seed_incident

pytestmark = pytest.mark.integration


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("XJ_RETENTION_DAYS", "7")
    monkeypatch.setenv("XJ_FEED_BATCH", "200")
    s = TrajectorySettings()
    assert (s.retention_days, s.feed_batch, s.timezone) == (7, 200, "Asia/Shanghai")
    assert TrajectorySettings.model_fields["retention_days"].default == 30


def test_retention_runs_on_schedule(engine):
    async def go():
        async with running(engine, retention_days=0, purge_every_s=0.05) as bus:
            await publish_dir(bus, SEED)
            await bus.drain()
            for _ in range(100):
                if FeedStore(engine).pings() == 0:
                    return True
                await asyncio.sleep(0.05)
            return False

    assert asyncio.run(go())


def test_evidence_requested_survives_retention(engine):
    req = request_for(seed_incident(), freeze_hours=0.25)
    t = req.incident_at.timestamp()

    async def go():
        async with running(engine, purge_every_s=3600) as bus:
            await publish_dir(bus, SEED)
            await bus.drain()
            await request(bus, req)
            await bus.drain()
            assert bus.logs[topics.ASSESSMENT_READY]
            return replies(bus)

    asyncio.run(go())
    store = FeedStore(engine)
    before = store.load_rider("R-LIMING", t - 86400, t + 86400)
    purged = asyncio.run(purge_once(store, TrajectorySettings(retention_days=0), now=time.time() + 1))
    after = store.load_rider("R-LIMING", t - 86400, t + 86400)
    assert purged.pings > 0 and 0 < len(after.gps) < len(before.gps)
    assert after.gps.t.min() >= t - 900 and after.gps.t.max() <= t + 900
    # the orders overlapping the held window keep all their events, and the presence state at its
    # start is kept, so the held window reads as it did before retention ran
    window = store.load_rider("R-LIMING", t - 900, t + 900)
    assert [o.order_id for o in after.orders] == [o.order_id for o in window.orders] == ["MEING001507", "MEING002716"]
    assert after.orders == before.orders and window.presence == before.presence[:1]
    assert window.orders[0].accepted < t - 900 < window.orders[0].ended  # accepted before the held window


def test_bootstrap_subscribes_the_handlers_with_its_own_settings(engine):
    from services.trajectory.bootstrap import bootstrap
    from shared.bus import InMemoryBus

    async def go():
        bus, stop = InMemoryBus(), asyncio.Event()
        task = asyncio.create_task(bootstrap(engine=engine, bus=bus).run_handlers(stop))
        for _ in range(200):
            if bus.positions:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 5)
        return set(bus.positions)

    assert asyncio.run(go()) == {(topics.GPS, "trajectory"), (topics.PLATFORM_EVENTS, "trajectory"),
                                 (topics.ASSESSMENT_REQUESTED, "trajectory")}
