"""Versioned events: the language the services speak on the bus.

Every event travels in an :class:`Envelope` (id, type, schema version, occurred_at, producer, key,
data). Event classes are past tense, carry ``TYPE`` and ``VERSION``, and are never renamed once
published; fields added later are optional (a reader of the first version reads them all); a change that
is not additive takes the next version and a registered, tested upcaster. Topic names and keys live in :mod:`shared.topics`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class EventError(ValueError):
    """A message that is not a valid event: wrong shape, unknown type, unsupported version."""


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=100)
    type: str = Field(min_length=1, max_length=100)
    version: int = Field(ge=1)
    occurred_at: datetime
    producer: str = Field(min_length=1, max_length=100)
    key: str = Field(min_length=1, max_length=200)
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @staticmethod
    def from_bytes(raw: bytes) -> Envelope:
        try:
            env = Envelope.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError) as e:
            raise EventError(f"not an event envelope: {e}") from e
        if env.occurred_at.tzinfo is None:
            raise EventError("occurred_at must carry a time zone")
        return env


class Event(BaseModel):
    """Base of every event payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1

    def envelope(self, *, key: str, producer: str, occurred_at: datetime | None = None,
                 event_id: str | None = None) -> Envelope:
        return Envelope(
            id=event_id or str(uuid.uuid4()), type=self.TYPE, version=self.VERSION,
            occurred_at=occurred_at or datetime.now(UTC), producer=producer, key=key,
            data=self.model_dump(mode="json"),
        )


_REGISTRY: dict[str, type[Event]] = {}
E = TypeVar("E", bound=type[Event])


def event(cls: E) -> E:
    """Class decorator: make an event type known to :func:`decode`."""
    if cls.TYPE in _REGISTRY and _REGISTRY[cls.TYPE] is not cls:
        raise RuntimeError(f"event type {cls.TYPE} registered twice")
    _REGISTRY[cls.TYPE] = cls
    return cls


def decode(env: Envelope) -> Event:
    """The typed event of an envelope; EventError if it is not one this service reads. Every event
    is at version 1: fields added since are optional, so a version-1 reader reads them all. A
    change that is not additive gets the next version and an upcaster, registered and tested."""
    cls = _REGISTRY.get(env.type)
    if cls is None:
        raise EventError(f"unknown event type {env.type!r}")
    data, version = dict(env.data), env.version
    if version != cls.VERSION:
        raise EventError(f"{env.type} version {version}: this service reads version {cls.VERSION}")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise EventError(f"{env.type} v{env.version} payload invalid: {e}") from e


# ---------------------------------------------------------------- trajectory

@event
class AssessmentRequested(Event):
    TYPE = "AssessmentRequested"
    request_id: str
    case_id: str
    rider_id: str
    incident_at: datetime
    location: tuple[float, float] | None = None  # WGS-84 lat, lon
    window_min: float = 30.0  # trajectory shared only within ± this many minutes
    freeze_hours: float = 24.0  # evidence around the incident kept beyond retention
    claimed_at: datetime | None = None  # when the case was opened: a flag made before it predates any claim


@event
class AssessmentReady(Event):
    TYPE = "AssessmentReady"
    request_id: str
    case_id: str
    rider_id: str
    assessment: dict[str, Any]  # DATA_CONTRACT §6 object
    timeline: list[dict[str, Any]]  # phase segments around the incident
    orders: list[dict[str, Any]]  # the rider's orders around the incident
    track: list[tuple[float, float, float]]  # (epoch s, lat, lon) within the window only
    window: tuple[float, float]  # epoch s
    # the gaps between the rider's orders inside the window as the trajectory service flagged them
    # when they closed (``GapFlagged`` as recorded then): {from, to, phase, continuous_delivery, why,
    # flagged_at, previous_order, next_order}, times as ISO 8601; optional, so v1 readers still read it
    gap_flags: list[dict[str, Any]] = []


@event
class AssessmentFailed(Event):
    TYPE = "AssessmentFailed"
    request_id: str
    case_id: str
    reason: str


@event
class GapFlagged(Event):
    TYPE = "GapFlagged"
    rider_id: str
    start: datetime
    end: datetime
    phase: str
    continuous_delivery: bool | None  # None: undetermined (insufficient_data), never "no"
    previous_order: str | None = None
    next_order: str | None = None
    why: str = ""


# ---------------------------------------------------------------- mediation

class CaseEvent(Event):
    """Base of every case event: the fields every party's notification needs."""

    case_id: str
    case_number: str
    status: str  # the case's status after the event
    actor: str  # who caused it ("mediator:3", "insurer:PICC", "system")
    insurer_code: str
    rider_phone: str | None = None  # for notifying the rider; never in a packet
    rider_lang: str = "zh"  # "zh" | "en"
    mediator_email: str | None = None  # the assigned mediator
    insurer_email: str | None = None  # the insurer's claims address


@event
class CaseOpened(CaseEvent):
    TYPE = "CaseOpened"


@event
class StatusChanged(CaseEvent):
    TYPE = "StatusChanged"
    from_status: str
    reason: str = ""


@event
class EvidenceRequested(CaseEvent):
    TYPE = "EvidenceRequested"
    request_id: str


@event
class EvidenceReady(CaseEvent):
    TYPE = "EvidenceReady"
    packet_id: str
    packet_sha256: str
    phase: str
    continuous_delivery: bool | None  # None: undetermined (insufficient_data), never "no"


@event
class EvidenceShared(CaseEvent):
    """The mediator sent the proposal: the insurer may now see the case's evidence, the packet
    named here (the one current at ``proposal_sent``; None if the case has none). Until this event
    the insurer is told only that the case exists and its status (the mediator reviews first)."""

    TYPE = "EvidenceShared"
    packet_id: str | None = None
    packet_sha256: str | None = None
    phase: str | None = None
    continuous_delivery: bool | None = None  # None: undetermined (insufficient_data) or no packet
    covered: bool | None = None  # None: undetermined or no packet
    reason: str = ""  # the mediator's words with the proposal


@event
class InsurerResponded(CaseEvent):
    TYPE = "InsurerResponded"
    decision: str
    reason: str = ""


@event
class CaseOverdue(CaseEvent):
    TYPE = "CaseOverdue"
    deadline: datetime
