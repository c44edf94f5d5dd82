"""The rider's status page: case number and access code in (a form, or the link an SMS carries),
status, the next step in plain words, the deadline, the last update and what was sent to him.
A wrong code says only that number and code do not match; too many wrong codes lock the number
for a while, and the page says until when."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.mediation.domain.coverage import rider_note
from services.mediation.entrypoints.web import i18n, views
from services.mediation.entrypoints.web.pages import Web, route_class
from services.mediation.service_layer.cases import Locked

HEADERS = {"referrer-policy": "no-referrer", "x-robots-tag": "noindex"}


def make_router(web: Web) -> APIRouter:
    r = APIRouter(route_class=route_class(web), include_in_schema=False)

    def page(request: Request, ctx: dict[str, Any], status: int = 200, lang: str | None = None) -> Response:
        base = {"section": "status", "number": "", "error": None, "result": None, "sent": None}
        return web.render(request, "status.html", {**base, **ctx}, status=status, lang=lang, headers=HEADERS)

    @r.get("/status")
    async def status(request: Request) -> Response:
        q = request.query_params
        number = (q.get("case") or "").strip().upper()[:64]
        code = "".join((q.get("code") or "").split())[:32]
        lang = web.lang(request)
        _ = i18n.translator(lang)
        if not number and not code:
            return page(request, {})
        if not number or not code:
            return page(request, {"number": number, "error": _("fill_both")}, 400)
        try:
            st = await run_in_threadpool(web.mediation.rider_status, case_number=number, code=code,
                                         client=request.client.host if request.client else None)
        except Locked as e:
            return page(request, {"number": number, "error": _("locked", at=views.local(e.until, web.tz))}, 429)
        if st is None:
            return page(request, {"number": number, "error": _("not_matched")}, 404)
        # his own language when he has not chosen one here
        lang = web.lang(request, fallback=st.get("lang"))
        sent = await run_in_threadpool(web.rider_notes, st["case_id"])
        result = {"number": st["case_number"], "status": st["status"],
                  "label": i18n.status_label(st["status"], lang), "next": i18n.next_step(st["status"], lang),
                  "evidence": rider_note(st.get("phase"), st["status"], lang),
                  "deadline": views.local(st.get("deadline"), web.tz), "updated": views.local(st["updated_at"], web.tz),
                  "office": st.get("office")}
        return page(request, {"number": st["case_number"], "result": result, "sent": sent}, lang=lang)

    return r
