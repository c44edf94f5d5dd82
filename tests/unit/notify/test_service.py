"""From bus messages to recorded notifications, on fakes: once per event, in one go with the
event marked consumed; bad messages raise so the bus can dead-letter them; the daily digest."""

from __future__ import annotations

import asyncio
import base64
from datetime import date, timedelta

import pytest

from services.notify.domain.digest import digest_event_id
from services.notify.service_layer.recorder import make_handler
from shared.bus import Message
from shared.events import AssessmentFailed, EventError
from shared.topics import CASE_EVENTS

from .builders import T0, changed, envelope, opened, overdue, responded
from .fakes import Core

pytestmark = pytest.mark.unit

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def msg(env, offset: int = 0) -> Message:  # type: ignore[no-untyped-def]
    return Message(CASE_EVENTS, env.key, env.to_bytes(), (), 0, offset)


def test_an_event_is_recorded_once_however_often_it_comes() -> None:
    c = Core()
    env = envelope(opened())
    ids = c.recorder.record_envelope(env)
    assert ids is not None and len(ids) == 2  # rider SMS, insurer email (no webhook configured)
    assert c.recorder.record_envelope(env) is None
    assert c.recorder.record_envelope(env) is None
    assert len(c.store.rows) == 2 and c.store.consumed == {env.id}


def test_recorded_notifications_are_pending_due_now_and_rendered() -> None:
    c = Core()
    c.recorder.record_envelope(envelope(opened(), event_id="ev-9"))
    rows = sorted(c.store.rows.values(), key=lambda n: n.channel)
    assert [(n.channel, n.state, n.attempts, n.next_attempt_at) for n in rows] == [
        ("email", "pending", 0, c.clock()), ("sms", "pending", 0, c.clock())]
    email, sms = rows
    assert email.subject and "XJ-2026-0001" in email.subject and email.html and email.lang == "zh"
    assert sms.body.startswith("【衔接】") and sms.case_number == "XJ-2026-0001"
    assert {n.event_id for n in rows} == {"ev-9"} and {n.case_id for n in rows} == {"case-1"}


def test_webhook_when_the_insurer_has_one() -> None:
    c = Core()
    c.directory.set_webhook("PICC", "https://claims.picc.example/hook", SECRET)
    c.recorder.record_envelope(envelope(opened()))
    hook = [n for n in c.store.rows.values() if n.channel == "webhook"]
    assert len(hook) == 1 and hook[0].recipient == "PICC" and hook[0].body.startswith('{"type":"case.opened"')


def test_insurer_language_from_the_directory() -> None:
    c = Core()
    c.directory.set_contact("PICC", lang="en")
    c.recorder.record_envelope(envelope(opened()))
    email = next(n for n in c.store.rows.values() if n.channel == "email")
    assert email.lang == "en" and (email.subject or "").startswith("[Xianjie]")


def test_an_event_for_nobody_is_consumed_with_no_notification() -> None:
    c = Core()
    env = envelope(changed("under_review", frm="evidence_ready"))
    assert c.recorder.record_envelope(env) == []
    assert c.recorder.record_envelope(env) is None


def test_events_of_other_kinds_are_ignored() -> None:
    c = Core()
    assert c.recorder.record_envelope(envelope(AssessmentFailed(request_id="r", case_id="c", reason="x"))) == []


def test_handler_records_the_good_and_raises_for_the_bad() -> None:
    c = Core()
    woken = []
    handle = make_handler(c.recorder, lambda: woken.append(1))
    good = envelope(opened())
    bad = Message(CASE_EVENTS, "k", b"{not json", (), 0, 1)
    unknown = good.model_copy(update={"id": "other", "type": "CaseExploded"})
    with pytest.raises(EventError):
        asyncio.run(handle([msg(good), bad, msg(unknown, 2)]))
    assert len(c.store.rows) == 2 and woken == [1]
    asyncio.run(handle([msg(good)]))  # the bus's redelivery of the good one alone: nothing new
    assert len(c.store.rows) == 2


def test_case_view_follows_events_and_ignores_older_ones() -> None:
    c = Core()
    c.recorder.record_envelope(envelope(overdue(deadline=T0), at=T0))
    assert [o.case_number for o in c.store.overdue_cases()] == ["XJ-2026-0001"]
    c.recorder.record_envelope(envelope(responded(), at=T0 - timedelta(hours=1)))  # late, older
    assert len(c.store.overdue_cases()) == 1
    c.recorder.record_envelope(envelope(changed("proposal_sent"), at=T0 + timedelta(hours=1)))
    assert c.store.overdue_cases() == []


def test_digest_once_per_mediator_per_day() -> None:
    c = Core()
    for k, mediator in enumerate(["wang@m.example", "wang@m.example", "li@m.example"]):
        c.recorder.record_envelope(envelope(overdue(case_id=f"c{k}", case_number=f"XJ-{k}",
                                                    mediator_email=mediator)))
    c.recorder.record_envelope(envelope(overdue(case_id="c9", case_number="XJ-9", mediator_email=None)))
    day = date(2026, 11, 30)
    first = c.recorder.record_digests(day=day)
    assert len(first) == 2
    assert c.recorder.record_digests(day=day) == []
    rows = [n for n in c.store.rows.values() if n.event_id == digest_event_id(day)]
    assert sorted(n.recipient for n in rows) == ["li@m.example", "wang@m.example"]
    wang = next(n for n in rows if n.recipient == "wang@m.example")
    assert "XJ-0" in wang.body and "XJ-1" in wang.body and "XJ-2" not in wang.body
    assert len(c.recorder.record_digests(day=day + timedelta(days=1))) == 2
