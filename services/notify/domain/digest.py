"""The daily digest: each mediator gets one email listing the overdue cases assigned to them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

from services.notify.domain.model import Channel, Intent, OverdueCase, Role
from services.notify.domain.routing import case_link, desk_link


def digest_event_id(day: date) -> str:
    """The digest's stand-in for an event id: one digest per mediator per day."""
    return f"digest:{day.isoformat()}"


def digests(cases: Sequence[OverdueCase], *, day: date, base_url: str, lang: str = "zh") -> list[Intent]:
    """One intent per mediator with overdue cases, cases by deadline (most overdue first).
    Cases without an assigned mediator are left out (nobody to tell)."""
    by_mediator: dict[str, list[OverdueCase]] = defaultdict(list)
    for c in cases:
        if c.mediator_email:
            by_mediator[c.mediator_email].append(c)
    out = []
    for email in sorted(by_mediator):
        mine = sorted(by_mediator[email], key=lambda c: (c.deadline, c.case_number))
        rows = [{"case_id": c.case_id, "case_number": c.case_number, "status": c.status,
                 "insurer_code": c.insurer_code, "deadline": c.deadline,
                 "case_link": case_link(base_url, c.case_id),
                 "desk_link": desk_link(base_url, c.case_number)} for c in mine]
        out.append(Intent(digest_event_id(day), "", Role.MEDIATOR, Channel.EMAIL, email,
                          "mediator_digest", lang, {"day": day, "cases": rows, "count": len(rows),
                                                    "base_url": base_url}))
    return out
