"""Routing properties over generated case events: one notification per (event, recipient,
channel); each party only through its own channels; nothing personal in a webhook; every
notification renders in its language."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notify.adapters.render import TemplateRenderer
from services.notify.domain.model import LANGS, Channel, InsurerContact, Role
from services.notify.domain.routing import route
from shared.events import (
    CaseOpened,
    CaseOverdue,
    EvidenceReady,
    EvidenceRequested,
    EvidenceShared,
    InsurerResponded,
    StatusChanged,
)

from .builders import BASE, T0

pytestmark = pytest.mark.unit

STATUSES = ["opened", "evidence_requested", "evidence_ready", "under_review", "proposal_sent", "insurer_accepted",
            "resolved", "closed", "insurer_rejected", "escalated", "withdrawn"]
R = TemplateRenderer()
text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@st.composite
def case_events(draw: st.DrawFn) -> Any:
    common = {
        "case_id": draw(st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True)),
        "case_number": draw(st.from_regex(r"XJ-[0-9]{4}-[0-9]{4}", fullmatch=True)),
        "status": draw(st.sampled_from(STATUSES)), "actor": "mediator:1",
        "insurer_code": draw(st.sampled_from(["PICC", "CPIC", "PA"])),
        "rider_phone": draw(st.none() | st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)),
        "rider_lang": draw(st.sampled_from(["zh", "en", "fr", ""])),
        "mediator_email": draw(st.none() | st.just("wang@m.example") | st.just("claims@picc.example")),
        "insurer_email": draw(st.none() | st.just("claims@picc.example")),
    }
    kind = draw(st.sampled_from(["opened", "changed", "requested", "ready", "shared", "responded", "overdue"]))
    match kind:
        case "opened":
            return CaseOpened(**common)
        case "changed":
            return StatusChanged(**common, from_status=draw(st.sampled_from(STATUSES)), reason=draw(text))
        case "requested":
            return EvidenceRequested(**common, request_id="r1")
        case "ready":
            return EvidenceReady(**common, packet_id="p", packet_sha256="0" * 64,
                                 phase=draw(st.sampled_from(["delivering", "connecting", "idle", "new_phase",
                                                             "insufficient_data"])),
                                 continuous_delivery=draw(st.none() | st.booleans()))
        case "shared":
            return EvidenceShared(**common, packet_id=draw(st.none() | st.just("p")), packet_sha256="0" * 64,
                                  phase=draw(st.none() | st.sampled_from(["connecting", "idle", "insufficient_data"])),
                                  continuous_delivery=draw(st.none() | st.booleans()),
                                  covered=draw(st.none() | st.booleans()), reason=draw(text))
        case "responded":
            return InsurerResponded(**common, decision=draw(st.sampled_from(["accept", "reject"])), reason=draw(text))
    return CaseOverdue(**common, deadline=T0)


contacts = st.none() | st.builds(InsurerContact, st.sampled_from(["PICC", "CPIC", "PA"]),
                                 st.none() | st.just("dir@insurer.example"), st.booleans(), st.sampled_from(LANGS))


@settings(max_examples=150, deadline=None)
@given(case_events(), contacts, st.sampled_from(LANGS))
def test_routing_properties(event: Any, contact: InsurerContact | None, staff_lang: str) -> None:
    intents = route(event, event_id="ev", occurred_at=T0, base_url=BASE, insurer=contact, staff_lang=staff_lang)
    assert len({i.key for i in intents}) == len(intents)
    for i in intents:
        assert i.lang in LANGS and i.event_id == "ev" and i.case_id == event.case_id
        if i.role is Role.RIDER:
            assert i.channel is Channel.SMS and i.recipient == event.rider_phone
            assert i.lang == ("en" if event.rider_lang == "en" else "zh")
        elif i.role is Role.MEDIATOR:
            assert i.channel is Channel.EMAIL and i.recipient == event.mediator_email and i.lang == staff_lang
        else:
            assert not isinstance(event, EvidenceReady), "the insurer heard of evidence before the proposal"
            assert i.channel in (Channel.EMAIL, Channel.WEBHOOK)
            if i.channel is Channel.WEBHOOK:
                assert contact is not None and contact.webhook and i.recipient == contact.code
                flat = repr(i.context)
                assert (event.rider_phone or "@@") not in flat and "wang@m.example" not in flat
            else:
                assert i.recipient in (event.insurer_email, contact.email if contact else None)
        c = R.render(i)
        assert c.body and (c.subject is not None) == (i.channel is Channel.EMAIL)
