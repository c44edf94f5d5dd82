"""End-to-end fixtures: the whole system on SQLite (services.embedded), users of each role, the
seed case's feeds, and headless Chromium (Debian's package) driven by Playwright. Without
Chromium or Playwright the browser tests skip with the reason, except under CI=true, where they
fail. Screenshots go to var/test-artefacts/screenshots/."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.embedded import System, running_system

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"
INCIDENT = json.loads((SEED / "incidents.jsonl").read_text().splitlines()[0])
SHOTS = ROOT / "var" / "test-artefacts" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM = os.environ.get("XJ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 375, "height": 740}
DESK = {"width": 1280, "height": 900}


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}: the browser tests must run in CI (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    d = tmp_path_factory.mktemp("web")
    with running_system(d / "var", f"sqlite:///{d / 'xianjie.db'}") as s:
        s.tokens = {
            "mediator": s.add_user("mediator", "王调解", office="xiacheng", email="wang@example.org"),
            "mediator_elsewhere": s.add_user("mediator", "赵调解", office="other-office"),
            "insurer": s.add_user("insurer", "PICC 理赔部", insurer="PICC", email="claims@picc.example"),
            "insurer_other": s.add_user("insurer", "Other claims", insurer="OTHER"),
            "feed": s.add_user("feed", "meituan feed"),
        }
        feed_seed(s)
        yield s


def feed_seed(s: System) -> None:
    """The seed rider-day, posted through the API as a platform would."""
    with s.client("feed") as c:
        r = c.post("/api/v1/feeds/platform-events", content=(SEED / "platform.jsonl").read_bytes())
        assert r.status_code == 200 and r.json()["rejected"] == [], r.text
        r = c.post("/api/v1/feeds/gps", content=(SEED / "gps.jsonl").read_bytes())
        assert r.status_code == 200 and r.json()["rejected"] == [], r.text


def case_body(consent: bool = True, insurer: str = "PICC") -> dict[str, Any]:
    return {
        "rider": {"id": "R-LIMING", "name": "李明", "phone": "13800138000"},
        "insurer_code": insurer, "policy_number": "PICC-2025-0001", "claim_number": "CLM-88",
        "incident": {"at": INCIDENT["at"], "location": INCIDENT["location"], "description": "雨天摔倒，手部骨折",
                     "injury": "hand fracture"},
        "denial_reason": "事发时间与订单配送状态相差15分钟",
        "consent": {"given": consent, "at": "2025-05-20T10:00:00+08:00", "method": "written"},
    }


def open_case_api(s: System, **kw: Any) -> dict[str, Any]:
    with s.client("mediator") as m:
        r = m.post("/api/v1/cases", json=case_body(**kw))
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip: playwright; it drives Debian's chromium)")
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def shot() -> Any:
    """``shot(page, "name")``: a full-page screenshot under var/test-artefacts/screenshots/."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str, full: bool = True) -> Path:
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        return path

    return take


def no_sideways_scroll(page: Any) -> bool:
    """Nothing wider than the screen (a phone would zoom out, or scroll sideways). Compared with
    the viewport's width, not innerWidth: on a mobile viewport innerWidth grows with the page."""
    return bool(page.evaluate("w => document.documentElement.scrollWidth <= w", page.viewport_size["width"]))


def unlabelled(page: Any) -> list[str]:
    """Form controls a screen reader could not name (no <label>, no aria-label)."""
    return list(page.evaluate("""[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map(e => e.name || e.id)"""))
