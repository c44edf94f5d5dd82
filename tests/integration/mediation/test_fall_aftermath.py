"""Rule 6 through the running system: the seed case with Li Ming sitting 15 minutes at the place of
his fall before the next order. The feeds are posted as a platform would, the case is opened at
once, and the answer (and the packet, its figures and the desk) must be the batch command's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.embedded import running_system, wait_for
from tests.seed_fall import write_seed_sat
from tests.support.desk import signed_in

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def system(db_url, tmp_path):
    with running_system(tmp_path / "var", db_url) as s:
        s.tokens = {
            "mediator": s.add_user("mediator", "王调解", office="xiacheng"),
            "feed": s.add_user("feed", "meituan feed"),
            "insurer": s.add_user("insurer", "PICC claims", insurer="PICC"),
        }
        yield s


def batch(directory: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "services.trajectory", "assess", str(directory)], cwd=ROOT,
                         capture_output=True, check=True).stdout
    return json.loads(out.splitlines()[0])


def test_seed_case_sitting_after_the_fall_is_connecting_in_batch_and_running_system(system, tmp_path):
    s = system
    day = write_seed_sat(tmp_path / "seed-sat")
    expected = batch(day)
    assert expected["phase"] == "connecting" and expected["continuous_delivery"] is True
    assert expected["aftermath"]["minutes"] >= 15

    inc = json.loads((day / "incidents.jsonl").read_text().splitlines()[0])
    with s.client("feed") as c:
        r = c.post("/api/v1/feeds/platform-events", content=(day / "platform.jsonl").read_bytes())
        assert r.status_code == 200 and r.json()["rejected"] == [], r.text
        r = c.post("/api/v1/feeds/gps", content=(day / "gps.jsonl").read_bytes())
        assert r.status_code == 200 and r.json()["rejected"] == [], r.text
    with s.client("mediator") as m:
        r = m.post("/api/v1/cases", json={
            "rider": {"id": "R-LIMING", "name": "李明", "phone": "13800138000"},
            "insurer_code": "PICC", "policy_number": "PICC-2025-0001", "claim_number": "CLM-89",
            "incident": {"at": inc["at"], "location": inc["location"], "description": "雨天摔倒后在原地坐了一刻钟",
                         "injury": "hand fracture"},
            "denial_reason": "事发后停留15分钟，属于休息",
            "consent": {"given": True, "at": "2025-05-20T10:00:00+08:00", "method": "written"}})
        assert r.status_code == 201, r.text
        cid = r.json()["case_id"]
        assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
        case = wait_for(lambda: (c := m.get(f"/api/v1/cases/{cid}").json())["status"] == "evidence_ready" and c)
        assert case["phase"] == "connecting"
        packet = json.loads(m.get(f"/api/v1/cases/{cid}/evidence-packet").content)
    a = packet["assessment"]
    # one engine: the running system's answer is the batch command's
    assert (a["phase"], a["continuous_delivery"]) == (expected["phase"], expected["continuous_delivery"])
    assert {k: a["aftermath"][k] for k in ("start_at", "end_at", "minutes")} == \
        {k: expected["aftermath"][k] for k in ("start_at", "end_at", "minutes")}
    assert a["explanation_en"][:2] == expected["explanation_en"][:2]
    # the packet's timeline draws the aftermath as its own band
    tl = packet["figures"]["timeline.svg"]
    assert "事发后 aftermath" in tl and re.search(r"stayed \d+ min", tl)
    # and the mediator's desk names it, in the finding and in the phases table
    with signed_in(s, s.tokens["mediator"]) as web:
        page = web.get(f"/cases/{cid}").text
        assert 'id="aftermath"' in page and "不计为休息" in page and 'class="aftermath-row"' in page
        assert "属于连续配送" in page
        en = web.get(f"/cases/{cid}", params={"lang": "en"}).text
        assert "not counted as a break" in en or "not a break" in en
