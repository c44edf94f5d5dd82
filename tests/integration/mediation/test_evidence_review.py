"""Issue 12, items 3 to 5, through the running system (real HTTP, in-process bus, SQLite and
PostgreSQL), on the path a user takes:

- a rider with no GPS (no record at all that day) gets *undetermined* (待定), never "no", on every
  surface: the packet JSON, the PDF's text, the desk, the insurer portal, the rider's page and
  status answer, the SMS, the insurer's email and the webhook (``continuous_delivery: null``);
- the mediator reviews first: before ``proposal_sent`` the insurer sees the case and its status
  and no evidence (packet, PDF, figures, phase, webhooks, emails, the portal); from then on the
  packet that was sent;
- when the evidence changes, a new request after new feeds makes a new packet, and the case history
  says which packet went to the insurer and which is current.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.embedded import System, running_system, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"
INCIDENT = json.loads((SEED / "incidents.jsonl").read_text().splitlines()[0])
NOT_NO = ("否 NO", "NO ·", "Not continuous", "不属于连续配送", "Not covered", "不在保险责任范围内")


class Hooks:
    """A webhook receiver on loopback: the JSON bodies it was sent, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                n = int(self.headers.get("content-length") or 0)
                received.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def types(self) -> list[str]:
        return [b["type"] for b in self.bodies]


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[tuple[System, Hooks]]:
    hooks = Hooks()
    try:
        with running_system(tmp_path / "var", db_url, env={"XJ_WEBHOOK_ALLOW_PRIVATE": "1"}) as s:
            s.tokens = {
                "mediator": s.add_user("mediator", "王调解", office="xiacheng", email="wang@example.org"),
                "insurer": s.add_user("insurer", "PICC claims", insurer="PICC", email="claims@picc.example"),
                "feed": s.add_user("feed", "meituan feed"),
            }
            with s.client("mediator") as m:
                r = m.put("/api/v1/insurers/PICC/webhook", json={"url": hooks.url, "secret": "whsec_" + "A" * 32})
                assert r.status_code == 200, r.text
            yield s, hooks
    finally:
        hooks.server.shutdown()


def case_body() -> dict[str, Any]:
    return {
        "rider": {"id": "R-LIMING", "name": "李明", "phone": "13800138000"},
        "insurer_code": "PICC", "policy_number": "PICC-2025-0001", "claim_number": "CLM-88",
        "incident": {"at": INCIDENT["at"], "location": INCIDENT["location"], "description": "雨天摔倒"},
        "denial_reason": "事发时间与订单配送状态相差15分钟",
        "consent": {"given": True, "at": "2025-05-20T10:00:00+08:00", "method": "written"},
    }


def sign_in(s: System, who: str) -> httpx.Client:
    """A browser session (cookie) for a role's token."""
    b = httpx.Client(base_url=s.base_url, timeout=30)
    page = b.get("/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text[:300]
    nxt = "/insurer/" if who == "insurer" else "/"
    r = b.post("/signin", data={"csrf": csrf.group(1), "token": s.tokens[who], "next": nxt})
    assert r.status_code == 303, r.text[:300]
    return b


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    f = tmp_path / "packet.pdf"
    f.write_bytes(pdf)
    text = subprocess.run([tool, "-enc", "UTF-8", str(f), "-"], capture_output=True, check=True,
                          timeout=60).stdout.decode()
    return " ".join(text.split())  # lines as the page wraps them, joined


def post_feed(s: System, name: str) -> None:
    kind = "gps" if name == "gps.jsonl" else "platform-events"
    with s.client("feed") as f:
        r = f.post(f"/api/v1/feeds/{kind}", content=(SEED / name).read_bytes())
        assert r.status_code == 200 and r.json()["rejected"] == [], r.text


def evidence(m: httpx.Client, cid: str, packet_before: str | None = None) -> dict[str, Any]:
    """Request evidence once, right after the feeds were posted (read your writes), and wait for the
    new packet."""
    assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
    case = wait_for(lambda: (c := m.get(f"/api/v1/cases/{cid}").json())["status"]
                    in ("evidence_ready", "opened") and c)
    assert case["status"] == "evidence_ready" and case["packet_id"] != packet_before, case["status"]
    return case  # type: ignore[no-any-return]


def outbox(s: System, name: str) -> str:
    p = s.data_dir / name
    return p.read_text(encoding="utf-8") if p.exists() else ""


def test_no_gps_is_undetermined_everywhere_and_the_insurer_sees_it_only_with_the_proposal(world, tmp_path):
    s, hooks = world
    with s.client("mediator") as m, s.client("insurer") as ins, s.client() as public:
        created = m.post("/api/v1/cases", json=case_body()).json()
        cid, number, code = created["case_id"], created["case_number"], created["rider_access_code"]
        # the platform's orders but no GPS at all that day: the gap cannot be judged
        post_feed(s, "platform.jsonl")
        case = evidence(m, cid)
        assert case["phase"] == "insufficient_data"

        # the packet JSON: null, coverage undetermined, and what would settle it
        packet = m.get(f"/api/v1/cases/{cid}/evidence-packet").json()
        assert packet["assessment"]["phase"] == "insufficient_data"
        assert "continuous_delivery" in packet["assessment"] and packet["assessment"]["continuous_delivery"] is None
        cov = packet["coverage"]
        assert cov["covered"] is None and cov["outcome"] == "undetermined" and cov["clause_text_zh"].startswith("待定")
        assert any("GPS" in x for x in cov["settle_with_en"]) and cov["settle_with_zh"]
        assert public.post("/api/v1/packets/verify", content=m.get(f"/api/v1/cases/{cid}/evidence-packet").content
                           ).json()["valid"] is True

        # the PDF
        text = pdf_text(m.get(f"/api/v1/cases/{cid}/evidence-packet", params={"format": "pdf"}).content, tmp_path)
        # (Latin only: poppler without poppler-data cannot map the Chinese CID font back to text)
        assert "UNDETERMINED" in text and "undetermined (insufficient data)" in text, text[:3000]
        assert "Evidence that would settle it" in text and "GPS" in text
        assert not [n for n in NOT_NO if n in text] and "NO" not in text.split(), text[:2000]

        # the rider: status answer, status page and SMS
        st = public.get(f"/api/v1/status/{number}", params={"code": code}).json()
        assert "待定" in st["next_step"]
        st_en = public.get(f"/api/v1/status/{number}", params={"code": code, "lang": "en"}).json()
        assert "undetermined" in st_en["next_step"] and "not a \"no\"" in st_en["next_step"]
        assert set(st) <= {"case_number", "status", "status_label", "next_step", "updated_at", "deadline", "lang",
                           "office"}
        page = public.get("/status", params={"case": number, "code": code}).text
        assert 'id="evidence-undetermined"' in page and "待定" in page
        sms = wait_for(lambda: [json.loads(x) for x in outbox(s, "sms-outbox.jsonl").splitlines()
                                if "待定" in x or "\\u5f85\\u5b9a" in x])
        assert "不是“否”" in sms[0]["text"] or "不是" in sms[0]["text"]

        # the desk
        with closing(sign_in(s, "mediator")) as desk:
            html = desk.get(f"/cases/{cid}").text
        assert 'id="undetermined-note"' in html and "待定" in html and 'id="settle-with"' in html
        assert not [n for n in NOT_NO if n in html]

        # the mediator has not reviewed yet: the insurer sees the case and its status, no evidence
        time.sleep(0.5)  # let notify route EvidenceReady: it must reach nobody at the insurer
        mine = ins.get(f"/api/v1/cases/{cid}").json()
        assert mine["status"] == "evidence_ready" and mine["phase"] is None and mine["packet_id"] is None
        assert mine["packets"] == [] and mine["evidence_shared"] is False
        assert all(not h["packet_id"] and "insufficient" not in h["reason"] for h in mine["history"])
        for params in ({}, {"format": "pdf"}, {"packet_id": case["packet_id"]}):
            assert ins.get(f"/api/v1/cases/{cid}/evidence-packet", params=params).status_code == 403
        assert "insufficient" not in ins.get(f"/api/v1/cases/{cid}/audit").text
        assert ins.get("/api/v1/cases").json()["items"][0]["phase"] is None
        insurer_notes = ins.get(f"/api/v1/cases/{cid}/notifications").json()
        assert insurer_notes and {n["role"] for n in insurer_notes} == {"insurer"}
        assert {n["template"] for n in insurer_notes} <= {"insurer_case_opened", "webhook"}
        assert "case.evidence_ready" not in hooks.types() and "case.evidence_shared" not in hooks.types()
        assert case["packet_id"] not in outbox(s, "mail-outbox.txt")
        with closing(sign_in(s, "insurer")) as portal:
            html = portal.get(f"/insurer/cases/{cid}").text
            assert 'id="no-packet"' in html and case["packet_id"] not in html and "待定" not in html
            for path in ("packet.json", "packet.pdf", "figures/map.svg"):
                assert portal.get(f"/cases/{cid}/{path}").status_code in (403, 404), path

        # the mediator reviews and sends the proposal: now the insurer gets the evidence
        for to in ("under_review", "proposal_sent"):
            assert m.post(f"/api/v1/cases/{cid}/transitions", json={"to": to, "reason": "证据待补充"}).status_code == 200
        shared = wait_for(lambda: [b for b in hooks.bodies if b["type"] == "case.evidence_shared"])
        data = shared[0]["data"]
        assert "continuous_delivery" in data and data["continuous_delivery"] is None
        assert data["covered"] is None and data["outcome"] == "undetermined" and data["packet_id"] == case["packet_id"]
        mail = wait_for(lambda: (t := outbox(s, "mail-outbox.txt")) and case["packet_id"] in t and t)
        block = mail[mail.index("To: claims@picc.example"):]
        assert "待定" in block and "定位记录" in block
        assert "是否处于连续配送中：否" not in block
        assert ins.get(f"/api/v1/cases/{cid}/evidence-packet").json()["packet_id"] == case["packet_id"]
        mine = ins.get(f"/api/v1/cases/{cid}").json()
        assert mine["phase"] == "insufficient_data" and mine["sent_packet_id"] == case["packet_id"]
        with closing(sign_in(s, "insurer")) as portal:
            html = portal.get(f"/insurer/cases/{cid}").text
            assert 'id="undetermined-note"' in html and "待定" in html
            assert not [n for n in NOT_NO if n in html]

        # an insurer's refusal needs a reason
        r = ins.post(f"/api/v1/cases/{cid}/insurer-response", json={"decision": "reject"})
        assert r.status_code == 422 and "reason" in r.json()["detail"]
        r = ins.post(f"/api/v1/cases/{cid}/insurer-response", json={"decision": "reject", "reason": "   "})
        assert r.status_code == 422
        assert ins.get(f"/api/v1/cases/{cid}").json()["status"] == "proposal_sent"
        r = ins.post(f"/api/v1/cases/{cid}/insurer-response", json={"decision": "reject", "reason": "需补充轨迹"})
        assert r.status_code == 200 and r.json()["status"] == "insurer_rejected"


def test_new_feeds_make_a_new_packet_and_the_history_says_which_was_sent(world):
    s, _ = world
    with s.client("mediator") as m, s.client("insurer") as ins:
        cid = m.post("/api/v1/cases", json=case_body()).json()["case_id"]
        post_feed(s, "platform.jsonl")
        first = evidence(m, cid)
        a = first["packet_id"]
        assert first["phase"] == "insufficient_data"
        for to in ("under_review", "proposal_sent", "under_review"):
            assert m.post(f"/api/v1/cases/{cid}/transitions", json={"to": to}).status_code == 200

        # the rider's GPS arrives afterwards; the mediator asks again
        post_feed(s, "gps.jsonl")
        case = evidence(m, cid, packet_before=a)
        b = case["packet_id"]
        assert b != a, "a new request after new feeds made no new packet"
        new = m.get(f"/api/v1/cases/{cid}/evidence-packet").json()
        assert new["packet_id"] == b and new["assessment"]["phase"] != "insufficient_data"
        assert new["assessment"]["data_quality"]["gps_points_raw"] > 0
        assert m.get(f"/api/v1/cases/{cid}/evidence-packet", params={"packet_id": a}).json()["packet_id"] == a

        # which is current, which went to the insurer
        packets = {p["packet_id"]: p for p in case["packets"]}
        assert set(packets) == {a, b}
        assert packets[a]["sent_to_insurer"] and not packets[a]["current"] and packets[a]["sent_at"]
        assert packets[b]["current"] and not packets[b]["sent_to_insurer"] and packets[b]["sent_at"] is None
        assert packets[a]["outcome"] == "undetermined" and packets[b]["phase"] == new["assessment"]["phase"]
        assert case["sent_packet_id"] == a
        marked = [(h["to"], h["packet_id"]) for h in case["history"] if h["packet_id"]]
        assert marked == [("evidence_ready", a), ("proposal_sent", a), ("evidence_ready", b)]
        with closing(sign_in(s, "mediator")) as desk:
            html = desk.get(f"/cases/{cid}").text
        assert 'id="packet-stale"' in html and f'id="packet-{a}"' in html and f'id="packet-{b}"' in html

        # the insurer still sees the packet it was sent, not the new one
        mine = ins.get(f"/api/v1/cases/{cid}").json()
        assert mine["packet_id"] == a and [p["packet_id"] for p in mine["packets"]] == [a]
        assert mine["packets"][0]["current"] and mine["packets"][0]["sent_to_insurer"]  # nothing of the newer one
        assert mine["phase"] == "insufficient_data"
        assert ins.get(f"/api/v1/cases/{cid}/evidence-packet").json()["packet_id"] == a
        assert ins.get(f"/api/v1/cases/{cid}/evidence-packet", params={"packet_id": b}).status_code == 404

        # sent again: now the new one
        for to in ("under_review", "proposal_sent"):
            assert m.post(f"/api/v1/cases/{cid}/transitions", json={"to": to}).status_code == 200
        case = m.get(f"/api/v1/cases/{cid}").json()
        assert case["sent_packet_id"] == b
        assert [(h["to"], h["packet_id"]) for h in case["history"] if h["packet_id"]][-1] == ("proposal_sent", b)
        mine = ins.get(f"/api/v1/cases/{cid}").json()
        assert mine["packet_id"] == b and {p["packet_id"] for p in mine["packets"]} == {a, b}
        assert ins.get(f"/api/v1/cases/{cid}/evidence-packet").json()["packet_id"] == b
        assert ins.get(f"/api/v1/cases/{cid}/evidence-packet", params={"packet_id": a}).json()["packet_id"] == a
