"""The overdue scheduler: every ``XJ_OVERDUE_CHECK_S`` seconds the mediation process holding the
database lease ``overdue`` raises ``CaseOverdue`` (through the outbox, so on the embedded bus and
on Kafka alike) for each case past its deadline, once per case and deadline. With several
mediation processes exactly one holds the lease; should two ever overlap (a lease expiring mid
pass), the notice table's unique key still lets one of them raise each notice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from starlette.concurrency import run_in_threadpool

from services.mediation.service_layer.office import Office

logger = logging.getLogger(__name__)
LEASE = "overdue"


def holder_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def check_once(office: Office, holder: str, interval_s: float) -> int | None:
    """One pass: None if another process holds the lease, else the notices raised."""
    if not await run_in_threadpool(office.take_lease, LEASE, holder, max(3 * interval_s, 5.0)):
        return None
    return await run_in_threadpool(office.raise_overdue)


async def run(office: Office, poke: asyncio.Event, stop: asyncio.Event, interval_s: float | None = None,
              holder: str | None = None) -> None:
    interval = interval_s if interval_s is not None else office.med.settings.overdue_check_s
    me = holder or holder_id()
    while not stop.is_set():
        try:
            raised = await check_once(office, me, interval)
            if raised:
                logger.info("raised %d overdue notices", raised)
                poke.set()  # the outbox relay publishes them now
        except Exception:
            logger.exception("overdue check failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
