"""What notify talks about: intents (who should be told what), recorded notifications, delivery
results. Times are timezone-aware datetimes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    RIDER = "rider"
    INSURER = "insurer"
    MEDIATOR = "mediator"


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    SMS = "sms"


class State(StrEnum):
    PENDING = "pending"  # recorded, not tried yet (or replayed)
    FAILED = "failed"  # tried, failed, will be tried again at next_attempt_at
    SENT = "sent"
    DEAD = "dead"  # every attempt failed (or the failure cannot be cured by retrying)


DUE_STATES = (State.PENDING, State.FAILED)
LANGS = ("zh", "en")


@dataclass(frozen=True)
class Intent:
    """The domain's decision: tell ``recipient`` (an email address, a phone number, or for a
    webhook the insurer's code) about ``template`` through ``channel``, in ``lang``."""

    event_id: str
    case_id: str
    role: Role
    channel: Channel
    recipient: str
    template: str
    lang: str
    context: Mapping[str, Any] = field(default_factory=dict)  # template variables; webhook: payload

    @property
    def key(self) -> tuple[str, str, str]:
        """The idempotency key: one notification per event, recipient and channel."""
        return (self.event_id, self.recipient, self.channel.value)


@dataclass(frozen=True)
class Draft:
    """An intent with its content rendered, ready to be recorded."""

    id: str
    event_id: str
    case_id: str
    role: str
    channel: str
    recipient: str
    template: str
    lang: str
    subject: str | None
    body: str
    html: str | None = None
    case_number: str | None = None


@dataclass(frozen=True)
class Notification:
    """A recorded notification and where its delivery stands."""

    id: str
    event_id: str
    case_id: str
    role: str
    channel: str
    recipient: str
    template: str
    lang: str
    subject: str | None
    body: str
    html: str | None
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    case_number: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.event_id, self.recipient, self.channel)


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    error: str = ""
    permanent: bool = False  # retrying cannot help (no webhook configured, address refused)

    @staticmethod
    def sent() -> DeliveryResult:
        return DeliveryResult(ok=True)

    @staticmethod
    def failed(error: str, *, permanent: bool = False) -> DeliveryResult:
        return DeliveryResult(ok=False, error=error[:1000], permanent=permanent)


@dataclass(frozen=True)
class InsurerContact:
    """What routing needs to know of an insurer (from the InsurerDirectory)."""

    code: str
    email: str | None = None
    webhook: bool = False  # a webhook URL is configured
    lang: str = "zh"


@dataclass(frozen=True)
class InsurerChannel:
    """An insurer's delivery settings, as the InsurerDirectory port returns them."""

    code: str
    webhook_url: str | None
    secrets: tuple[str, ...]  # currently valid signing secrets, newest first
    email: str | None = None
    lang: str = "zh"

    def contact(self) -> InsurerContact:
        return InsurerContact(self.code, self.email, bool(self.webhook_url and self.secrets), self.lang)


@dataclass(frozen=True)
class CaseView:
    """Notify's own view of a case, kept from the events, for the overdue digest."""

    case_id: str
    case_number: str
    status: str
    insurer_code: str
    mediator_email: str | None
    overdue_deadline: datetime | None  # set by CaseOverdue, cleared by the next event
    updated_at: datetime


@dataclass(frozen=True)
class OverdueCase:
    case_id: str
    case_number: str
    status: str
    insurer_code: str
    mediator_email: str | None
    deadline: datetime
