"""One contract, every adapter: the notification store and the insurer directory behave the
same on the in-memory fakes, on SQLite and on PostgreSQL (a fresh database per test)."""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import pytest

from services.notify.adapters.memory import InMemoryInsurerDirectory, InMemoryNotificationStore
from services.notify.adapters.sql import (
    SqlInsurerDirectory,
    SqlNotificationStore,
    set_contact,
    set_webhook,
)
from services.notify.domain.errors import NotificationNotFound, NotReplayable
from services.notify.domain.model import CaseView, State
from services.notify.domain.ports import InsurerDirectory, NotificationStore, Outcome
from tests.unit.notify.builders import T0
from tests.unit.notify.fakes import Clock, draft

from .conftest import migrated

pytestmark = pytest.mark.integration


def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass
class Adapter:
    store: NotificationStore
    directory: InsurerDirectory
    set_webhook: Callable[[str, str, str], Any]
    set_contact: Callable[..., Any]
    clock: Clock
    concurrent: bool  # several threads may record at once


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def adapter(request: pytest.FixtureRequest, fresh_database: Callable[[str], str]) -> Iterator[Adapter]:
    clock = Clock()
    if request.param == "memory":
        d = InMemoryInsurerDirectory(clock)
        yield Adapter(InMemoryNotificationStore(), d, d.set_webhook, d.set_contact, clock, True)
        return
    engine = migrated(fresh_database(request.param))
    yield Adapter(SqlNotificationStore(engine), SqlInsurerDirectory(engine, clock),
                  lambda code, url, s: set_webhook(engine, code, url, s, now=clock()),
                  lambda code, **kw: set_contact(engine, code, now=clock(), **kw), clock, True)
    engine.dispose()


def view(**kw: Any) -> CaseView:
    return CaseView(**{"case_id": "case-1", "case_number": "XJ-1", "status": "under_review", "insurer_code": "PICC",
                       "mediator_email": "wang@m.example", "overdue_deadline": None, "updated_at": T0, **kw})


# ---------------------------------------------------------------- recording

def test_record_event_once(adapter: Adapter) -> None:
    s, now = adapter.store, adapter.clock()
    drafts = [draft(event_id="ev-1", recipient="a@x.example"), draft(event_id="ev-1", channel="sms", recipient="138")]
    assert s.record_event(event_id="ev-1", event_type="CaseOpened", case_id="case-1", drafts=drafts,
                          case=view(), now=now) == [d.id for d in drafts]
    again = [draft(event_id="ev-1", recipient="a@x.example")]
    assert s.record_event(event_id="ev-1", event_type="CaseOpened", case_id="case-1", drafts=again,
                          case=view(), now=now) is None
    rows = s.for_case("case-1")
    assert sorted(n.id for n in rows) == sorted(d.id for d in drafts)
    n = s.get(drafts[0].id)
    assert (n.state, n.attempts, n.next_attempt_at, n.created_at, n.sent_at) == ("pending", 0, now, now, None)
    assert n.created_at.tzinfo is not None and n.created_at.utcoffset() == timedelta(0)
    assert (n.subject, n.body, n.case_number) == ("s", "b", "XJ-1")


def test_record_event_with_no_notification_still_consumes(adapter: Adapter) -> None:
    s = adapter.store
    assert s.record_event(event_id="ev-2", event_type="X", case_id="c", drafts=[], case=None,
                          now=adapter.clock()) == []
    assert s.record_event(event_id="ev-2", event_type="X", case_id="c", drafts=[], case=None,
                          now=adapter.clock()) is None


def test_same_event_recorded_by_two_consumers_at_once_counts_once(adapter: Adapter) -> None:
    s = adapter.store
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def consume() -> None:
        barrier.wait()
        try:
            results.append(s.record_event(event_id="ev-3", event_type="CaseOpened", case_id="case-1",
                                          drafts=[draft(event_id="ev-3", recipient="a@x.example")],
                                          case=None, now=adapter.clock()))
        except Exception as e:  # a loser may also see the unique constraint: never two rows
            results.append(e)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for r in results if isinstance(r, list)) == 1
    assert len(s.for_case("case-1")) == 1


def test_record_skips_existing_keys(adapter: Adapter) -> None:
    s, now = adapter.store, adapter.clock()
    a = draft(event_id="digest:2026-11-29", recipient="wang@m.example", case_id="")
    assert s.record([a], now=now) == [a.id]
    b = draft(event_id="digest:2026-11-29", recipient="wang@m.example", case_id="")
    c = draft(event_id="digest:2026-11-29", recipient="li@m.example", case_id="")
    assert s.record([b, c], now=now) == [c.id]


# ---------------------------------------------------------------- claiming and outcomes

def test_claim_takes_due_ones_oldest_first_and_leases_them(adapter: Adapter) -> None:
    s, clock = adapter.store, adapter.clock
    first = s.record([draft()], now=clock())
    clock.advance(1)
    second = s.record([draft()], now=clock())
    clock.advance(1)
    later = s.record([draft()], now=clock() + timedelta(hours=1))  # not due yet
    got = s.claim_due(now=clock(), limit=1, lease_s=30, max_attempts=3)
    assert [n.id for n in got] == first and got[0].attempts == 1
    assert got[0].next_attempt_at == clock() + timedelta(seconds=30)
    got = s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)
    assert [n.id for n in got] == second
    assert s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3) == []
    assert s.get(later[0]).state == "pending"
    assert s.claim_due(now=clock(), limit=0, lease_s=30, max_attempts=3) == []


def test_concurrent_senders_never_claim_the_same_one(adapter: Adapter) -> None:
    s, now = adapter.store, adapter.clock()
    ids = s.record([draft(recipient=f"m{k}@x.example") for k in range(60)], now=now)
    claims: list[list[str]] = []
    barrier = threading.Barrier(4)

    def sender() -> None:
        barrier.wait()
        while True:
            got = s.claim_due(now=now, limit=3, lease_s=30, max_attempts=3)
            if not got:
                return
            claims.append([n.id for n in got])

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(c) <= 3 for c in claims)
    flat = [i for c in claims for i in c]
    assert sorted(flat) == sorted(ids)  # each exactly once


def test_outcomes_sent_failed_dead(adapter: Adapter) -> None:
    s, clock = adapter.store, adapter.clock
    a, b, c = s.record([draft(), draft(), draft()], now=clock())
    claimed = {n.id: n for n in s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)}
    retry_at = clock() + timedelta(seconds=7)
    clock.advance(2)
    s.finish([Outcome(a, 1, State.SENT), Outcome(b, 1, State.FAILED, "HTTP 503", retry_at),
              Outcome(c, 1, State.DEAD, "410 Gone")], now=clock())
    assert claimed.keys() == {a, b, c}
    na, nb, nc = s.get(a), s.get(b), s.get(c)
    assert (na.state, na.sent_at, na.next_attempt_at) == ("sent", clock(), None)
    assert (nb.state, nb.last_error, nb.next_attempt_at, nb.attempts) == ("failed", "HTTP 503", retry_at, 1)
    assert (nc.state, nc.last_error, nc.next_attempt_at) == ("dead", "410 Gone", None)
    assert s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3) == []
    clock.advance(5)
    assert [(n.id, n.attempts) for n in s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)] == [(b, 2)]


def test_stale_outcomes_are_ignored(adapter: Adapter) -> None:
    s, clock = adapter.store, adapter.clock
    (a,) = s.record([draft()], now=clock())
    s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)
    s.finish([Outcome(a, 1, State.SENT)], now=clock())
    s.finish([Outcome(a, 1, State.FAILED, "late", clock())], now=clock())  # sent stays sent
    s.finish([Outcome(a, 7, State.DEAD, "wrong attempt")], now=clock())
    assert s.get(a).state == "sent"


def test_a_released_claim_gives_its_attempt_back(adapter: Adapter) -> None:
    s, clock = adapter.store, adapter.clock
    (a,) = s.record([draft()], now=clock())
    s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)
    s.finish([Outcome(a, 1, State.FAILED, "x", clock(), released=False)], now=clock())
    (n,) = s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)
    assert (n.attempts, n.state) == (2, "failed")
    later = clock() + timedelta(seconds=2)
    s.finish([Outcome(a, 2, State.FAILED, released=True, next_attempt_at=later)], now=clock())
    n = s.get(a)
    assert (n.attempts, n.state, n.next_attempt_at, n.last_error) == (1, "failed", later, "x")
    assert s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3) == []
    clock.advance(2)
    assert [m.attempts for m in s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)] == [2]


def test_expired_claim_at_the_last_attempt_is_dead(adapter: Adapter) -> None:
    s, clock = adapter.store, adapter.clock
    (a,) = s.record([draft()], now=clock())
    s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=1)
    clock.advance(31)
    assert s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=1) == []
    n = s.get(a)
    assert n.state == "dead" and "no outcome recorded" in (n.last_error or "")


# ---------------------------------------------------------------- reading, replay

def test_for_case_and_dead_lists(adapter: Adapter) -> None:
    s, clock = adapter.store, adapter.clock
    ids = []
    for k in range(3):
        ids += s.record([draft(case_id="case-7", recipient=f"m{k}@x.example")], now=clock())
        clock.advance(1)
    s.record([draft(case_id="other")], now=clock())
    assert [n.id for n in s.for_case("case-7")] == ids
    s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)
    s.finish([Outcome(ids[0], 1, State.DEAD, "x")], now=clock())
    clock.advance(1)
    s.finish([Outcome(ids[2], 1, State.DEAD, "y")], now=clock())
    assert [n.id for n in s.dead()] == [ids[2], ids[0]]
    assert [n.id for n in s.dead(limit=1, offset=1)] == [ids[0]]
    assert s.for_case("nope") == []


def test_replay(adapter: Adapter) -> None:
    s, clock = adapter.store, adapter.clock
    a, b = s.record([draft(), draft()], now=clock())
    s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)
    s.finish([Outcome(a, 1, State.DEAD, "550")], now=clock())
    clock.advance(10)  # b's claim still holds
    n = s.replay(a, now=clock())
    assert (n.state, n.attempts, n.next_attempt_at, n.last_error) == ("pending", 0, clock(), "550")
    assert s.dead() == []
    with pytest.raises(NotReplayable):
        s.replay(a, now=clock())
    with pytest.raises(NotReplayable):
        s.replay(b, now=clock())
    with pytest.raises(NotificationNotFound):
        s.replay("no-such-id", now=clock())
    with pytest.raises(NotificationNotFound):
        s.get("no-such-id")
    assert [n.id for n in s.claim_due(now=clock(), limit=10, lease_s=30, max_attempts=3)] == [a]


def test_overdue_cases_from_the_case_view(adapter: Adapter) -> None:
    s, now = adapter.store, adapter.clock()

    def rec(eid: str, v: CaseView) -> None:
        s.record_event(event_id=eid, event_type="X", case_id=v.case_id, drafts=[], case=v, now=now)

    rec("e1", view(case_id="a", case_number="XJ-A", overdue_deadline=T0 + timedelta(days=1)))
    rec("e2", view(case_id="b", case_number="XJ-B", overdue_deadline=T0, mediator_email=None))
    rec("e3", view(case_id="c", case_number="XJ-C"))
    assert [(o.case_number, o.deadline, o.mediator_email) for o in s.overdue_cases()] == [
        ("XJ-B", T0, None), ("XJ-A", T0 + timedelta(days=1), "wang@m.example")]
    rec("e4", view(case_id="a", case_number="XJ-A", status="proposal_sent", updated_at=T0 + timedelta(hours=1),
                   mediator_email=None))
    rec("e5", view(case_id="b", case_number="XJ-B", updated_at=T0 - timedelta(hours=1)))  # older: ignored
    assert [o.case_number for o in s.overdue_cases()] == ["XJ-B"]


# ---------------------------------------------------------------- insurer directory

def test_directory_unknown_insurer(adapter: Adapter) -> None:
    assert adapter.directory.get("NOPE") is None


def test_directory_webhook_and_rotation(adapter: Adapter) -> None:
    d, clock = adapter.directory, adapter.clock
    a, b = secret(), secret()
    adapter.set_webhook("PICC", "https://claims.picc.example/a", a)
    ch = d.get("PICC")
    assert ch is not None and (ch.webhook_url, ch.secrets) == ("https://claims.picc.example/a", (a,))
    assert ch.contact().webhook
    clock.advance(3600)
    adapter.set_webhook("PICC", "https://claims.picc.example/b", b)
    ch = d.get("PICC")
    assert ch is not None and (ch.webhook_url, ch.secrets) == ("https://claims.picc.example/b", (b, a))
    clock.advance(24 * 3600 - 1)
    assert d.get("PICC").secrets == (b, a)  # type: ignore[union-attr]
    clock.advance(2)
    assert d.get("PICC").secrets == (b,)  # type: ignore[union-attr]


def test_directory_contact(adapter: Adapter) -> None:
    adapter.set_contact("CPIC", email="claims@cpic.example", lang="en")
    ch = adapter.directory.get("CPIC")
    assert ch is not None and (ch.email, ch.lang, ch.webhook_url, ch.secrets) == ("claims@cpic.example", "en", None, ())
    assert not ch.contact().webhook


def test_directory_refuses_bad_settings(adapter: Adapter) -> None:
    from services.notify.domain.errors import WebhookConfigError

    with pytest.raises(WebhookConfigError) as e:
        adapter.set_webhook("PICC", "https://x.example/h", "not-a-secret")
    assert e.value.field == "secret"
    with pytest.raises(WebhookConfigError) as e:
        adapter.set_webhook("PICC", "ftp://x.example/h", secret())
    assert e.value.field == "url"
    assert adapter.directory.get("PICC") is None


def test_times_come_back_in_utc(adapter: Adapter) -> None:
    from zoneinfo import ZoneInfo

    s = adapter.store
    local = adapter.clock().astimezone(ZoneInfo("Asia/Shanghai"))
    (a,) = s.record([draft()], now=local)
    n = s.get(a)
    assert n.created_at == local and n.created_at.tzinfo is not None
    assert n.created_at.astimezone(UTC) == adapter.clock()
