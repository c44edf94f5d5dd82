"""The mediation service's background work: the outbox relay and the assessment consumer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from services.mediation.domain.coverage import finding
from services.mediation.service_layer import flags
from services.mediation.service_layer.cases import Mediation, aware
from shared import topics
from shared.bus import Bus, Message
from shared.events import (
    AssessmentFailed,
    AssessmentReady,
    Envelope,
    EventError,
    GapFlagged,
    decode,
)

logger = logging.getLogger(__name__)


async def relay_outbox(mediation: Mediation, bus: Bus, poke: asyncio.Event, stop: asyncio.Event,
                       idle_s: float = 0.5) -> None:
    """Publish committed events in commit order, then mark them published. A crash between the
    two publishes them again on restart (consumers deduplicate by event id): nothing is lost."""
    while not stop.is_set():
        try:
            rows = await run_in_threadpool(mediation.pending_outbox, 500)
            for r in rows:
                await bus.publish(r.topic, r.key, r.payload, (("event-id", r.event_id.encode()),))
            if rows:
                await run_in_threadpool(mediation.mark_published, [r.seq for r in rows if r.seq is not None])
                continue
        except Exception:
            logger.exception("outbox relay failed; retrying")
        poke.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poke.wait(), idle_s)


def packet_for(mediation: Mediation, ev: AssessmentReady, key_dir: Any) -> dict[str, Any]:
    from services.mediation.packet.body import build_packet
    from services.mediation.packet.sign import KeyRing

    row = mediation.case_for_packet(ev.case_id)
    tz = mediation.settings.timezone
    case = {
        "case_number": row.case_number, "insurer_code": row.insurer_code, "policy_number": row.policy_number,
        "claim_number": row.claim_number,
        "incident": {"at": aware(row.incident_at), "description": row.incident_description, "injury": row.injury,
                     "location": (row.incident_lat, row.incident_lon) if row.incident_lat is not None else None},
        "denial_reason": row.denial_reason,
        "consent": {"given": row.consent_given, "at": aware(row.consent_at) if row.consent_at else None,
                    "method": row.consent_method, "scope": row.consent_scope},
        "rider": {"rider_id": row.rider_id, "name": row.rider_name, "phone": row.rider_phone},
    }
    phase = str(ev.assessment.get("phase"))
    body = build_packet(packet_id=str(uuid.uuid4()), created_at=mediation.clock(), case=case,
                        assessment=ev.assessment, coverage=finding(row.product, phase, ev.assessment).as_dict(),
                        timeline=ev.timeline, orders=ev.orders, track=ev.track, window=ev.window, tz=tz)
    from services.mediation.packet.canonical import manifest_for
    from services.mediation.service_layer.office import Office

    # the attachments (name, kind, size, SHA-256, who, when) inside the signed case section
    body["case"]["attachments"] = Office(mediation).attachments_for_packet(ev.case_id)
    body["manifest"] = manifest_for(body)
    return KeyRing(key_dir).sign(body)


async def on_assessments(mediation: Mediation, key_dir: Any, poke: asyncio.Event, batch: Sequence[Message]) -> None:
    for m in batch:
        try:
            ev = decode(Envelope.from_bytes(m.value))
        except EventError:
            raise  # the bus dead-letters it with the reason
        if isinstance(ev, AssessmentReady):
            if ev.gap_flags:
                await run_in_threadpool(flags.keep, mediation, ev.rider_id, ev.gap_flags, mediation.settings.timezone)
            packet = await run_in_threadpool(packet_for, mediation, ev, key_dir)
            await run_in_threadpool(mediation.store_packet, case_id=ev.case_id, request_id=ev.request_id,
                                    packet=packet, phase=str(ev.assessment.get("phase")),
                                    continuous=ev.assessment.get("continuous_delivery"))
        elif isinstance(ev, AssessmentFailed):
            await run_in_threadpool(mediation.evidence_failed, case_id=ev.case_id, request_id=ev.request_id,
                                    reason=ev.reason)
        poke.set()


def subscribe(mediation: Mediation, bus: Bus, key_dir: Any, poke: asyncio.Event, group: str = "mediation") -> None:
    async def handler(batch: Sequence[Message]) -> None:
        await on_assessments(mediation, key_dir, poke, batch)

    bus.subscribe(topics.ASSESSMENT_READY, group, handler, batch=50)

    async def on_flags(batch: Sequence[Message]) -> None:
        for m in batch:
            env = Envelope.from_bytes(m.value)  # an unreadable one raises: the bus dead-letters it
            ev = decode(env)
            if isinstance(ev, GapFlagged):
                await run_in_threadpool(flags.project, mediation, ev, env.occurred_at)

    bus.subscribe(topics.GAP_FLAGGED, group, on_flags, batch=200)
