"""SQL adapters (SQLite, PostgreSQL) of notify's ports, one unit of work per call."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, Text, and_, bindparam, func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.notify.adapters.tables import (
    NotifyCase,
    NotifyConsumedEvent,
    NotifyInsurerChannel,
    NotifyNotification,
    UTCDateTime,
)
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
from shared.db import unit_of_work

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_domain(r: NotifyNotification) -> Notification:
    return Notification(
        id=r.id, event_id=r.event_id, case_id=r.case_id, role=r.role, channel=r.channel,
        recipient=r.recipient, template=r.template, lang=r.lang, subject=r.subject, body=r.body,
        html=r.html, state=r.state, attempts=r.attempts, next_attempt_at=r.next_attempt_at,
        last_error=r.last_error, created_at=r.created_at, sent_at=r.sent_at,
        case_number=r.case_number)


_T = NotifyNotification.__table__  # type: ignore[attr-defined]
_DUE = [st.value for st in DUE_STATES]


def _from_row(r: Any) -> Notification:
    return Notification(**{k: r[k] for k in _FIELDS})


_FIELDS = ("id", "event_id", "case_id", "role", "channel", "recipient", "template", "lang", "subject", "body",
           "html", "state", "attempts", "next_attempt_at", "last_error", "created_at", "sent_at", "case_number")


def _row(d: Draft, now: datetime) -> NotifyNotification:
    return NotifyNotification(
        id=d.id, event_id=d.event_id, case_id=d.case_id, case_number=d.case_number, role=d.role, channel=d.channel,
        recipient=d.recipient, template=d.template, lang=d.lang, subject=d.subject, body=d.body,
        html=d.html, state=State.PENDING.value, attempts=0, next_attempt_at=now, created_at=now,
        updated_at=now)


class SqlNotificationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------ recording

    def record_event(self, *, event_id: str, event_type: str, case_id: str, drafts: Sequence[Draft],
                     case: CaseView | None, now: datetime) -> list[str] | None:
        try:
            with unit_of_work(self.engine) as s:
                if s.get(NotifyConsumedEvent, event_id) is not None:
                    return None
                s.add(NotifyConsumedEvent(event_id=event_id, event_type=event_type, case_id=case_id,
                                          consumed_at=now))
                s.flush()  # a concurrent consumer of the same event fails here, before the rest
                for d in drafts:
                    s.add(_row(d, now))
                if case is not None:
                    _upsert_case(s, case)
                return [d.id for d in drafts]
        except IntegrityError:
            with unit_of_work(self.engine) as s:
                if s.get(NotifyConsumedEvent, event_id) is not None:
                    logger.info("event %s recorded concurrently by another consumer", event_id)
                    return None
            raise

    def record(self, drafts: Sequence[Draft], *, now: datetime) -> list[str]:
        out = []
        for d in drafts:
            try:
                with unit_of_work(self.engine) as s:
                    exists = s.exec(select(NotifyNotification.id).where(
                        NotifyNotification.event_id == d.event_id,
                        NotifyNotification.recipient == d.recipient,
                        NotifyNotification.channel == d.channel)).first()
                    if exists is not None:
                        continue
                    s.add(_row(d, now))
                out.append(d.id)
            except IntegrityError:
                continue  # recorded meanwhile by someone else
        return out

    # ------------------------------------------------------------ sending

    def claim_due(self, *, now: datetime, limit: int, lease_s: float, max_attempts: int) -> list[Notification]:
        """Two statements: due ones out of attempts are made dead; then up to ``limit`` due
        ones are claimed by one UPDATE ... RETURNING (on PostgreSQL the candidates are picked
        FOR UPDATE SKIP LOCKED, so concurrent senders take different ones; SQLite has one
        writer at a time)."""
        if limit <= 0:
            return []
        t = _T
        due = and_(t.c.state.in_(_DUE), t.c.next_attempt_at <= now)
        with unit_of_work(self.engine) as s:
            s.execute(update(t).where(due, t.c.attempts >= max_attempts).values(
                state=State.DEAD.value, next_attempt_at=None, updated_at=now,
                last_error=func.coalesce(t.c.last_error, "") + " [no outcome recorded for the last attempt]"))
            pick = (select(t.c.id).where(due, t.c.attempts < max_attempts)
                    .order_by(t.c.next_attempt_at, t.c.created_at).limit(limit))
            if self.engine.dialect.name == "postgresql":
                # materialised once: a subquery could be re-run per row and, skipping the rows it
                # has just locked, pick more than ``limit``
                picked = pick.with_for_update(skip_locked=True).cte("picked").prefix_with("MATERIALIZED")
            else:
                picked = pick.cte("picked")
            rows = s.execute(update(t).where(t.c.id == picked.c.id, due, t.c.attempts < max_attempts)
                             .values(attempts=t.c.attempts + 1, updated_at=now,
                                     next_attempt_at=now + timedelta(seconds=lease_s))
                             .returning(*t.c)).mappings().all()
        out = [_from_row(r) for r in rows]
        out.sort(key=lambda n: (n.created_at, n.id))
        return out

    def finish(self, outcomes: Sequence[Outcome], *, now: datetime) -> None:
        """All outcomes in one transaction, one executemany per kind (stale ones match nothing)."""
        if not outcomes:
            return
        t = _T
        guard = and_(t.c.id == bindparam("b_id"), t.c.attempts == bindparam("b_attempt"),
                     or_(*(t.c.state == st for st in _DUE)))  # no IN: executemany cannot expand it
        done = [o for o in outcomes if not o.released]
        sent = [{"b_id": o.id, "b_attempt": o.attempt} for o in done if o.state is State.SENT]
        other = [{"b_id": o.id, "b_attempt": o.attempt, "b_state": o.state.value, "b_error": o.error,
                  "b_next": o.next_attempt_at} for o in done if o.state is not State.SENT]
        released = [{"b_id": o.id, "b_attempt": o.attempt, "b_next": o.next_attempt_at}
                    for o in outcomes if o.released]
        with unit_of_work(self.engine) as s:
            conn = s.connection()
            if released:
                conn.execute(update(t).where(guard).values(
                    attempts=t.c.attempts - 1, next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
                    updated_at=now), released)
            if sent:
                conn.execute(update(t).where(guard).values(
                    state=State.SENT.value, sent_at=now, next_attempt_at=None, updated_at=now), sent)
            if other:
                conn.execute(update(t).where(guard).values(
                    state=bindparam("b_state", type_=String()), last_error=bindparam("b_error", type_=Text()),
                    next_attempt_at=bindparam("b_next", type_=UTCDateTime()), updated_at=now), other)

    # ------------------------------------------------------------ reading

    def get(self, notification_id: str) -> Notification:
        with unit_of_work(self.engine) as s:
            r = s.get(NotifyNotification, notification_id)
            if r is None:
                raise NotificationNotFound(notification_id)
            return to_domain(r)

    def for_case(self, case_id: str) -> list[Notification]:
        with unit_of_work(self.engine) as s:
            rows = s.exec(select(NotifyNotification).where(NotifyNotification.case_id == case_id)
                          .order_by(col(NotifyNotification.created_at), col(NotifyNotification.id))).all()
            return [to_domain(r) for r in rows]

    def dead(self, *, limit: int = 100, offset: int = 0) -> list[Notification]:
        with unit_of_work(self.engine) as s:
            rows = s.exec(select(NotifyNotification).where(NotifyNotification.state == State.DEAD.value)
                          .order_by(col(NotifyNotification.updated_at).desc(), col(NotifyNotification.id))
                          .offset(offset).limit(limit)).all()
            return [to_domain(r) for r in rows]

    def replay(self, notification_id: str, *, now: datetime) -> Notification:
        with unit_of_work(self.engine) as s:
            r = s.get(NotifyNotification, notification_id, with_for_update=True)
            if r is None:
                raise NotificationNotFound(notification_id)
            if r.state != State.DEAD.value:
                raise NotReplayable(notification_id, r.state)
            r.state, r.attempts, r.next_attempt_at, r.updated_at = State.PENDING.value, 0, now, now
            s.add(r)
            s.flush()
            return to_domain(r)

    def overdue_cases(self) -> list[OverdueCase]:
        with unit_of_work(self.engine) as s:
            rows = s.exec(select(NotifyCase).where(col(NotifyCase.overdue_deadline).is_not(None))
                          .order_by(col(NotifyCase.overdue_deadline))).all()
            return [OverdueCase(r.case_id, r.case_number, r.status, r.insurer_code, r.mediator_email,
                                r.overdue_deadline) for r in rows if r.overdue_deadline is not None]


def _upsert_case(s: Session, c: CaseView) -> None:
    row = s.get(NotifyCase, c.case_id)
    if row is None:
        s.add(NotifyCase(case_id=c.case_id, case_number=c.case_number, status=c.status,
                         insurer_code=c.insurer_code, mediator_email=c.mediator_email,
                         overdue_deadline=c.overdue_deadline, updated_at=c.updated_at))
        return
    if row.updated_at is not None and c.updated_at < row.updated_at:
        return  # an older event arriving late says nothing about now
    row.case_number, row.status, row.insurer_code = c.case_number, c.status, c.insurer_code
    row.mediator_email = c.mediator_email or row.mediator_email
    row.overdue_deadline, row.updated_at = c.overdue_deadline, c.updated_at
    s.add(row)


# ---------------------------------------------------------------- insurers

def _entries(raw: list[dict[str, Any]]) -> list[SecretEntry]:
    return [SecretEntry(str(e["secret"]), float(e.get("since", 0.0)),
                        None if e.get("until") is None else float(e["until"])) for e in raw]


def _raw(entries: Sequence[SecretEntry]) -> list[dict[str, Any]]:
    return [{"secret": e.secret, "since": e.since, "until": e.until} for e in entries]


class SqlInsurerDirectory:
    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    def get(self, code: str) -> InsurerChannel | None:
        with unit_of_work(self.engine) as s:
            r = s.get(NotifyInsurerChannel, code)
            if r is None:
                return None
            now = self.clock().timestamp()
            return InsurerChannel(code=r.code, webhook_url=r.webhook_url,
                                  secrets=valid_secrets(_entries(r.secrets), now), email=r.email,
                                  lang=r.lang or "zh")


def set_webhook(engine: Engine, code: str, url: str, secret: str, *, now: datetime | None = None,
                overlap: timedelta = timedelta(hours=24)) -> dict[str, Any]:
    """Set an insurer's webhook (what ``PUT /api/v1/insurers/{code}/webhook`` does). A new
    secret becomes current and the previous one stays valid for ``overlap``; messages are
    signed with every valid secret meanwhile. WebhookConfigError (field ``url`` or ``secret``)
    for an unusable URL or secret. Answers :func:`webhook_info` (no secrets)."""
    check_url(url)
    now = now or utcnow()
    with unit_of_work(engine) as s:
        r = s.get(NotifyInsurerChannel, code, with_for_update=True)
        if r is None:
            r = NotifyInsurerChannel(code=code, secrets=[], updated_at=now)
        r.secrets = _raw(rotate(_entries(r.secrets), secret, now=now.timestamp(),
                                overlap_s=overlap.total_seconds()))
        r.webhook_url, r.updated_at = url, now
        s.add(r)
    return webhook_info(engine, code, now=now) or {}


def set_contact(engine: Engine, code: str, *, email: str | None = None, lang: str | None = None,
                now: datetime | None = None) -> None:
    """An insurer's claims email (used when a case event carries none) and language."""
    now = now or utcnow()
    with unit_of_work(engine) as s:
        r = s.get(NotifyInsurerChannel, code, with_for_update=True)
        if r is None:
            r = NotifyInsurerChannel(code=code, secrets=[], updated_at=now)
        if email is not None:
            r.email = email
        if lang is not None:
            if lang not in ("zh", "en"):
                raise ValueError("lang is zh or en")
            r.lang = lang
        r.updated_at = now
        s.add(r)


def remove_webhook(engine: Engine, code: str, *, now: datetime | None = None) -> bool:
    """Stop webhooks to an insurer (its secrets are forgotten). False if none was set."""
    now = now or utcnow()
    with unit_of_work(engine) as s:
        r = s.get(NotifyInsurerChannel, code, with_for_update=True)
        if r is None or r.webhook_url is None:
            return False
        r.webhook_url, r.secrets, r.updated_at = None, [], now
        s.add(r)
        return True


def webhook_info(engine: Engine, code: str, *, now: datetime | None = None) -> dict[str, Any] | None:
    """What may be shown of an insurer's webhook: URL, how many secrets are valid and until
    when the older ones are; never the secrets."""
    now = now or utcnow()
    with unit_of_work(engine) as s:
        r = s.get(NotifyInsurerChannel, code)
        if r is None:
            return None
        live = [e for e in _entries(r.secrets) if e.until is None or e.until > now.timestamp()]
        return {"code": r.code, "url": r.webhook_url, "secrets": len(live),
                "previous_valid_until": [datetime.fromtimestamp(e.until, UTC).isoformat()
                                         for e in live if e.until is not None],
                "updated_at": r.updated_at.isoformat() if r.updated_at else None}
