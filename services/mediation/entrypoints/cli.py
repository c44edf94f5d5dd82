"""``python -m services.mediation users add|list|disable|rotate | attachments prune | packets verify |
audit verify``. (The HTTP door is ``python -m services serve``.)"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from services.mediation.domain.model import Role


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ap = argparse.ArgumentParser(prog="python -m services.mediation")
    sub = ap.add_subparsers(dest="cmd", required=True)
    users = sub.add_parser("users", help="accounts").add_subparsers(dest="users_cmd", required=True)
    add = users.add_parser("add", help="create an account; prints only its bearer token")
    add.add_argument("--role", required=True, choices=["mediator", "insurer", "feed"])
    add.add_argument("--name", required=True)
    add.add_argument("--insurer", help="insurer code (insurer accounts)")
    add.add_argument("--office", help="the mediator's office")
    add.add_argument("--email")
    users.add_parser("list", help="every account: name, role, insurer, office, email, active")
    dis = users.add_parser("disable", help="disable an account; its token stops working at once")
    dis.add_argument("name", help="the account's name (or id)")
    rot = users.add_parser("rotate", help="a new token for an account (printed); the old one stops at once")
    rot.add_argument("name", help="the account's name (or id)")
    atts = sub.add_parser("attachments", help="attached files").add_subparsers(dest="att_cmd", required=True)
    prune = atts.add_parser("prune", help="retention: remove the files of cases closed more than DAYS ago "
                                          "(a case not closed is never touched)")
    prune.add_argument("--closed-days", type=float, required=True, metavar="DAYS")
    packets = sub.add_parser("packets", help="evidence packets").add_subparsers(dest="packets_cmd", required=True)
    ver = packets.add_parser("verify", help="check a packet's signature and hashes; exit 0 valid, 1 invalid")
    ver.add_argument("file")
    ver.add_argument("--keys", help="folder of trusted public keys (default: this deployment's)")
    ver.add_argument("--key", action="append", default=[], help="a trusted public key (base64, PEM or JWK); repeatable")
    aud = sub.add_parser("audit", help="audit trail").add_subparsers(dest="audit_cmd", required=True)
    av = aud.add_parser("verify", help="check every case's hash chain; exit 0 intact, 1 altered")
    av.add_argument("--case", help="one case id")
    args = ap.parse_args(argv)

    from services.mediation.settings import MediationSettings

    settings = MediationSettings()
    if args.cmd == "packets":
        from services.mediation.packet.sign import public_key_from_text, verify_file

        v = verify_file(Path(args.file), Path(args.keys) if args.keys else settings.key_dir,
                        keys=[public_key_from_text(k) for k in args.key])
        print(v.report())
        return 0 if v.ok else 1
    from services.mediation.bootstrap import bootstrap
    from shared.bus import InMemoryBus

    med = bootstrap(settings=settings, bus=InMemoryBus()).mediation  # its tables brought up to date
    if args.cmd == "users" and args.users_cmd != "add":
        from services.mediation.domain.errors import DomainError
        from services.mediation.service_layer.office import Office

        office = Office(med)
        try:
            if args.users_cmd == "list":
                for u in office.list_users():
                    print(f"{u['name']}\t{u['role']}\t{u['insurer_code'] or '-'}\t{u['office']}\t{u['email'] or '-'}\t"
                          f"{'active' if u['active'] else 'disabled'}\t{u['id']}")
            elif args.users_cmd == "disable":
                office.disable_user(args.name)
                print(f"{args.name}: disabled", file=sys.stderr)
            else:
                print(office.rotate_user(args.name))
        except DomainError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "users":
        if args.role == "insurer" and not args.insurer:
            ap.error("--insurer CODE is required for an insurer account")
        _, token = med.add_user(role=Role(args.role), name=args.name, insurer_code=args.insurer, office=args.office,
                                email=args.email)
        print(token)
        return 0
    if args.cmd == "attachments":
        from datetime import UTC, datetime, timedelta

        from services.mediation.service_layer.office import Office

        n, files = Office(med).prune_attachments(
            closed_before=datetime.now(UTC) - timedelta(days=max(0.0, args.closed_days)))
        print(f"{n} attachments of closed cases removed, {files} files")
        return 0
    if args.cmd == "audit":
        from services.mediation.domain.model import SYSTEM

        ids = [args.case] if args.case else [r for r in _case_ids(med)]
        bad = 0
        for cid in ids:
            res = med.audit_trail(actor=SYSTEM, case_id=cid)
            for p in res["problems"]:
                print(f"{cid}: {p}")
            bad += not res["intact"]
        print(f"{len(ids) - bad} intact, {bad} altered")
        return 1 if bad else 0
    return 2


def _case_ids(med: object) -> list[str]:
    from sqlmodel import Session, select

    from services.mediation.adapters.tables import CaseRow

    with Session(med.engine) as s:  # type: ignore[attr-defined]
        return list(s.exec(select(CaseRow.id)).all())
