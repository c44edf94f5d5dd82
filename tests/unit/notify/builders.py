"""Tiny builders of case events and envelopes for notify's tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from shared.events import (
    CaseOpened,
    CaseOverdue,
    Event,
    EvidenceReady,
    EvidenceRequested,
    EvidenceShared,
    InsurerResponded,
    StatusChanged,
)
from shared.topics import CASE_EVENTS

T0 = datetime(2026, 11, 29, 6, 10, tzinfo=UTC)  # 14:10 in Shanghai
BASE = "http://127.0.0.1:8000"

COMMON: dict[str, Any] = {
    "case_id": "case-1", "case_number": "XJ-2026-0001", "actor": "mediator:3", "insurer_code": "PICC",
    "rider_phone": "13800138000", "rider_lang": "zh", "mediator_email": "wang@mediation.example",
    "insurer_email": "claims@picc.example",
}


def case(**kw: Any) -> dict[str, Any]:
    return {**COMMON, **kw}


def opened(**kw: Any) -> CaseOpened:
    return CaseOpened(**case(status="opened", **kw))


def evidence_requested(**kw: Any) -> EvidenceRequested:
    return EvidenceRequested(**case(status="evidence_requested", request_id="r1", **kw))


def evidence_ready(**kw: Any) -> EvidenceReady:
    return EvidenceReady(**case(**{"status": "evidence_ready", "packet_id": "pk-1", "packet_sha256": "ab" * 32,
                                   "phase": "connecting", "continuous_delivery": True, **kw}))


def evidence_shared(**kw: Any) -> EvidenceShared:
    """The mediator sent the proposal, with the packet current then."""
    return EvidenceShared(**case(**{"status": "proposal_sent", "packet_id": "pk-1", "packet_sha256": "ab" * 32,
                                    "phase": "connecting", "continuous_delivery": True, "covered": True,
                                    "reason": "连续配送的合理衔接", **kw}))


def undetermined(**kw: Any) -> dict[str, Any]:
    """The fields of an abstention (insufficient_data): undetermined, never "no"."""
    return {"phase": "insufficient_data", "continuous_delivery": None, **kw}


def responded(decision: str = "reject", **kw: Any) -> InsurerResponded:
    status = "insurer_accepted" if decision == "accept" else "insurer_rejected"
    return InsurerResponded(**case(**{"status": status, "decision": decision, "reason": "条款除外", "actor": "insurer:PICC", **kw}))


def changed(to: str, frm: str = "under_review", **kw: Any) -> StatusChanged:
    return StatusChanged(**case(**{"status": to, "from_status": frm, "reason": "", **kw}))


def overdue(deadline: datetime = T0, **kw: Any) -> CaseOverdue:
    return CaseOverdue(**case(**{"status": "under_review", "deadline": deadline, "actor": "system", **kw}))


def envelope(e: Event, *, event_id: str | None = None, at: datetime = T0) -> Any:
    key = getattr(e, "case_id", "k")
    return e.envelope(key=key, producer="mediation", occurred_at=at, event_id=event_id or str(uuid.uuid4()))


def publish_args(e: Event, **kw: Any) -> tuple[str, str, bytes]:
    env = envelope(e, **kw)
    return CASE_EVENTS, env.key, env.to_bytes()
