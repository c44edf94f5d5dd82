"""Notify's tables (prefix ``notify_``), SQLModel. Their history is the Alembic environment in
``migrations/`` (version table ``alembic_version_notify``); keep both in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware (UTC) datetimes out, on PostgreSQL (timestamptz) and on SQLite
    (which keeps no zone: stored as naive UTC, so text order is time order)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class NotifyNotification(SQLModel, table=True):
    __tablename__ = "notify_notification"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient", "channel", name="uq_notify_notification_key"),
        Index("ix_notify_notification_due", "state", "next_attempt_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    event_id: str = Field(max_length=100)
    case_id: str = Field(max_length=100, index=True)
    case_number: str | None = Field(default=None, max_length=100)
    role: str = Field(max_length=20)
    channel: str = Field(max_length=20)
    recipient: str = Field(max_length=320)
    template: str = Field(max_length=60)
    lang: str = Field(max_length=5)
    subject: str | None = Field(default=None, max_length=500)
    body: str = Field(sa_column=Column(Text, nullable=False))
    html: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    state: str = Field(max_length=10)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)


class NotifyConsumedEvent(SQLModel, table=True):
    """Events whose notifications are recorded: the second delivery of one is a no-op."""

    __tablename__ = "notify_consumed_event"

    event_id: str = Field(primary_key=True, max_length=100)
    event_type: str = Field(max_length=100)
    case_id: str = Field(max_length=100)
    consumed_at: datetime = _ts()


class NotifyInsurerChannel(SQLModel, table=True):
    """An insurer's webhook and signing secrets (``[{"secret", "since", "until"}]``, epoch s)."""

    __tablename__ = "notify_insurer_channel"

    code: str = Field(primary_key=True, max_length=50)
    webhook_url: str | None = Field(default=None, max_length=2000)
    secrets: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    email: str | None = Field(default=None, max_length=320)
    lang: str = Field(default="zh", sa_column=Column(String(5), nullable=False, server_default="zh"))
    updated_at: datetime = _ts()


class NotifyCase(SQLModel, table=True):
    """Notify's view of each case (from the events), for the overdue digest."""

    __tablename__ = "notify_case"

    case_id: str = Field(primary_key=True, max_length=100)
    case_number: str = Field(max_length=100)
    status: str = Field(max_length=40)
    insurer_code: str = Field(max_length=50)
    mediator_email: str | None = Field(default=None, max_length=320)
    overdue_deadline: datetime | None = _ts(nullable=True, index=True)
    updated_at: datetime = _ts()


TABLES = [NotifyNotification.__table__, NotifyConsumedEvent.__table__,  # type: ignore[attr-defined]
          NotifyInsurerChannel.__table__, NotifyCase.__table__]  # type: ignore[attr-defined]
