"""Routing: who is told what, through which channel, in which language, with which link."""

from __future__ import annotations

from typing import Any

import pytest

from services.notify.domain.model import Channel, InsurerContact, Intent, Role
from services.notify.domain.routing import (
    FINAL_STATUSES,
    INSURER_STATUSES,
    case_view,
    route,
    status_link,
)
from shared.events import AssessmentFailed, Event

from .builders import (
    BASE,
    T0,
    changed,
    evidence_ready,
    evidence_requested,
    evidence_shared,
    opened,
    overdue,
    responded,
    undetermined,
)

pytestmark = pytest.mark.unit

WEBHOOK = InsurerContact("PICC", email="directory@picc.example", webhook=True, lang="zh")


def who(intents: list[Intent]) -> list[tuple[str, str, str]]:
    return sorted((i.role.value, i.channel.value, i.recipient) for i in intents)


def r(event: Event, insurer: InsurerContact | None = WEBHOOK, **kw: Any) -> list[Intent]:
    return route(event, event_id="ev-1", occurred_at=T0, base_url=BASE, insurer=insurer, **kw)


def test_case_opened_tells_rider_by_sms_and_insurer_by_email_and_webhook() -> None:
    assert who(r(opened())) == [
        ("insurer", "email", "claims@picc.example"),
        ("insurer", "webhook", "PICC"),
        ("rider", "sms", "13800138000"),
    ]


def test_rider_link_is_the_status_page_without_any_access_code() -> None:
    sms = next(i for i in r(opened()) if i.channel is Channel.SMS)
    assert sms.template == "rider_case_opened"
    assert sms.context["status_link"] == f"{BASE}/status?case=XJ-2026-0001"
    assert "code" not in sms.context["status_link"]


def test_rider_language_follows_the_case_english_only_when_chosen() -> None:
    assert next(i for i in r(opened()) if i.role is Role.RIDER).lang == "zh"
    en = next(i for i in r(opened(rider_lang="en")) if i.role is Role.RIDER)
    assert en.lang == "en" and en.context["status_link"].endswith("&lang=en")
    odd = next(i for i in r(opened(rider_lang="fr")) if i.role is Role.RIDER)
    assert odd.lang == "zh"


def test_no_webhook_without_one_configured() -> None:
    assert who(r(opened(), insurer=None)) == [("insurer", "email", "claims@picc.example"),
                                             ("rider", "sms", "13800138000")]
    no_hook = InsurerContact("PICC", webhook=False)
    assert ("insurer", "webhook", "PICC") not in who(r(opened(), insurer=no_hook))


def test_directory_email_when_the_event_has_none() -> None:
    assert ("insurer", "email", "directory@picc.example") in who(r(opened(insurer_email=None)))
    assert not [i for i in r(opened(insurer_email=None), insurer=None) if i.channel is Channel.EMAIL]


def test_no_sms_without_a_phone() -> None:
    assert not [i for i in r(opened(rider_phone=None)) if i.role is Role.RIDER]


def test_evidence_ready_tells_the_rider_and_not_the_insurer() -> None:
    """The mediator reviews first: a packet just built goes to nobody at the insurer."""
    intents = r(evidence_ready())
    assert who(intents) == [("rider", "sms", "13800138000")]
    assert not [i for i in r(evidence_ready(**undetermined())) if i.role is Role.INSURER]


def test_evidence_shared_carries_the_packet_link_to_the_insurer() -> None:
    intents = r(evidence_shared())
    assert who(intents) == [("insurer", "email", "claims@picc.example"), ("insurer", "webhook", "PICC")]
    email = next(i for i in intents if i.channel is Channel.EMAIL)
    assert email.template == "insurer_evidence_shared"
    assert email.context["packet_link"] == f"{BASE}/api/v1/cases/case-1/evidence-packet"
    hook = next(i for i in intents if i.channel is Channel.WEBHOOK)
    assert hook.context["type"] == "case.evidence_shared"
    assert hook.context["data"]["packet_url"] == f"{BASE}/api/v1/cases/case-1/evidence-packet"
    assert hook.context["data"]["packet_sha256"] == "ab" * 32
    assert hook.context["data"]["continuous_delivery"] is True and hook.context["data"]["outcome"] == "continuous"


def test_undetermined_travels_as_null_never_false() -> None:
    hook = next(i for i in r(evidence_shared(**undetermined(covered=None))) if i.channel is Channel.WEBHOOK)
    data = hook.context["data"]
    assert "continuous_delivery" in data and data["continuous_delivery"] is None
    assert data["covered"] is None and data["outcome"] == "undetermined" and data["phase"] == "insufficient_data"
    sms = next(i for i in r(evidence_ready(**undetermined())) if i.channel is Channel.SMS)
    assert sms.context["outcome"] == "undetermined" and sms.context["continuous_delivery"] is None


def test_webhook_payload_has_nothing_personal() -> None:
    hook = next(i for i in r(opened()) if i.channel is Channel.WEBHOOK)
    flat = repr(hook.context)
    assert "13800138000" not in flat and "wang@" not in flat and "mediator" not in flat
    assert hook.context["data"]["event_id"] == "ev-1"
    assert hook.context["timestamp"] == T0.isoformat()


def test_insurer_responded_tells_rider_and_mediator_not_the_insurer() -> None:
    intents = r(responded("reject"))
    assert who(intents) == [("mediator", "email", "wang@mediation.example"), ("rider", "sms", "13800138000")]
    assert {i.context["decision"] for i in intents} == {"reject"}


def test_mediator_language_is_the_staff_language() -> None:
    m = next(i for i in r(responded(), staff_lang="en") if i.role is Role.MEDIATOR)
    assert m.lang == "en"


def test_overdue_tells_the_mediator_only() -> None:
    intents = r(overdue())
    assert who(intents) == [("mediator", "email", "wang@mediation.example")]
    assert intents[0].template == "mediator_case_overdue" and intents[0].context["deadline"] == T0


@pytest.mark.parametrize("status", ["escalated", "withdrawn", "closed"])
def test_insurer_told_of_these_status_changes(status: str) -> None:
    intents = r(changed(status))
    assert ("insurer", "email", "claims@picc.example") in who(intents)
    assert ("insurer", "webhook", "PICC") in who(intents)
    hook = next(i for i in intents if i.channel is Channel.WEBHOOK)
    assert hook.context["type"] == "case.status_changed"
    assert hook.context["data"]["from_status"] == "under_review"


def test_proposal_sent_status_is_a_webhook_only_the_email_comes_with_the_evidence() -> None:
    intents = r(changed("proposal_sent"))
    assert who(intents) == [("insurer", "webhook", "PICC")]
    assert next(iter(intents)).context["type"] == "case.status_changed"


@pytest.mark.parametrize("status", ["resolved", "closed", "escalated", "withdrawn"])
def test_rider_told_of_final_statuses(status: str) -> None:
    sms = [i for i in r(changed(status)) if i.role is Role.RIDER]
    assert len(sms) == 1 and sms[0].template == "rider_final_status"


@pytest.mark.parametrize("status", ["evidence_requested", "evidence_ready", "under_review", "insurer_accepted",
                                    "insurer_rejected"])
def test_intermediate_status_changes_tell_nobody(status: str) -> None:
    assert r(changed(status)) == []


def test_status_sets_are_what_the_issue_says() -> None:
    assert {"escalated", "withdrawn", "closed"} == INSURER_STATUSES  # proposal_sent: EvidenceShared's email
    assert {"resolved", "closed"} <= FINAL_STATUSES


def test_evidence_requested_and_other_events_tell_nobody() -> None:
    assert r(evidence_requested()) == []
    assert r(AssessmentFailed(request_id="r", case_id="c", reason="x")) == []


def test_one_notification_per_recipient_and_channel() -> None:
    # the insurer's claims address is also the mediator's (a small insurer, a shared inbox)
    intents = r(responded(mediator_email="claims@picc.example"))
    assert len({i.key for i in intents}) == len(intents)


def test_idempotency_key_is_event_recipient_channel() -> None:
    i = r(opened())[0]
    assert i.key == ("ev-1", i.recipient, i.channel.value)


def test_links_escape_odd_case_numbers() -> None:
    assert status_link(BASE, "XJ 1/2", "zh") == f"{BASE}/status?case=XJ%201%2F2"


def test_case_view_marks_overdue_until_the_next_event() -> None:
    v = case_view(overdue(), occurred_at=T0)
    assert v is not None and v.overdue_deadline == T0 and v.mediator_email == "wang@mediation.example"
    after = case_view(changed("proposal_sent"), occurred_at=T0)
    assert after is not None and after.overdue_deadline is None and after.status == "proposal_sent"
