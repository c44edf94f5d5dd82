"""The mediation service's tables (prefix ``mediation_``). Schema changes go through Alembic
(services/mediation/adapters/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def TZ() -> Column:  # noqa: N802 - a column factory
    return Column(DateTime(timezone=True))


class CaseRow(SQLModel, table=True):
    __tablename__ = "mediation_case"
    id: str = Field(primary_key=True, max_length=36)
    case_number: str = Field(unique=True, index=True, max_length=32)
    status: str = Field(index=True, max_length=32)
    rider_id: str = Field(index=True, max_length=100)
    rider_name: str = Field(max_length=100)
    rider_phone: str = Field(max_length=32)
    rider_lang: str = Field(default="zh", max_length=5)
    insurer_code: str = Field(index=True, max_length=32)
    policy_number: str = Field(max_length=64)
    claim_number: str = Field(max_length=64)
    product: str = Field(max_length=64)
    incident_at: datetime = Field(sa_column=TZ())
    incident_lat: float | None = None
    incident_lon: float | None = None
    incident_description: str = Field(default="", sa_column=Column(Text))
    injury: str = Field(default="", max_length=500)
    denial_reason: str = Field(default="", sa_column=Column(Text))
    consent_given: bool = False
    consent_at: datetime | None = Field(default=None, sa_column=TZ())
    consent_method: str = Field(default="", max_length=50)
    consent_scope: str = Field(default="", max_length=300)
    office: str = Field(index=True, max_length=100)
    mediator_id: str = Field(max_length=36)
    access_code_hash: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=TZ())
    status_since: datetime = Field(sa_column=TZ())
    due_at: datetime | None = Field(default=None, sa_column=TZ())
    packet_id: str | None = Field(default=None, max_length=36)  # the current packet (the latest built)
    assessment_phase: str | None = Field(default=None, max_length=32)
    # the packet sent to the insurer with the proposal (the one current at the last proposal_sent);
    # the insurer sees this one and no other
    sent_packet_id: str | None = Field(default=None, max_length=36)
    sent_phase: str | None = Field(default=None, max_length=32)
    evidence_stale: bool = False  # a correction to the rider or the incident: evidence must be requested again
    audit_seq: int = 0
    audit_head: str = Field(default="0" * 64, max_length=64)
    version: int = 1


class TransitionRow(SQLModel, table=True):
    __tablename__ = "mediation_transition"
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, foreign_key="mediation_case.id", max_length=36)
    at: datetime = Field(sa_column=TZ())
    actor: str = Field(max_length=100)
    from_status: str | None = Field(default=None, max_length=32)
    to_status: str = Field(max_length=32)
    reason: str = Field(default="", sa_column=Column(Text))
    packet_id: str | None = Field(default=None, max_length=36)  # built (evidence_ready) or sent (proposal_sent)


class AuditRow(SQLModel, table=True):
    __tablename__ = "mediation_audit"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=36)
    seq: int
    at: str = Field(max_length=40)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=64)
    data: str = Field(sa_column=Column(Text))  # canonical JSON
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class OutboxRow(SQLModel, table=True):
    """Events committed with the change that caused them; a relay publishes them afterwards."""

    __tablename__ = "mediation_outbox"
    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, max_length=36)
    topic: str = Field(max_length=100)
    key: str = Field(max_length=200)
    payload: bytes = Field(sa_column=Column(LargeBinary))
    created_at: datetime = Field(sa_column=TZ())
    published_at: datetime | None = Field(default=None, sa_column=TZ())


class UserRow(SQLModel, table=True):
    __tablename__ = "mediation_user"
    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=100)
    role: str = Field(max_length=16)
    insurer_code: str | None = Field(default=None, max_length=32)
    office: str = Field(default="default", max_length=100)
    email: str | None = Field(default=None, max_length=200)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    created_at: datetime = Field(sa_column=TZ())
    active: bool = True


class InsurerRow(SQLModel, table=True):
    __tablename__ = "mediation_insurer"
    code: str = Field(primary_key=True, max_length=32)
    name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=200)
    default_product: str = Field(default="continuous-delivery", max_length=64)


class PacketRow(SQLModel, table=True):
    __tablename__ = "mediation_packet"
    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    created_at: datetime = Field(sa_column=TZ())
    sha256: str = Field(max_length=64)
    body: bytes = Field(sa_column=Column(LargeBinary))  # the signed packet, JSON
    request_id: str | None = Field(default=None, max_length=36)
    phase: str | None = Field(default=None, max_length=32)
    continuous_delivery: bool | None = None  # None: undetermined (or not recorded, before 0002)
    covered: bool | None = None
    sent_at: datetime | None = Field(default=None, sa_column=TZ())  # first sent to the insurer


class EvidenceRequestRow(SQLModel, table=True):
    __tablename__ = "mediation_evidence_request"
    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(index=True, max_length=36)
    requested_at: datetime = Field(sa_column=TZ())
    state: str = Field(default="pending", max_length=16)  # pending | ready | failed
    detail: str = Field(default="", sa_column=Column(Text))


class StatusAttemptRow(SQLModel, table=True):
    """Wrong access codes per case number, for rate limiting the public status page."""

    __tablename__ = "mediation_status_attempt"
    case_number: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=TZ())
    last_failure: datetime | None = Field(default=None, sa_column=TZ())


class GapFlagRow(SQLModel, table=True):
    """A projection of the trajectory service's ``GapFlagged`` events (and of the flags an
    assessment reply carries), kept for riders with an open case whose consent covers them."""

    __tablename__ = "mediation_gap_flag"
    rider_id: str = Field(primary_key=True, max_length=100)
    start: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    end: datetime = Field(sa_column=TZ())
    phase: str = Field(max_length=32)
    continuous_delivery: bool | None = None
    why: str = Field(default="", max_length=64)
    previous_order: str | None = Field(default=None, max_length=100)
    next_order: str | None = Field(default=None, max_length=100)
    flagged_at: datetime | None = Field(default=None, sa_column=TZ())  # when the trajectory service judged it
    received_at: datetime = Field(sa_column=TZ())
