"""The case lifecycle: one table of allowed transitions, one function that checks a transition
and returns what it causes. Nothing else changes a case's status."""

from __future__ import annotations

from datetime import datetime

from services.mediation.domain.errors import Forbidden, IllegalTransition
from services.mediation.domain.model import Actor, Case, Role, Status, TransitionRecord
from shared.events import CaseOpened, Event, StatusChanged

S, R = Status, Role
M, INS, SY = frozenset({R.MEDIATOR}), frozenset({R.INSURER}), frozenset({R.SYSTEM})
MS = M | SY

# from -> {to: roles that may make the move}
TRANSITIONS: dict[Status, dict[Status, frozenset[Role]]] = {
    S.OPENED: {S.EVIDENCE_REQUESTED: MS, S.ESCALATED: M, S.WITHDRAWN: M},
    S.EVIDENCE_REQUESTED: {S.EVIDENCE_READY: SY, S.OPENED: MS, S.ESCALATED: M, S.WITHDRAWN: M},
    S.EVIDENCE_READY: {S.UNDER_REVIEW: M, S.EVIDENCE_REQUESTED: M, S.INSURER_ACCEPTED: INS, S.INSURER_REJECTED: INS,
                       S.ESCALATED: M, S.WITHDRAWN: M},
    S.UNDER_REVIEW: {S.PROPOSAL_SENT: M, S.EVIDENCE_REQUESTED: M, S.INSURER_ACCEPTED: INS, S.INSURER_REJECTED: INS,
                     S.ESCALATED: M, S.WITHDRAWN: M},
    S.PROPOSAL_SENT: {S.INSURER_ACCEPTED: INS, S.INSURER_REJECTED: INS, S.UNDER_REVIEW: M, S.ESCALATED: M,
                      S.WITHDRAWN: M},
    S.INSURER_ACCEPTED: {S.RESOLVED: M, S.ESCALATED: M},
    S.INSURER_REJECTED: {S.UNDER_REVIEW: M, S.ESCALATED: M, S.CLOSED: M, S.WITHDRAWN: M},
    S.ESCALATED: {S.UNDER_REVIEW: M, S.RESOLVED: M, S.CLOSED: M, S.WITHDRAWN: M},
    S.RESOLVED: {S.CLOSED: M},
    S.WITHDRAWN: {S.CLOSED: M},
    S.CLOSED: {},
}

FINAL = frozenset({S.CLOSED})
INSURER_ANSWERABLE = frozenset(s for s, moves in TRANSITIONS.items() if S.INSURER_ACCEPTED in moves)


def allowed(status: Status, role: Role) -> list[Status]:
    """The statuses ``role`` may move a case to from ``status``."""
    return [to for to, roles in TRANSITIONS[status].items() if role in roles]


def transition(case: Case, to: Status, actor: Actor, reason: str, now: datetime) -> tuple[Case, list[Event]]:
    """Check a move and return the moved case and the events it causes; raise IllegalTransition
    (naming the allowed moves) or Forbidden."""
    moves = TRANSITIONS[case.status]
    if to not in moves:
        raise IllegalTransition(case.status, to, allowed(case.status, actor.role))
    if actor.role not in moves[to]:
        raise Forbidden(f"a {actor.role.value} may not move a case from {case.status.value} to {to.value}")
    if actor.role is Role.INSURER and actor.insurer_code != case.insurer_code:
        raise Forbidden("not this insurer's case")
    record = TransitionRecord(now, actor.label, case.status, to, reason)
    moved = case.with_status(to, record)
    return moved, [StatusChanged(**case_fields(moved, actor), from_status=case.status.value, reason=reason)]


def opened(case: Case, actor: Actor) -> list[Event]:
    return [CaseOpened(**case_fields(case, actor))]


def case_fields(case: Case, actor: Actor) -> dict[str, object]:
    """The fields every case event carries."""
    return {
        "case_id": case.case_id, "case_number": case.case_number, "status": case.status.value,
        "actor": actor.label, "insurer_code": case.insurer_code, "rider_phone": case.rider.phone,
        "rider_lang": case.rider.lang,
    }
