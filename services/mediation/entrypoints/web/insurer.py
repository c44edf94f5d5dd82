"""The insurer portal: the company's own cases, each evidence packet as a readable page with its
signature checked against the published keys, and the answer (accept or reject, with a reason)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.mediation.domain.errors import IllegalTransition
from services.mediation.domain.model import Actor, Role, Status
from services.mediation.entrypoints.web import i18n, views
from services.mediation.entrypoints.web.desk import case_data, list_page
from services.mediation.entrypoints.web.pages import (
    CheckedForm,
    InsurerUser,
    Maybe,
    Web,
    route_class,
)
from services.mediation.schemas import InsurerResponseIn

ANSWERS = (Status.INSURER_ACCEPTED.value, Status.INSURER_REJECTED.value)


def make_router(web: Web) -> APIRouter:
    r = APIRouter(prefix="/insurer", route_class=route_class(web), include_in_schema=False)

    @r.get("/")
    def cases(request: Request, actor: Maybe) -> Response:
        if actor is None:
            return web.render(request, "signin.html", {"error": None, "next": "/insurer/", "section": "insurer"})
        if actor.role is not Role.INSURER:
            return web.redirect(request, "/")
        return list_page(web, request, actor, "insurer")

    @r.get("/cases/{case_id}")
    async def case_page(request: Request, case_id: str, actor: InsurerUser) -> Response:
        lang = web.lang(request)
        data = await run_in_threadpool(packet_data, web, actor, case_id, lang)
        return web.render(request, "insurer_case.html", {**data, "section": "insurer"})

    @r.post("/cases/{case_id}/response")
    async def respond(request: Request, case_id: str, actor: InsurerUser, form: CheckedForm) -> Response:
        s = web.session(request)
        lang = web.lang(request)
        decision = form.get("decision", "")
        reason = form.get("reason", "")
        if decision not in ("accept", "reject"):
            s.flash("error", "decision_needed")
            return web.redirect(request, f"/insurer/cases/{case_id}#respond")
        if decision == "reject" and not reason:
            s.flash("error", "reason_needed")
            return web.redirect(request, f"/insurer/cases/{case_id}#respond")
        try:
            body = InsurerResponseIn(decision=decision, reason=reason)  # type: ignore[arg-type]
        except ValidationError:
            s.flash("error", "e422")
            return web.redirect(request, f"/insurer/cases/{case_id}")
        try:
            out = await run_in_threadpool(web.mediation.insurer_response, actor=actor, case_id=case_id,
                                          decision=body.decision, reason=body.reason)
        except IllegalTransition as e:
            s.flash("error", "flash_illegal", current=i18n.status_label(e.current.value, lang),
                    to=i18n.status_label(ANSWERS[0] if decision == "accept" else ANSWERS[1], lang),
                    allowed=", ".join(i18n.status_label(x.value, lang) for x in e.allowed)
                    or i18n.translator(lang)("none_allowed"))
            return web.redirect(request, f"/insurer/cases/{case_id}")
        web.poke()
        s.flash("ok", "flash_responded", status=i18n.status_label(out["status"], lang))
        return web.redirect(request, f"/insurer/cases/{case_id}")

    return r


def packet_data(web: Web, actor: Actor, case_id: str, lang: str) -> dict[str, Any]:
    """The case (the insurer's view: rider masked), its packet and the signature verdict."""
    from services.mediation.packet.canonical import packet_sha256
    from services.mediation.packet.sign import verify

    data = case_data(web, actor, case_id, lang)
    raw = data.pop("raw_packet")
    verdict = verify(raw, web.settings.key_dir) if raw is not None else None
    return {**data,
            "facts": views.packet_facts(raw, web.tz) if raw else None,
            "verdict": verdict,
            "sha256": packet_sha256(raw) if raw else None,
            "answers": [s for s in data["case"]["allowed_transitions"] if s in ANSWERS]}
