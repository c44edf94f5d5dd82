"""In-memory fakes of notify's ports, for unit tests; the contract tests hold them to the same
behaviour as the SQL adapters."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.notify.domain.errors import NotificationNotFound, NotReplayable
from services.notify.domain.model import (
    DUE_STATES,
    CaseView,
    Draft,
    InsurerChannel,
    Notification,
    OverdueCase,
    State,
)
from services.notify.domain.ports import Outcome
from services.notify.domain.webhooks import SecretEntry, check_url, rotate, valid_secrets


class InMemoryNotificationStore:
    def __init__(self) -> None:
        self.rows: dict[str, Notification] = {}
        self.consumed: set[str] = set()
        self.cases: dict[str, CaseView] = {}
        self._order: dict[str, int] = {}
        self._updated: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def _keys(self) -> set[tuple[str, str, str]]:
        return {n.key for n in self.rows.values()}

    def _add(self, d: Draft, now: datetime) -> None:
        self.rows[d.id] = Notification(
            id=d.id, event_id=d.event_id, case_id=d.case_id, role=d.role, channel=d.channel,
            recipient=d.recipient, template=d.template, lang=d.lang, subject=d.subject, body=d.body,
            html=d.html, state=State.PENDING.value, attempts=0, next_attempt_at=now, last_error=None,
            created_at=now, sent_at=None, case_number=d.case_number)
        self._order[d.id] = len(self._order)
        self._updated[d.id] = now

    def record_event(self, *, event_id: str, event_type: str, case_id: str, drafts: Sequence[Draft],
                     case: CaseView | None, now: datetime) -> list[str] | None:
        with self._lock:
            if event_id in self.consumed:
                return None
            keys = self._keys()
            if any((d.event_id, d.recipient, d.channel) in keys for d in drafts):
                raise ValueError("duplicate notification key")  # as the SQL unique constraint does
            self.consumed.add(event_id)
            for d in drafts:
                self._add(d, now)
            if case is not None:
                old = self.cases.get(case.case_id)
                if old is None or case.updated_at >= old.updated_at:
                    self.cases[case.case_id] = replace(
                        case, mediator_email=case.mediator_email or (old.mediator_email if old else None))
            return [d.id for d in drafts]

    def record(self, drafts: Sequence[Draft], *, now: datetime) -> list[str]:
        with self._lock:
            out = []
            for d in drafts:
                if (d.event_id, d.recipient, d.channel) in self._keys():
                    continue
                self._add(d, now)
                out.append(d.id)
            return out

    def claim_due(self, *, now: datetime, limit: int, lease_s: float, max_attempts: int) -> list[Notification]:
        with self._lock:
            due = sorted((n for n in self.rows.values() if n.state in DUE_STATES
                          and n.next_attempt_at is not None and n.next_attempt_at <= now),
                         key=lambda n: (n.next_attempt_at, self._order[n.id]))[:max(0, limit)]
            out = []
            for n in due:
                self._updated[n.id] = now
                if n.attempts >= max_attempts:
                    self.rows[n.id] = replace(n, state=State.DEAD.value, next_attempt_at=None, last_error=(
                        (n.last_error or "") + " [no outcome recorded for the last attempt]"))
                    continue
                claimed = replace(n, attempts=n.attempts + 1, next_attempt_at=now + timedelta(seconds=lease_s))
                self.rows[n.id] = claimed
                out.append(claimed)
            return out

    def finish(self, outcomes: Sequence[Outcome], *, now: datetime) -> None:
        with self._lock:
            for o in outcomes:
                n = self.rows.get(o.id)
                if n is None or n.attempts != o.attempt or n.state not in DUE_STATES:
                    continue
                if o.released:
                    n = replace(n, attempts=n.attempts - 1, next_attempt_at=o.next_attempt_at)
                elif o.state is State.SENT:
                    n = replace(n, state=o.state.value, sent_at=now, next_attempt_at=None)
                else:
                    n = replace(n, state=o.state.value, last_error=o.error, next_attempt_at=o.next_attempt_at)
                self.rows[o.id] = n
                self._updated[o.id] = now

    def get(self, notification_id: str) -> Notification:
        n = self.rows.get(notification_id)
        if n is None:
            raise NotificationNotFound(notification_id)
        return n

    def for_case(self, case_id: str) -> list[Notification]:
        return sorted((n for n in self.rows.values() if n.case_id == case_id),
                      key=lambda n: (n.created_at, n.id))

    def dead(self, *, limit: int = 100, offset: int = 0) -> list[Notification]:
        rows = [n for n in self.rows.values() if n.state == State.DEAD.value]
        rows.sort(key=lambda n: n.id)
        rows.sort(key=lambda n: self._updated[n.id], reverse=True)
        return rows[offset:offset + limit]

    def replay(self, notification_id: str, *, now: datetime) -> Notification:
        with self._lock:
            n = self.get(notification_id)
            if n.state != State.DEAD.value:
                raise NotReplayable(notification_id, n.state)
            n = replace(n, state=State.PENDING.value, attempts=0, next_attempt_at=now)
            self.rows[n.id] = n
            self._updated[n.id] = now
            return n

    def overdue_cases(self) -> list[OverdueCase]:
        return [OverdueCase(c.case_id, c.case_number, c.status, c.insurer_code, c.mediator_email,
                            c.overdue_deadline)
                for c in sorted(self.cases.values(), key=lambda c: (c.overdue_deadline or c.updated_at))
                if c.overdue_deadline is not None]


class InMemoryInsurerDirectory:
    """Insurers' channels in a dict; ``set_webhook`` rotates secrets like the SQL one."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.clock = clock
        self.urls: dict[str, str | None] = {}
        self.secrets: dict[str, list[SecretEntry]] = {}
        self.emails: dict[str, str | None] = {}
        self.langs: dict[str, str] = {}

    def get(self, code: str) -> InsurerChannel | None:
        if code not in self.urls and code not in self.emails:
            return None
        return InsurerChannel(code=code, webhook_url=self.urls.get(code),
                              secrets=valid_secrets(self.secrets.get(code, []), self.clock().timestamp()),
                              email=self.emails.get(code), lang=self.langs.get(code, "zh"))

    def set_webhook(self, code: str, url: str, secret: str, *, overlap: timedelta = timedelta(hours=24)) -> None:
        check_url(url)
        self.secrets[code] = rotate(self.secrets.get(code, []), secret, now=self.clock().timestamp(),
                                    overlap_s=overlap.total_seconds())
        self.urls[code] = url

    def set_contact(self, code: str, *, email: str | None = None, lang: str | None = None) -> None:
        self.urls.setdefault(code, None)
        if email is not None:
            self.emails[code] = email
        if lang is not None:
            self.langs[code] = lang
