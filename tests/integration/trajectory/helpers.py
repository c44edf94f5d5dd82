"""Feeds as bus messages, and the service running on an in-process bus, for the tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from services.trajectory.bootstrap import bootstrap
from services.trajectory.settings import TrajectorySettings
from shared import topics
from shared.bus import InMemoryBus, Message
from shared.events import AssessmentRequested, Envelope, Event, decode

ROOT = Path(__file__).resolve().parents[3]
SCENARIOS = ROOT / "tests" / "data" / "scenarios"
SEED = SCENARIOS / "seed-case-between"
TZ = "Asia/Shanghai"


def lines(directory: Path, name: str) -> list[bytes]:
    p = directory / name
    return [ln for ln in p.read_bytes().splitlines() if ln.strip()] if p.exists() else []


def key_of(line: bytes) -> str:
    try:
        return str(orjson.loads(line).get("rider_id") or "?")
    except (orjson.JSONDecodeError, AttributeError):
        return "?"


def messages(topic: str, values: Sequence[bytes]) -> list[Message]:
    return [Message(topic, key_of(v), v, (), 0, i) for i, v in enumerate(values)]


def gps(values: Sequence[bytes]) -> list[Message]:
    return messages(topics.GPS, values)


def platform(values: Sequence[bytes]) -> list[Message]:
    return messages(topics.PLATFORM_EVENTS, values)


def request_for(incident: dict[str, Any], request_id: str = "req-1", case_id: str = "CASE-1",
                **over: Any) -> AssessmentRequested:
    loc = incident.get("location")
    fields: dict[str, Any] = dict(request_id=request_id, case_id=case_id, rider_id=incident["rider_id"],
                                  incident_at=datetime.fromisoformat(incident["at"]),
                                  location=(loc["lat"], loc["lon"]) if loc else None)
    fields.update(over)
    return AssessmentRequested(**fields)


def seed_incident() -> dict[str, Any]:
    return orjson.loads(lines(SEED, "incidents.jsonl")[0])


@contextlib.asynccontextmanager
async def running(engine: Engine, **settings: Any) -> AsyncIterator[InMemoryBus]:
    """The trajectory service embedded on a started in-process bus."""
    bus = InMemoryBus()
    stop = asyncio.Event()
    task = asyncio.create_task(bootstrap(settings=TrajectorySettings(**settings), engine=engine, bus=bus)
                               .run_handlers(stop))
    for _ in range(200):  # until it has subscribed (after its migration)
        if bus.positions or task.done():
            break
        await asyncio.sleep(0.02)
    if task.done():
        task.result()
    await bus.start()
    try:
        yield bus
    finally:
        stop.set()
        await task
        await bus.stop()


async def publish_dir(bus: InMemoryBus, directory: Path) -> None:
    for name, topic in (("platform.jsonl", topics.PLATFORM_EVENTS), ("gps.jsonl", topics.GPS)):
        await bus.publish_many(topic, [(key_of(v), v) for v in lines(directory, name)])


async def request(bus: InMemoryBus, req: AssessmentRequested) -> None:
    await bus.publish(topics.ASSESSMENT_REQUESTED, req.rider_id,
                      req.envelope(key=req.rider_id, producer="test").to_bytes())


def replies(bus: InMemoryBus) -> list[tuple[Envelope, Event]]:
    out = []
    for m in bus.logs.get(topics.ASSESSMENT_READY, []):
        env = Envelope.from_bytes(m.value)
        out.append((env, decode(env)))
    return out


def dead(bus: InMemoryBus, topic: str) -> list[Message]:
    return bus.logs.get(topics.dead_letter(topic), [])
