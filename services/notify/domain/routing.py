"""Who is told what about a case event: the routing table of notify.

| event | rider (SMS) | insurer (email + webhook) | mediator (email) |
|---|---|---|---|
| CaseOpened | yes: number, status page link | yes | |
| EvidenceReady | yes (undetermined: says so, and what would settle it) | **no**: the mediator reviews first | |
| EvidenceShared (the proposal is sent) | | yes, with the packet link and its finding | |
| InsurerResponded | yes: the decision | | yes |
| StatusChanged to proposal_sent | | webhook only (the email is EvidenceShared's) | |
| StatusChanged to escalated, withdrawn, closed | yes (final) | yes | |
| StatusChanged to resolved | yes (final) | | |
| CaseOverdue | | | yes |

An insurer hears of a case's evidence only once the mediator has sent the proposal (EvidenceShared),
never when it is built (EvidenceReady). An undetermined finding (``insufficient_data``) travels as
``continuous_delivery: null`` and ``outcome: "undetermined"``, never as false.

The rider's language is the case's ``rider_lang`` (Chinese unless English was chosen); insurers
have theirs in the directory; mediators share the deployment's staff language. The rider's
access code is never in an event, so the link opens the status page at the case and the SMS
says where the code is (the paper receipt).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from services.notify.domain.model import CaseView, Channel, InsurerContact, Intent, Role
from shared.events import (
    CaseEvent,
    CaseOpened,
    CaseOverdue,
    Event,
    EvidenceReady,
    EvidenceShared,
    InsurerResponded,
    StatusChanged,
)

FINAL_STATUSES = frozenset({"resolved", "closed", "escalated", "withdrawn"})  # rider is told
INSURER_STATUSES = frozenset({"escalated", "withdrawn", "closed"})  # insurer is told (email and webhook)
INSURER_WEBHOOK_STATUSES = INSURER_STATUSES | {"proposal_sent"}  # its email is EvidenceShared's

# webhook event types (the ``type`` of the Standard Webhooks payload)
WEBHOOK_TYPES = {"CaseOpened": "case.opened", "EvidenceShared": "case.evidence_shared",
                 "StatusChanged": "case.status_changed"}


def outcome(phase: str | None, continuous_delivery: bool | None) -> str | None:
    """``continuous``, ``not_continuous`` or ``undetermined`` (the engine abstained:
    ``insufficient_data``, ``continuous_delivery`` null); None when there is no finding."""
    if phase is None:
        return None
    if phase == "insufficient_data" or continuous_delivery is None:
        return "undetermined"
    return "continuous" if continuous_delivery else "not_continuous"


def lang_of(value: str | None, default: str = "zh") -> str:
    return value if value in ("zh", "en") else default


def status_link(base_url: str, case_number: str, lang: str) -> str:
    link = f"{base_url}/status?case={quote(case_number, safe='')}"
    return link + "&lang=en" if lang == "en" else link


def packet_link(base_url: str, case_id: str) -> str:
    return f"{base_url}/api/v1/cases/{quote(case_id, safe='')}/evidence-packet"


def case_link(base_url: str, case_id: str) -> str:
    """The case in the API (for machines: the webhook payload)."""
    return f"{base_url}/api/v1/cases/{quote(case_id, safe='')}"


def desk_link(base_url: str, case_number: str) -> str:
    """The case on the mediator desk (sign-in first)."""
    return f"{base_url}/?case={quote(case_number, safe='')}"


def portal_link(base_url: str, case_number: str) -> str:
    """The case on the insurer portal (sign-in first)."""
    return f"{base_url}/insurer/?case={quote(case_number, safe='')}"


def route(event: Event, *, event_id: str, occurred_at: datetime, base_url: str,
          insurer: InsurerContact | None, staff_lang: str = "zh") -> list[Intent]:
    """The notifications one case event causes, at most one per (recipient, channel).

    ``insurer`` is what the directory knows of the case's insurer (None: nothing configured;
    the event's ``insurer_email`` is used then)."""
    if not isinstance(event, CaseEvent):
        return []
    ctx = _context(event, occurred_at=occurred_at, base_url=base_url)
    rider = _rider_template(event)
    to_insurer = _insurer_template(event)
    mediator = _mediator_template(event)
    out: list[Intent] = []
    if rider and event.rider_phone:
        lang = lang_of(event.rider_lang)
        out.append(Intent(event_id, event.case_id, Role.RIDER, Channel.SMS, event.rider_phone,
                          rider, lang, {**ctx, "status_link": status_link(base_url, event.case_number, lang)}))
    if to_insurer or _insurer_webhook(event):
        lang = lang_of(insurer.lang if insurer else None)
        email = event.insurer_email or (insurer.email if insurer else None)
        if email and to_insurer:
            out.append(Intent(event_id, event.case_id, Role.INSURER, Channel.EMAIL, email,
                              to_insurer, lang, ctx))
        if insurer is not None and insurer.webhook:
            out.append(Intent(event_id, event.case_id, Role.INSURER, Channel.WEBHOOK, insurer.code,
                              "webhook", lang, webhook_payload(event, event_id=event_id,
                                                               occurred_at=occurred_at, base_url=base_url)))
    if mediator and event.mediator_email:
        out.append(Intent(event_id, event.case_id, Role.MEDIATOR, Channel.EMAIL, event.mediator_email,
                          mediator, lang_of(staff_lang), ctx))
    return _unique(out)


def _rider_template(e: CaseEvent) -> str | None:
    match e:
        case CaseOpened():
            return "rider_case_opened"
        case EvidenceReady():
            return "rider_evidence_ready"
        case InsurerResponded():
            return "rider_insurer_responded"
        case StatusChanged() if e.status in FINAL_STATUSES:
            return "rider_final_status"
    return None


def _insurer_template(e: CaseEvent) -> str | None:
    """The insurer's email. Never for EvidenceReady: the mediator reviews the evidence first."""
    match e:
        case CaseOpened():
            return "insurer_case_opened"
        case EvidenceShared():
            return "insurer_evidence_shared"
        case StatusChanged() if e.status in INSURER_STATUSES:
            return "insurer_status_changed"
    return None


def _insurer_webhook(e: CaseEvent) -> bool:
    match e:
        case CaseOpened() | EvidenceShared():
            return True
        case StatusChanged() if e.status in INSURER_WEBHOOK_STATUSES:
            return True
    return False


def _mediator_template(e: CaseEvent) -> str | None:
    match e:
        case InsurerResponded():
            return "mediator_insurer_responded"
        case CaseOverdue():
            return "mediator_case_overdue"
    return None


def _context(e: CaseEvent, *, occurred_at: datetime, base_url: str) -> dict[str, Any]:
    """Template variables: what the case event says, minus contacts and actors."""
    ctx: dict[str, Any] = {
        "event_type": e.TYPE, "case_id": e.case_id, "case_number": e.case_number, "status": e.status,
        "insurer_code": e.insurer_code, "occurred_at": occurred_at, "base_url": base_url,
        "case_link": case_link(base_url, e.case_id), "desk_link": desk_link(base_url, e.case_number),
        "portal_link": portal_link(base_url, e.case_number),
    }
    match e:
        case StatusChanged():
            ctx.update(from_status=e.from_status, reason=e.reason)
        case EvidenceReady():
            ctx.update(packet_id=e.packet_id, phase=e.phase, continuous_delivery=e.continuous_delivery,
                       outcome=outcome(e.phase, e.continuous_delivery))
        case EvidenceShared():
            ctx.update(packet_link=packet_link(base_url, e.case_id) if e.packet_id else None,
                       packet_id=e.packet_id, packet_sha256=e.packet_sha256, phase=e.phase,
                       continuous_delivery=e.continuous_delivery, covered=e.covered, reason=e.reason,
                       outcome=outcome(e.phase, e.continuous_delivery))
        case InsurerResponded():
            ctx.update(decision=e.decision, reason=e.reason)
        case CaseOverdue():
            ctx.update(deadline=e.deadline)
    return ctx


def webhook_payload(e: CaseEvent, *, event_id: str, occurred_at: datetime, base_url: str) -> dict[str, Any]:
    """The JSON an insurer's claims system receives (Standard Webhooks shape: type, timestamp,
    data). Nothing about the rider beyond the case: no phone, no name, no mediator contact."""
    data: dict[str, Any] = {
        "event_id": event_id, "event_type": e.TYPE, "case_id": e.case_id,
        "case_number": e.case_number, "status": e.status, "insurer_code": e.insurer_code,
        "case_url": case_link(base_url, e.case_id),
    }
    match e:
        case StatusChanged():
            data.update(from_status=e.from_status, reason=e.reason)
        case EvidenceShared():
            data.update(packet_url=packet_link(base_url, e.case_id) if e.packet_id else None,
                        packet_id=e.packet_id, packet_sha256=e.packet_sha256, phase=e.phase,
                        continuous_delivery=e.continuous_delivery, covered=e.covered,
                        outcome=outcome(e.phase, e.continuous_delivery), reason=e.reason)
    return {"type": WEBHOOK_TYPES.get(e.TYPE, "case." + e.TYPE.lower()),
            "timestamp": occurred_at.isoformat(), "data": data}


def _unique(intents: Iterable[Intent]) -> list[Intent]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for i in intents:
        if i.key not in seen:
            seen.add(i.key)
            out.append(i)
    return out


def case_view(event: Event, *, occurred_at: datetime) -> CaseView | None:
    """Notify's view of the case after the event: CaseOverdue marks it overdue until anything
    else happens to it (mediation raises CaseOverdue again if the next deadline passes too)."""
    if not isinstance(event, CaseEvent):
        return None
    return CaseView(case_id=event.case_id, case_number=event.case_number, status=event.status,
                    insurer_code=event.insurer_code, mediator_email=event.mediator_email,
                    overdue_deadline=event.deadline if isinstance(event, CaseOverdue) else None,
                    updated_at=occurred_at)
