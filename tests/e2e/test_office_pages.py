"""The office features in headless Chromium: correcting a case (consent given later included),
attaching a PDF and a photo, and the report page (screenshot under var/test-artefacts/)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from services.embedded import System

from .conftest import open_case_api
from .test_pages import sign_in

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82")


def test_correcting_a_case(browser: Any, system: System, shot: Any) -> None:
    from playwright.sync_api import expect

    s = system
    created = open_case_api(s, consent=False)
    m = sign_in(browser, s, "mediator", start=f"/cases/{created['case_id']}")
    expect(m.locator("#case-status")).to_have_text("已立案")
    m.get_by_text("更正案件信息").first.click()
    m.get_by_label("理赔号", exact=False).first.fill("CLM-88-FIXED")
    m.locator("#c-consent").check()
    m.get_by_label("更正原因（必填）").fill("理赔号录入错误；骑手当面签署了轨迹使用同意书")
    shot(m, "office-correct-form")
    m.get_by_role("button", name="保存更正").click()
    expect(m.locator(".flash.ok")).to_have_text("案件已更正。")
    expect(m.locator("dd.mono").filter(has_text="CLM-88-FIXED")).to_have_count(1)
    expect(m.locator("#consent-state .badge.good")).to_have_count(1)
    history = m.locator("ol.history").inner_text()
    assert "理赔号录入错误" in history and "CLM-88 → CLM-88-FIXED" in history
    # consent recorded later: the evidence button is enabled now
    assert m.get_by_role("button", name=re.compile("调取")).first.is_enabled()
    # an unknown insurer code is refused and nothing changes
    m.get_by_text("更正案件信息").first.click()
    m.locator("#c-insurer").fill("PICCC")
    m.get_by_label("更正原因（必填）").fill("试一下")
    m.get_by_role("button", name="保存更正").click()
    expect(m.locator(".flash.error")).to_contain_text("PICCC")
    with s.client("mediator") as api:
        assert api.get(f"/api/v1/cases/{created['case_id']}").json()["insurer_code"] == "PICC"
    shot(m, "office-corrected")
    m.context.close()


def test_attaching_a_pdf_and_a_photo(browser: Any, system: System, shot: Any) -> None:
    from playwright.sync_api import expect

    s = system
    created = open_case_api(s)
    m = sign_in(browser, s, "mediator", start=f"/cases/{created['case_id']}")
    expect(m.locator("#no-attachments")).to_be_visible()
    for name, mime, data, kind, desc in (("诊断证明.pdf", "application/pdf", PDF, "medical_report", "浙一医院骨科"),
                                         ("scene.png", "image/png", PNG, "photo", "事发路口")):
        m.locator("#att-file").set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])
        m.locator("#att-kind").select_option(kind)
        m.locator("#att-desc").fill(desc)
        m.get_by_role("button", name="上传附件").click()
        expect(m.locator(".flash.ok")).to_contain_text(name)
    rows = m.locator("#attachment-list tbody tr")
    expect(rows).to_have_count(2)
    assert "医疗诊断证明" in rows.nth(0).inner_text() and "现场照片" in rows.nth(1).inner_text()
    # a file that is not what it says is refused
    m.locator("#att-file").set_input_files(files=[{"name": "fake.pdf", "mimeType": "application/pdf",
                                                   "buffer": b"MZ\x90\x00 an executable"}])
    m.get_by_role("button", name="上传附件").click()
    expect(m.locator(".flash.error")).to_be_visible()
    expect(rows).to_have_count(2)
    shot(m, "office-attachments")
    with m.expect_download() as dl:
        m.get_by_role("link", name="诊断证明.pdf").click()
    assert hashlib.sha256(Path(dl.value.path()).read_bytes()).hexdigest() == hashlib.sha256(PDF).hexdigest()
    with s.client("mediator") as api:
        listed = api.get(f"/api/v1/cases/{created['case_id']}/attachments").json()["items"]
    assert [a["sha256"] for a in listed] == [hashlib.sha256(PDF).hexdigest(), hashlib.sha256(PNG).hexdigest()]
    m.context.close()


def test_report_page(browser: Any, system: System, shot: Any) -> None:
    from playwright.sync_api import expect

    s = system
    with s.client("mediator") as api, s.client("insurer") as ins:
        for k in range(3):
            cid = open_case_api(s)["case_id"]
            for to in ("escalated", "under_review", "proposal_sent"):
                assert api.post(f"/api/v1/cases/{cid}/transitions", json={"to": to, "reason": "x"}).status_code == 200
            decision = "reject" if k else "accept"
            assert ins.post(f"/api/v1/cases/{cid}/insurer-response",
                            json={"decision": decision, "reason": "理由"}).status_code == 200
        open_case_api(s, insurer="OTHER")
    m = sign_in(browser, s, "mediator")
    m.get_by_role("link", name="统计报表").click()
    expect(m.get_by_role("heading", name="保险公司统计", exact=True)).to_be_visible()
    table = m.locator("#report-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    picc = table.locator("tbody tr").filter(has_text="PICC").inner_text().split("\t")
    assert picc[0].strip() == "PICC" and int(picc[2]) >= 1 and int(picc[3]) >= 2
    expect(m.locator("#report-chart rect").first).to_be_visible()
    assert m.locator("#report-chart rect").count() >= 6
    with m.expect_download() as dl:
        m.get_by_role("link", name="导出 CSV").click()
    csv_text = Path(dl.value.path()).read_text(encoding="utf-8")
    assert csv_text.startswith("insurer_code,opened,") and "\nPICC," in csv_text
    path = shot(m, "office-report")
    assert path.stat().st_size > 10_000
    m.context.close()


def test_insurer_portal_shows_attachments_from_proposal_sent(browser: Any, system: System) -> None:
    from playwright.sync_api import expect

    s = system
    created = open_case_api(s)
    cid = created["case_id"]
    with s.client("mediator") as api:
        r = api.post(f"/api/v1/cases/{cid}/attachments", data={"kind": "medical_report"},
                     files={"file": ("诊断证明.pdf", PDF, "application/pdf")})
        assert r.status_code == 201
    ins = sign_in(browser, s, "insurer", start="/insurer/")
    ins.goto(f"/insurer/cases/{cid}")
    expect(ins.locator("#attachment-list")).to_have_count(0)
    assert ins.request.get(f"/cases/{cid}/attachments/{r.json()['attachment_id']}").status in (403, 404)
    with s.client("mediator") as api:
        for to in ("escalated", "under_review", "proposal_sent"):
            assert api.post(f"/api/v1/cases/{cid}/transitions", json={"to": to, "reason": "x"}).status_code == 200
    ins.reload()
    expect(ins.locator("#attachment-list tbody tr")).to_have_count(1)
    with ins.expect_download() as dl:
        ins.get_by_role("link", name="诊断证明.pdf").click()
    assert Path(dl.value.path()).read_bytes() == PDF
    # the rider's page: nothing of it
    page = ins.context.browser.new_page(base_url=s.base_url)
    page.goto(f"/status?case={created['case_number']}&code={created['rider_access_code']}")
    assert "诊断证明" not in page.content() and "附件" not in page.inner_text("main")
    page.close()
    ins.context.close()
