"""``handle_feed_batch`` stores a batch of 500 pings in a handful of statements, never a round trip
per ping (counted, not timed: a timed test flakes on a busy machine). Run with ``-s`` to see the
rate it reached (about 37k pings/s on SQLite on the development machine)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from services.trajectory.adapters.store import FeedStore, migrate
from services.trajectory.service_layer.handlers import handle_feed_batch
from shared import topics
from shared.bus import Message

pytestmark = pytest.mark.integration

N, RIDERS, BATCH = 50_000, 1000, 500
MAX_STATEMENTS_PER_BATCH = 10


def city_pings() -> list[Message]:
    rng = np.random.default_rng(1)
    vals = [orjson.dumps({"rider_id": f"R{i % RIDERS:05d}",
                          "ts": 1778724000000 + 5000 * (i // RIDERS) + int(rng.integers(0, 4000)),
                          "lat": round(23.7 + rng.random() * 0.1, 6), "lon": round(114.6 + rng.random() * 0.1, 6),
                          "accuracy_m": round(float(rng.random() * 20), 1), "speed_mps": 3.2})
            for i in range(N)]
    return [Message(topics.GPS, f"R{i % RIDERS:05d}", v, (), 0, i) for i, v in enumerate(vals)]


def test_ingest_rate(engine, request):
    migrate(engine)
    store = FeedStore(engine)
    msgs = city_pings()
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, stmt, params, context, many: statements.append(stmt))

    async def go() -> tuple[int, float]:
        stored, t = 0, time.perf_counter()
        for i in range(0, N, BATCH):
            stored += (await handle_feed_batch(store, msgs[i:i + BATCH])).pings_stored
        return stored, time.perf_counter() - t

    stored, dt = asyncio.run(go())
    rate = stored / dt
    backend = request.node.callspec.params["engine"]
    print(f"\ningest on {backend}: {stored} pings in {dt:.2f} s = {rate:,.0f} pings/s (batches of {BATCH})")
    assert stored == N
    batches = N // BATCH
    print(f"{len(statements) / batches:.1f} statements per batch")
    assert len(statements) <= MAX_STATEMENTS_PER_BATCH * batches, f"{len(statements)} statements for {batches} batches"
