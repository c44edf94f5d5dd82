"""The three audiences' pages in a real browser (headless Chromium through Playwright): the seed
case from opening to resolution, the wrong role's pages, consent, stale forms, the language
switch and a phone-sized screen."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from services.embedded import System

from .conftest import (
    DESK,
    INCIDENT,
    PHONE,
    SEED,
    case_body,
    no_sideways_scroll,
    open_case_api,
    unlabelled,
)

pytestmark = pytest.mark.e2e


def sign_in(browser: Any, s: System, who: str, start: str = "/", viewport: dict[str, int] = DESK) -> Any:
    ctx = browser.new_context(base_url=s.base_url, viewport=viewport, locale="zh-CN")
    page = ctx.new_page()
    page.goto(start)
    page.get_by_label("访问令牌").fill(s.tokens[who])
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()
    return page


def reload_until(page: Any, selector: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not page.locator(selector).count():
        assert time.monotonic() < deadline, f"{selector} did not appear on {page.url}"
        page.wait_for_timeout(250)
        page.reload()


def img_loaded(page: Any, selector: str) -> bool:
    return bool(page.eval_on_selector(selector, "i => i.complete && i.naturalWidth > 0"))


def test_seed_case_from_opening_to_resolution(browser: Any, system: System, shot: Any) -> None:
    from playwright.sync_api import expect

    s = system
    # ---------------------------------------------------------------- the mediator opens the case
    ctx = browser.new_context(base_url=s.base_url, viewport=DESK, locale="zh-CN")
    m = ctx.new_page()
    m.goto("/")
    assert m.get_attribute("html", "lang") == "zh-CN"
    expect(m.get_by_role("heading", name="登录")).to_be_visible()
    shot(m, "01-desk-sign-in")
    m.get_by_label("访问令牌").fill(s.tokens["mediator"])
    m.get_by_role("button", name="登录").click()
    expect(m.get_by_role("heading", name="案件", exact=True)).to_be_visible()
    cookie = next(c for c in ctx.cookies() if c["name"] == "xj_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

    m.get_by_role("link", name="新建案件").click()
    m.get_by_label("骑手姓名").fill("李明")
    m.get_by_label("骑手平台编号").fill("R-LIMING")
    m.get_by_label("手机号").fill("13800138000")
    m.get_by_label("保险公司代码").fill("PICC")
    m.get_by_label("保单号").fill("PICC-2025-0001")
    m.get_by_label("理赔号").fill("CLM-88")
    m.get_by_label("保险公司拒赔理由").fill("事发时间与订单配送状态相差15分钟")
    m.get_by_label(re.compile("^事发时间")).fill(INCIDENT["at"][:16])
    m.get_by_label("纬度").fill(str(INCIDENT["location"]["lat"]))
    m.get_by_label("经度").fill(str(INCIDENT["location"]["lon"]))
    m.get_by_label("经过").fill("雨天送餐途中摔倒，右手骨折")
    m.get_by_label("伤情").fill("右手第五掌骨骨折")
    m.get_by_label(re.compile("^骑手同意调取")).check()
    m.get_by_label("同意方式").select_option("written")
    assert unlabelled(m) == []
    shot(m, "02-desk-new-case")
    m.get_by_role("button", name="立案").click()

    expect(m.get_by_role("heading", name=re.compile("^已立案"))).to_be_visible()
    number = m.inner_text("#case-number").strip()
    code = m.inner_text("#access-code").strip()
    assert re.fullmatch(r"XJ\d{6}-[A-Z0-9]{4}", number) and re.fullmatch(r"\d{8}", code)
    assert f"/status?case={number}&code={code}" in m.inner_text("#status-link")
    shot(m, "03-desk-case-created")

    # ---------------------------------------------------------------- evidence
    m.get_by_role("link", name="打开案件").click()
    case_url = m.url
    expect(m.locator("#case-status")).to_have_text("已立案")
    m.get_by_role("button", name="调取轨迹证据").click()
    expect(m.locator(".flash.ok")).to_contain_text("已申请调取轨迹证据")
    expect(m.locator("#case-status")).to_have_text("证据已生成", timeout=30_000)  # the page refreshes itself
    expect(m.locator("#assess-h")).to_be_visible()
    body = m.inner_text("main")
    assert "两单之间的合理衔接" in body and "属于连续配送" in body
    assert "上一单 MEING001507 于 14:02:00 结束" in body  # the packet's explanation, in plain words
    assert "在保险责任范围内" in body and "art-3.2" in body
    expect(m.locator(".phases tr.at-incident")).to_contain_text("事发 14:10:00")
    expect(m.locator("table.orders")).to_contain_text("MEING002716")
    m.wait_for_function("[...document.querySelectorAll('figure img')].every(i => i.complete)")
    assert img_loaded(m, ".fig-map img") and img_loaded(m, ".fig-timeline img")
    expect(m.locator("#audit-state")).to_contain_text("完整")
    shot(m, "04-desk-case-evidence")

    # the downloads reuse the session: the JSON file is the signed packet, byte for byte
    from services.mediation.packet.sign import published_keys, verify_bytes

    r = ctx.request.get(case_url + "/packet.json")
    assert r.status == 200 and "attachment" in r.headers["content-disposition"]
    assert verify_bytes(r.body(), published_keys(s.data_dir / "keys")).ok
    r = ctx.request.get(case_url + "/packet.pdf")
    assert r.status == 200 and r.body().startswith(b"%PDF")
    r = ctx.request.get(case_url + "/figures/map.svg")
    assert r.headers["content-type"].startswith("image/svg+xml") and "sandbox" in r.headers["content-security-policy"]

    # the mediator reviews first: the insurer's portal shows the case and its status, no evidence
    early = sign_in(browser, s, "insurer", "/insurer/")
    early.goto(case_url.replace(s.base_url, "").replace("/cases/", "/insurer/cases/"))
    expect(early.locator("#case-status")).to_have_text("证据已生成")
    expect(early.locator("#no-packet")).to_contain_text("调解员审查证据并发出调解方案后")
    assert early.locator("#signature").count() == 0 and early.locator("figure img").count() == 0
    assert "两单之间的合理衔接" not in early.inner_text("main")
    assert early.context.request.get(case_url + "/packet.json").status == 403
    shot(early, "05a-insurer-before-proposal")
    early.context.close()

    assert unlabelled(m) == []
    m.get_by_label("理由或备注").fill("连续配送的合理衔接阶段")
    m.get_by_role("button", name="开始审查").click()
    expect(m.locator("#case-status")).to_have_text("调解员审查中")
    m.get_by_role("button", name="向保险公司发送调解方案").click()
    expect(m.locator("#case-status")).to_have_text("调解方案已发送保险公司")
    expect(m.locator(".history")).to_contain_text("连续配送的合理衔接阶段")
    expect(m.locator("#packets .packet-sent")).to_have_count(1)  # the packet that went with the proposal

    # ---------------------------------------------------------------- the insurer answers
    ins = browser.new_context(base_url=s.base_url, viewport=DESK, locale="zh-CN").new_page()
    ins.goto("/insurer/")
    assert ins.evaluate("document.activeElement.id") == "token"  # the keyboard alone signs in
    ins.keyboard.type(s.tokens["insurer"])
    ins.keyboard.press("Enter")
    expect(ins.get_by_role("heading", name="本公司的案件")).to_be_visible()
    ins.keyboard.press("Tab")  # the first stop skips to the content
    assert ins.evaluate("document.activeElement.textContent") == "跳到正文"
    assert unlabelled(ins) == []
    shot(ins, "05-insurer-cases")
    ins.get_by_role("link", name=number).first.click()
    expect(ins.locator("#sig-state")).to_contain_text("签名有效")
    expect(ins.locator("main")).to_contain_text("李*")  # masked for the insurer
    assert "13800138000" not in ins.content()
    ins.wait_for_function("[...document.querySelectorAll('figure img')].every(i => i.complete)")
    assert img_loaded(ins, ".fig-map img") and img_loaded(ins, ".fig-timeline img")
    shot(ins, "06-insurer-packet")
    assert unlabelled(ins) == []
    ins.get_by_label("同意理赔").check()
    ins.get_by_label("理由或备注").fill("轨迹证据可信，同意赔付")
    ins.get_by_role("button", name="提交答复").click()
    expect(ins.locator("#case-status")).to_have_text("保险公司已同意理赔")
    expect(ins.locator(".flash.ok")).to_contain_text("已提交答复")
    expect(ins.locator("#respond")).to_contain_text("当前状态下无需答复")

    # ---------------------------------------------------------------- the mediator resolves it
    m.reload()
    expect(m.locator("#case-status")).to_have_text("保险公司已同意理赔")
    m.get_by_role("button", name="确认赔付，标记为已解决").click()
    expect(m.locator("#case-status")).to_have_text("已解决")
    expect(m.locator(".history")).to_contain_text("轨迹证据可信")
    expect(m.locator(".history")).to_contain_text("PICC 理赔部")  # people, not ids
    m.get_by_role("link", name="English").click()
    expect(m.locator("#case-status")).to_have_text("Resolved")
    assert m.get_attribute("html", "lang") == "en"
    shot(m, "07-desk-case-resolved-en")
    m.get_by_role("link", name="中文").click()
    expect(m.locator("#case-status")).to_have_text("已解决")
    m.goto("/")
    expect(m.locator("table.cases")).to_contain_text(number)
    shot(m, "08-desk-case-list")

    # ---------------------------------------------------------------- the rider, on his phone
    phone = browser.new_context(base_url=s.base_url, viewport=PHONE, is_mobile=True, has_touch=True,
                                device_scale_factor=2)
    p = phone.new_page()
    p.goto(f"/status?case={number}&code={code}")
    assert p.get_attribute("html", "lang") == "zh-CN"
    expect(p.locator("#status-label")).to_have_text("已解决")
    expect(p.locator("#next-step")).to_contain_text("赔付已确认")
    expect(p.locator("#updated")).not_to_be_empty()
    assert no_sideways_scroll(p)
    shot(p, "09-rider-status-zh")
    p.get_by_role("link", name="English").click()
    expect(p.locator("#status-label")).to_have_text("Resolved")
    assert p.get_attribute("html", "lang") == "en"
    assert no_sideways_scroll(p)
    shot(p, "10-rider-status-en")
    p.goto("/status")  # the choice is remembered
    expect(p.get_by_role("heading", name="Case status")).to_be_visible()
    assert unlabelled(p) == []
    assert no_sideways_scroll(p)
    shot(p, "11-rider-status-form-en")
    for c in (ctx, phone, ins.context):
        c.close()


def _no_gps_rider(s: System, rider: str) -> None:
    """The seed rider-day's platform events under another rider's id, and no GPS at all."""
    text = (SEED / "platform.jsonl").read_text().replace("R-LIMING", rider).replace('"lm-', f'"{rider}-')
    with s.client("feed") as c:
        r = c.post("/api/v1/feeds/platform-events", content=text.encode())
        assert r.status_code == 200 and r.json()["rejected"] == [], r.text


def test_undetermined_evidence_and_which_packet_went_to_the_insurer(browser: Any, system: System,
                                                                    shot: Any) -> None:
    """A rider with no GPS: the desk, the portal and the rider's page say 待定 and what would settle
    it, never "not covered"; re-requested evidence makes a new packet, and the desk shows which one
    the insurer has."""
    from playwright.sync_api import expect

    _no_gps_rider(system, "R-NOGPS")
    body = case_body()
    body["rider"] = {**body["rider"], "id": "R-NOGPS"}
    with system.client("mediator") as api:
        created = api.post("/api/v1/cases", json=body).json()
    cid = created["case_id"]
    m = sign_in(browser, system, "mediator", f"/cases/{cid}")
    m.get_by_role("button", name="调取轨迹证据").click()  # at once: the feeds just posted are stored
    expect(m.locator("#case-status")).to_have_text("证据已生成", timeout=30_000)
    expect(m.locator("#continuous-state")).to_have_text("待定：无法判断是否属于连续配送")
    expect(m.locator("#coverage-state")).to_have_text("待定：能否承保取决于补充证据")
    expect(m.locator("#settle-with")).to_contain_text("定位记录")
    main = m.inner_text("main")
    assert "不属于连续配送" not in main and "不在保险责任范围内" not in main
    shot(m, "15-desk-undetermined")

    for step in ("开始审查", "向保险公司发送调解方案"):
        m.get_by_role("button", name=step).click()
        m.wait_for_load_state()
    expect(m.locator("#case-status")).to_have_text("调解方案已发送保险公司")
    first = m.locator("#packets .packet-sent").count()
    assert first == 1
    m.get_by_role("button", name="开始审查").click()
    expect(m.locator("#case-status")).to_have_text("调解员审查中")
    m.get_by_role("button", name="重新调取轨迹证据").click()
    expect(m.locator("#case-status")).to_have_text("证据已生成", timeout=30_000)
    expect(m.locator("#packets tbody tr")).to_have_count(2)
    expect(m.locator("#packet-stale")).to_be_visible()  # the insurer has the older one
    expect(m.locator("#packets .packet-current")).to_have_count(1)
    expect(m.locator(".history .history-packet")).to_have_count(3)  # built, sent, built
    shot(m, "16-desk-two-packets")

    ins = sign_in(browser, system, "insurer", "/insurer/")
    ins.goto(f"/insurer/cases/{cid}")
    expect(ins.locator("#continuous-state")).to_have_text("待定：无法判断是否属于连续配送")
    expect(ins.locator("#undetermined-note")).to_be_visible()
    expect(ins.locator("#packets tbody tr")).to_have_count(1)  # only the packet it was sent
    assert "不在保险责任范围内" not in ins.inner_text("main")
    shot(ins, "17-insurer-undetermined")

    p = browser.new_context(base_url=system.base_url, viewport=PHONE, is_mobile=True).new_page()
    p.goto(f"/status?case={created['case_number']}&code={created['rider_access_code']}")
    expect(p.locator("#evidence-undetermined")).to_contain_text("待定")
    assert no_sideways_scroll(p)
    shot(p, "18-rider-undetermined")
    for c in (m.context, ins.context, p.context):
        c.close()


def test_what_was_sent_shows_for_mediator_and_rider(browser: Any, system: System, shot: Any) -> None:
    from playwright.sync_api import expect

    created = open_case_api(system)
    m = sign_in(browser, system, "mediator", f"/cases/{created['case_id']}")
    assert m.url.endswith(f"/cases/{created['case_id']}")  # back where the link pointed
    reload_until(m, "table.notes")  # notify sends on its own time
    expect(m.locator("table.notes")).to_contain_text("短信")
    expect(m.locator("table.notes")).to_contain_text("已发送")
    p = browser.new_context(base_url=system.base_url, viewport=PHONE, is_mobile=True).new_page()
    p.goto(f"/status?case={created['case_number']}&code={created['rider_access_code']}")
    reload_until(p, ".sent li")
    expect(p.locator(".sent")).to_contain_text(created["case_number"])
    expect(p.locator(".sent")).to_contain_text("138****8000")
    assert no_sideways_scroll(p)
    shot(p, "12-rider-status-messages")


def test_the_wrong_role_gets_no_case(browser: Any, system: System, shot: Any) -> None:
    from playwright.sync_api import expect

    created = open_case_api(system)
    cid = created["case_id"]
    other = sign_in(browser, system, "insurer_other", "/insurer/")
    expect(other.locator("main")).to_contain_text("没有符合条件的案件")
    r = other.goto(f"/insurer/cases/{cid}")
    assert r is not None and r.status == 404
    expect(other.locator("main")).to_contain_text("找不到该页面或案件")
    shot(other, "13-insurer-other-case-404")
    assert other.context.request.get(f"/cases/{cid}/figures/map.svg").status == 404
    other.goto(f"/cases/{cid}")  # the mediators' page: sent to his own portal
    assert other.url.rstrip("/").endswith("/insurer")

    elsewhere = sign_in(browser, system, "mediator_elsewhere")
    r = elsewhere.goto(f"/cases/{cid}")
    assert r is not None and r.status == 404

    anon = browser.new_context(base_url=system.base_url, viewport=DESK).new_page()
    anon.goto(f"/cases/{cid}")
    expect(anon.get_by_role("heading", name="登录")).to_be_visible()
    assert anon.context.request.get(f"/cases/{cid}/packet.json", max_redirects=0).status == 303

    rider = browser.new_context(base_url=system.base_url, viewport=PHONE, is_mobile=True).new_page()
    r = rider.goto(f"/status?case={created['case_number']}&code=00000000")
    assert r is not None and r.status == 404
    wrong_code = rider.inner_text("#status-error")
    assert "不正确" in wrong_code
    shot(rider, "14-rider-wrong-code")
    rider.goto("/status?case=XJ000000-NONE&code=12345678")
    assert rider.inner_text("#status-error") == wrong_code  # no hint whether the case exists
    assert rider.input_value("#code") == ""  # the code is not echoed back
    assert no_sideways_scroll(rider)


def test_no_consent_disables_evidence_and_a_stale_button_names_the_allowed_steps(browser: Any, system: System,
                                                                                 shot: Any) -> None:
    from playwright.sync_api import expect

    m = sign_in(browser, system, "mediator")
    m.goto("/cases/new")
    m.get_by_label("骑手姓名").fill("张三")
    m.get_by_label("骑手平台编号").fill("R-ZHANG")
    m.get_by_label("手机号").fill("not a phone")
    m.get_by_label("保险公司代码").fill("PICC")
    m.get_by_label("保单号").fill("P-1")
    m.get_by_label("理赔号").fill("C-1")
    m.get_by_label(re.compile("^事发时间")).fill("2025-05-14T14:10")
    m.get_by_role("button", name="立案").click()
    expect(m.locator("#errors")).to_contain_text("手机号")  # refused, in his language, values kept
    assert m.input_value("#rider_name") == "张三"
    m.get_by_label("手机号").fill("13900139000")
    m.get_by_role("button", name="立案").click()
    expect(m.locator(".flash.warn")).to_contain_text("尚未同意")
    m.get_by_role("link", name="打开案件").click()
    button = m.get_by_role("button", name="调取轨迹证据")
    expect(button).to_be_disabled()
    expect(m.locator("#no-consent")).to_contain_text("个人信息保护法")
    expect(m.locator("#consent-state")).to_contain_text("未同意")
    shot(m, "15-desk-case-without-consent")

    created = open_case_api(system)
    m.goto(f"/cases/{created['case_id']}")
    with system.client("mediator") as api:  # meanwhile, at another desk
        assert api.post(f"/api/v1/cases/{created['case_id']}/transitions",
                        json={"to": "withdrawn", "reason": "rider withdrew"}).status_code == 200
    m.get_by_role("button", name="调取轨迹证据").click()
    expect(m.locator(".flash.error")).to_contain_text("无法从“已撤回”变更为“正在调取轨迹证据”")
    expect(m.locator(".flash.error")).to_contain_text("已结案")
    expect(m.locator("#case-status")).to_have_text("已撤回")
    shot(m, "16-desk-illegal-transition")

    m.goto("/")  # cases opened today fall due within a day: the desk shows them
    expect(m.locator(".near-list li.soon").first).to_contain_text("已立案")
    assert m.locator("table.cases tr.soon").count() >= 1
    m.get_by_label("状态").select_option("withdrawn")
    m.get_by_role("button", name="筛选").click()
    expect(m.locator("table.cases tbody tr")).to_have_count(1)
    expect(m.locator("table.cases")).to_contain_text(created["case_number"])
    m.get_by_label("状态").select_option("")
    m.get_by_label("搜索").fill("张三")
    m.get_by_role("button", name="筛选").click()
    expect(m.locator("table.cases tbody tr")).to_have_count(1)
    m.get_by_role("link", name="清除").click()
    shot(m, "18-desk-list-deadlines")


def test_desk_pages_fit_a_phone(browser: Any, system: System, shot: Any) -> None:
    from playwright.sync_api import expect

    created = open_case_api(system)
    m = sign_in(browser, system, "mediator", viewport=PHONE)
    assert no_sideways_scroll(m)
    m.goto(f"/cases/{created['case_id']}?lang=en")
    expect(m.locator("#case-status")).to_have_text("Case opened")
    assert no_sideways_scroll(m)
    m.goto("/cases/new")
    expect(m.get_by_role("heading", name="New case")).to_be_visible()  # remembered
    assert no_sideways_scroll(m)
    shot(m, "17-desk-new-case-phone-en")
