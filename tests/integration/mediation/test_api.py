"""The mediation API through real HTTP, on SQLite and PostgreSQL: the seed case from feeds to
resolution, and every role against every endpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.embedded import running_system, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"
INCIDENT = json.loads((SEED / "incidents.jsonl").read_text().splitlines()[0])


def case_body(consent: bool = True, insurer: str = "PICC") -> dict:
    return {
        "rider": {"id": "R-LIMING", "name": "李明", "phone": "13800138000"},
        "insurer_code": insurer, "policy_number": "PICC-2025-0001", "claim_number": "CLM-88",
        "incident": {"at": INCIDENT["at"], "location": INCIDENT["location"],
                     "description": "雨天摔倒，手部骨折 fell in the rain", "injury": "hand fracture"},
        "denial_reason": "事发时间与订单配送状态相差15分钟",
        "consent": {"given": consent, "at": "2025-05-20T10:00:00+08:00", "method": "written"},
    }


@pytest.fixture
def system(db_url, tmp_path):
    with running_system(tmp_path / "var", db_url) as s:
        s.tokens = {
            "mediator": s.add_user("mediator", "王调解", office="xiacheng", email="wang@example.org"),
            "mediator_elsewhere": s.add_user("mediator", "赵调解", office="other-office"),
            "insurer": s.add_user("insurer", "PICC claims", insurer="PICC", email="claims@picc.example"),
            "insurer_other": s.add_user("insurer", "Other claims", insurer="OTHER"),
            "insurer_cpic": s.add_user("insurer", "CPIC claims", insurer="CPIC"),
            "feed": s.add_user("feed", "meituan feed"),
        }
        yield s


def feed_seed(s) -> None:
    with s.client("feed") as c:
        r = c.post("/api/v1/feeds/platform-events", content=(SEED / "platform.jsonl").read_bytes())
        assert r.status_code == 200 and r.json()["accepted"] == 10 and r.json()["rejected"] == []
        gps = (SEED / "gps.jsonl").read_bytes() + b'not json\n{"rider_id": "R-LIMING", "ts": 1, "lat": 1, "lon": 2}\n'
        r = c.post("/api/v1/feeds/gps", content=gps)
        assert r.status_code == 200
        body = r.json()
        assert body["accepted"] == 912
        assert [x["line"] for x in body["rejected"]] == [913, 914]


def test_seed_case_from_feeds_to_resolution(system, tmp_path):
    s = system
    feed_seed(s)
    with s.client("mediator") as m, s.client("insurer") as ins, s.client() as public:
        r = m.post("/api/v1/cases", json=case_body())
        assert r.status_code == 201, r.text
        created = r.json()
        cid, number, code = created["case_id"], created["case_number"], created["rider_access_code"]
        assert created["status"] == "opened"

        r = m.post(f"/api/v1/cases/{cid}/evidence-requests")
        assert r.status_code == 202
        case = wait_for(lambda: (c := m.get(f"/api/v1/cases/{cid}").json())["status"] == "evidence_ready" and c)
        assert case["phase"] == "connecting"

        raw = m.get(f"/api/v1/cases/{cid}/evidence-packet").content
        packet = json.loads(raw)
        assert packet["assessment"]["phase"] == "connecting"
        assert packet["assessment"]["continuous_delivery"] is True
        assert packet["coverage"]["covered"] is True and packet["coverage"]["clause_id"] == "art-3.2"
        assert "13800138000" not in json.dumps(packet, ensure_ascii=False)
        assert public.post("/api/v1/packets/verify", content=raw).json()["valid"] is True
        tampered = raw.replace(b'"connecting"', b'"idle"', 1)
        assert public.post("/api/v1/packets/verify", content=tampered).json()["valid"] is False
        f = tmp_path / "packet.json"
        f.write_bytes(raw)
        assert _verify_cli(f, s) == 0
        f.write_bytes(tampered)
        assert _verify_cli(f, s) == 1
        pdf = m.get(f"/api/v1/cases/{cid}/evidence-packet", params={"format": "pdf"})
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
        # the mediator reviews first: no evidence for the insurer until the proposal is sent
        assert ins.get(f"/api/v1/cases/{cid}/evidence-packet").status_code == 403
        assert ins.get(f"/api/v1/cases/{cid}").json()["phase"] is None

        for to in ("under_review", "proposal_sent"):
            r = m.post(f"/api/v1/cases/{cid}/transitions", json={"to": to, "reason": "连续配送的合理衔接"})
            assert r.status_code == 200 and r.json()["status"] == to
        assert ins.get(f"/api/v1/cases/{cid}/evidence-packet").content == raw
        assert ins.get(f"/api/v1/cases/{cid}").json()["phase"] == "connecting"
        r = ins.post(f"/api/v1/cases/{cid}/insurer-response", json={"decision": "accept", "reason": "evidence accepted"})
        assert r.status_code == 200 and r.json()["status"] == "insurer_accepted"
        for to in ("resolved", "closed"):
            assert m.post(f"/api/v1/cases/{cid}/transitions", json={"to": to}).json()["status"] == to

        case = m.get(f"/api/v1/cases/{cid}").json()
        assert [h["to"] for h in case["history"]] == ["opened", "evidence_requested", "evidence_ready", "under_review",
                                                       "proposal_sent", "insurer_accepted", "resolved", "closed"]
        assert all(h["at"] and h["actor"] for h in case["history"])
        trail = m.get(f"/api/v1/cases/{cid}/audit").json()
        assert trail["intact"] and len(trail["entries"]) >= 7

        st = public.get(f"/api/v1/status/{number}", params={"code": code})
        assert st.status_code == 200
        assert set(st.json()) <= {"case_number", "status", "status_label", "next_step", "updated_at", "deadline", "lang",
                                  "notifications", "office"}
        assert st.json()["status"] == "closed" and st.json()["status_label"] == "已结案"
        assert public.get(f"/api/v1/status/{number}", params={"code": "00000000"}).status_code == 404


def _verify_cli(path: Path, s) -> int:
    return subprocess.run([sys.executable, "-m", "services.mediation", "packets", "verify", str(path)],
                          cwd=ROOT, env={**os.environ, "XJ_DATA_DIR": str(s.data_dir)},
                          capture_output=True, timeout=60).returncode


def test_no_trajectory_without_consent(system):
    with system.client("mediator") as m:
        cid = m.post("/api/v1/cases", json=case_body(consent=False)).json()["case_id"]
        r = m.post(f"/api/v1/cases/{cid}/evidence-requests")
        assert r.status_code == 409 and "consent" in r.json()["detail"]
        assert m.get(f"/api/v1/cases/{cid}").json()["status"] == "opened"


def test_illegal_transition_names_the_allowed_ones(system):
    with system.client("mediator") as m:
        cid = m.post("/api/v1/cases", json=case_body()).json()["case_id"]
        r = m.post(f"/api/v1/cases/{cid}/transitions", json={"to": "resolved"})
        assert r.status_code == 409
        assert set(r.json()["allowed"]) == {"evidence_requested", "escalated", "withdrawn"}
        r = m.post(f"/api/v1/cases/{cid}/transitions", json={"to": "flying"})
        assert r.status_code == 422 and "to" in r.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({"rider": {"id": "R", "name": "x", "phone": "not a phone"}}, "phone"),
    ({"incident": {"at": "yesterday"}}, "at"),
    ({"insurer_code": ""}, "insurer_code"),
    ({"incident": {"at": "2025-05-14T14:10:00+08:00", "location": {"lat": 999, "lon": 1}}}, "lat"),
    ({"unexpected": 1}, "unexpected"),
])
def test_malformed_bodies_are_422_naming_the_field(system, body, field):
    good = case_body()
    for k, v in body.items():
        good[k] = {**good[k], **v} if isinstance(v, dict) and isinstance(good.get(k), dict) else v
    with system.client("mediator") as m:
        r = m.post("/api/v1/cases", json=good)
    assert r.status_code == 422
    assert field in r.json()["detail"]


def test_roles_against_every_endpoint(system):
    s = system
    with s.client("mediator") as m:
        cid = m.post("/api/v1/cases", json=case_body()).json()["case_id"]
    ok_or = {200, 201, 202, 409}
    calls = [
        ("GET", f"/api/v1/cases/{cid}", None, {"mediator": {200}, "insurer": {200}}),
        ("GET", "/api/v1/cases", None, {"mediator": {200}, "insurer": {200}, "mediator_elsewhere": {200},
                                       "insurer_other": {200}}),
        ("POST", "/api/v1/cases", case_body(), {"mediator": {201}, "mediator_elsewhere": {201}}),
        ("POST", f"/api/v1/cases/{cid}/evidence-requests", None, {"mediator": ok_or}),
        ("POST", f"/api/v1/cases/{cid}/transitions", {"to": "escalated"}, {"mediator": ok_or, "insurer": {403, 409}}),
        # before proposal_sent the insurer sees no evidence (403); a mediator gets 404 (no packet yet)
        ("GET", f"/api/v1/cases/{cid}/evidence-packet", None, {"mediator": {200, 404}, "insurer": {403}}),
        ("POST", f"/api/v1/cases/{cid}/insurer-response", {"decision": "reject", "reason": "no cover"},
         {"insurer": ok_or}),
        ("GET", f"/api/v1/cases/{cid}/audit", None, {"mediator": {200}, "insurer": {200}}),
        ("PUT", "/api/v1/insurers/PICC/webhook", {"url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "A" * 32},
         {"mediator": {200}, "mediator_elsewhere": {200}}),
        ("POST", "/api/v1/feeds/gps", None, {"mediator": {200}, "mediator_elsewhere": {200}, "feed": {200}}),
        ("PATCH", f"/api/v1/cases/{cid}", {"reason": "nothing to change"}, {"mediator": {200}}),
        ("GET", f"/api/v1/cases/{cid}/attachments", None, {"mediator": {200}, "insurer": {403}}),
        ("GET", "/api/v1/reports/insurers", None, {"mediator": {200}, "mediator_elsewhere": {200}}),
    ]
    for who in [None, "bogus", "mediator", "mediator_elsewhere", "insurer", "insurer_other", "feed"]:
        for method, path, body, allowed in calls:
            if who == "bogus":
                client = s.client(None, headers={"Authorization": "Bearer not-a-token"})
            else:
                client = s.client(who)
            with client as c:
                r = c.request(method, path, json=body) if body is not None else c.request(method, path)
            if who in (None, "bogus"):
                assert r.status_code == 401, (who, method, path, r.status_code)
            elif who in allowed:
                assert r.status_code in allowed[who], (who, method, path, r.status_code, r.text)
            else:
                assert r.status_code in (403, 404), (who, method, path, r.status_code, r.text)
    with s.client("insurer") as c:  # a refusal without a reason names the field
        r = c.post(f"/api/v1/cases/{cid}/insurer-response", json={"decision": "reject"})
        assert r.status_code == 422 and "reason" in r.json()["detail"], r.text
    with s.client("mediator_elsewhere") as c:
        assert all(i["case_id"] != cid for i in c.get("/api/v1/cases").json()["items"])
    with s.client("insurer_other") as c:
        assert c.get("/api/v1/cases").json()["total"] == 0


def test_case_list_search_filters_and_pages(system):
    with system.client("mediator") as m:
        ids = [m.post("/api/v1/cases", json=case_body(insurer=code)).json()["case_id"] for code in ("PICC", "PICC", "CPIC")]
        assert m.get("/api/v1/cases").json()["total"] == 3
        assert m.get("/api/v1/cases", params={"insurer": "CPIC"}).json()["total"] == 1
        assert m.get("/api/v1/cases", params={"status": "opened"}).json()["total"] == 3
        assert m.get("/api/v1/cases", params={"q": "李明"}).json()["total"] == 3
        page = m.get("/api/v1/cases", params={"limit": 2, "offset": 2}).json()
        assert len(page["items"]) == 1 and page["total"] == 3
        assert m.get("/api/v1/cases", params={"overdue": "true"}).json()["total"] == 0
        assert m.get("/api/v1/cases", params={"limit": 0}).status_code == 422
        assert len(ids) == 3


def test_status_page_brute_force_is_locked_out(system):
    with system.client("mediator") as m, system.client() as public:
        created = m.post("/api/v1/cases", json=case_body()).json()
        number = created["case_number"]
        # the right code read once (and remembered) must not slip through a later lock
        assert public.get(f"/api/v1/status/{number}", params={"code": created["rider_access_code"]}).status_code == 200
        codes = [public.get(f"/api/v1/status/{number}", params={"code": f"{k:08d}"}).status_code for k in range(12)]
        assert codes[:10] == [404] * 10 and codes[10:] == [429, 429]
        # even the right code waits out the lock
        assert public.get(f"/api/v1/status/{number}", params={"code": created["rider_access_code"]}).status_code == 429


def test_oversized_body_is_413(system):
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(system.base_url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/feeds/gps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                     + system.tokens["feed"].encode() + b"\r\nContent-Length: 1099511627776\r\n\r\nxx")
        head = sock.recv(200)
    assert head.startswith(b"HTTP/1.1 413")


def test_openapi_is_complete(system):
    with system.client() as c:
        doc = c.get("/openapi.json").json()
    paths = set(doc["paths"])
    for p in ["/api/v1/feeds/platform-events", "/api/v1/feeds/gps", "/api/v1/cases", "/api/v1/cases/{case_id}",
              "/api/v1/cases/{case_id}/evidence-requests", "/api/v1/cases/{case_id}/transitions",
              "/api/v1/cases/{case_id}/evidence-packet", "/api/v1/cases/{case_id}/insurer-response",
              "/api/v1/status/{case_number}", "/api/v1/insurers/{code}/webhook", "/api/v1/cases/{case_id}/attachments",
              "/api/v1/cases/{case_id}/attachments/{attachment_id}", "/api/v1/reports/insurers"]:
        assert p in paths, p
    assert "patch" in doc["paths"]["/api/v1/cases/{case_id}"]
    upload = doc["paths"]["/api/v1/cases/{case_id}/attachments"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


def test_packets_of_the_earlier_format_still_verify_through_the_api(system):
    """A packet of format /1 (signed over orjson's form, before RFC 8785), with its key among the
    deployment's published keys (as an operator keeps old keys), verifies; a changed digit fails."""
    old = ROOT / "tests" / "data" / "packets"
    (system.data_dir / "keys").mkdir(parents=True, exist_ok=True)
    shutil.copy(old / "v1-keys" / "packet-signing-key.pub.pem", system.data_dir / "keys" / "v1-key.pub.pem")
    data = (old / "v1-seed-case.json").read_bytes()
    assert json.loads(data)["format"] == "xianjie.evidence-packet/1"
    with system.client() as public:
        r = public.post("/api/v1/packets/verify", content=data)
        assert r.status_code == 200 and r.json() == {"valid": True, "problems": []}
        changed = data.replace(b'"clock_skew_s":-6.0', b'"clock_skew_s":-7.0', 1)
        assert changed != data
        r = public.post("/api/v1/packets/verify", content=changed)
        assert r.status_code == 200 and r.json()["valid"] is False
        assert any("signature does not match" in p for p in r.json()["problems"])
