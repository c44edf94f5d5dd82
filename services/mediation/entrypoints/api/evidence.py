"""Routes of the evidence: the signed packet (JSON or PDF), the case's gap flags, the public keys and the public verifier."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.mediation.domain.model import Actor
from services.mediation.entrypoints.api.deps import Guards, as_json


def make_router(c: Any, g: Guards) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    CurrentUser = Annotated[Actor, Depends(g.user)]

    @router.get("/cases/{case_id}/evidence-packet", tags=["evidence"],
                responses={200: {"content": {"application/pdf": {}}, "description": "JSON, or PDF with ?format=pdf"}})
    async def evidence_packet(case_id: str, actor: CurrentUser,
                              format: Annotated[str, Query(pattern="^(json|pdf)$")] = "json",
                              packet_id: Annotated[str | None, Query(max_length=36, description=(
                                  "an earlier packet of the case (default: the current one; an insurer: the one "
                                  "sent with the proposal)"))] = None) -> Response:
        """The signed packet. An insurer sees it once the mediator has sent the proposal (403 before):
        the packet that was current at ``proposal_sent``."""
        raw = await run_in_threadpool(c.mediation.packet_bytes, actor=actor, case_id=case_id, packet_id=packet_id)
        if format == "pdf":
            import orjson

            from services.mediation.packet.pdf import render_pdf

            packet = orjson.loads(raw)
            pdf = await run_in_threadpool(render_pdf, packet)
            number = packet.get("case", {}).get("case_number", case_id)
            return Response(pdf, media_type="application/pdf",
                            headers={"Content-Disposition": f'attachment; filename="{number}.pdf"'})
        return Response(raw, media_type="application/json")  # the signed bytes, unchanged

    @router.get("/cases/{case_id}/gaps", tags=["evidence"])
    async def case_gaps(case_id: str, actor: CurrentUser) -> Response:
        """The rider's gaps between orders inside the evidence window, as the trajectory service
        flagged them when the orders closed (the insurer: from ``proposal_sent``)."""
        from services.mediation.service_layer.flags import case_gaps as read

        return as_json(await run_in_threadpool(read, c.mediation, actor=actor, case_id=case_id))

    @router.get("/keys", tags=["evidence"])
    async def keys() -> dict[str, Any]:
        """The public keys evidence packets are signed with (Ed25519)."""
        from services.mediation.packet.sign import published_keys

        return {"keys": published_keys(c.key_dir)}

    @router.post("/packets/verify", tags=["evidence"])
    async def verify(request: Request) -> dict[str, Any]:
        """Check a packet's hashes and signature against the published keys (public). Packets of
        format ``xianjie.evidence-packet/2`` (signed over their RFC 8785 form) and of the earlier
        ``/1`` are both accepted; docs/verify.md shows how to check one without this service."""
        from services.mediation.packet.sign import verify_bytes

        v = await run_in_threadpool(verify_bytes, await request.body(), c.key_dir)
        return {"valid": v.ok, "problems": v.problems}

    return router
