"""Notify wired for real (SQLite, real channels from settings), driven by a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.notify.bootstrap import Notify
from services.notify.domain.model import Notification
from shared.events import Event
from tests.unit.notify.builders import envelope

from .conftest import until


@asynccontextmanager
async def running(app: Notify) -> AsyncIterator[Notify]:
    """The dispatcher's loop in the background for the duration of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(app.dispatcher.run(stop, grace=0.5))
    try:
        yield app
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await app.aclose()


def record(app: Notify, event: Event, **kw: object) -> list[Notification]:
    ids = app.recorder.record_envelope(envelope(event, **kw))  # type: ignore[arg-type]
    app.dispatcher.wake()
    return [app.store.get(i) for i in ids or []]


async def settled(app: Notify, ids: list[str], timeout: float = 5.0, states: tuple[str, ...] = ("sent", "dead")) -> None:
    await until(lambda: all(app.store.get(i).state in states for i in ids), timeout)
