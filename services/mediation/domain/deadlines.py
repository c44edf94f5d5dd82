"""How long a case may stay in each status before it is overdue. Configurable per deployment."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from services.mediation.domain.model import Case, Status

DEFAULT_HOURS: dict[Status, float] = {
    Status.OPENED: 24,  # request the evidence within a day
    Status.EVIDENCE_REQUESTED: 2,  # the engine answers in seconds; hours mean something is stuck
    Status.EVIDENCE_READY: 72,  # the mediator reviews the packet
    Status.UNDER_REVIEW: 120,
    Status.PROPOSAL_SENT: 168,  # the insurer's response time: a week
    Status.INSURER_ACCEPTED: 168,  # payment confirmed and case resolved
    Status.INSURER_REJECTED: 168,
    Status.ESCALATED: 336,
    Status.RESOLVED: 720,
}


def due_at(case: Case, hours: Mapping[Status, float] = DEFAULT_HOURS) -> datetime | None:
    h = hours.get(case.status)
    return None if h is None else case.status_since + timedelta(hours=h)


def overdue(case: Case, now: datetime, hours: Mapping[Status, float] = DEFAULT_HOURS) -> bool:
    d = due_at(case, hours)
    return d is not None and now > d
