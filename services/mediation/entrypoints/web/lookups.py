"""Read-only lookups the pages need and the mediation service has no use case for: the user a
session names, people's names for the history, the insurers for the new-case form, and the
notifications of a case (from the notify service, when it is deployed here)."""

from __future__ import annotations

import hmac
import logging

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.mediation.adapters.tables import InsurerRow, UserRow
from services.mediation.domain.model import Actor, Role

logger = logging.getLogger(__name__)


def fingerprint(token_hash: str) -> str:
    """What a session remembers of the token it was opened with: replacing or disabling the
    token ends the sessions opened with it."""
    return token_hash[:16]


def actor_of(engine: Engine, user_id: str | None, token_fp: object) -> Actor | None:
    """The active user a session names (the same Actor ``Mediation.authenticate`` gives)."""
    if not user_id or not isinstance(token_fp, str):
        return None
    with Session(engine) as s:
        u = s.get(UserRow, user_id)
    if u is None or not u.active or not hmac.compare_digest(fingerprint(u.token_hash), token_fp):
        return None
    return Actor(Role(u.role), u.id, u.name, u.insurer_code, u.office)


def names(engine: Engine, labels: set[str]) -> dict[str, str]:
    """``role:id`` actor labels to people's names (labels of unknown users map to nothing)."""
    ids = {label.split(":", 1)[1] for label in labels if ":" in label}
    if not ids:
        return {}
    with Session(engine) as s:
        rows = s.exec(select(UserRow.id, UserRow.name).where(UserRow.id.in_(sorted(ids)))).all()  # type: ignore[attr-defined]
    by_id = {uid: name for uid, name in rows}
    return {label: by_id[label.split(":", 1)[1]] for label in labels
            if ":" in label and label.split(":", 1)[1] in by_id}


def insurer_codes(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return sorted(s.exec(select(InsurerRow.code)).all())


