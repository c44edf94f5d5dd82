"""The mediation service's use cases. Each runs in one unit of work: the case row, its transition,
its audit entry and the events it causes (in the outbox) are committed together or not at all."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.mediation.adapters.tables import (
    AuditRow,
    CaseRow,
    EvidenceRequestRow,
    InsurerRow,
    OutboxRow,
    PacketRow,
    StatusAttemptRow,
    TransitionRow,
    UserRow,
)
from services.mediation.domain import audit, deadlines, lifecycle
from services.mediation.domain.coverage import DEFAULT_PRODUCT, is_undetermined
from services.mediation.domain.errors import ConsentMissing, Forbidden, IllegalTransition, NotFound
from services.mediation.domain.model import (
    SYSTEM,
    Actor,
    Case,
    Consent,
    Incident,
    Rider,
    Role,
    Status,
    TransitionRecord,
)
from services.mediation.packet.privacy import mask_name, mask_phone
from services.mediation.schemas import CaseCreate
from services.mediation.settings import MediationSettings
from shared import topics
from shared.db import unit_of_work
from shared.events import (
    AssessmentRequested,
    Event,
    EvidenceReady,
    EvidenceRequested,
    EvidenceShared,
    InsurerResponded,
)
from shared.geo import to_wgs84

logger = logging.getLogger(__name__)
PRODUCER = "mediation"
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(t: datetime) -> datetime:
    """SQLite hands back naive datetimes for aware columns: they were stored as UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@dataclass
class Mediation:
    engine: Engine
    settings: MediationSettings
    clock: Callable[[], datetime] = utcnow
    _auth_cache: dict[str, tuple[float, Actor]] = field(default_factory=dict, repr=False)
    # Reads of a case (by role) and of a rider's status, remembered for ``read_cache_s``: cleared
    # at once by any write in this process; another process's write shows within that time.
    _reads: dict[tuple[str, ...], tuple[float, Any]] = field(default_factory=dict, repr=False)
    # wrong access codes per client (address) and the clients locked for guessing (this process's)
    _client_failures: dict[str, list[datetime]] = field(default_factory=dict, repr=False)
    _client_locks: dict[str, datetime] = field(default_factory=dict, repr=False)
    _cred_mark: int = field(default=-1, repr=False)

    def _cached(self, key: tuple[str, ...]) -> Any | None:
        hit = self._reads.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def _remember(self, key: tuple[str, ...], value: Any) -> Any:
        if len(self._reads) > 50_000:
            self._reads.clear()
        self._reads[key] = (time.monotonic() + self.settings.read_cache_s, value)
        return value

    # ------------------------------------------------------------ users and auth

    def add_user(self, *, role: Role, name: str, insurer_code: str | None = None, office: str | None = None,
                 email: str | None = None) -> tuple[str, str]:
        if role is Role.INSURER and not insurer_code:
            raise ValueError("an insurer account needs --insurer CODE")
        token = secrets.token_urlsafe(32)
        uid = str(uuid.uuid4())
        with unit_of_work(self.engine) as s:
            s.add(UserRow(id=uid, name=name, role=role.value, insurer_code=insurer_code,
                          office=office or self.settings.office, email=email, token_hash=token_hash(token),
                          created_at=self.clock()))
            if insurer_code and s.get(InsurerRow, insurer_code) is None:
                s.add(InsurerRow(code=insurer_code, name=name, email=email))
        return uid, token

    def forget_credentials(self) -> None:
        """A token was disabled or rotated: forget remembered tokens here, and tell every process
        sharing XJ_DATA_DIR (they look at the stamp's time before trusting their memory)."""
        self._auth_cache.clear()
        self._reads.clear()
        stamp = self.settings.data_dir / "credentials.stamp"
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(str(time.time_ns()))

    def _credentials_current(self) -> None:
        try:
            mark = (self.settings.data_dir / "credentials.stamp").stat().st_mtime_ns
        except OSError:
            mark = 0
        if mark != self._cred_mark:
            self._auth_cache.clear()
            self._reads.clear()
            self._cred_mark = mark

    def remembered_actor(self, token: str) -> Actor | None:
        """The account of a token checked within the last few seconds, without touching the database
        (None: not known; ask :meth:`authenticate`)."""
        self._credentials_current()
        hit = self._auth_cache.get(token_hash(token))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def remembered_status(self, case_number: str, code: str, client: str | None = None) -> dict[str, Any] | None:
        if client is not None and client in self._client_locks:
            return None  # rider_status decides (and refuses while the client is locked)
        hit = self._cached(("status", case_number[:64].upper(), token_hash(code)))
        return dict(hit) if hit is not None else None

    def remembered_case(self, actor: Actor, case_id: str) -> dict[str, Any] | None:
        hit = self._cached(("case", case_id, actor.role.value, actor.office or "", actor.insurer_code or ""))
        return None if hit is None else dict(hit, overdue=bool(hit["due_at"] and self.clock() > hit["due_at"]))

    def authenticate(self, token: str) -> Actor | None:
        """The account a bearer token belongs to. Answers are remembered for a few seconds
        (``auth_cache_s``): a deactivated token stops working within that time."""
        h = token_hash(token)
        now = time.monotonic()
        self._credentials_current()
        hit = self._auth_cache.get(h)
        if hit is not None and hit[0] > now:
            return hit[1]
        with Session(self.engine) as s:
            u = s.exec(select(UserRow).where(UserRow.token_hash == h, UserRow.active)).first()
        actor = None if u is None else Actor(Role(u.role), u.id, u.name, u.insurer_code, u.office)
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        if actor is not None:  # unknown tokens are not cached: a flood of guesses cannot fill memory
            self._auth_cache[h] = (now + self.settings.auth_cache_s, actor)
        return actor

    # ------------------------------------------------------------ cases

    def open_case(self, *, actor: Actor, cmd: CaseCreate) -> tuple[CaseRow, str]:
        _require(actor, Role.MEDIATOR)
        now = self.clock()
        loc = None
        if cmd.incident.location is not None:
            la, lo = to_wgs84(cmd.incident.location.lat, cmd.incident.location.lon, cmd.incident.location.crs)
            loc = (float(la), float(lo))
        code = "".join(secrets.choice("0123456789") for _ in range(8))
        with unit_of_work(self.engine) as s:
            from services.mediation.service_layer.office import find_insurer

            insurer = find_insurer(s, cmd.insurer_code, self.settings.insurers)  # UnknownInsurer: 422
            product = cmd.product or (insurer.default_product if insurer else DEFAULT_PRODUCT)
            mediator = s.get(UserRow, actor.id)
            row = CaseRow(
                id=str(uuid.uuid4()), case_number=self._new_number(s), status=Status.OPENED.value,
                rider_id=cmd.rider.id, rider_name=cmd.rider.name, rider_phone=cmd.rider.phone, rider_lang=cmd.rider.lang,
                insurer_code=insurer.code, policy_number=cmd.policy_number, claim_number=cmd.claim_number,
                product=product, incident_at=self._aware(cmd.incident.at),
                incident_lat=loc[0] if loc else None, incident_lon=loc[1] if loc else None,
                incident_description=cmd.incident.description, injury=cmd.incident.injury,
                denial_reason=cmd.denial_reason, consent_given=cmd.consent.given,
                consent_at=self._aware(cmd.consent.at) if cmd.consent.at else (now if cmd.consent.given else None),
                consent_method=cmd.consent.method, consent_scope=cmd.consent.scope,
                office=actor.office or self.settings.office, mediator_id=actor.id,
                access_code_hash=token_hash(code), created_at=now, status_since=now,
            )
            case = to_domain(row)
            row.due_at = deadlines.due_at(case, self.settings.deadline_hours())
            s.add(row)
            s.add(TransitionRow(case_id=row.id, at=now, actor=actor.label, from_status=None, to_status=row.status,
                                reason="case opened"))
            self._audit(s, row, actor.label, "case_opened", {
                "insurer_code": row.insurer_code, "policy_number": row.policy_number, "claim_number": row.claim_number,
                "consent_given": row.consent_given, "consent_method": row.consent_method})
            self._emit(s, row, lifecycle.opened(case, actor), mediator, insurer)
        return row, code

    def _new_number(self, s: Session) -> str:
        day = self.clock().strftime("%y%m%d")
        while True:
            n = f"XJ{day}-{''.join(secrets.choice(_CODE_ALPHABET) for _ in range(4))}"
            if s.exec(select(CaseRow.id).where(CaseRow.case_number == n)).first() is None:
                return n

    def _aware(self, t: datetime) -> datetime:
        if t.tzinfo is None:
            import pendulum

            return pendulum.instance(t, tz=self.settings.timezone).in_timezone("UTC")
        return t.astimezone(UTC)

    def _load(self, s: Session, actor: Actor, case_id: str, *, for_update: bool = False) -> CaseRow:
        q = select(CaseRow).where(CaseRow.id == case_id)
        if for_update:
            q = q.with_for_update()
        row = s.exec(q).first()
        if row is None or not can_read(actor, row):
            raise NotFound("no such case")  # the same answer whether it exists or not
        return row

    def get_case(self, *, actor: Actor, case_id: str) -> dict[str, Any]:
        key = ("case", case_id, actor.role.value, actor.office or "", actor.insurer_code or "")
        hit = self._cached(key)
        if hit is not None:
            return dict(hit, overdue=bool(hit["due_at"] and self.clock() > hit["due_at"]))
        with Session(self.engine) as s:
            row = self._load(s, actor, case_id)
            hist = s.exec(select(TransitionRow).where(TransitionRow.case_id == case_id).order_by(TransitionRow.id)).all()
            packets = s.exec(select(PacketRow).where(PacketRow.case_id == case_id)
                             .order_by(PacketRow.created_at, PacketRow.id)).all()  # type: ignore[arg-type]
            return self._remember(key, self._public(row, list(hist), list(packets), actor))

    def list_cases(self, *, actor: Actor, status: str | None = None, insurer: str | None = None, q: str | None = None,
                   overdue: bool | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        if actor.role not in (Role.MEDIATOR, Role.INSURER):
            raise Forbidden("not allowed")
        now = self.clock()
        with Session(self.engine) as s:
            stmt = select(CaseRow)
            if actor.role is Role.MEDIATOR:
                stmt = stmt.where(CaseRow.office == actor.office)
            else:
                stmt = stmt.where(CaseRow.insurer_code == actor.insurer_code)
            if status:
                stmt = stmt.where(CaseRow.status == status)
            if insurer:
                stmt = stmt.where(func.upper(CaseRow.insurer_code) == insurer.upper())
            if q:
                like = f"%{q.upper()}%"
                cols = (CaseRow.case_number, CaseRow.rider_name, CaseRow.claim_number, CaseRow.policy_number,
                        CaseRow.rider_id)
                conds = [func.upper(c).like(like) for c in cols]
                digits = "".join(ch for ch in q if ch.isdigit())
                if len(digits) >= 4:  # a phone number however it is written: +86 138-0013-8000
                    digits = digits[2:] if digits.startswith("86") and len(digits) == 13 else digits
                    bare = CaseRow.rider_phone
                    for ch in (" ", "-", "+", "(", ")"):
                        bare = func.replace(bare, ch, "")
                    conds.append(bare.like(f"%{digits}%"))  # type: ignore[union-attr]
                stmt = stmt.where(or_(*conds))
            if overdue is True:
                stmt = stmt.where(CaseRow.due_at != None, CaseRow.due_at < now)  # noqa: E711
            elif overdue is False:
                stmt = stmt.where(or_(CaseRow.due_at == None, CaseRow.due_at >= now))  # noqa: E711
            total = s.exec(select(func.count()).select_from(stmt.subquery())).one()
            rows = s.exec(stmt.order_by(CaseRow.created_at.desc()).offset(offset).limit(limit)).all()  # type: ignore[attr-defined]
            return {"total": total, "limit": limit, "offset": offset,
                    "items": [self._summary(r, actor) for r in rows]}

    def request_evidence(self, *, actor: Actor, case_id: str) -> str:
        _require(actor, Role.MEDIATOR)
        now = self.clock()
        with unit_of_work(self.engine) as s:
            row = self._load(s, actor, case_id, for_update=True)
            if not row.consent_given:
                raise ConsentMissing("the rider has not consented to the use of his location trail: "
                                     "no trajectory may be requested (PIPL)")
            case = to_domain(row)
            moved, events = lifecycle.transition(case, Status.EVIDENCE_REQUESTED, actor, "evidence requested", now)
            rid = str(uuid.uuid4())
            row.evidence_stale = False
            s.add(EvidenceRequestRow(id=rid, case_id=row.id, requested_at=now))
            self._apply(s, row, moved, actor)
            self._audit(s, row, actor.label, "evidence_requested", {"request_id": rid})
            req = AssessmentRequested(request_id=rid, case_id=row.id, rider_id=row.rider_id,
                                      incident_at=aware(row.incident_at),
                                      location=(row.incident_lat, row.incident_lon) if row.incident_lat is not None
                                      and row.incident_lon is not None else None,
                                      window_min=self.settings.evidence_window_min,
                                      claimed_at=aware(row.created_at))
            self._outbox(s, topics.ASSESSMENT_REQUESTED, row.rider_id, req)
            self._emit(s, row, [*events, EvidenceRequested(**lifecycle.case_fields(moved, actor), request_id=rid)])
        return rid

    def transition(self, *, actor: Actor, case_id: str, to: Status, reason: str) -> dict[str, Any]:
        if to is Status.EVIDENCE_REQUESTED:
            self.request_evidence(actor=actor, case_id=case_id)
            return self.get_case(actor=actor, case_id=case_id)
        now = self.clock()
        with unit_of_work(self.engine) as s:
            row = self._load(s, actor, case_id, for_update=True)
            moved, events = lifecycle.transition(to_domain(row), to, actor, reason, now)
            data: dict[str, Any] = {"to": to.value, "reason": reason}
            if to is Status.PROPOSAL_SENT:
                # the mediator has reviewed: the current packet goes to the insurer with the proposal
                events = [*events, self._share_evidence(s, row, moved, actor, reason, now)]
                data["packet_id"] = row.sent_packet_id
            self._apply(s, row, moved, actor, packet_id=row.sent_packet_id if to is Status.PROPOSAL_SENT else None)
            self._audit(s, row, actor.label, "status_changed", data)
            self._emit(s, row, events)
        return self.get_case(actor=actor, case_id=case_id)

    def _share_evidence(self, s: Session, row: CaseRow, moved: Case, actor: Actor, reason: str,
                        now: datetime) -> EvidenceShared:
        """Record the current packet as the one sent to the insurer and say so (EvidenceShared)."""
        p = s.get(PacketRow, row.packet_id) if row.packet_id else None
        row.sent_packet_id = p.id if p is not None else None
        row.sent_phase = p.phase or row.assessment_phase if p is not None else None
        if p is not None and p.sent_at is None:
            p.sent_at = now
            s.add(p)
        return EvidenceShared(**lifecycle.case_fields(moved, actor), reason=reason,
                              packet_id=p.id if p is not None else None,
                              packet_sha256=p.sha256 if p is not None else None,
                              phase=row.sent_phase, continuous_delivery=p.continuous_delivery if p is not None else None,
                              covered=p.covered if p is not None else None)

    def insurer_response(self, *, actor: Actor, case_id: str, decision: str, reason: str) -> dict[str, Any]:
        _require(actor, Role.INSURER)
        now = self.clock()
        to = Status.INSURER_ACCEPTED if decision == "accept" else Status.INSURER_REJECTED
        with unit_of_work(self.engine) as s:
            row = self._load(s, actor, case_id, for_update=True)
            moved, events = lifecycle.transition(to_domain(row), to, actor, reason, now)
            self._apply(s, row, moved, actor)
            self._audit(s, row, actor.label, "insurer_responded", {"decision": decision, "reason": reason})
            self._emit(s, row, [*events, InsurerResponded(**lifecycle.case_fields(moved, actor), decision=decision,
                                                          reason=reason)])
        return self.get_case(actor=actor, case_id=case_id)

    # ------------------------------------------------------------ evidence

    def store_packet(self, *, case_id: str, request_id: str, packet: dict[str, Any], phase: str,
                     continuous: bool | None) -> None:
        """Called when the trajectory service's assessment has been made into a signed packet."""
        now = self.clock()
        from services.mediation.packet.canonical import dump_packet

        raw = dump_packet(packet)  # the exact bytes insurers download and verify
        digest = hashlib.sha256(raw).hexdigest()
        with unit_of_work(self.engine) as s:
            req = s.get(EvidenceRequestRow, request_id)
            if req is None or req.state != "pending":
                return  # a repeated delivery, or a request superseded by a newer one
            row = self._load(s, SYSTEM_READER, case_id, for_update=True)
            req.state = "ready"
            s.add(req)
            pid = str(packet.get("packet_id") or uuid.uuid4())
            covered = (packet.get("coverage") or {}).get("covered")
            s.add(PacketRow(id=pid, case_id=case_id, created_at=now, sha256=digest, body=raw, request_id=request_id,
                            phase=phase, continuous_delivery=continuous,
                            covered=covered if isinstance(covered, bool) else None))
            row.packet_id, row.assessment_phase = pid, phase
            if row.status == Status.EVIDENCE_REQUESTED.value:
                moved, events = lifecycle.transition(to_domain(row), Status.EVIDENCE_READY, SYSTEM,
                                                     f"assessment: {phase}", now)
                self._apply(s, row, moved, SYSTEM, packet_id=pid)
            else:
                moved, events = to_domain(row), []
                s.add(row)
            self._audit(s, row, SYSTEM.label, "packet_built", {"packet_id": pid, "sha256": digest, "phase": phase,
                                                               "request_id": request_id})
            self._emit(s, row, [*events, EvidenceReady(**lifecycle.case_fields(moved, SYSTEM), packet_id=pid,
                                                       packet_sha256=digest, phase=phase,
                                                       continuous_delivery=continuous)])

    def evidence_failed(self, *, case_id: str, request_id: str, reason: str) -> None:
        now = self.clock()
        with unit_of_work(self.engine) as s:
            req = s.get(EvidenceRequestRow, request_id)
            if req is None or req.state != "pending":
                return
            req.state, req.detail = "failed", reason
            s.add(req)
            row = self._load(s, SYSTEM_READER, case_id, for_update=True)
            if row.status == Status.EVIDENCE_REQUESTED.value:
                moved, events = lifecycle.transition(to_domain(row), Status.OPENED, SYSTEM, f"no evidence: {reason}", now)
                self._apply(s, row, moved, SYSTEM)
                self._emit(s, row, events)
            self._audit(s, row, SYSTEM.label, "evidence_failed", {"request_id": request_id, "reason": reason})

    def case_for_packet(self, case_id: str) -> CaseRow:
        with Session(self.engine) as s:
            row = s.get(CaseRow, case_id)
            if row is None:
                raise NotFound("no such case")
            return row

    def packet_bytes(self, *, actor: Actor, case_id: str, packet_id: str | None = None) -> bytes:
        """The signed packet exactly as stored: the bytes its signature and hashes cover. A mediator
        gets the current packet, or any of the case's by ``packet_id``; an insurer only the packet
        sent with the proposal (Forbidden before ``proposal_sent``: the mediator reviews first)."""
        with Session(self.engine) as s:
            row = self._load(s, actor, case_id)
            if actor.role is Role.INSURER:
                if row.sent_packet_id is None:
                    raise Forbidden(EVIDENCE_NOT_SHARED)
                if packet_id is not None and packet_id != row.sent_packet_id:
                    p = s.get(PacketRow, packet_id)
                    if p is None or p.case_id != case_id or p.sent_at is None:
                        raise NotFound("no such packet")
                    return bytes(p.body)
                wanted: str | None = row.sent_packet_id
            else:
                wanted = packet_id or row.packet_id
            if wanted is None:
                raise NotFound("no evidence packet yet")
            p = s.get(PacketRow, wanted)
            if p is None or p.case_id != case_id:
                raise NotFound("no such packet")
            return bytes(p.body)

    def packet(self, *, actor: Actor, case_id: str, packet_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(self.packet_bytes(actor=actor, case_id=case_id, packet_id=packet_id))
        return body

    # ------------------------------------------------------------ rider

    def rider_status(self, *, case_number: str, code: str, client: str | None = None) -> dict[str, Any] | None:
        """The status of a case for whoever holds its number and access code; None if they don't
        match. Wrong codes are counted per case number and lock it for a while; they are counted
        per ``client`` (its address) too, over all case numbers, and lock that client out.

        The common case (right code, no earlier failures) is one indexed read and no write."""
        now = self.clock()
        self._check_client(client, now)
        number = case_number[:64].upper()  # case numbers are upper case; a rider may type them lower
        key = ("status", number, token_hash(code))
        hit = self._cached(key)
        if hit is not None:
            return dict(hit)
        c, a = CaseRow.__table__.c, StatusAttemptRow.__table__.c  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            found = conn.execute(
                sa_select(c.access_code_hash, c.status, c.status_since, c.due_at, c.id, c.rider_lang, c.office,
                          a.failures, a.locked_until, c.assessment_phase)
                .select_from(CaseRow.__table__.outerjoin(StatusAttemptRow.__table__,  # type: ignore[attr-defined]
                                                         a.case_number == c.case_number))
                .where(c.case_number == number)).first()
        if found is not None and found.locked_until is not None and aware(found.locked_until) > now:
            raise Locked(aware(found.locked_until))
        ok = found is not None and secrets.compare_digest(found.access_code_hash, token_hash(code))
        if ok and found.failures is None:
            assert found is not None
            return dict(self._remember(key, {
                "case_number": number, "status": found.status, "updated_at": aware(found.status_since),
                "deadline": aware(found.due_at) if found.due_at else None, "case_id": found.id,
                "lang": found.rider_lang, "phase": found.assessment_phase,
                "office": self.settings.office_contact(found.office)}))
        with unit_of_work(self.engine) as s:
            att = s.get(StatusAttemptRow, number)
            if att is not None and att.locked_until is not None and aware(att.locked_until) > now:
                raise Locked(aware(att.locked_until))
            if not ok:
                self._reads.clear()  # a guess at this number: remembered answers may no longer be given
                self._client_failed(client, now)
                att = att or StatusAttemptRow(case_number=number)
                att.failures += 1
                att.last_failure = now
                if att.failures >= self.settings.status_max_failures:
                    att.locked_until = now + timedelta(minutes=self.settings.status_lock_minutes)
                    att.failures = 0
                s.add(att)
                return None
            if att is not None:
                s.delete(att)
        return self.rider_status(case_number=case_number, code=code, client=client)

    def _check_client(self, client: str | None, now: datetime) -> None:
        until = self._client_locks.get(client) if client is not None else None
        if until is not None:
            if until > now:
                raise Locked(until)
            self._client_locks.pop(client, None)  # type: ignore[arg-type]

    def _client_failed(self, client: str | None, now: datetime) -> None:
        if client is None:
            return
        span = timedelta(minutes=self.settings.status_lock_minutes)
        recent = [t for t in self._client_failures.get(client, ()) if t > now - span]
        recent.append(now)
        if len(recent) >= self.settings.status_client_max_failures:
            self._client_locks[client] = now + span
            recent = []
        if len(self._client_failures) > 100_000:
            self._client_failures.clear()
        self._client_failures[client] = recent

    # ------------------------------------------------------------ audit

    def audit_trail(self, *, actor: Actor, case_id: str) -> dict[str, Any]:
        with Session(self.engine) as s:
            row = self._load(s, actor, case_id)
            entries = [_entry(a) for a in s.exec(select(AuditRow).where(AuditRow.case_id == case_id)
                                                 .order_by(AuditRow.seq)).all()]
            problems = audit.verify(entries)
            if entries and (entries[-1].seq != row.audit_seq or entries[-1].hash != row.audit_head):
                problems.append(f"the trail ends at entry {entries[-1].seq} but the case records {row.audit_seq}: "
                                "entries were removed")
            shared = self._shared_packets(s, row) if actor.role is Role.INSURER else None
            from services.mediation.service_layer.office import chain_disagreements

            hist = list(s.exec(select(TransitionRow).where(TransitionRow.case_id == case_id)
                               .order_by(TransitionRow.id)).all())  # type: ignore[arg-type]
            problems.extend(chain_disagreements(row, hist, entries))  # status and history against the chain
            return {"intact": not problems, "problems": problems,
                    "entries": [{"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action,
                                 "data": e.data if shared is None else _insurer_audit_data(e.action, e.data, shared),
                                 "hash": e.hash} for e in entries]}

    @staticmethod
    def _shared_packets(s: Session, row: CaseRow) -> set[str]:
        """The packets of a case that have been sent to its insurer."""
        return set(s.exec(select(PacketRow.id).where(PacketRow.case_id == row.id,
                                                     PacketRow.sent_at != None)).all())  # noqa: E711

    # ------------------------------------------------------------ internals

    def _apply(self, s: Session, row: CaseRow, moved: Case, actor: Actor, packet_id: str | None = None) -> None:
        rec = moved.history[-1]
        row.status = moved.status.value
        row.status_since = rec.at
        row.due_at = deadlines.due_at(moved, self.settings.deadline_hours())
        row.version += 1
        s.add(row)
        s.add(TransitionRow(case_id=row.id, at=rec.at, actor=rec.actor,
                            from_status=rec.from_status.value if rec.from_status else None,
                            to_status=rec.to_status.value, reason=rec.reason, packet_id=packet_id))

    def _audit(self, s: Session, row: CaseRow, actor: str, action: str, data: dict[str, Any]) -> None:
        self._reads.clear()  # every change to a case is audited: forget what was read before it
        prev = s.exec(select(AuditRow).where(AuditRow.case_id == row.id).order_by(AuditRow.seq.desc())).first()  # type: ignore[attr-defined]
        e = audit.append(_entry(prev) if prev else None, row.id, self.clock().isoformat(), actor, action, data)
        s.add(AuditRow(case_id=e.case_id, seq=e.seq, at=e.at, actor=e.actor, action=e.action,
                       data=orjson.dumps(e.data, option=orjson.OPT_SORT_KEYS).decode(), prev_hash=e.prev_hash,
                       hash=e.hash))
        row.audit_seq, row.audit_head = e.seq, e.hash
        s.add(row)

    def _emit(self, s: Session, row: CaseRow, events: list[Event], mediator: UserRow | None = None,
              insurer: InsurerRow | None = None) -> None:
        mediator = mediator or s.get(UserRow, row.mediator_id)
        insurer = insurer or s.get(InsurerRow, row.insurer_code)
        for ev in events:
            ev = ev.model_copy(update={"mediator_email": mediator.email if mediator else None,
                                       "insurer_email": insurer.email if insurer else None})
            self._outbox(s, topics.CASE_EVENTS, row.id, ev)

    def _outbox(self, s: Session, topic: str, key: str, ev: Event) -> None:
        env = ev.envelope(key=key, producer=PRODUCER, occurred_at=self.clock())
        s.add(OutboxRow(event_id=env.id, topic=topic, key=key, payload=env.to_bytes(), created_at=self.clock()))

    def _summary(self, row: CaseRow, actor: Actor) -> dict[str, Any]:
        now = self.clock()
        due = aware(row.due_at) if row.due_at else None
        return {"case_id": row.id, "case_number": row.case_number, "status": row.status,
                "rider_name": row.rider_name if actor.role is Role.MEDIATOR else mask_name(row.rider_name) or "",
                "insurer_code": row.insurer_code, "claim_number": row.claim_number,
                "incident_at": aware(row.incident_at), "created_at": aware(row.created_at),
                "status_since": aware(row.status_since), "due_at": due, "overdue": bool(due and now > due),
                # an insurer sees the finding of the packet sent to it, and nothing before the proposal
                "phase": row.sent_phase if actor.role is Role.INSURER else row.assessment_phase}

    def _public(self, row: CaseRow, hist: list[TransitionRow], packets: list[PacketRow],
                actor: Actor) -> dict[str, Any]:
        out = self._summary(row, actor)
        mediator = actor.role is Role.MEDIATOR
        insurer = actor.role is Role.INSURER
        shared = {p.id for p in packets if p.sent_at is not None}
        if insurer:  # the mediator reviews first: the insurer sees only what was sent to it
            packets = [p for p in packets if p.id in shared]
        out.update({
            "rider": {"id": row.rider_id, "name": row.rider_name if mediator else mask_name(row.rider_name) or "",
                      "phone": row.rider_phone if mediator else mask_phone(row.rider_phone) or "", "lang": row.rider_lang},
            "policy_number": row.policy_number, "product": row.product,
            "incident": {"at": aware(row.incident_at), "description": row.incident_description, "injury": row.injury,
                         "location": {"lat": row.incident_lat, "lon": row.incident_lon}
                         if row.incident_lat is not None else None},
            "denial_reason": row.denial_reason,
            "consent": {"given": row.consent_given, "at": aware(row.consent_at) if row.consent_at else None,
                        "method": row.consent_method, "scope": row.consent_scope},
            "office": row.office,
            # the current packet (an insurer: the one sent to it) and the one sent with the proposal
            "packet_id": row.sent_packet_id if insurer else row.packet_id,
            "sent_packet_id": row.sent_packet_id,
            "evidence_shared": row.sent_packet_id is not None,
            "packets": [{"packet_id": p.id, "created_at": aware(p.created_at), "sha256": p.sha256,
                         "phase": p.phase, "continuous_delivery": p.continuous_delivery, "covered": p.covered,
                         "outcome": _outcome(p.phase, p.continuous_delivery, p.covered),
                         # an insurer is not told whether newer evidence exists: its current one is the one sent
                         "current": p.id == (row.sent_packet_id if insurer else row.packet_id),
                         "sent_to_insurer": p.id == row.sent_packet_id,
                         "sent_at": aware(p.sent_at) if p.sent_at else None} for p in packets],
            "evidence_stale": bool(row.evidence_stale),
            "allowed_transitions": [s.value for s in lifecycle.allowed(Status(row.status), actor.role)],
            "history": [self._history_entry(h, shared if insurer else None) for h in hist],
        })
        return out

    @staticmethod
    def _history_entry(h: TransitionRow, shared: set[str] | None) -> dict[str, Any]:
        """One transition; for an insurer (``shared``: the packets sent to it) the system's own
        reasons ("assessment: connecting", "no evidence: ...") and packet ids are withheld unless
        that packet was sent to it."""
        entry = {"at": aware(h.at), "actor": h.actor, "from": h.from_status, "to": h.to_status, "reason": h.reason,
                 "packet_id": h.packet_id}
        if shared is not None and (h.packet_id not in shared if h.packet_id else h.actor == SYSTEM.label):
            entry.update(reason="", packet_id=None)
        return entry

    def pending_outbox(self, limit: int = 500) -> list[OutboxRow]:
        with Session(self.engine) as s:
            return list(s.exec(select(OutboxRow).where(OutboxRow.published_at == None)  # noqa: E711
                               .order_by(OutboxRow.seq).limit(limit)).all())

    def mark_published(self, seqs: list[int]) -> None:
        with unit_of_work(self.engine) as s:
            for row in s.exec(select(OutboxRow).where(OutboxRow.seq.in_(seqs))).all():  # type: ignore[union-attr]
                row.published_at = self.clock()
                s.add(row)

    def overdue_cases(self) -> list[CaseRow]:
        now = self.clock()
        with Session(self.engine) as s:
            return list(s.exec(select(CaseRow).where(CaseRow.due_at != None, CaseRow.due_at < now)).all())  # noqa: E711


class Locked(Exception):
    def __init__(self, until: datetime) -> None:
        super().__init__(f"too many wrong codes; try again after {until.isoformat()}")
        self.until = until


SYSTEM_READER = Actor(Role.SYSTEM, "system")
EVIDENCE_NOT_SHARED = ("the evidence is shared with the insurer once the mediator has reviewed it and sent the "
                       "proposal (proposal_sent)")


def _outcome(phase: str | None, continuous: bool | None, covered: bool | None) -> str:
    """``undetermined`` for an abstention, else ``covered`` / ``not_covered`` (``unknown``: a packet
    stored before its findings were recorded)."""
    if phase is not None and is_undetermined(phase, continuous):
        return "undetermined"
    return "unknown" if covered is None else "covered" if covered else "not_covered"


def _insurer_audit_data(action: str, data: dict[str, Any], shared: set[str]) -> dict[str, Any]:
    """An audit entry's data as the insurer reads it: what the evidence said is withheld until that
    packet was sent to it (the chain is checked on the server, on the full data)."""
    if action in ("packet_built", "packet_resigned") and data.get("packet_id") not in shared \
            or action == "evidence_failed":
        return {"withheld": "evidence details are shared with the proposal"}
    return data


def can_read(actor: Actor, row: CaseRow) -> bool:
    if actor.role is Role.SYSTEM:
        return True
    if actor.role is Role.MEDIATOR:
        return row.office == actor.office
    if actor.role is Role.INSURER:
        return row.insurer_code == actor.insurer_code
    return False


def _require(actor: Actor, role: Role) -> None:
    if actor.role is not role:
        raise Forbidden(f"only a {role.value} may do this")


def to_domain(row: CaseRow) -> Case:
    return Case(
        case_id=row.id, case_number=row.case_number, status=Status(row.status),
        rider=Rider(row.rider_id, row.rider_name, row.rider_phone, row.rider_lang),
        insurer_code=row.insurer_code, policy_number=row.policy_number, claim_number=row.claim_number,
        product=row.product,
        incident=Incident(aware(row.incident_at), row.incident_description, row.injury,
                          (row.incident_lat, row.incident_lon) if row.incident_lat is not None
                          and row.incident_lon is not None else None),
        denial_reason=row.denial_reason,
        consent=Consent(row.consent_given, aware(row.consent_at) if row.consent_at else None, row.consent_method,
                        row.consent_scope),
        office=row.office, mediator_id=row.mediator_id, created_at=aware(row.created_at),
        status_since=aware(row.status_since), packet_id=row.packet_id, assessment_phase=row.assessment_phase,
    )


def _entry(a: AuditRow) -> audit.Entry:
    return audit.Entry(a.case_id, a.seq, a.at, a.actor, a.action, orjson.loads(a.data), a.prev_hash, a.hash)


__all__ = ["Mediation", "IllegalTransition", "Locked", "TransitionRecord"]
