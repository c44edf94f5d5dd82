"""The rider's status route (public, by case number and access code), and the words it answers in."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.mediation.domain.coverage import rider_note
from services.mediation.domain.errors import NotFound
from services.mediation.entrypoints.api.deps import as_json
from services.mediation.service_layer.cases import Locked

STATUS_ZH = {
    "opened": "已立案", "evidence_requested": "正在调取轨迹证据", "evidence_ready": "证据已生成",
    "under_review": "调解员审查中", "proposal_sent": "调解方案已发送保险公司", "insurer_accepted": "保险公司已同意理赔",
    "resolved": "已解决", "closed": "已结案", "insurer_rejected": "保险公司拒绝，调解继续", "escalated": "已转交上级处理",
    "withdrawn": "已撤回",
}
STATUS_EN = {
    "opened": "Case opened", "evidence_requested": "Fetching the trajectory evidence", "evidence_ready": "Evidence ready",
    "under_review": "Under review by the mediator", "proposal_sent": "Proposal sent to the insurer",
    "insurer_accepted": "The insurer agreed to pay", "resolved": "Resolved", "closed": "Closed",
    "insurer_rejected": "The insurer refused; mediation continues", "escalated": "Escalated", "withdrawn": "Withdrawn",
}
NEXT_ZH = {
    "opened": "调解员将调取您当天的订单和轨迹记录，无需您操作。",
    "evidence_requested": "系统正在分析轨迹，通常几分钟内完成。",
    "evidence_ready": "调解员将审查证据并与保险公司沟通。",
    "under_review": "调解员正在审查，可能会联系您补充情况。",
    "proposal_sent": "等待保险公司答复，答复期限见下方。",
    "insurer_accepted": "保险公司已同意，调解员将确认赔付后结案。",
    "resolved": "赔付已确认。如有疑问请联系调解员。",
    "closed": "案件已结束。",
    "insurer_rejected": "调解员将与保险公司继续协商，或建议其他途径。",
    "escalated": "案件已转交上级部门，调解员会通知您进展。",
    "withdrawn": "案件已撤回。",
}
NEXT_EN = {
    "opened": "The mediator will obtain your orders and trajectory for that day; nothing for you to do.",
    "evidence_requested": "The trajectory is being analysed; this usually takes minutes.",
    "evidence_ready": "The mediator will review the evidence and talk to the insurer.",
    "under_review": "The mediator is reviewing; you may be asked for details.",
    "proposal_sent": "Waiting for the insurer's answer; see the deadline below.",
    "insurer_accepted": "The insurer agreed; the mediator will confirm payment and close the case.",
    "resolved": "Payment confirmed. Contact your mediator with any question.",
    "closed": "The case is closed.",
    "insurer_rejected": "The mediator will keep negotiating with the insurer or advise other routes.",
    "escalated": "The case went to a higher authority; the mediator will keep you informed.",
    "withdrawn": "The case was withdrawn.",
}


def make_router(c: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1")

    @router.get("/status/{case_number}", tags=["rider"],
             responses={404: {"description": "no case with this number and code"},
                        429: {"description": "too many wrong codes for this case, or from this client"}})
    async def rider_status(request: Request, case_number: Annotated[str, Depends(_case_number)],
                           code: Annotated[str, Query(min_length=1, max_length=32)],
                           lang: Annotated[str | None, Query(pattern="^(zh|en)$")] = None) -> Response:
        """Status, plain next step and last update of a case, for the holder of its access code."""
        client = request.client.host if request.client else None
        try:
            st = (c.mediation.remembered_status(case_number, code, client)
                  or await run_in_threadpool(c.mediation.rider_status, case_number=case_number, code=code,
                                             client=client))
        except Locked as e:  # in the rider's language (Chinese unless he asked otherwise), local time
            from services.mediation.entrypoints.api.office import locked_response

            return locked_response(e, lang or "zh", c.tz)
        if st is None:
            raise NotFound("no case with this number and code")
        return as_json(status_view(st, lang or st["lang"]))

    return router


async def _case_number(case_number: str) -> str:
    if len(case_number) > 64:
        raise NotFound("no case with this number and code")
    return case_number


def status_view(st: dict[str, Any], lang: str) -> dict[str, Any]:
    s = st["status"]
    zh = lang != "en"
    deadline: datetime | None = st.get("deadline")
    step = (NEXT_ZH if zh else NEXT_EN)[s]
    note = rider_note(st.get("phase"), s, "zh" if zh else "en")
    return {"case_number": st["case_number"], "status": s, "status_label": (STATUS_ZH if zh else STATUS_EN)[s],
            "next_step": f"{note}{'' if zh else ' '}{step}" if note else step, "updated_at": st["updated_at"].isoformat(),
            "deadline": deadline.isoformat() if deadline else None, "lang": "zh" if zh else "en",
            "office": st.get("office")}
