"""The office features through real HTTP, on SQLite and PostgreSQL: corrections with their trail,
unknown insurer codes, consent given later, attachments (limits, content sniffing, the signed
packet's list, who sees them), the insurer report as JSON and CSV, body limits per door."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from services.embedded import running_system, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"
INCIDENT = json.loads((SEED / "incidents.jsonl").read_text().splitlines()[0])
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def case_body(consent: bool = True, insurer: str = "PICC") -> dict:
    return {
        "rider": {"id": "R-LIMING", "name": "李明", "phone": "13800138000"},
        "insurer_code": insurer, "policy_number": "PICC-2025-0001", "claim_number": "CLM-88",
        "incident": {"at": INCIDENT["at"], "location": INCIDENT["location"],
                     "description": "雨天摔倒，手部骨折", "injury": "hand fracture"},
        "denial_reason": "事发时间与订单配送状态相差15分钟",
        "consent": {"given": consent, "at": "2025-05-20T10:00:00+08:00", "method": "written"} if consent
        else {"given": False},
    }


@pytest.fixture
def system(db_url, tmp_path):
    with running_system(tmp_path / "var", db_url, env={"XJ_INSURERS": "CPIC:太平洋保险"}) as s:
        s.tokens = {
            "mediator": s.add_user("mediator", "王调解", office="xiacheng", email="wang@example.org"),
            "mediator_elsewhere": s.add_user("mediator", "赵调解", office="other-office"),
            "insurer": s.add_user("insurer", "PICC claims", insurer="PICC", email="claims@picc.example"),
            "insurer_other": s.add_user("insurer", "Other claims", insurer="OTHER"),
            "feed": s.add_user("feed", "meituan feed"),
        }
        yield s


def feed_seed(s) -> None:
    with s.client("feed") as c:
        assert c.post("/api/v1/feeds/platform-events", content=(SEED / "platform.jsonl").read_bytes()).status_code == 200
        assert c.post("/api/v1/feeds/gps", content=(SEED / "gps.jsonl").read_bytes()).status_code == 200


def test_unknown_insurer_is_422_at_opening_and_at_correction(system):
    with system.client("mediator") as m:
        r = m.post("/api/v1/cases", json=case_body(insurer="PICCC"))
        assert r.status_code == 422, r.text
        assert "insurer_code" in r.json()["detail"] and r.json()["errors"][0]["loc"] == ["body", "insurer_code"]
        # known: by an insurer account (any case), or by XJ_INSURERS
        r = m.post("/api/v1/cases", json=case_body(insurer="picc"))
        assert r.status_code == 201, r.text
        cid = r.json()["case_id"]
        assert m.get(f"/api/v1/cases/{cid}").json()["insurer_code"] == "PICC"
        assert m.post("/api/v1/cases", json=case_body(insurer="CPIC")).status_code == 201
        r = m.patch(f"/api/v1/cases/{cid}", json={"insurer_code": "NOPE", "reason": "typo"})
        assert r.status_code == 422 and "insurer_code" in r.json()["detail"]
        assert m.get(f"/api/v1/cases/{cid}").json()["insurer_code"] == "PICC"


def test_correction_recorded_in_history_and_audit_with_old_and_new(system):
    with system.client("mediator") as m, system.client("insurer") as ins:
        cid = m.post("/api/v1/cases", json=case_body()).json()["case_id"]
        r = m.patch(f"/api/v1/cases/{cid}", json={"rider": {"id": "R-LIMING-2"}, "claim_number": "CLM-89",
                                                 "reason": "rider id mistyped"})
        assert r.status_code == 200, r.text
        case = r.json()
        assert case["rider"]["id"] == "R-LIMING-2" and case["claim_number"] == "CLM-89"
        last = case["history"][-1]
        assert last["from"] == last["to"] == "opened"
        assert "rider id mistyped" in last["reason"] and "R-LIMING → R-LIMING-2" in last["reason"]
        trail = m.get(f"/api/v1/cases/{cid}/audit").json()
        assert trail["intact"], trail["problems"]
        entry = trail["entries"][-1]
        assert entry["action"] == "case_corrected" and entry["actor"].startswith("mediator:")
        assert entry["data"]["changes"]["rider_id"] == {"old": "R-LIMING", "new": "R-LIMING-2"}
        assert entry["data"]["changes"]["claim_number"] == {"old": "CLM-88", "new": "CLM-89"}
        assert entry["data"]["reason"] == "rider id mistyped"
        # who may: the mediator of the office; not another office, not the insurer; a reason is required
        assert m.patch(f"/api/v1/cases/{cid}", json={"claim_number": "X"}).status_code == 422
        assert ins.patch(f"/api/v1/cases/{cid}", json={"claim_number": "X", "reason": "r"}).status_code == 403
        with system.client("mediator_elsewhere") as other:
            assert other.patch(f"/api/v1/cases/{cid}", json={"claim_number": "X", "reason": "r"}).status_code == 404
        # nothing changed: no entry
        n = len(m.get(f"/api/v1/cases/{cid}/audit").json()["entries"])
        assert m.patch(f"/api/v1/cases/{cid}", json={"claim_number": "CLM-89", "reason": "same"}).status_code == 200
        assert len(m.get(f"/api/v1/cases/{cid}/audit").json()["entries"]) == n


def test_consent_given_later_unlocks_evidence_and_rider_change_marks_it_stale(system):
    feed_seed(system)
    with system.client("mediator") as m:
        cid = m.post("/api/v1/cases", json=case_body(consent=False)).json()["case_id"]
        assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 409
        r = m.patch(f"/api/v1/cases/{cid}", json={"consent": {"given": True, "at": "2025-05-21T09:00:00+08:00",
                                                              "method": "written"},
                                                 "reason": "signed the consent form at the office"})
        assert r.status_code == 200 and r.json()["consent"]["given"] is True
        assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
        wait_for(lambda: m.get(f"/api/v1/cases/{cid}").json()["status"] == "evidence_ready")
        assert m.get(f"/api/v1/cases/{cid}").json()["evidence_stale"] is False
        r = m.patch(f"/api/v1/cases/{cid}", json={"incident": {"description": "fell on the wet ramp"},
                                                 "reason": "description completed"})
        assert r.json()["evidence_stale"] is True
        assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
        case = wait_for(lambda: (c := m.get(f"/api/v1/cases/{cid}").json())["status"] == "evidence_ready" and c)
        assert case["evidence_stale"] is False
        assert m.get(f"/api/v1/cases/{cid}/audit").json()["intact"]


def test_no_correction_once_resolved(system):
    with system.client("mediator") as m:
        cid = m.post("/api/v1/cases", json=case_body()).json()["case_id"]
        for to in ("escalated", "resolved"):
            assert m.post(f"/api/v1/cases/{cid}/transitions", json={"to": to, "reason": "x"}).status_code == 200
        r = m.patch(f"/api/v1/cases/{cid}", json={"claim_number": "CLM-X", "reason": "late"})
        assert r.status_code == 409 and "resolved" in r.json()["detail"]


def test_attachments_sniffed_hashed_listed_in_the_signed_packet(system, tmp_path):
    feed_seed(system)
    with system.client("mediator") as m, system.client("insurer") as ins, system.client() as public:
        created = m.post("/api/v1/cases", json=case_body()).json()
        cid = created["case_id"]
        r = m.post(f"/api/v1/cases/{cid}/attachments", files={"file": ("report.pdf", PDF, "application/pdf")},
                   data={"kind": "medical_report", "description": "医院诊断证明"})
        assert r.status_code == 201, r.text
        att = r.json()
        assert att["sha256"] == hashlib.sha256(PDF).hexdigest() and att["size"] == len(PDF)
        # the content decides: a PNG named .pdf is a PNG; a text file named .jpg is refused
        r = m.post(f"/api/v1/cases/{cid}/attachments", files={"file": ("scene.pdf", PNG, "application/pdf")},
                   data={"kind": "photo"})
        assert r.status_code == 201 and r.json()["content_type"] == "image/png"
        r = m.post(f"/api/v1/cases/{cid}/attachments", files={"file": ("x.jpg", b"hello, not a photo", "image/jpeg")},
                   data={"kind": "photo"})
        assert r.status_code == 415 and "file" in r.json()["detail"]
        assert m.post(f"/api/v1/cases/{cid}/attachments", files={"file": ("x.pdf", PDF, "application/pdf")},
                      data={"kind": "selfie"}).status_code == 422
        assert ins.post(f"/api/v1/cases/{cid}/attachments", files={"file": ("x.pdf", PDF, "application/pdf")},
                        data={"kind": "other"}).status_code == 403
        items = m.get(f"/api/v1/cases/{cid}/attachments").json()["items"]
        assert [i["kind"] for i in items] == ["medical_report", "photo"]
        got = m.get(f"/api/v1/cases/{cid}/attachments/{att['attachment_id']}")
        assert got.status_code == 200 and got.content == PDF and got.headers["content-type"] == "application/pdf"
        # the insurer: nothing before the proposal
        assert ins.get(f"/api/v1/cases/{cid}/attachments").status_code == 403
        assert ins.get(f"/api/v1/cases/{cid}/attachments/{att['attachment_id']}").status_code == 403
        with system.client("insurer_other") as other:
            assert other.get(f"/api/v1/cases/{cid}/attachments").status_code == 404
        # the packet built afterwards lists both, under its signature
        assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
        wait_for(lambda: m.get(f"/api/v1/cases/{cid}").json()["status"] == "evidence_ready")
        raw = m.get(f"/api/v1/cases/{cid}/evidence-packet").content
        listed = json.loads(raw)["case"]["attachments"]
        assert [(a["name"], a["kind"], a["size"], a["sha256"]) for a in listed] == \
            [("report.pdf", "medical_report", len(PDF), hashlib.sha256(PDF).hexdigest()),
             ("scene.pdf", "photo", len(PNG), hashlib.sha256(PNG).hexdigest())]
        assert all(a["added_by"] == "王调解" and a["added_at"] for a in listed)
        assert public.post("/api/v1/packets/verify", content=raw).json()["valid"] is True
        forged = raw.replace(hashlib.sha256(PDF).hexdigest().encode(), b"0" * 64)
        assert public.post("/api/v1/packets/verify", content=forged).json()["valid"] is False
        # one more after the packet: the packet is re-signed with it
        assert m.post(f"/api/v1/cases/{cid}/attachments", files={"file": ("police.jpg", JPEG, "image/jpeg")},
                      data={"kind": "police_report"}).status_code == 201
        raw2 = m.get(f"/api/v1/cases/{cid}/evidence-packet").content
        assert [a["kind"] for a in json.loads(raw2)["case"]["attachments"]][-1] == "police_report"
        assert public.post("/api/v1/packets/verify", content=raw2).json()["valid"] is True
        # from proposal_sent, the insurer sees them
        for to in ("under_review", "proposal_sent"):
            assert m.post(f"/api/v1/cases/{cid}/transitions", json={"to": to, "reason": "x"}).status_code == 200
        assert len(ins.get(f"/api/v1/cases/{cid}/attachments").json()["items"]) == 3
        assert ins.get(f"/api/v1/cases/{cid}/attachments/{att['attachment_id']}").content == PDF
        # never on the rider's status page or API
        st = public.get(f"/api/v1/status/{created['case_number']}", params={"code": created["rider_access_code"]})
        page = public.get("/status", params={"case": created["case_number"], "code": created["rider_access_code"]})
        for text in (st.text, page.text):
            assert "report.pdf" not in text and "attachment" not in text.lower()
        assert m.get(f"/api/v1/cases/{cid}/audit").json()["intact"]


def _raw(system, head: bytes) -> bytes:
    u = urlsplit(system.base_url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(head)
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < _length(got):
            chunk = sock.recv(4096)  # the head and the body may come in separate segments
            if not chunk:
                break
            got += chunk
        return got


def _length(response: bytes) -> int:
    for line in response.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_body_limits_per_door(system):
    tok = system.tokens["mediator"].encode()
    json_head = _raw(system, b"POST /api/v1/cases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok
                     + b"\r\nContent-Type: application/json\r\nContent-Length: " + str((1 << 20) + 1).encode()
                     + b"\r\n\r\n{")
    assert json_head.startswith(b"HTTP/1.1 413") and b"1 MiB" in json_head
    feed_head = _raw(system, b"POST /api/v1/feeds/gps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok
                     + b"\r\nContent-Length: " + str((64 << 20) + 1).encode() + b"\r\n\r\nx")
    assert feed_head.startswith(b"HTTP/1.1 413") and b"64 MiB" in feed_head
    with system.client("mediator") as m:
        cid = m.post("/api/v1/cases", json=case_body()).json()["case_id"]
        # 20 MiB + 1 byte of file: refused, naming the limit; exactly 20 MiB is taken
        big = PDF + b"0" * ((20 << 20) + 1 - len(PDF))
        r = m.post(f"/api/v1/cases/{cid}/attachments", files={"file": ("big.pdf", big, "application/pdf")},
                   data={"kind": "other"})
        assert r.status_code == 413 and "20 MiB" in r.json()["detail"]
        r = m.post(f"/api/v1/cases/{cid}/attachments", files={"file": ("ok.pdf", big[:20 << 20], "application/pdf")},
                   data={"kind": "other"})
        assert r.status_code == 201, r.text[:200]
        # a 20 MB JSON body streamed without a length: 413, not read whole and answered 422
        def chunks():
            for _ in range(20):
                yield b" " * (1 << 20)
        r = m.post("/api/v1/cases", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "1 MiB" in r.json()["detail"]
    # feeds in gzip: unpacked and taken; a bomb past 64 MiB unpacked is 413
    with system.client("feed") as f:
        r = f.post("/api/v1/feeds/platform-events", content=gzip.compress((SEED / "platform.jsonl").read_bytes()),
                   headers={"Content-Encoding": "gzip"})
        assert r.status_code == 200 and r.json()["accepted"] == 10, r.text
        bomb = gzip.compress(b"\n" * ((64 << 20) + 10))
        r = f.post("/api/v1/feeds/gps", content=bomb, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413 and "64 MiB" in r.json()["detail"]
        r = f.post("/api/v1/feeds/gps", content=b"not gzip", headers={"Content-Encoding": "gzip"})
        assert r.status_code == 400


def test_insurer_report_json_and_csv(system):
    with system.client("mediator") as m, system.client("insurer") as ins:
        ids = [m.post("/api/v1/cases", json=case_body(insurer=code)).json()["case_id"] for code in ("PICC", "PICC", "CPIC")]
        for to in ("escalated", "under_review", "proposal_sent"):
            assert m.post(f"/api/v1/cases/{ids[0]}/transitions", json={"to": to, "reason": "x"}).status_code == 200
        assert ins.post(f"/api/v1/cases/{ids[0]}/insurer-response",
                        json={"decision": "reject", "reason": "no"}).status_code == 200
        assert m.post(f"/api/v1/cases/{ids[1]}/transitions", json={"to": "withdrawn", "reason": "x"}).status_code == 200
        r = m.get("/api/v1/reports/insurers", params={"from": "2020-01-01", "to": "2099-12-31"})
        assert r.status_code == 200, r.text
        rows = {x["insurer_code"]: x for x in r.json()["insurers"]}
        assert rows["PICC"]["opened"] == 2 and rows["PICC"]["rejected"] == 1 and rows["PICC"]["withdrawn"] == 1
        assert rows["PICC"]["pending"] == 1 and rows["PICC"]["accepted"] == 0
        assert rows["CPIC"]["opened"] == 1 and rows["CPIC"]["pending"] == 1
        assert rows["PICC"]["median_days_to_resolution"] is None
        c = m.get("/api/v1/reports/insurers", params={"format": "csv"})
        assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
        parsed = list(csv.DictReader(io.StringIO(c.text)))
        assert {p["insurer_code"]: p["rejected"] for p in parsed} == {"CPIC": "0", "PICC": "1"}
        assert m.get("/api/v1/reports/insurers", params={"from": "2000-01-01", "to": "2000-01-02"}).json()["insurers"] == []
        assert m.get("/api/v1/reports/insurers", params={"from": "yesterday"}).status_code == 422
        assert ins.get("/api/v1/reports/insurers").status_code == 403
        # searches: a phone however written, an insurer filter in any case
        assert m.get("/api/v1/cases", params={"q": "+86 138-0013-8000"}).json()["total"] == 3
        assert m.get("/api/v1/cases", params={"insurer": "picc"}).json()["total"] == 2


def test_rider_status_lowercase_number(system):
    with system.client("mediator") as m, system.client() as public:
        created = m.post("/api/v1/cases", json=case_body()).json()
        r = public.get(f"/api/v1/status/{created['case_number'].lower()}", params={"code": created["rider_access_code"]})
        assert r.status_code == 200 and r.json()["case_number"] == created["case_number"]


@pytest.fixture
def guarded(db_url, tmp_path):
    """A system with the SSRF guard on (the test suite lifts it elsewhere)."""
    with running_system(tmp_path / "var", db_url, env={"XJ_WEBHOOK_ALLOW_PRIVATE": "0"}) as s:
        s.tokens = {"mediator": s.add_user("mediator", "王调解", office="xiacheng"),
                    "insurer": s.add_user("insurer", "PICC claims", insurer="PICC")}
        yield s


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://localhost:8080/hook", "loopback"),  # a name that resolves to 127.0.0.1
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://10.1.2.3/hook", "private"),
    ("http://192.168.0.10/hook", "private"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),
    ("http://0.0.0.0/hook", "reserved"),
    ("http://no-such-host.invalid/hook", "does not resolve"),
])
def test_webhook_ssrf_refused_by_address_and_by_name(guarded, url, why):
    with guarded.client("mediator") as m:
        r = m.put("/api/v1/insurers/PICC/webhook", json={"url": url, "secret": "whsec_" + "A" * 32})
    assert r.status_code == 422, r.text
    assert why in r.json()["detail"] and r.json()["errors"][0]["loc"] == ["body", "url"]


def test_webhook_for_unknown_insurer_is_404_and_public_address_taken(guarded):
    with guarded.client("mediator") as m:
        r = m.put("/api/v1/insurers/NOSUCH/webhook", json={"url": "https://93.184.215.14/hook",
                                                           "secret": "whsec_" + "A" * 32})
        assert r.status_code == 404
        r = m.put("/api/v1/insurers/picc/webhook", json={"url": "https://93.184.215.14/hook",
                                                         "secret": "whsec_" + "A" * 32})
        assert r.status_code == 200 and r.json()["insurer_code"] == "PICC"


def test_webhook_send_checks_the_address_again():
    """A URL that was public at registration but resolves to loopback at send time is not posted to."""
    import asyncio

    from services.notify.adapters.channels.webhook import WebhookChannel
    from services.notify.domain.model import InsurerChannel

    class Directory:
        def get(self, code):
            return InsurerChannel(code=code, webhook_url="http://localhost:9/hook", secrets=("whsec_" + "A" * 32,))

    class Note:
        recipient, id, body = "PICC", "n1", "{}"

    async def go():
        ch = WebhookChannel(Directory(), allow_private=False)
        try:
            return await ch.send(Note())
        finally:
            await ch.aclose()

    result = asyncio.run(go())
    assert not result.ok and result.permanent and "loopback" in (result.error or "")


def test_explicit_nulls_change_nothing(system):
    """schemathesis found that ``"insurer_code": null`` in a correction was a 500."""
    with system.client("mediator") as m:
        cid = m.post("/api/v1/cases", json=case_body()).json()["case_id"]
        r = m.patch(f"/api/v1/cases/{cid}", json={"insurer_code": None, "policy_number": None, "rider": None,
                                                 "reason": "nothing"})
        assert r.status_code == 200, r.text
        assert r.json()["insurer_code"] == "PICC" and r.json()["policy_number"] == "PICC-2025-0001"


def test_rider_status_names_the_office_and_locks_in_his_language(db_url, tmp_path):
    env = {"XJ_OFFICES": "xiacheng=下城区人民调解委员会|0571-85000000", "XJ_TIMEZONE": "Asia/Shanghai"}
    with running_system(tmp_path / "var", db_url, env=env) as s:
        s.tokens = {"mediator": s.add_user("mediator", "王调解", office="xiacheng"),
                    "insurer": s.add_user("insurer", "PICC", insurer="PICC")}
        with s.client("mediator") as m, s.client() as public:
            created = m.post("/api/v1/cases", json=case_body()).json()
            number, code = created["case_number"], created["rider_access_code"]
            st = public.get(f"/api/v1/status/{number}", params={"code": code}).json()
            assert st["office"] == {"name": "下城区人民调解委员会", "phone": "0571-85000000"}
            page = public.get("/status", params={"case": number.lower(), "code": code})
            assert page.status_code == 200 and "下城区人民调解委员会" in page.text and "0571-85000000" in page.text
            for k in range(10):
                public.get(f"/api/v1/status/{number}", params={"code": f"{k:08d}"})
            locked = public.get(f"/api/v1/status/{number}", params={"code": code})
            assert locked.status_code == 429
            body = locked.json()
            assert body["lang"] == "zh" and "请于" in body["detail"] and body["until"].endswith("+08:00")
            en = public.get(f"/api/v1/status/{number}", params={"code": code, "lang": "en"}).json()
            assert "Try again after" in en["detail"] and "Asia/Shanghai" in en["detail"]


def test_public_base_url_drives_the_links_in_messages_and_pages(db_url, tmp_path):
    with running_system(tmp_path / "var", db_url, env={"XJ_PUBLIC_BASE_URL": "https://xj.example.org/"}) as s:
        s.tokens = {"mediator": s.add_user("mediator", "王调解", office="xiacheng", email="wang@example.org"),
                    "insurer": s.add_user("insurer", "PICC", insurer="PICC", email="claims@picc.example")}
        with s.client("mediator") as m:
            cid = m.post("/api/v1/cases", json=case_body()).json()["case_id"]
            notes = wait_for(lambda: (n := m.get(f"/api/v1/cases/{cid}/notifications").json()) and len(n) >= 2 and n)
        bodies = " ".join(str(n.get("body", "")) for n in notes)
        assert "https://xj.example.org/" in bodies, bodies[:500]
        assert "127.0.0.1" not in bodies and ":8000" not in bodies


def test_webhook_connection_is_checked_where_it_connects(monkeypatch):
    """DNS rebinding: the name passed the check, then points at loopback when the connection is
    made. The connector's resolver refuses it, and nothing reaches the loopback receiver."""
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from services.notify.adapters.channels import webhook as webhook_module
    from services.notify.adapters.channels.webhook import WebhookChannel
    from services.notify.domain.model import InsurerChannel

    hits: list[str] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    async def passed(url, *, allow_private=False):
        return None  # as if the name had resolved to a public address a moment ago

    monkeypatch.setattr(webhook_module, "acheck_target", passed)

    class Directory:
        def get(self, code):
            return InsurerChannel(code=code, webhook_url=f"http://localhost:{port}/hook",
                                  secrets=("whsec_" + "A" * 32,))

    class Note:
        recipient, id, body = "PICC", "n1", "{}"

    async def go(allow):
        ch = WebhookChannel(Directory(), allow_private=allow)
        try:
            return await ch.send(Note())
        finally:
            await ch.aclose()

    try:
        refused = asyncio.run(go(False))
        assert not refused.ok and "loopback" in refused.error and hits == []
        allowed = asyncio.run(go(True))  # XJ_WEBHOOK_ALLOW_PRIVATE=1: the same send goes through
        assert allowed.ok and hits == ["/hook"]
    finally:
        server.shutdown()
