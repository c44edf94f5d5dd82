"""The ports notify's core talks to. Adapters: ``adapters/sql.py`` (SQLite, PostgreSQL) and
``adapters/memory.py`` (fakes for tests); one contract test suite runs against each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.notify.domain.model import (
    CaseView,
    Draft,
    InsurerChannel,
    Notification,
    OverdueCase,
    State,
)


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt, to be written back: ``attempt`` is the attempt count the
    notification had when it was claimed (stale outcomes are ignored). A ``released`` claim
    was not attempted at all: its attempt is given back and it is due again at
    ``next_attempt_at``, in the state it had."""

    id: str
    attempt: int
    state: State  # SENT, FAILED (with next_attempt_at) or DEAD; ignored when released
    error: str | None = None
    next_attempt_at: datetime | None = None
    released: bool = False


class NotificationStore(Protocol):
    def record_event(self, *, event_id: str, event_type: str, case_id: str, drafts: Sequence[Draft],
                     case: CaseView | None, now: datetime) -> list[str] | None:
        """In one transaction: mark the event consumed, record its notifications (pending, due
        now), update the case view. None when the event was consumed before (nothing changes);
        else the ids recorded."""
        ...

    def record(self, drafts: Sequence[Draft], *, now: datetime) -> list[str]:
        """Record notifications not tied to one event (digests); a draft whose (event_id,
        recipient, channel) exists already is skipped. The ids recorded."""
        ...

    def claim_due(self, *, now: datetime, limit: int, lease_s: float, max_attempts: int) -> list[Notification]:
        """Up to ``limit`` due notifications (pending or failed, next_attempt_at <= now), each
        claimed for this sender: attempts + 1 and next_attempt_at pushed ``lease_s`` ahead, so
        that no other sender takes it meanwhile and a crashed sender's claim expires. A due
        notification that already had ``max_attempts`` attempts (its sender died during the
        last one) is made dead instead."""
        ...

    def finish(self, outcomes: Sequence[Outcome], *, now: datetime) -> None:
        ...

    def get(self, notification_id: str) -> Notification:
        """NotificationNotFound if there is none."""
        ...

    def for_case(self, case_id: str) -> list[Notification]:
        """Oldest first."""
        ...

    def dead(self, *, limit: int = 100, offset: int = 0) -> list[Notification]:
        """Newest first."""
        ...

    def replay(self, notification_id: str, *, now: datetime) -> Notification:
        """A dead notification back to pending, attempts from zero, due now (NotReplayable if
        it is not dead)."""
        ...

    def overdue_cases(self) -> list[OverdueCase]:
        ...


class InsurerDirectory(Protocol):
    def get(self, code: str) -> InsurerChannel | None:
        """The insurer's webhook URL, valid secrets (now), claims email and language."""
        ...
