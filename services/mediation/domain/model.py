"""The case and its parts. Instants are aware datetimes (UTC inside)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    OPENED = "opened"
    EVIDENCE_REQUESTED = "evidence_requested"
    EVIDENCE_READY = "evidence_ready"
    UNDER_REVIEW = "under_review"
    PROPOSAL_SENT = "proposal_sent"
    INSURER_ACCEPTED = "insurer_accepted"
    RESOLVED = "resolved"
    CLOSED = "closed"
    INSURER_REJECTED = "insurer_rejected"
    ESCALATED = "escalated"
    WITHDRAWN = "withdrawn"


class Role(StrEnum):
    MEDIATOR = "mediator"
    INSURER = "insurer"
    FEED = "feed"  # a platform's or phone gateway's feed token
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    role: Role
    id: str  # user id, or "trajectory" for the system
    name: str = ""
    insurer_code: str | None = None
    office: str | None = None

    @property
    def label(self) -> str:
        return f"{self.role.value}:{self.id}"


SYSTEM = Actor(Role.SYSTEM, "system", "Xianjie")


@dataclass(frozen=True)
class Consent:
    """The rider's separate consent to use his location trail for this case (PIPL art. 29)."""

    given: bool
    at: datetime | None
    method: str  # "written" | "sms" | "in_person" | "app" ...
    scope: str = "trajectory around the incident, for this case only"


@dataclass(frozen=True)
class Incident:
    at: datetime
    description: str = ""
    injury: str = ""
    location: tuple[float, float] | None = None  # WGS-84


@dataclass(frozen=True)
class Rider:
    rider_id: str
    name: str
    phone: str
    lang: str = "zh"


@dataclass(frozen=True)
class TransitionRecord:
    at: datetime
    actor: str
    from_status: Status | None
    to_status: Status
    reason: str


@dataclass(frozen=True)
class Case:
    case_id: str
    case_number: str
    status: Status
    rider: Rider
    insurer_code: str
    policy_number: str
    claim_number: str
    product: str
    incident: Incident
    denial_reason: str
    consent: Consent
    office: str
    mediator_id: str
    created_at: datetime
    status_since: datetime
    history: tuple[TransitionRecord, ...] = field(default_factory=tuple)
    packet_id: str | None = None
    assessment_phase: str | None = None

    def with_status(self, to: Status, record: TransitionRecord) -> Case:
        return replace(self, status=to, status_since=record.at, history=(*self.history, record))
