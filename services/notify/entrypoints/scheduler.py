"""The daily digest, on time: at ``XJ_DIGEST_AT`` local time (``XJ_TIMEZONE``) each running
notify worker records the day's digests. Recording is once per mediator and day (the store's
unique key), so several workers, a restart after the hour, or ``python -m services.notify
digest`` run by hand, all give one digest each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.notify.settings import NotifySettings

logger = logging.getLogger(__name__)


def next_digest(now: datetime, at: str, tz: str) -> tuple[date, datetime]:
    """The day and instant (UTC) of the next digest at or after ``now``; today's if ``now`` is
    past today's hour (it is then due at once: a worker started late still sends it)."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    hh, mm = (int(x) for x in at.split(":"))
    today = datetime.combine(local.date(), time(hh, mm), zone)
    if local >= today:
        return local.date(), now
    return local.date(), today.astimezone(UTC)


async def daily_digest(record: Callable[[date], list[str]], wake: Callable[[], None], settings: NotifySettings,
                       stop: asyncio.Event, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    done: date | None = None
    while not stop.is_set():
        now = clock()
        day, when = next_digest(now, settings.digest_at, settings.timezone)
        if day == done:  # today's is recorded: wait for tomorrow's hour
            local_midnight = datetime.combine(day + timedelta(days=1), time(0, 0), ZoneInfo(settings.timezone))
            when = max(now, local_midnight.astimezone(UTC))
        wait = (when - now).total_seconds()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(wait, 300.0))
            continue
        if day == done:
            continue
        try:
            ids = await asyncio.to_thread(record, day)
            logger.info("digest of %s: %d recorded", day, len(ids))
            done = day
            if ids:
                wake()
        except Exception:
            logger.exception("digest of %s could not be recorded; trying again in a minute", day)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 60.0)
