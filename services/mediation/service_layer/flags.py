"""Gap flags in the mediation service: a projection of the trajectory service's ``GapFlagged``
events for riders with an open case and recorded consent (the flags outside that are not kept),
plus the flags an assessment reply carries for the case's window (those made before the case was
opened). ``GET /cases/{id}/gaps`` reads them: the mediator always, the insurer once the mediator
has sent the proposal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from services.mediation.adapters.tables import CaseRow, GapFlagRow
from services.mediation.domain.errors import Forbidden
from services.mediation.domain.model import Actor, Role
from services.mediation.service_layer.cases import EVIDENCE_NOT_SHARED, Mediation, aware
from shared.db import unit_of_work
from shared.events import GapFlagged
from shared.timeutil import iso_local, parse_one

ENDED = ("resolved", "closed", "withdrawn")


def _upsert(s: Session, row: GapFlagRow) -> None:
    old = s.get(GapFlagRow, (row.rider_id, row.start))
    if old is None:
        s.add(row)


def project(mediation: Mediation, ev: GapFlagged, flagged_at: datetime) -> bool:
    """Keep a flag (judged at ``flagged_at``) if its rider has an open case with consent; True if kept."""
    with unit_of_work(mediation.engine) as s:
        case = s.exec(select(CaseRow.id).where(CaseRow.rider_id == ev.rider_id, col(CaseRow.consent_given),
                                              col(CaseRow.status).not_in(ENDED))).first()
        if case is None:
            return False
        _upsert(s, GapFlagRow(rider_id=ev.rider_id, start=_utc(ev.start), end=_utc(ev.end), phase=ev.phase,
                              continuous_delivery=ev.continuous_delivery, why=ev.why[:64],
                              previous_order=ev.previous_order, next_order=ev.next_order,
                              flagged_at=_utc(flagged_at),
                              received_at=mediation.clock()))
    return True


def keep(mediation: Mediation, rider_id: str, flags: list[dict[str, Any]], tz: str) -> None:
    """The flags an assessment reply carried for the case's window (judged when the gaps closed)."""
    with unit_of_work(mediation.engine) as s:
        for f in flags:
            _upsert(s, GapFlagRow(rider_id=rider_id, start=_at(f["from"], tz), end=_at(f["to"], tz),
                                  phase=str(f["phase"]), continuous_delivery=f.get("continuous_delivery"),
                                  why=str(f.get("why") or "")[:64], previous_order=f.get("previous_order"),
                                  next_order=f.get("next_order"),
                                  flagged_at=_at(f["flagged_at"], tz) if f.get("flagged_at") else None,
                                  received_at=mediation.clock()))


def case_gaps(mediation: Mediation, *, actor: Actor, case_id: str) -> list[dict[str, Any]]:
    """The rider's flagged gaps inside the case's evidence window, clipped to it."""
    tz = mediation.settings.timezone
    with Session(mediation.engine) as s:
        row = mediation._load(s, actor, case_id)  # 404 for a case the actor may not read
        if actor.role is Role.INSURER and row.sent_packet_id is None:
            raise Forbidden(EVIDENCE_NOT_SHARED)
        at = aware(row.incident_at)
        w = timedelta(minutes=mediation.settings.evidence_window_min)
        w0, w1 = at - w, at + w
        rows = s.exec(select(GapFlagRow).where(GapFlagRow.rider_id == row.rider_id, GapFlagRow.start <= w1,
                                               GapFlagRow.end >= w0).order_by(col(GapFlagRow.start))).all()
    return [{"from": iso_local(max(aware(r.start), w0).timestamp(), tz),
             "to": iso_local(min(aware(r.end), w1).timestamp(), tz), "phase": r.phase,
             "continuous_delivery": r.continuous_delivery,
             "flagged_at": iso_local(aware(r.flagged_at).timestamp(), tz) if r.flagged_at else None,
             "why": r.why, "previous_order": r.previous_order, "next_order": r.next_order} for r in rows]


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC) if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _at(text: str, tz: str) -> datetime:
    return datetime.fromtimestamp(parse_one(text, tz), UTC)


__all__ = ["case_gaps", "keep", "project"]
