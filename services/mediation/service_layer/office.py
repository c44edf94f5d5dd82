"""The office around the cases: corrections with a trail, attachments under their SHA-256, the
insurer registry, reports per insurer, account administration and the overdue scheduler's work.

Each use case runs in one unit of work on top of :class:`services.mediation.service_layer.cases.Mediation`
(its audit chain, outbox and caches), so a correction, its history row, its audit entry and the
events it causes commit together or not at all."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import secrets
import statistics
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.mediation.adapters.office_tables import (
    AttachmentRow,
    BlobRow,
    LeaseRow,
    OverdueNoticeRow,
)
from services.mediation.adapters.tables import (
    CaseRow,
    EvidenceRequestRow,
    InsurerRow,
    PacketRow,
    TransitionRow,
    UserRow,
)
from services.mediation.domain import audit, lifecycle
from services.mediation.domain.errors import Conflict, DomainError, Forbidden, NotFound
from services.mediation.domain.model import Actor, Role, Status
from services.mediation.service_layer.cases import Mediation, aware, to_domain, token_hash
from shared.db import unit_of_work
from shared.events import CaseOverdue

logger = logging.getLogger(__name__)

ATTACHMENT_LIMIT = 20 << 20
KINDS = ("medical_report", "photo", "police_report", "other")
UNCORRECTABLE = frozenset({Status.RESOLVED, Status.CLOSED})


class UnknownInsurer(DomainError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown insurer code {code!r}: no insurer is registered under it "
                         "(register it with `users add --role insurer --insurer CODE` or XJ_INSURERS)")
        self.code = code


class CorrectionRefused(Conflict):
    pass


class BadAttachment(DomainError):
    """The file is not what it may be (its bytes decide, not its name): 415."""


class TooLarge(DomainError):
    def __init__(self, limit: int, what: str) -> None:
        super().__init__(f"{what} larger than the limit of {limit} bytes ({limit >> 20} MiB)")
        self.limit = limit


# ------------------------------------------------------------------ insurers

def configured_insurers(spec: str) -> dict[str, str]:
    """``XJ_INSURERS``: ``PICC:中国人保,CPIC:太平洋保险`` (names optional)."""
    out: dict[str, str] = {}
    for part in spec.split(","):
        code, _, name = part.strip().partition(":")
        if code.strip():
            out[code.strip()] = name.strip()
    return out


def find_insurer(s: Session, code: str, configured: str = "") -> InsurerRow:
    """The registered insurer of ``code`` (case ignored), registering it first if the deployment
    lists it in ``XJ_INSURERS``; UnknownInsurer otherwise."""
    row = s.get(InsurerRow, code) or s.exec(select(InsurerRow).where(func.upper(InsurerRow.code) == code.upper())).first()
    if row is not None:
        return row
    for known, name in configured_insurers(configured).items():
        if known.upper() == code.upper():
            row = InsurerRow(code=known, name=name or known)
            s.add(row)
            s.flush()
            return row
    raise UnknownInsurer(code)


# ------------------------------------------------------------------ content types

def sniff(data: bytes) -> str | None:
    """The content type the bytes are, by their magic numbers: PDF, JPEG, PNG or HEIC; None else."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"hevc", b"hevx", b"mif1",
                                                                   b"msf1", b"heim", b"heis"):
        return "image/heic"
    return None


def _safe_name(name: str | None) -> str:
    name = (name or "attachment").replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f\"]", "", name).strip() or "attachment"
    return name[:200]


@dataclass
class Office:
    med: Mediation

    @property
    def engine(self) -> Any:
        return self.med.engine

    # -------------------------------------------------------------- corrections

    def correct_case(self, *, actor: Actor, case_id: str, changes: dict[str, Any], reason: str) -> dict[str, Any]:
        """Correct what was entered at opening. ``changes`` holds only the fields sent (nested
        for rider, incident, consent). Each changed value is recorded with its old and new value."""
        if actor.role is not Role.MEDIATOR:
            raise Forbidden("mediators only")
        now = self.med.clock()
        with unit_of_work(self.engine) as s:
            row = self.med._load(s, actor, case_id, for_update=True)
            status = Status(row.status)
            if status in UNCORRECTABLE:
                raise CorrectionRefused(f"a {status.value} case can no longer be corrected")
            diff: dict[str, dict[str, Any]] = {}

            def put(field: str, new: Any) -> None:
                old = getattr(row, field)
                if isinstance(old, datetime):
                    old = aware(old)
                if old != new:
                    diff[field] = {"old": _plain(old), "new": _plain(new)}
                    setattr(row, field, new)

            if "insurer_code" in changes:
                ins = find_insurer(s, changes["insurer_code"], self.med.settings.insurers)
                put("insurer_code", ins.code)
            for f in ("policy_number", "claim_number", "denial_reason", "product"):
                if f in changes and changes[f] is not None:
                    put(f, changes[f])
            rider = changes.get("rider") or {}
            for src, dst in (("id", "rider_id"), ("name", "rider_name"), ("phone", "rider_phone"),
                             ("lang", "rider_lang")):
                if rider.get(src) is not None:
                    put(dst, rider[src])
            inc = changes.get("incident") or {}
            if inc.get("at") is not None:
                put("incident_at", self.med._aware(inc["at"]))
            if "location" in inc:
                loc = inc["location"]
                if loc is None:
                    put("incident_lat", None)
                    put("incident_lon", None)
                else:
                    from shared.geo import to_wgs84

                    la, lo = to_wgs84(loc["lat"], loc["lon"], loc.get("crs", "wgs84"))
                    put("incident_lat", float(la))
                    put("incident_lon", float(lo))
            for src, dst in (("description", "incident_description"), ("injury", "injury")):
                if inc.get(src) is not None:
                    put(dst, inc[src])
            consent = changes.get("consent")
            if consent:
                put("consent_given", bool(consent["given"]))
                at = consent.get("at")
                put("consent_at", self.med._aware(at) if at else (now if consent["given"] else None))
                if "method" in consent:
                    put("consent_method", consent["method"])
                if "scope" in consent:
                    put("consent_scope", consent["scope"])
            if not diff:
                return self.med.get_case(actor=actor, case_id=case_id)
            touches_evidence = any(k.startswith(("rider_", "incident_")) and k != "rider_lang" for k in diff)
            stale = False
            if touches_evidence and (row.packet_id is not None or status is Status.EVIDENCE_REQUESTED):
                stale = True
                row.evidence_stale = True
                for req in s.exec(select(EvidenceRequestRow).where(EvidenceRequestRow.case_id == row.id,
                                                                   EvidenceRequestRow.state == "pending")).all():
                    req.state, req.detail = "superseded", "the case was corrected"
                    s.add(req)
            summary = "; ".join(f"{k}: {_short(v['old'])} → {_short(v['new'])}" for k, v in sorted(diff.items()))
            row.version += 1
            text = f"corrected ({reason}): {summary}"[:4000]
            s.add(TransitionRow(case_id=row.id, at=now, actor=actor.label, from_status=row.status,
                                to_status=row.status, reason=text))
            moves = status is Status.EVIDENCE_REQUESTED and stale
            self.med._audit(s, row, actor.label, "case_corrected",
                            {"changes": diff, "reason": reason, "evidence_stale": stale, "history": text,
                             **({"moved_to": Status.OPENED.value} if moves else {})})
            if moves:
                moved, events = lifecycle.transition(to_domain(row), Status.OPENED, actor,
                                                     "evidence request superseded by a correction", now)
                self.med._apply(s, row, moved, actor)
                self.med._emit(s, row, events)
        return self.med.get_case(actor=actor, case_id=case_id)

    # -------------------------------------------------------------- attachments

    def add_attachment(self, *, actor: Actor, case_id: str, data: bytes, filename: str | None, kind: str,
                       description: str) -> dict[str, Any]:
        if actor.role is not Role.MEDIATOR:
            raise Forbidden("mediators only")
        if len(data) > ATTACHMENT_LIMIT:
            raise TooLarge(ATTACHMENT_LIMIT, "attachment")
        if not data:
            raise BadAttachment("the file is empty")
        ctype = sniff(data)
        if ctype is None:
            raise BadAttachment("the file is not a PDF, JPEG, PNG or HEIC image (judged by its content, not its name)")
        digest = hashlib.sha256(data).hexdigest()
        now = self.med.clock()
        aid = str(uuid.uuid4())
        with unit_of_work(self.engine) as s:
            row = self.med._load(s, actor, case_id, for_update=True)
            if Status(row.status) is Status.CLOSED:
                raise CorrectionRefused("a closed case takes no more attachments")
            if s.get(BlobRow, digest) is None:
                s.add(BlobRow(sha256=digest, size=len(data), body=data))
            att = AttachmentRow(id=aid, case_id=row.id, sha256=digest, size=len(data), content_type=ctype,
                                filename=_safe_name(filename), kind=kind, description=description,
                                added_by=actor.name or actor.label, added_at=now)
            s.add(att)
            s.flush()
            self.med._audit(s, row, actor.label, "attachment_added", {
                "attachment_id": aid, "sha256": digest, "size": len(data), "kind": kind,
                "filename": att.filename, "content_type": ctype})
            if row.packet_id is not None:
                self._resign(s, row)
        return {"attachment_id": aid, "sha256": digest, "size": len(data), "content_type": ctype, "kind": kind,
                "filename": att.filename}

    def _listing(self, s: Session, case_id: str) -> list[dict[str, Any]]:
        rows = s.exec(select(AttachmentRow).where(AttachmentRow.case_id == case_id)
                      .order_by(AttachmentRow.added_at, AttachmentRow.id)).all()  # type: ignore[arg-type]
        return [attachment_entry(a) for a in rows]

    def _resign(self, s: Session, row: CaseRow) -> None:
        """The stored packet again, its attachment list brought up to date, re-signed: a new
        packet (id) that replaces the case's current one; the old one stays stored."""
        from services.mediation.packet.canonical import dump_packet, manifest_for, unsigned
        from services.mediation.packet.sign import KeyRing

        old = s.get(PacketRow, row.packet_id)
        if old is None:
            return
        body = unsigned(orjson.loads(old.body))
        body["case"] = {**body["case"], "attachments": self._listing(s, row.id)}
        body["packet_id"] = str(uuid.uuid4())
        body["manifest"] = manifest_for(body)
        packet = KeyRing(self.med.settings.key_dir).sign(body)
        raw = dump_packet(packet)
        digest = hashlib.sha256(raw).hexdigest()
        s.add(PacketRow(id=body["packet_id"], case_id=row.id, created_at=self.med.clock(), sha256=digest, body=raw,
                        request_id=old.request_id, phase=old.phase, continuous_delivery=old.continuous_delivery,
                        covered=old.covered))  # the same findings: only the attachment list changed
        row.packet_id = body["packet_id"]
        s.add(row)
        self.med._audit(s, row, "system:system", "packet_resigned",
                        {"packet_id": body["packet_id"], "sha256": digest, "replaces": old.id})

    def prune_attachments(self, *, closed_before: datetime) -> tuple[int, int]:
        """Retention: the attachments of cases closed before ``closed_before`` are removed (their
        listing stays in the signed packets and the audit trail); a file's bytes go once no
        remaining attachment refers to them. Cases not closed are never touched, whatever their age.
        Answers (attachments removed, files removed)."""
        removed = blobs = 0
        with Session(self.engine) as s:
            cases = list(s.exec(select(CaseRow.id).where(CaseRow.status == Status.CLOSED.value,
                                                         CaseRow.status_since < closed_before)).all())
        for case_id in cases:
            with unit_of_work(self.engine) as s:
                row = s.exec(select(CaseRow).where(CaseRow.id == case_id).with_for_update()).first()
                if row is None or row.status != Status.CLOSED.value:
                    continue
                atts = list(s.exec(select(AttachmentRow).where(AttachmentRow.case_id == case_id)).all())
                if not atts:
                    continue
                for a in atts:
                    s.delete(a)
                s.flush()
                for digest in {a.sha256 for a in atts}:
                    if s.exec(select(AttachmentRow.id).where(AttachmentRow.sha256 == digest)).first() is None:
                        blob = s.get(BlobRow, digest)
                        if blob is not None:
                            s.delete(blob)
                            blobs += 1
                self.med._audit(s, row, "system:retention", "attachments_pruned",
                                {"attachments": [a.id for a in atts], "closed_before": closed_before.isoformat()})
                removed += len(atts)
        return removed, blobs

    def attachments_for_packet(self, case_id: str) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            return self._listing(s, case_id)

    def _readable(self, s: Session, actor: Actor, case_id: str) -> CaseRow:
        row = self.med._load(s, actor, case_id)
        if actor.role is Role.INSURER and not proposal_was_sent(s, row):
            raise Forbidden("the insurer sees attachments once the mediator has sent the proposal")
        if actor.role not in (Role.MEDIATOR, Role.INSURER, Role.SYSTEM):
            raise Forbidden("not allowed")
        return row

    def list_attachments(self, *, actor: Actor, case_id: str) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            self._readable(s, actor, case_id)
            return self._listing(s, case_id)

    def attachment(self, *, actor: Actor, case_id: str, attachment_id: str) -> tuple[AttachmentRow, bytes]:
        with Session(self.engine) as s:
            self._readable(s, actor, case_id)
            att = s.get(AttachmentRow, attachment_id[:36])
            if att is None or att.case_id != case_id:
                raise NotFound("no such attachment")
            blob = s.get(BlobRow, att.sha256)
            assert blob is not None
            return att, bytes(blob.body)

    # -------------------------------------------------------------- reports

    def report(self, *, actor: Actor, start: date | None, end: date | None) -> list[dict[str, Any]]:
        """Per insurer, over the cases of the mediator's office opened in [start, end] (local dates)."""
        if actor.role is not Role.MEDIATOR:
            raise Forbidden("mediators only")
        import pendulum

        tz = self.med.settings.timezone
        with Session(self.engine) as s:
            q = select(CaseRow).where(CaseRow.office == actor.office)
            if start is not None:
                q = q.where(CaseRow.created_at >= pendulum.datetime(start.year, start.month, start.day, tz=tz))
            if end is not None:
                e = end + timedelta(days=1)
                q = q.where(CaseRow.created_at < pendulum.datetime(e.year, e.month, e.day, tz=tz))
            cases = list(s.exec(q).all())
            ids = [c.id for c in cases]
            hist: dict[str, list[TransitionRow]] = {}
            for i in range(0, len(ids), 500):
                for t in s.exec(select(TransitionRow).where(TransitionRow.case_id.in_(ids[i:i + 500]))  # type: ignore[attr-defined]
                                .order_by(TransitionRow.id)).all():
                    hist.setdefault(t.case_id, []).append(t)
            packets: dict[str, bool | None] = {}
            pids = [c.packet_id for c in cases if c.packet_id]
            for i in range(0, len(pids), 200):
                for p in s.exec(select(PacketRow).where(PacketRow.id.in_(pids[i:i + 200]))).all():  # type: ignore[attr-defined]
                    packets[p.id] = orjson.loads(p.body).get("assessment", {}).get("continuous_delivery")
        per: dict[str, dict[str, Any]] = {}
        for c in cases:
            r = per.setdefault(c.insurer_code, {"insurer_code": c.insurer_code, "opened": 0, "accepted": 0,
                                                "rejected": 0, "pending": 0, "withdrawn": 0, "resolved": 0,
                                                "continuous_delivery": 0, "rejected_but_continuous": 0,
                                                "_days": []})
            r["opened"] += 1
            steps = hist.get(c.id, [])
            answers = [t.to_status for t in steps if t.to_status in ("insurer_accepted", "insurer_rejected")]
            reached = {t.to_status for t in steps}
            last = answers[-1] if answers else None
            if "withdrawn" in reached:
                r["withdrawn"] += 1
            elif last == "insurer_accepted":
                r["accepted"] += 1
            elif last == "insurer_rejected":
                r["rejected"] += 1
            if "resolved" in reached:
                r["resolved"] += 1
                at = next(t.at for t in steps if t.to_status == "resolved")
                r["_days"].append((aware(at) - aware(c.created_at)).total_seconds() / 86400)
            if c.status not in ("resolved", "closed", "withdrawn"):
                r["pending"] += 1
            cont = packets.get(c.packet_id) if c.packet_id else None
            if cont is True:
                r["continuous_delivery"] += 1
                if "insurer_rejected" in reached:
                    r["rejected_but_continuous"] += 1
        out = []
        for code in sorted(per):
            r = per[code]
            days = r.pop("_days")
            r["median_days_to_resolution"] = round(statistics.median(days), 2) if days else None
            out.append(r)
        return out

    def report_monthly(self, *, actor: Actor, start: date | None, end: date | None) -> dict[str, dict[str, dict[str, int]]]:
        """insurer -> month (YYYY-MM, local) -> {"opened", "rejected", "accepted"}: the chart's data."""
        if actor.role is not Role.MEDIATOR:
            raise Forbidden("mediators only")
        import pendulum

        tz = self.med.settings.timezone
        out: dict[str, dict[str, dict[str, int]]] = {}
        with Session(self.engine) as s:
            q = select(CaseRow).where(CaseRow.office == actor.office)
            cases = list(s.exec(q).all())
            for c in cases:
                d = pendulum.instance(aware(c.created_at)).in_timezone(tz).date()
                if (start and d < start) or (end and d > end):
                    continue
                m = out.setdefault(c.insurer_code, {}).setdefault(f"{d.year:04d}-{d.month:02d}",
                                                                   {"opened": 0, "accepted": 0, "rejected": 0})
                m["opened"] += 1
                steps = s.exec(select(TransitionRow.to_status).where(TransitionRow.case_id == c.id)
                               .order_by(TransitionRow.id)).all()  # type: ignore[arg-type]
                answers = [t for t in steps if t in ("insurer_accepted", "insurer_rejected")]
                if answers:
                    m["accepted" if answers[-1] == "insurer_accepted" else "rejected"] += 1
        return out

    # -------------------------------------------------------------- accounts

    def list_users(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            return [{"id": u.id, "name": u.name, "role": u.role, "insurer_code": u.insurer_code, "office": u.office,
                     "email": u.email, "active": u.active, "created_at": aware(u.created_at)}
                    for u in s.exec(select(UserRow).order_by(UserRow.created_at)).all()]  # type: ignore[arg-type]

    def _user(self, s: Session, name: str) -> UserRow:
        found = s.exec(select(UserRow).where(UserRow.name == name)).all() or \
            s.exec(select(UserRow).where(UserRow.id == name)).all()
        if not found:
            raise NotFound(f"no account named {name!r}")
        if len(found) > 1:
            raise Conflict(f"{len(found)} accounts are named {name!r}: give the id instead")
        return found[0]

    def disable_user(self, name: str) -> None:
        with unit_of_work(self.engine) as s:
            u = self._user(s, name)
            u.active = False
            u.token_hash = "disabled:" + secrets.token_hex(27)  # the old token can never match again
            s.add(u)
        self.med.forget_credentials()

    def rotate_user(self, name: str) -> str:
        token = secrets.token_urlsafe(32)
        with unit_of_work(self.engine) as s:
            u = self._user(s, name)
            u.token_hash = token_hash(token)
            u.active = True
            s.add(u)
        self.med.forget_credentials()
        return token

    # -------------------------------------------------------------- overdue

    def take_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Hold the named lease for ``ttl_s`` if it is free, expired or already ours. Exactly one
        holder at a time: a conditional update, or an insert racing on the primary key."""
        now = self.med.clock()
        until = now + timedelta(seconds=ttl_s)
        t = LeaseRow.__table__  # type: ignore[attr-defined]
        try:
            with self.engine.begin() as conn:
                got = conn.execute(t.update().where(t.c.name == name)
                                   .where((t.c.holder == holder) | (t.c.until < now))
                                   .values(holder=holder, until=until)).rowcount
                if got:
                    return True
                if conn.execute(t.select().where(t.c.name == name)).first() is not None:
                    return False
                conn.execute(t.insert().values(name=name, holder=holder, until=until))
                return True
        except IntegrityError:
            return False

    def raise_overdue(self) -> int:
        """Publish (through the outbox) CaseOverdue for each case past its deadline that has not
        had one for this deadline. The notice row's unique key makes it once per case and deadline
        even if two schedulers race past the lease."""
        now = self.med.clock()
        with Session(self.engine) as s:
            due = [(r.id, aware(r.due_at)) for r in s.exec(select(CaseRow).where(CaseRow.due_at != None,  # noqa: E711
                                                                                  CaseRow.due_at < now)).all()
                   if r.due_at is not None]
        raised = 0
        for case_id, deadline in due:
            try:
                with unit_of_work(self.engine) as s:
                    row = s.get(CaseRow, case_id)
                    if row is None or row.due_at is None or aware(row.due_at) != deadline:
                        continue
                    if s.exec(select(OverdueNoticeRow.id).where(OverdueNoticeRow.case_id == case_id,
                                                                OverdueNoticeRow.deadline == deadline)).first():
                        continue
                    s.add(OverdueNoticeRow(case_id=case_id, status=row.status, deadline=deadline, raised_at=now))
                    s.flush()
                    from services.mediation.domain.model import SYSTEM

                    case = to_domain(row)
                    ev = CaseOverdue(**lifecycle.case_fields(case, SYSTEM), deadline=deadline)
                    self.med._emit(s, row, [ev])
                    raised += 1
            except IntegrityError:
                continue  # another scheduler raised it first
        return raised


def chain_disagreements(row: CaseRow, hist: list[TransitionRow], entries: list[audit.Entry]) -> list[str]:
    """Replay the audit chain into the history it implies (each status move with its reason, each
    correction's text) and compare it with the visible history rows and the case's status. History
    rows that are neither (other notes kept in the history) are left to their own checks."""
    moves: list[tuple[str, str]] = []
    corrections: list[str] = []
    state: str | None = None
    for e in sorted(entries, key=lambda x: x.seq):
        data = e.data
        step: tuple[str, str] | None = None
        if e.action == "case_opened":
            step = (Status.OPENED.value, "case opened")
        elif e.action == "evidence_requested":
            step = (Status.EVIDENCE_REQUESTED.value, "evidence requested")
        elif e.action == "status_changed":
            step = (str(data.get("to")), str(data.get("reason", "")))
        elif e.action == "insurer_responded":
            step = ("insurer_accepted" if data.get("decision") == "accept" else "insurer_rejected",
                    str(data.get("reason", "")))
        elif e.action == "packet_built" and state == Status.EVIDENCE_REQUESTED.value:
            step = (Status.EVIDENCE_READY.value, f"assessment: {data.get('phase')}")
        elif e.action == "evidence_failed" and state == Status.EVIDENCE_REQUESTED.value:
            step = (Status.OPENED.value, f"no evidence: {data.get('reason')}")
        elif e.action == "case_corrected" and "history" in data:
            corrections.append(str(data["history"]))
            if data.get("moved_to"):
                step = (str(data["moved_to"]), "evidence request superseded by a correction")
        if step is not None:
            moves.append(step)
            state = step[0]
    seen_moves = [(h.to_status, h.reason or "") for h in hist if h.from_status is None or h.from_status != h.to_status]
    seen_corrections = [h.reason or "" for h in hist
                        if h.from_status == h.to_status and (h.reason or "").startswith("corrected (")]
    problems: list[str] = []
    for i, (seen, want) in enumerate(zip(seen_moves, moves, strict=False)):
        if seen != want:
            problems.append(f"history move {i + 1} reads {seen[0]!r} ({_short(seen[1])}) but the audit chain "
                            f"records {want[0]!r} ({_short(want[1])})")
            break
    if len(seen_moves) != len(moves):
        problems.append(f"history shows {len(seen_moves)} status moves, the audit chain {len(moves)}")
    if seen_corrections != corrections:
        problems.append(f"history shows corrections that differ from the audit chain's ({len(seen_corrections)} "
                        f"against {len(corrections)})")
    if state is not None and row.status != state:
        problems.append(f"the case's status {row.status!r} differs from the one its audit chain ends in ({state!r})")
    return problems


def proposal_was_sent(s: Session, row: CaseRow) -> bool:
    """The mediator reviews first: the insurer sees evidence once the proposal went out (the case
    is at proposal_sent, or has been there: answered, escalated afterwards, resolved...)."""
    if row.status == Status.PROPOSAL_SENT.value:
        return True
    return s.exec(select(TransitionRow.id).where(TransitionRow.case_id == row.id,
                                                 TransitionRow.to_status == Status.PROPOSAL_SENT.value)).first() is not None


def attachment_entry(a: AttachmentRow) -> dict[str, Any]:
    return {"attachment_id": a.id, "name": a.filename, "kind": a.kind, "content_type": a.content_type,
            "size": a.size, "sha256": a.sha256, "description": a.description or "", "added_by": a.added_by,
            "added_at": aware(a.added_at).isoformat()}


def report_csv(rows: list[dict[str, Any]]) -> str:
    cols = ["insurer_code", "opened", "accepted", "rejected", "pending", "withdrawn", "resolved",
            "median_days_to_resolution", "continuous_delivery", "rejected_but_continuous"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    return buf.getvalue()


def _plain(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def _short(v: Any) -> str:
    t = "∅" if v is None else ("true" if v is True else "false" if v is False else str(v))
    return t if len(t) <= 60 else t[:57] + "…"
