"""Desk pages of the office features: correcting a case, attaching files (and downloading them,
for the mediator and, from proposal_sent, the insurer), and the report per insurer with its chart
drawn on the server (SVG, like the packet's figures)."""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response

from services.mediation.domain.errors import NotFound
from services.mediation.domain.model import Actor, Role
from services.mediation.entrypoints.web import i18n, views
from services.mediation.entrypoints.web.pages import (
    CheckedForm,
    MediatorUser,
    SignInRequired,
    Web,
    route_class,
)
from services.mediation.schemas import CaseCorrection
from services.mediation.service_layer.office import (
    KINDS,
    BadAttachment,
    CorrectionRefused,
    Office,
    TooLarge,
    UnknownInsurer,
    report_csv,
)

i18n.MESSAGES.update({
    "attachments": ("附件", "Attachments"),
    "file": ("文件", "File"),
    "no_attachments": ("暂无附件。", "No attachments yet."),
    "attach": ("上传附件", "Attach a file"),
    "attach_file": ("文件（PDF、JPEG、PNG 或 HEIC，最大 20 MiB）", "File (PDF, JPEG, PNG or HEIC, at most 20 MiB)"),
    "attach_kind": ("类型", "Kind"),
    "attach_description": ("说明", "Description"),
    "kind_medical_report": ("医疗诊断证明", "Medical report"),
    "kind_photo": ("现场照片", "Photo"),
    "kind_police_report": ("交警事故认定", "Police report"),
    "kind_other": ("其他", "Other"),
    "added_by": ("上传人", "Added by"),
    "size": ("大小", "Size"),
    "flash_attached": ("附件已保存：{name}", "Attached: {name}"),
    "flash_bad_file": ("文件未保存：只接受 PDF、JPEG、PNG 或 HEIC（按文件内容判断），最大 20 MiB。",
                       "Not saved: only PDF, JPEG, PNG or HEIC (judged by content), at most 20 MiB."),
    "correct": ("更正案件信息", "Correct the case"),
    "history_corrected": ("信息更正", "Corrected"),
    "correct_help": ("只修改录入有误的内容；每项更改连同原值、新值和原因记入案件历史和审计记录。",
                     "Change only what was entered wrongly; each change goes into the history and the audit "
                     "trail with its old and new value and the reason."),
    "correct_reason": ("更正原因（必填）", "Reason for the correction (required)"),
    "consent_later": ("骑手已补充同意使用轨迹数据", "The rider has now consented to the use of his trajectory"),
    "save_correction": ("保存更正", "Save the correction"),
    "flash_corrected": ("案件已更正。", "The case was corrected."),
    "flash_nothing_changed": ("没有需要更正的内容。", "Nothing was changed."),
    "flash_unknown_insurer": ("未登记的保险公司代码：{code}", "Unknown insurer code: {code}"),
    "flash_correction_invalid": ("更正未保存：请填写原因并检查各项格式。",
                                 "Not saved: give a reason and check the fields."),
    "flash_not_correctable": ("已解决或已结案的案件不能再更正。", "A resolved or closed case can no longer be corrected."),
    "evidence_stale": ("案件信息已更正，现有证据已过时，请重新调取轨迹证据。",
                       "The case was corrected: the evidence is stale; request it again."),
    "reports": ("统计报表", "Reports"),
    "report_title": ("保险公司统计", "Insurers"),
    "report_from": ("起始日期", "From"),
    "report_to": ("截止日期", "To"),
    "report_show": ("查看", "Show"),
    "report_csv": ("导出 CSV", "Download CSV"),
    "r_insurer": ("保险公司", "Insurer"),
    "r_opened": ("立案", "Opened"),
    "r_accepted": ("同意", "Accepted"),
    "r_rejected": ("拒绝", "Rejected"),
    "r_pending": ("处理中", "Pending"),
    "r_withdrawn": ("撤回", "Withdrawn"),
    "r_median": ("解决用时中位数（天）", "Median days to resolution"),
    "r_continuous": ("证据显示连续配送", "Evidence: continuous delivery"),
    "r_rejected_continuous": ("拒赔但证据显示连续配送", "Refused though the evidence shows continuous delivery"),
    "r_table": ("各保险公司案件结果", "Outcomes per insurer"),
    "r_chart": ("各保险公司每月立案、同意与拒绝", "Cases opened, accepted and refused per insurer and month"),
    "r_none": ("所选期间没有案件。", "No cases in this period."),
})

i18n.AUDIT_ACTIONS.update({
    "case_corrected": ("更正案件信息", "case corrected"),
    "attachment_added": ("添加附件", "attachment added"),
    "packet_resigned": ("证据包附件清单更新并重新签名", "packet re-signed with its attachments"),
})

BAR = {"opened": "#0b5394", "accepted": "#146c2e", "rejected": "#a4161a"}


def make_router(web: Web) -> APIRouter:
    r = APIRouter(route_class=route_class(web), include_in_schema=False)
    office = Office(web.mediation)

    @r.post("/cases/{case_id}/correct")
    async def correct(request: Request, case_id: str, actor: MediatorUser, form: CheckedForm) -> Response:
        s = web.session(request)
        case = await run_in_threadpool(web.mediation.get_case, actor=actor, case_id=case_id)
        changes = correction_from_form(form, case, web.tz)
        try:
            body = CaseCorrection.model_validate({**changes, "reason": form.get("reason", "")})
        except ValidationError:
            s.flash("error", "flash_correction_invalid")
            return web.redirect(request, f"/cases/{case_id}#correct")
        if not body.changes():
            s.flash("ok", "flash_nothing_changed")
            return web.redirect(request, f"/cases/{case_id}")
        try:
            await run_in_threadpool(office.correct_case, actor=actor, case_id=case_id, changes=body.changes(),
                                    reason=body.reason)
        except UnknownInsurer as e:
            s.flash("error", "flash_unknown_insurer", code=e.code)
            return web.redirect(request, f"/cases/{case_id}#correct")
        except CorrectionRefused:
            s.flash("error", "flash_not_correctable")
            return web.redirect(request, f"/cases/{case_id}")
        web.poke()
        s.flash("ok", "flash_corrected")
        return web.redirect(request, f"/cases/{case_id}")

    @r.post("/cases/{case_id}/attachments")
    async def attach(request: Request, case_id: str, actor: MediatorUser, form: CheckedForm) -> Response:
        s = web.session(request)
        upload = (await request.form()).get("file")
        kind = form.get("kind", "")
        if not isinstance(upload, UploadFile) or kind not in KINDS:
            s.flash("error", "flash_bad_file")
            return web.redirect(request, f"/cases/{case_id}#attachments")
        limit = web.settings.max_attachment_bytes
        data = await upload.read(limit + 1)
        try:
            if len(data) > limit:
                raise TooLarge(limit, "attachment")
            out = await run_in_threadpool(office.add_attachment, actor=actor, case_id=case_id, data=data,
                                          filename=upload.filename, kind=kind,
                                          description=form.get("description", "")[:2000].replace("\x00", ""))
        except (BadAttachment, TooLarge):
            s.flash("error", "flash_bad_file")
            return web.redirect(request, f"/cases/{case_id}#attachments")
        s.flash("ok", "flash_attached", name=out["filename"])
        return web.redirect(request, f"/cases/{case_id}#attachments")

    @r.get("/cases/{case_id}/attachments/{attachment_id}")
    async def download(request: Request, case_id: str, attachment_id: str) -> Response:
        actor = web.actor(request)
        if actor is None:
            raise SignInRequired(web.url_with(request))
        if actor.role not in (Role.MEDIATOR, Role.INSURER):
            raise NotFound("no such page")
        att, data = await run_in_threadpool(office.attachment, actor=actor, case_id=case_id,
                                            attachment_id=attachment_id)
        return Response(data, media_type=att.content_type, headers={
            "content-disposition": f"attachment; filename*=UTF-8''{quote(att.filename)}",
            "x-content-type-options": "nosniff", "content-security-policy": "default-src 'none'; sandbox",
            "cache-control": "private, no-store"})

    @r.get("/reports")
    async def reports(request: Request, actor: MediatorUser) -> Response:
        lang = web.lang(request)
        start, end = _day(request.query_params.get("from")), _day(request.query_params.get("to"))
        rows = await run_in_threadpool(office.report, actor=actor, start=start, end=end)
        monthly = await run_in_threadpool(office.report_monthly, actor=actor, start=start, end=end)
        csv_url = "/reports.csv" + "".join(
            f"{'&' if i else '?'}{k}={v.isoformat()}"
            for i, (k, v) in enumerate((k, v) for k, v in (("from", start), ("to", end)) if v))
        return web.render(request, "reports.html", {
            "rows": rows, "chart": chart_svg(monthly, lang), "from": start.isoformat() if start else "",
            "to": end.isoformat() if end else "", "csv_url": csv_url})

    @r.get("/reports.csv")
    async def reports_csv(request: Request, actor: MediatorUser) -> Response:
        start, end = _day(request.query_params.get("from")), _day(request.query_params.get("to"))
        rows = await run_in_threadpool(office.report, actor=actor, start=start, end=end)
        return Response(report_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="insurers.csv"'})

    return r


def attachments_for(web: Web, actor: Actor, case_id: str) -> list[dict[str, Any]] | None:
    """The case page's attachments; None where the reader may not see them (yet)."""
    from services.mediation.domain.errors import Forbidden

    try:
        return Office(web.mediation).list_attachments(actor=actor, case_id=case_id)
    except Forbidden:
        return None


def correction_from_form(form: dict[str, str], case: dict[str, Any], tz: str) -> dict[str, Any]:
    """The fields of the correction form that differ from the case (the form shows every value)."""
    out: dict[str, Any] = {}
    rider = {k: form[f"rider_{k}"] for k in ("id", "name", "phone") if form.get(f"rider_{k}", case["rider"][k]) !=
             case["rider"][k]}
    if rider:
        out["rider"] = rider
    for k in ("insurer_code", "policy_number", "claim_number", "denial_reason"):
        if k in form and form[k] != (case.get(k) or ""):
            out[k] = form[k]
    inc: dict[str, Any] = {}
    shown_at = views.local(case["incident"]["at"], tz, "%Y-%m-%dT%H:%M")
    if form.get("incident_at") and form["incident_at"] != shown_at:
        inc["at"] = form["incident_at"]
    for k in ("description", "injury"):
        if k in form and form[k] != (case["incident"].get(k) or ""):
            inc[k] = form[k]
    if inc:
        out["incident"] = inc
    if form.get("consent_given") == "yes" and not case["consent"]["given"]:
        out["consent"] = {"given": True, "method": form.get("consent_method") or "written"}
    return out


def _day(v: str | None) -> date | None:
    try:
        return date.fromisoformat(v) if v else None
    except ValueError:
        return None


def chart_svg(monthly: dict[str, dict[str, dict[str, int]]], lang: str) -> str:
    """Grouped bars: per insurer, per month, cases opened / accepted / refused. Plain SVG text."""
    _ = i18n.translator(lang)
    groups = [(code, month, v) for code in sorted(monthly) for month, v in sorted(monthly[code].items())]
    w_group, left, top, h = 66, 44, 28, 200
    width = max(360, left + 16 + w_group * max(1, len(groups)))
    height = top + h + 70
    peak = max([1] + [v[k] for _c, _m, v in groups for k in BAR])
    step = max(1, -(-peak // 5))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'role="img" aria-labelledby="chart-title" id="report-chart">',
           f'<title id="chart-title">{escape(_("r_chart"))}</title>']
    for k in range(0, peak + 1, step):
        y = top + h - h * k / peak
        out.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d4d9de"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#555d66">{k}</text>')
    bw = 16
    for i, (code, month, v) in enumerate(groups):
        x0 = left + 12 + i * w_group
        for j, key in enumerate(("opened", "accepted", "rejected")):
            bh = h * v[key] / max(peak, 1)
            out.append(f'<rect x="{x0 + j * (bw + 2)}" y="{top + h - bh:.1f}" width="{bw}" height="{bh:.1f}" '
                       f'fill="{BAR[key]}"><title>{escape(code)} {month} {escape(_("r_" + key))}: {v[key]}</title></rect>')
        out.append(f'<text x="{x0 + 26}" y="{top + h + 16}" text-anchor="middle" font-size="11" fill="#1b1f24">'
                   f'{escape(code)}</text><text x="{x0 + 26}" y="{top + h + 30}" text-anchor="middle" font-size="10" '
                   f'fill="#555d66">{month}</text>')
    lx = left
    for key in ("opened", "accepted", "rejected"):
        out.append(f'<rect x="{lx}" y="{height - 18}" width="12" height="12" fill="{BAR[key]}"/>'
                   f'<text x="{lx + 16}" y="{height - 8}" font-size="12" fill="#1b1f24">{escape(_("r_" + key))}</text>')
        lx += 110
    out.append("</svg>")
    return "".join(out)
