"""The mediator desk: sign-in, the case list, the new-case form, the case page and its actions;
and, for both mediators and insurers, a packet's figures and downloads."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.mediation.domain.coverage import PRODUCTS
from services.mediation.domain.errors import ConsentMissing, IllegalTransition, NotFound
from services.mediation.domain.model import Actor, Role, Status
from services.mediation.entrypoints.web import i18n, lookups, views
from services.mediation.entrypoints.web import office as office_pages
from services.mediation.entrypoints.web.pages import (
    CheckedForm,
    Maybe,
    MediatorUser,
    SignInRequired,
    Web,
    home_of,
    route_class,
    safe_next,
)
from services.mediation.schemas import CaseCreate, TransitionIn
from services.mediation.service_layer.cases import token_hash

PAGE = 25
NEAR_H = 48


def make_router(web: Web) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    for part in (_signin_routes, _case_routes, _packet_routes):
        r.include_router(part(web))
    return r


def signin_page(web: Web, request: Request, *, error: str | None = None, status: int = 200, section: str = "desk",
                next_path: str | None = None) -> Response:
    nxt = safe_next(next_path or request.query_params.get("next"), "/insurer/" if section == "insurer" else "/")
    return web.render(request, "signin.html", {"error": error, "next": nxt, "section": section}, status=status)


def _signin_routes(web: Web) -> APIRouter:
    r = APIRouter(route_class=route_class(web), include_in_schema=False)

    @r.get("/signin")
    def signin_form(request: Request, actor: Maybe) -> Response:
        if actor is not None:
            return web.redirect(request, home_of(actor))
        nxt = request.query_params.get("next") or ""
        return signin_page(web, request, section="insurer" if nxt.startswith("/insurer") else "desk")

    @r.post("/signin")
    async def signin(request: Request, form: CheckedForm) -> Response:
        _ = i18n.translator(web.lang(request))
        token = form.get("token", "")[:200]
        section = "insurer" if form.get("next", "").startswith("/insurer") else "desk"
        actor = await run_in_threadpool(web.mediation.authenticate, token) if token else None
        if actor is None:
            return signin_page(web, request, error=_("bad_token"), status=401, section=section, next_path=form.get("next"))
        if actor.role not in (Role.MEDIATOR, Role.INSURER):
            return signin_page(web, request, error=_("feed_token"), status=403, section=section,
                               next_path=form.get("next"))
        web.session(request).sign_in(actor.id, lookups.fingerprint(token_hash(token)))
        home = home_of(actor)
        nxt = safe_next(form.get("next"), home)
        if (actor.role is Role.INSURER) != nxt.startswith("/insurer"):
            nxt = home  # a link meant for the other audience
        return web.redirect(request, nxt)

    @r.post("/signout")
    async def signout(request: Request, form: CheckedForm) -> Response:
        s = web.session(request)
        s.sign_out()
        s.flash("ok", "signed_out")
        return web.redirect(request, "/insurer/" if form.get("section") == "insurer" else "/")

    return r


def _case_routes(web: Web) -> APIRouter:
    """The case list, the new-case form, the case page and its moves."""
    r = APIRouter(route_class=route_class(web), include_in_schema=False)

    @r.get("/")
    def case_list(request: Request, actor: Maybe) -> Response:
        if actor is None:
            return signin_page(web, request)
        if actor.role is not Role.MEDIATOR:
            return web.redirect(request, home_of(actor))
        return list_page(web, request, actor, "desk")

    # ------------------------------------------------------------ new case

    @r.get("/cases/new")
    def new_case_form(request: Request, actor: MediatorUser) -> Response:
        now = views.local(web.now(), web.tz, "%Y-%m-%dT%H:%M")
        values = {"consent_at": now, "rider_lang": "zh", "crs": "wgs84"}
        return new_case_page(request, values, [])

    def new_case_page(request: Request, values: dict[str, str], errors: list[str], status: int = 200) -> Response:
        insurers = lookups.insurer_codes(web.engine)
        lang = web.lang(request)
        products = [(code, p.name_en if lang == "en" else p.name_zh) for code, p in PRODUCTS.items()]
        return web.render(request, "new_case.html", {"v": values, "errors": errors, "insurers": insurers,
                                                     "products": products, "methods": i18n.CONSENT_METHODS},
                          status=status)

    @r.post("/cases/new")
    async def open_case(request: Request, actor: MediatorUser, form: CheckedForm) -> Response:
        lang = web.lang(request)
        cmd, errors = case_command(form, lang, web.tz)
        if cmd is None:
            return await run_in_threadpool(new_case_page, request, form, errors, 422)
        from services.mediation.service_layer.office import UnknownInsurer

        try:
            row, code = await run_in_threadpool(web.mediation.open_case, actor=actor, cmd=cmd)
        except UnknownInsurer:
            msg = "unknown insurer code" if lang == "en" else "未登记的保险公司代码"
            return await run_in_threadpool(new_case_page, request, form,
                                           [f"{i18n.translator(lang)('insurer_code')}: {msg}"], 422)
        web.poke()
        base = web.settings.public_base_url.rstrip("/")
        link = f"{base}/status?case={row.case_number}&code={code}"
        return web.render(request, "created.html", {"number": row.case_number, "code": code, "link": link,
                                                    "case_id": row.id, "consent": row.consent_given})

    # ------------------------------------------------------------ case page

    @r.get("/cases/{case_id}")
    async def case_page(request: Request, case_id: str, actor: MediatorUser) -> Response:
        lang = web.lang(request)
        data = await run_in_threadpool(case_data, web, actor, case_id, lang)
        refresh = 3 if data["case"]["status"] == Status.EVIDENCE_REQUESTED.value else None
        return web.render(request, "case.html", {**data, "refresh": refresh})

    @r.post("/cases/{case_id}/transitions")
    async def move(request: Request, case_id: str, actor: MediatorUser, form: CheckedForm) -> Response:
        s = web.session(request)
        lang = web.lang(request)
        try:
            body = TransitionIn(to=form.get("to", ""), reason=form.get("reason", ""))  # type: ignore[arg-type]
        except ValidationError:
            s.flash("error", "e422")
            return web.redirect(request, f"/cases/{case_id}")
        try:
            await run_in_threadpool(web.mediation.transition, actor=actor, case_id=case_id, to=body.to,
                                    reason=body.reason)
        except IllegalTransition as e:
            s.flash("error", "flash_illegal", current=i18n.status_label(e.current.value, lang),
                    to=i18n.status_label(body.to.value, lang),
                    allowed=", ".join(i18n.status_label(x.value, lang) for x in e.allowed)
                    or i18n.translator(lang)("none_allowed"))
            return web.redirect(request, f"/cases/{case_id}")
        except ConsentMissing:
            s.flash("error", "flash_consent")
            return web.redirect(request, f"/cases/{case_id}")
        web.poke()
        if body.to is Status.EVIDENCE_REQUESTED:
            s.flash("ok", "flash_evidence")
        else:
            s.flash("ok", "flash_moved", status=i18n.status_label(body.to.value, lang))
        return web.redirect(request, f"/cases/{case_id}")

    return r


def _packet_routes(web: Web) -> APIRouter:
    """A packet's figures and downloads, for mediators and insurers."""
    r = APIRouter(route_class=route_class(web), include_in_schema=False)

    def reader(request: Request) -> Actor:
        actor = web.actor(request)
        if actor is None:
            raise SignInRequired(web.url_with(request))
        if actor.role not in (Role.MEDIATOR, Role.INSURER):
            raise NotFound("no such page")
        return actor

    @r.get("/cases/{case_id}/figures/{name}")
    async def figure(request: Request, case_id: str, name: str) -> Response:
        if name not in views.FIGURE_NAMES:
            raise NotFound("no such figure")
        actor = await run_in_threadpool(reader, request)
        packet = await run_in_threadpool(web.mediation.packet, actor=actor, case_id=case_id)
        svg = (packet.get("figures") or {}).get(name)
        if not isinstance(svg, str):
            raise NotFound("no such figure")
        # our own drawing, shown through <img> (where scripts never run); if opened directly,
        # the policy still forbids scripts and anything fetched
        return Response(svg.encode(), media_type="image/svg+xml", headers={
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            "cache-control": "private, max-age=300", "content-disposition": f'inline; filename="{name}"'})

    @r.get("/cases/{case_id}/packet.json")
    async def packet_json(request: Request, case_id: str) -> Response:
        from services.mediation.packet.canonical import dump_packet

        actor = await run_in_threadpool(reader, request)
        packet = await run_in_threadpool(web.mediation.packet, actor=actor, case_id=case_id,
                                         packet_id=_packet_param(request))
        number = (packet.get("case") or {}).get("case_number") or case_id
        # the exact bytes that were signed: the file verifies with `packets verify`
        return Response(dump_packet(packet), media_type="application/json",
                        headers={"content-disposition": f'attachment; filename="{_filename(number)}.json"'})

    @r.get("/cases/{case_id}/packet.pdf")
    async def packet_pdf(request: Request, case_id: str) -> Response:
        from services.mediation.packet.pdf import render_pdf

        actor = await run_in_threadpool(reader, request)
        packet = await run_in_threadpool(web.mediation.packet, actor=actor, case_id=case_id,
                                         packet_id=_packet_param(request))
        pdf = await run_in_threadpool(render_pdf, packet)
        number = (packet.get("case") or {}).get("case_number") or case_id
        return Response(pdf, media_type="application/pdf",
                        headers={"content-disposition": f'attachment; filename="{_filename(number)}.pdf"'})

    return r


def _packet_param(request: Request) -> str | None:
    """``?packet=ID``: an earlier packet of the case (the service decides who may read it)."""
    value = (request.query_params.get("packet") or "").strip()
    return value[:36] or None


def _filename(number: str) -> str:
    return "".join(ch for ch in number if ch.isalnum() or ch in "-_")[:64] or "packet"


# ------------------------------------------------------------------------------------------------
# shared with the insurer portal


def list_page(web: Web, request: Request, actor: Actor, section: str) -> Response:
    lang = web.lang(request)
    q = request.query_params
    status = q.get("status") if q.get("status") in {s.value for s in Status} else None
    insurer = (q.get("insurer") or "").strip()[:32] or None
    text = (q.get("q") or "").strip()[:100] or None
    overdue = {"yes": True, "no": False}.get(q.get("overdue") or "")
    try:
        page = max(0, min(int(q.get("page") or 0), 10_000))
    except ValueError:
        page = 0
    listing = web.mediation.list_cases(actor=actor, status=status, insurer=insurer if section == "desk" else None,
                                       q=text, overdue=overdue, limit=PAGE, offset=page * PAGE)
    now = web.now()
    rows = [{**c, "due": views.due_view(c["due_at"], now, lang, web.tz)} for c in listing["items"]]
    # the deadlines coming up, whatever the filters: what the desk must not miss
    upcoming = web.mediation.list_cases(actor=actor, overdue=False, limit=200)["items"]
    near = sorted((c for c in upcoming if c["due_at"] and c["due_at"] <= now + timedelta(hours=NEAR_H)),
                  key=lambda c: c["due_at"])[:8]
    overdue_n = web.mediation.list_cases(actor=actor, overdue=True, limit=1)["total"]
    filters = {"q": text or "", "status": status or "", "insurer": insurer or "", "overdue": q.get("overdue") or ""}
    return web.render(request, "list.html", {
        "section": section, "rows": rows, "total": listing["total"], "page": page,
        "pages": (listing["total"] + PAGE - 1) // PAGE,
        "prev_url": web.url_with(request, page=str(page - 1)) if page > 0 else None,
        "next_url": web.url_with(request, page=str(page + 1)) if (page + 1) * PAGE < listing["total"] else None,
        "near": [{**c, "due": views.due_view(c["due_at"], now, lang, web.tz)} for c in near],
        "overdue_n": overdue_n, "f": filters, "statuses": [s.value for s in Status],
        "case_base": "/insurer/cases/" if section == "insurer" else "/cases/"})


def case_data(web: Web, actor: Actor, case_id: str, lang: str) -> dict[str, Any]:
    """Everything the case page (or the insurer's packet page) shows; raises NotFound."""
    m = web.mediation
    case = m.get_case(actor=actor, case_id=case_id)
    packet = m.packet(actor=actor, case_id=case_id) if case["packet_id"] else None
    trail = m.audit_trail(actor=actor, case_id=case_id)
    notes = web.case_notes(case_id) if actor.role is Role.MEDIATOR else None
    labels = {h["actor"] for h in case["history"]} | {e["actor"] for e in trail["entries"]}
    names = lookups.names(web.engine, labels)
    now = web.now()
    return {
        "case": case,
        "due": views.due_view(case["due_at"], now, lang, web.tz),
        "packet": views.packet_view(packet, lang, web.tz) if packet else None,
        "raw_packet": packet,
        "trail": trail,
        "notes": notes,
        "who": {label: views.actor_name(label, names, lang) for label in labels},
        "steps": [s for s in case["allowed_transitions"]],
        "attachments": office_pages.attachments_for(web, actor, case_id),
        "flags": _flags(web, actor, case_id, lang),
        "danger": i18n.DANGER,
    }


def _flags(web: Web, actor: Actor, case_id: str, lang: str) -> list[dict[str, Any]] | None:
    """The rider's gaps in the evidence window as flagged when the orders closed (None: not shown
    to this reader yet)."""
    from services.mediation.domain.errors import Forbidden
    from services.mediation.service_layer.flags import case_gaps

    try:
        found = case_gaps(web.mediation, actor=actor, case_id=case_id)
    except Forbidden:
        return None
    return [{**g, "from_hm": g["from"][11:19], "to_hm": g["to"][11:19],
             "flagged": (g.get("flagged_at") or "").replace("T", " ")[:19],
             "label": i18n.phase_label(g["phase"], lang)} for g in found]


def case_command(form: dict[str, str], lang: str, tz: str) -> tuple[CaseCreate | None, list[str]]:
    """The new-case form as a command, or the problems with it in the reader's language."""
    _ = i18n.translator(lang)
    errors: list[str] = []
    given = form.get("consent_given") == "yes"
    if given and not form.get("consent_method"):
        errors.append(_("invalid_field", field=_("consent_method"), msg=_("consent_method_needed")))
    location = None
    if form.get("lat") or form.get("lon"):
        location = {"lat": form.get("lat") or None, "lon": form.get("lon") or None, "crs": form.get("crs") or "wgs84"}
    body = {
        "rider": {"id": form.get("rider_id", ""), "name": form.get("rider_name", ""),
                  "phone": form.get("rider_phone", ""), "lang": form.get("rider_lang") or "zh"},
        "insurer_code": form.get("insurer_code", ""),
        "policy_number": form.get("policy_number", ""), "claim_number": form.get("claim_number", ""),
        "product": form.get("product") or None,
        "incident": {"at": form.get("incident_at") or None, "location": location,
                     "description": form.get("description", ""), "injury": form.get("injury", "")},
        "denial_reason": form.get("denial_reason", ""),
        "consent": {"given": given, "at": (form.get("consent_at") or None) if given else None,
                    "method": form.get("consent_method", "") if given else "", "scope": CONSENT_SCOPE},
    }
    try:
        cmd = CaseCreate.model_validate(body)
    except ValidationError as e:
        for err in e.errors():
            loc = [str(p) for p in err.get("loc", ()) if not str(p).isdigit()]
            key = FIELD_KEYS.get(".".join(loc[:2]), FIELD_KEYS.get(loc[-1] if loc else "", "e422"))
            msg = _("required") if err.get("type") in ("missing", "string_too_short") and not _has(body, loc) \
                else _("invalid")
            line = _("invalid_field", field=_(key, tz=tz), msg=msg)
            if line not in errors:
                errors.append(line)
        return None, errors
    return (None, errors) if errors else (cmd, [])


def _has(body: dict[str, Any], loc: list[str]) -> bool:
    v: Any = body
    for p in loc:
        if not isinstance(v, dict) or p not in v:
            return False
        v = v[p]
    return v not in (None, "")


# what the rider agreed to, as the form's checkbox says it, in both languages (the record is read
# by Chinese and English readers alike)
CONSENT_SCOPE = f"{i18n.MESSAGES['consent_given'][0]} / {i18n.MESSAGES['consent_given'][1]}"

FIELD_KEYS = {
    "rider.id": "rider_id", "rider.name": "rider_name", "rider.phone": "rider_phone", "rider.lang": "rider_lang",
    "insurer_code": "insurer_code", "policy_number": "policy_number", "claim_number": "claim_number",
    "product": "product", "incident.at": "incident_time", "incident.location": "location", "lat": "lat",
    "lon": "lon", "crs": "crs", "incident.description": "description", "incident.injury": "injury",
    "denial_reason": "denial_reason", "consent.at": "consent_at", "consent.method": "consent_method",
    "consent.given": "consent",
}
