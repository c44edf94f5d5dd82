"""Group 6, hostile users: every route of the app (API, notify's router and the web pages), found
by walking the app itself, called as nobody, with a bad token, as a mediator, as the case's insurer,
as another insurer and as the rider; access codes guessed until the lock; packets and audit trails
tampered with and caught by the verification functions and the command line.

The expected answers are data (``POLICY``, keyed by method and path): a route the app serves that
the table does not name fails the matrix, so a new route cannot go in without a decision on who may
call it."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.embedded import System, running_system, wait_for
from tests.e2e.conftest import INCIDENT, feed_seed

ROOT = Path(__file__).resolve().parents[2]
IDENTITIES = ("anonymous", "bad_token", "mediator", "insurer_a", "insurer_b", "rider")
OUTSIDERS = ("anonymous", "bad_token", "insurer_b", "rider")  # must never see case A's data
STAFF = {"mediator", "insurer_a", "insurer_b"}
BAD_TOKEN = "xj-not-a-token-" + "A" * 30
BAD_COOKIE = "eyJ1aWQiOiJhZG1pbiJ9.forged.signature"  # a session cookie nobody signed

# Case A: insurer PICC's case; every value distinctive, so that a leak can be found by search.
CASE_A: dict[str, Any] = {
    "rider": {"id": "R-LIMING", "name": "李明远", "phone": "13912345678"},
    "insurer_code": "PICC", "policy_number": "PICC-POL-A-77123", "claim_number": "CLM-A-55821",
    "incident": {"at": INCIDENT["at"], "location": INCIDENT["location"],
                 "description": "雨天摔倒 hostile-matrix-description", "injury": "wrist fracture"},
    "denial_reason": "hostile-matrix-denial 相差15分钟",
    "consent": {"given": True, "at": "2025-05-20T10:00:00+08:00", "method": "written"},
}
# the body the matrix posts to POST /api/v1/cases (a second case, nothing of case A in it)
OTHER_CASE = {**CASE_A, "rider": {"id": "R-OTHER", "name": "张三", "phone": "13700000000"},
              "policy_number": "PICC-POL-Z-1", "claim_number": "CLM-Z-1", "denial_reason": "other",
              "incident": {**CASE_A["incident"], "description": "other"}}


# ------------------------------------------------------------------------------------------------
# the policy, as data

@dataclass(frozen=True)
class Rule:
    """Who may call a route and what a permitted caller gets. ``ok`` maps an identity to the
    statuses it may get; ``public`` routes answer everybody (``ok["*"]`` for those not named);
    ``sees_a``: the identities whose answer may carry case A's data (default: those in ``ok``
    other than insurer B)."""

    ok: dict[str, set[int]]
    public: bool = False
    web: bool = False
    sees_a: frozenset[str] | None = None

    def allowed(self, who: str) -> set[int] | None:
        if who in self.ok:
            return self.ok[who]
        return self.ok.get("*") if self.public else None

    def may_see_a(self, who: str) -> bool:
        if who == "insurer_b":
            return False
        if self.sees_a is not None:
            return who in self.sees_a
        return who in self.ok


MI = {"mediator": {200}, "insurer_a": {200}}
# case A is at evidence_ready when the matrix runs: the mediator has not reviewed it, so its insurer
# is refused the evidence (the packet, its PDF and figures); it sees the case and its status
EVIDENCE = {"mediator": {200}, "insurer_a": {403}}
MEDIATOR_SEES = frozenset({"mediator"})
POLICY: dict[tuple[str, str], Rule] = {
    # the API (API_CONTRACT.md)
    ("POST", "/api/v1/feeds/platform-events"): Rule({"mediator": {200}}),
    ("POST", "/api/v1/feeds/gps"): Rule({"mediator": {200}}),
    ("POST", "/api/v1/cases"): Rule({"mediator": {201}}),
    ("GET", "/api/v1/cases"): Rule({"mediator": {200}, "insurer_a": {200}, "insurer_b": {200}}),
    ("GET", "/api/v1/cases/{case_id}"): Rule(MI),
    ("POST", "/api/v1/cases/{case_id}/evidence-requests"): Rule({"mediator": {202, 409}}),
    ("POST", "/api/v1/cases/{case_id}/transitions"): Rule({"mediator": {409}, "insurer_a": {403, 409}}),
    ("GET", "/api/v1/cases/{case_id}/evidence-packet"): Rule(EVIDENCE, sees_a=MEDIATOR_SEES),
    ("POST", "/api/v1/cases/{case_id}/insurer-response"): Rule({"insurer_a": {200, 409}}),
    ("GET", "/api/v1/cases/{case_id}/audit"): Rule(MI),
    ("GET", "/api/v1/cases/{case_id}/gaps"): Rule(EVIDENCE, sees_a=MEDIATOR_SEES),
    # the office (issue 14): corrections, attachments (the insurer only from proposal_sent; case A is
    # at evidence_ready), the report
    ("PATCH", "/api/v1/cases/{case_id}"): Rule({"mediator": {200}}),
    ("POST", "/api/v1/cases/{case_id}/attachments"): Rule({"mediator": {201}}),
    ("GET", "/api/v1/cases/{case_id}/attachments"): Rule({"mediator": {200}, "insurer_a": {403}}),
    ("GET", "/api/v1/cases/{case_id}/attachments/{attachment_id}"): Rule({"mediator": {200}, "insurer_a": {403}}),
    ("GET", "/api/v1/reports/insurers"): Rule({"mediator": {200}}),
    ("PUT", "/api/v1/insurers/{code}/webhook"): Rule({"mediator": {200}}),
    ("GET", "/api/v1/keys"): Rule({"*": {200}}, public=True),
    ("POST", "/api/v1/packets/verify"): Rule({"*": {200}}, public=True, sees_a=frozenset()),
    ("GET", "/api/v1/status/{case_number}"): Rule({"rider": {200}, "*": {422}}, public=True),
    # notify's router
    ("GET", "/api/v1/cases/{case_id}/notifications"): Rule(MI),
    ("GET", "/api/v1/notifications/dead"): Rule({"mediator": {200}}),
    ("POST", "/api/v1/notifications/{notification_id}/replay"): Rule({"mediator": {202, 404, 409}}),  # 202 if it died
    # operations and the API's own documents
    ("GET", "/healthz"): Rule({"*": {200}}, public=True),
    ("GET", "/readyz"): Rule({"*": {200}}, public=True),
    ("GET", "/openapi.json"): Rule({"*": {200}}, public=True),
    ("GET", "/docs"): Rule({"*": {200}}, public=True),
    ("GET", "/docs/oauth2-redirect"): Rule({"*": {200}}, public=True),
    ("GET", "/redoc"): Rule({"*": {200}}, public=True),
    # web pages
    ("GET", "/static/{name}"): Rule({"*": {200}}, public=True, web=True),
    ("GET", "/signin"): Rule({"mediator": {303}, "insurer_a": {303}, "insurer_b": {303}, "*": {200}},
                             public=True, web=True),
    ("POST", "/signin"): Rule({"*": {401, 403}}, public=True, web=True),  # a wrong token: the form again
    ("POST", "/signout"): Rule({"*": {303, 403}}, public=True, web=True),
    ("GET", "/"): Rule({"mediator": {200}}, web=True),
    ("GET", "/cases/new"): Rule({"mediator": {200}}, web=True),
    ("POST", "/cases/new"): Rule({"mediator": {422}}, web=True),  # an empty form: the form with errors
    ("GET", "/cases/{case_id}"): Rule({"mediator": {200}}, web=True),
    ("POST", "/cases/{case_id}/transitions"): Rule({"mediator": {303}}, web=True),
    ("GET", "/cases/{case_id}/figures/{name}"): Rule(EVIDENCE, web=True, sees_a=MEDIATOR_SEES),
    ("GET", "/cases/{case_id}/packet.json"): Rule(EVIDENCE, web=True, sees_a=MEDIATOR_SEES),
    ("GET", "/cases/{case_id}/packet.pdf"): Rule(EVIDENCE, web=True, sees_a=MEDIATOR_SEES),
    ("GET", "/insurer/"): Rule({"insurer_a": {200}, "insurer_b": {200}}, web=True),
    ("GET", "/insurer/cases/{case_id}"): Rule({"insurer_a": {200}}, web=True),
    ("POST", "/insurer/cases/{case_id}/response"): Rule({"insurer_a": {303}}, web=True),
    ("GET", "/status"): Rule({"*": {200}}, public=True, web=True),
    ("POST", "/cases/{case_id}/correct"): Rule({"mediator": {303}}, web=True),
    ("POST", "/cases/{case_id}/attachments"): Rule({"mediator": {303}}, web=True),
    ("GET", "/cases/{case_id}/attachments/{attachment_id}"): Rule({"mediator": {200}, "insurer_a": {403}}, web=True),
    ("GET", "/reports"): Rule({"mediator": {200}}, web=True),
    ("GET", "/reports.csv"): Rule({"mediator": {200}}, web=True),
}


# ------------------------------------------------------------------------------------------------
# the world: one system, case A with its evidence packet, a signed-in session per identity

@dataclass
class World:
    system: System
    case_id: str
    number: str
    code: str
    notification_id: str
    tokens: dict[str, str]
    cookies: dict[str, str] = field(default_factory=dict)
    csrf: dict[str, str] = field(default_factory=dict)
    markers: dict[str, str] = field(default_factory=dict)  # case A's identifying strings
    routes: list[tuple[str, str]] = field(default_factory=list)
    attachment_id: str = ""


def _sign_in(s: System, token: str) -> tuple[str, str]:
    """A browser session for a token: (session cookie, its CSRF token)."""
    with httpx.Client(base_url=s.base_url, timeout=30) as b:
        page = b.get("/signin")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text[:300]
        r = b.post("/signin", data={"csrf": csrf.group(1), "token": token, "next": "/"})
        assert r.status_code == 303, r.text[:300]
        home = b.get(r.headers["location"])
        assert home.status_code == 200
        csrf2 = re.search(r'name="csrf" value="([^"]+)"', home.text)
        assert csrf2, home.text[:300]
        return b.cookies["xj_session"], csrf2.group(1)


def _anonymous_session(s: System) -> tuple[str, str]:
    with httpx.Client(base_url=s.base_url, timeout=30) as b:
        page = b.get("/signin")
        m = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert m
        return b.cookies["xj_session"], m.group(1)


def app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route the running system serves: built the way the bootstrap
    builds it (same settings, from the environment running_system set), walked, not listed."""
    from services.bootstrap import door
    from services.mediation.bootstrap import bootstrap as mediation
    from services.trajectory.bootstrap import bootstrap as trajectory
    from shared.bus import InMemoryBus
    from shared.config import Settings
    from shared.db import engine_for

    engine = engine_for(Settings())
    try:
        bus = InMemoryBus()
        app = door(mediation(engine=engine, bus=bus), trajectory(engine=engine, bus=bus), engine)
        out = sorted({(m, path) for path, methods in _walk(app.routes) for m in methods if m != "HEAD"})
    finally:
        engine.dispose()
    return out


def _walk(routes: Any) -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of routes, through included routers (FastAPI >= 0.16x keeps them nested)."""
    from starlette.routing import Route

    for r in routes:
        if hasattr(r, "effective_route_contexts"):
            for ctx in r.effective_route_contexts():
                yield ctx.path, set(getattr(ctx.original_route, "methods", None) or ())
        elif isinstance(r, Route):
            yield r.path, set(r.methods or ())
        else:
            raise AssertionError(f"a route the matrix cannot walk: {r!r}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    d = tmp_path_factory.mktemp("hostile")
    with running_system(d / "var", f"sqlite:///{d / 'xianjie.db'}") as s:
        tokens = {
            "mediator": s.add_user("mediator", "王调解", office="xiacheng", email="wang@example.org"),
            "insurer_a": s.add_user("insurer", "PICC 理赔部", insurer="PICC", email="claims@picc.example"),
            "insurer_b": s.add_user("insurer", "Other claims", insurer="OTHER", email="claims@other.example"),
            "feed": s.add_user("feed", "meituan feed"),
        }
        s.tokens = dict(tokens)
        feed_seed(s)
        with s.client("mediator") as m:
            r = m.post("/api/v1/cases", json=CASE_A)
            assert r.status_code == 201, r.text
            created = r.json()
            cid = created["case_id"]
            assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
            case = wait_for(lambda: (c := m.get(f"/api/v1/cases/{cid}").json())["status"] == "evidence_ready" and c)
            notes = wait_for(lambda: m.get(f"/api/v1/cases/{cid}/notifications").json())
        w = World(s, cid, created["case_number"], created["rider_access_code"], notes[0]["id"], tokens)
        with s.client("mediator") as m:
            r = m.post(f"/api/v1/cases/{cid}/attachments", data={"kind": "medical_report"},
                       files={"file": ("report.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")})
            assert r.status_code == 201, r.text
            w.attachment_id = r.json()["attachment_id"]
        w.markers = {
            "case id": cid, "case number": w.number, "access code": w.code, "packet id": case["packet_id"],
            "rider name": "李明远", "masked name": "李**", "rider phone": "13912345678",
            "masked phone": "139****5678", "policy number": "PICC-POL-A-77123", "claim number": "CLM-A-55821",
            "description": "hostile-matrix-description", "denial reason": "hostile-matrix-denial",
        }
        for who in ("mediator", "insurer_a", "insurer_b"):
            w.cookies[who], w.csrf[who] = _sign_in(s, tokens[who])
        for who in ("anonymous", "rider"):
            w.cookies[who], w.csrf[who] = _anonymous_session(s)
        w.cookies["bad_token"], w.csrf["bad_token"] = BAD_COOKIE, "forged-csrf"
        w.routes = app_routes()
        yield w


# ------------------------------------------------------------------------------------------------
# one call of the matrix

PARAMS = {"case_id", "case_number", "code", "notification_id", "name", "attachment_id"}


def fill(path: str, w: World) -> str:
    names = set(re.findall(r"{(\w+)}", path))
    assert names <= PARAMS, f"{path}: the matrix does not know how to fill {names - PARAMS}"
    values = {"case_id": w.case_id, "case_number": w.number, "code": "PICC", "notification_id": w.notification_id,
              "attachment_id": w.attachment_id,
              "name": "map.svg" if "/figures/" in path else "xj.css"}
    return re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path)


def request_for(method: str, path: str, who: str, w: World) -> dict[str, Any]:
    """The keyword arguments of one call: credentials of ``who`` (a bearer token for the API, a
    session cookie for pages; both are always sent, as a browser-and-script user would), the
    body the route takes, the rider's code where a route takes one."""
    headers: dict[str, str] = {"Cookie": f"xj_session={w.cookies[who]}"}
    if who == "bad_token":
        headers["Authorization"] = f"Bearer {BAD_TOKEN}"
    elif who in w.tokens:
        headers["Authorization"] = f"Bearer {w.tokens[who]}"
    kw: dict[str, Any] = {"headers": headers}
    csrf = w.csrf[who]
    if path == "/api/v1/status/{case_number}" and who == "rider":
        kw["params"] = {"code": w.code}
    elif path == "/status" and who == "rider":
        kw["params"] = {"case": w.number, "code": w.code}
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/feeds/platform-events"): {"content": b""},
        ("POST", "/api/v1/feeds/gps"): {"content": b""},
        ("POST", "/api/v1/cases"): {"json": OTHER_CASE},
        ("POST", "/api/v1/cases/{case_id}/transitions"): {"json": {"to": "closed", "reason": "hostile"}},
        ("POST", "/api/v1/cases/{case_id}/insurer-response"): {"json": {"decision": "reject", "reason": "hostile"}},
        ("PUT", "/api/v1/insurers/{code}/webhook"): {"json": {"url": "http://127.0.0.1:9/hook",
                                                              "secret": "whsec_" + "A" * 32}},
        ("POST", "/api/v1/packets/verify"): {"content": b"{}"},
        ("PATCH", "/api/v1/cases/{case_id}"): {"json": {"claim_number": "CLM-A-55821", "reason": "hostile (no change)"}},
        ("POST", "/api/v1/cases/{case_id}/attachments"): {"data": {"kind": "photo"},
                                                          "files": {"file": ("p.png", b"\x89PNG\r\n\x1a\n0000", "image/png")}},
        ("POST", "/cases/{case_id}/correct"): {"data": {"csrf": csrf, "reason": "hostile (no change)"}},
        ("POST", "/cases/{case_id}/attachments"): {"data": {"csrf": csrf, "kind": "photo"},
                                                   "files": {"file": ("p.png", b"\x89PNG\r\n\x1a\n0000", "image/png")}},
        ("POST", "/signin"): {"data": {"csrf": csrf, "token": "wrong", "next": "/"}},
        ("POST", "/signout"): {"data": {"csrf": csrf}},
        ("POST", "/cases/new"): {"data": {"csrf": csrf}},
        ("POST", "/cases/{case_id}/transitions"): {"data": {"csrf": csrf, "to": "closed", "reason": "hostile"}},
        ("POST", "/insurer/cases/{case_id}/response"): {"data": {"csrf": csrf, "decision": "reject",
                                                                  "reason": "hostile"}},
    }
    kw.update(bodies.get((method, path), {}))
    return kw


def login_or_refusal(r: httpx.Response, rule: Rule, who: str) -> bool:
    """Is this answer a refusal: 401/403/404, or (pages) a redirect to sign in or to the caller's
    own home, or the sign-in form itself?"""
    if r.status_code in (401, 403, 404):
        return True
    if not rule.web:
        return False
    if r.status_code == 303:
        target = urlsplit(r.headers.get("location", "")).path
        homes = {"/signin", "/insurer/"} if who not in STAFF else {"/", "/insurer/"}
        return target in homes
    return r.status_code == 200 and 'name="token"' in r.text  # the sign-in form, rendered in place


def leaks(r: httpx.Response, url: str, w: World, *, allow: set[str] | None = None) -> list[str]:
    """Case A's identifying strings in an answer (its body and headers), after taking out the
    caller's own URL wherever the answer repeats it (a redirect's ``next``, a language link)."""
    text = r.content.decode("utf-8", "replace") + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items())
    path = urlsplit(url).path
    for echo in sorted({url, path, quote(path, safe=""), quote(path)}, key=len, reverse=True):
        text = text.replace(echo, "")
    unescaped = text.encode("utf-8", "replace").decode("unicode_escape", "replace") if "\\u" in text else ""
    return [f"{name} ({value!r})" for name, value in w.markers.items()
            if name not in (allow or set()) and (value in text or value in unescaped)]


def test_every_route_with_every_identity(world: World, reliability: Any) -> None:
    w = world
    unknown = [rt for rt in w.routes if rt not in POLICY]
    assert not unknown, f"routes served but missing from the policy table (decide who may call them): {unknown}"
    stale = [rt for rt in POLICY if rt not in w.routes]
    assert not stale, f"policy names routes the app no longer serves: {stale}"
    with w.system.client() as c:
        openapi = c.get("/openapi.json").json()
    api_paths = {(m.upper(), p) for p, ops in openapi["paths"].items() for m in ops}
    assert api_paths <= set(w.routes), f"the live OpenAPI document has routes the walked app lacks: {api_paths - set(w.routes)}"

    failures: list[str] = []
    leaked: list[str] = []
    server_errors = 0
    calls = 0
    with httpx.Client(base_url=w.system.base_url, timeout=60, follow_redirects=False) as client:
        # reads first, then writes (a write may move case A on; reads see it as the matrix found it)
        order = sorted(w.routes, key=lambda rt: (rt[0] != "GET", rt[1]))
        for method, template in order:
            rule = POLICY[(method, template)]
            url = fill(template, w)
            for who in IDENTITIES:
                calls += 1
                r = client.request(method, url, **request_for(method, template, who, w))
                where = f"{method} {template} as {who}: {r.status_code}"
                if r.status_code >= 500:
                    server_errors += 1
                    failures.append(f"{where} (server error) {r.text[:200]}")
                    continue
                allowed = rule.allowed(who)
                if allowed is not None:
                    if r.status_code not in allowed:
                        failures.append(f"{where}, expected one of {sorted(allowed)}: {r.text[:200]}")
                elif who in ("anonymous", "bad_token") and not rule.web:
                    if r.status_code != 401:
                        failures.append(f"{where}, expected 401 (no or a bad token)")
                elif who == "rider" and not rule.web:
                    if r.status_code != 401:
                        failures.append(f"{where}, expected 401 (an access code is no token)")
                elif not login_or_refusal(r, rule, who):
                    failures.append(f"{where}, expected a refusal (401/403/404 or sign-in)")
                if not rule.may_see_a(who):
                    # the rider's own status: his case number and code (he typed them; the page's
                    # links repeat them) and the masked number his messages went to
                    allow = {"case number", "access code", "masked phone"} \
                        if who == "rider" and "status" in template else set()
                    found = leaks(r, url, w, allow=allow)
                    if found:
                        leaked.append(f"{where}: {', '.join(found)}")
    reliability.record(6, "every route × every identity (generated matrix)",
                       load=f"{len(w.routes)} routes × {len(IDENTITIES)} identities = {calls} requests",
                       injected="no credentials, a bad token / forged session cookie, mediator, the case's insurer, "
                                "another insurer, the rider's access code",
                       lost=len(failures), leaked=len(leaked),
                       detail=f"{server_errors} 5xx; {len(failures)} answers off the policy table; "
                              f"{len(leaked)} answers to outsiders carrying case A's identifying strings"
                              + "".join(f"; {x[:160]}" for x in (failures + leaked)[:3]))
    assert not leaked, "insurer B / outsiders saw case A's data:\n" + "\n".join(leaked)
    assert not failures, "\n".join(failures)
    assert server_errors == 0


# ------------------------------------------------------------------------------------------------
# (b) access codes guessed

def _open_case(w: World, **over: Any) -> dict[str, Any]:
    body = {**OTHER_CASE, **over}
    with w.system.client("mediator") as m:
        r = m.post("/api/v1/cases", json=body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


def test_access_codes_brute_forced(world: World, reliability: Any) -> None:
    w = world
    target = _open_case(w)
    number, right = target["case_number"], target["rider_access_code"]
    wrong = [f"{k:08d}" for k in range(40) if f"{k:08d}" != right]
    before_lock = 0
    answers: list[int] = []
    with w.system.client() as public:
        for code in wrong[:30]:
            r = public.get(f"/api/v1/status/{number}", params={"code": code})
            answers.append(r.status_code)
            if r.status_code == 429:
                break
            assert r.status_code == 404, r.text
            before_lock += 1
        assert answers[-1] == 429, f"no lock after {before_lock} wrong codes: {answers}"
        locked_right = public.get(f"/api/v1/status/{number}", params={"code": right})
        assert locked_right.status_code == 429, "the right code went through during the lock"
        assert "Retry-After" in locked_right.headers
        page = public.get("/status", params={"case": number, "code": right})
        # the status page answers to the same lock, and shows no status
        assert page.status_code == 429 and 'id="status-label"' not in page.text
    # the web form: its own case, guessed through the page
    other = _open_case(w)
    page_before = 0
    with w.system.client() as browser:
        for code in wrong[:30]:
            r = browser.get("/status", params={"case": other["case_number"], "code": code})
            if r.status_code == 429:
                break
            assert r.status_code == 404
            page_before += 1
        assert r.status_code == 429
        assert browser.get("/status", params={"case": other["case_number"],
                                              "code": other["rider_access_code"]}).status_code == 429
    # one client spraying guesses over many case numbers, each kept under its case's limit: the
    # client itself is locked out (and then even a right code of a fresh case is refused)
    from services.mediation.settings import MediationSettings

    per_client = MediationSettings().status_client_max_failures
    sprayed = [_open_case(w) for _ in range(per_client // (before_lock - 1) + 1)]
    spray_answers: list[int] = []
    with w.system.client() as public:
        for case in sprayed:
            for code in wrong[:before_lock - 1]:
                spray_answers.append(public.get(f"/api/v1/status/{case['case_number']}",
                                                params={"code": code}).status_code)
        first_429 = spray_answers.index(429) if 429 in spray_answers else None
        right_after = public.get(f"/api/v1/status/{sprayed[-1]['case_number']}",
                                 params={"code": sprayed[-1]["rider_access_code"]}).status_code
        page_after = public.get("/status", params={"case": sprayed[-1]["case_number"],
                                                   "code": sprayed[-1]["rider_access_code"]}).status_code
    # wrong codes this client got answered (404) before it was refused: the API's, the page's, the spray's
    client_allowance = before_lock + page_before + (first_429 if first_429 is not None else len(spray_answers))
    got_through = sum(1 for a in answers + spray_answers if a == 200) + (right_after == 200) + (page_after == 200)
    reliability.record(6, "access codes brute-forced",
                       load=f"{len(answers)} guesses at one case (API), {page_before + 1} through the page, "
                            f"{len(spray_answers)} over {len(sprayed)} cases from one client",
                       injected="wrong 8-digit codes, then the right code during the lock",
                       leaked=got_through,
                       detail=f"a case locks after {before_lock} wrong codes (API and page alike), the right code "
                              f"refused (429) while locked; one client guessing over {len(sprayed)} case numbers "
                              f"({before_lock - 1} each) locked out after {client_allowance} wrong codes in all")
    assert before_lock == page_before == MediationSettings().status_max_failures
    assert got_through == 0
    assert first_429 is not None, "one client guessed at many case numbers without ever being stopped"
    assert client_allowance == per_client
    assert right_after == 429 and page_after == 429, "a client locked for guessing still read a status"


# ------------------------------------------------------------------------------------------------
# (c) tampered packets and audit trails

def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "services.mediation", *args], cwd=ROOT,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_tampered_packets_and_audit_trails_are_caught(world: World, tmp_path: Path, reliability: Any) -> None:
    from services.mediation.adapters.tables import AuditRow, CaseRow
    from services.mediation.packet.canonical import dump_packet, manifest_for, unsigned
    from services.mediation.packet.sign import KeyRing, verify_bytes
    from services.mediation.service_layer.cases import Mediation
    from services.mediation.settings import MediationSettings
    from shared.db import make_engine

    w = world
    key_dir = w.system.data_dir / "keys"
    with w.system.client("mediator") as m:
        raw = m.get(f"/api/v1/cases/{w.case_id}/evidence-packet").content
    assert verify_bytes(raw, key_dir).ok

    # one byte changed, at 257 places spread over the file: each must be caught
    positions = sorted({int(i * (len(raw) - 1) / 256) for i in range(257)})
    missed_flips = []
    for i in positions:
        b = bytearray(raw)
        b[i] = ord("0") if b[i] != ord("0") else ord("1")
        if verify_bytes(bytes(b), key_dir).ok:
            missed_flips.append(i)

    # re-signed with a fresh key that is not in the ring: untouched, and with the finding changed
    fresh = tmp_path / "fresh-key"
    fresh.mkdir()
    (fresh / "packet-signing-key.pem").write_bytes(_pem(Ed25519PrivateKey.generate()))
    ring = KeyRing(fresh)
    body = unsigned(orjson.loads(raw))
    forged_body = copy.deepcopy(body)
    forged_body["assessment"]["phase"] = "idle"
    forged_body["assessment"]["continuous_delivery"] = False
    forged_body["manifest"] = manifest_for(forged_body)
    resigned = {"as is": dump_packet(ring.sign(copy.deepcopy(body))), "finding changed": dump_packet(ring.sign(forged_body))}
    missed_resigned = [k for k, data in resigned.items() if verify_bytes(data, key_dir).ok]
    assert all(verify_bytes(data, fresh).ok for data in resigned.values())  # valid only for whoever trusts that key

    files = {"original": raw, "byte changed": _flip(raw), **{f"re-signed ({k})": v for k, v in resigned.items()}}
    for name, data in files.items():
        (tmp_path / f"{name}.json").write_bytes(data)

    # audit trails: a case per kind of tampering, in a database of their own
    db = tmp_path / "audit.db"
    env = {"XJ_DATABASE_URL": f"sqlite:///{db}", "XJ_DATA_DIR": str(w.system.data_dir)}
    engine = make_engine(env["XJ_DATABASE_URL"])
    from services.mediation.adapters import migrate

    migrate.upgrade(engine)
    settings = MediationSettings(database_url=env["XJ_DATABASE_URL"], data_dir=w.system.data_dir)
    med = Mediation(engine, settings)
    actor = _actor(med)
    from services.mediation.domain.model import Role

    med.add_user(role=Role.INSURER, name="PICC claims", insurer_code="PICC")  # a known insurer code
    from services.mediation.domain.model import Status
    from services.mediation.schemas import CaseCreate

    kinds = ["intact", "truncated", "reordered", "edited"]
    ids = {}
    for kind in kinds:
        row, _ = med.open_case(actor=actor, cmd=CaseCreate.model_validate({**OTHER_CASE, "claim_number": kind}))
        for to in (Status.ESCALATED, Status.UNDER_REVIEW, Status.PROPOSAL_SENT):
            med.transition(actor=actor, case_id=row.id, to=to, reason=f"step {to.value}")
        ids[kind] = row.id
    from sqlmodel import Session, select

    with Session(engine) as s:
        def trail(cid: str) -> list[AuditRow]:
            return list(s.exec(select(AuditRow).where(AuditRow.case_id == cid).order_by(AuditRow.seq)).all())

        last = trail(ids["truncated"])[-1]
        s.delete(last)
        a, b = trail(ids["reordered"])[1:3]
        a_at, b_at = a.at, b.at  # swap two entries' contents (their seq stays in place)
        a.at, b.at = b_at, a_at
        a.data, b.data = b.data, a.data
        a.actor, b.actor = b.actor, a.actor
        a.action, b.action = b.action, a.action
        s.add(a)
        s.add(b)
        e = trail(ids["edited"])[1]
        e.data = orjson.dumps({**orjson.loads(e.data), "reason": "edited afterwards"}, option=orjson.OPT_SORT_KEYS).decode()
        s.add(e)
        s.commit()
        assert s.get(CaseRow, ids["truncated"]) is not None
    from services.mediation.domain.model import SYSTEM

    in_process = {k: med.audit_trail(actor=SYSTEM, case_id=cid)["intact"] for k, cid in ids.items()}
    engine.dispose()

    # the command line, all at once (each start costs seconds): the packets one by one, and one
    # `audit verify` over the whole database, which must name every altered case and no other
    cli_packets = ["original", "byte changed", "re-signed (finding changed)"]
    procs = {f"packets verify {n}": _cli(["packets", "verify", str(tmp_path / f"{n}.json")], env) for n in cli_packets}
    procs["audit verify"] = _cli(["audit", "verify"], env)
    codes = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=120)
        codes[name] = (p.returncode, out.decode(), err.decode()[-300:])
    expected = {name: 0 if name.endswith("original") else 1 for name in procs}
    missed_cli = [n for n in procs if codes[n][0] != expected[n]]
    report = codes["audit verify"][1]
    named = {k for k, cid in ids.items() if f"{cid}: " in report}
    missed_cli += [f"audit verify did not name the {k} trail" for k in kinds if (k in named) != (k != "intact")]
    assert "1 intact, 3 altered" in report, report
    missed_audit = [k for k in kinds if in_process[k] != (k == "intact")]
    undetected = len(missed_flips) + len(missed_resigned) + len(missed_audit) + len(missed_cli)
    reliability.record(6, "tampered packets and audit trails",
                       load=f"{len(positions)} one-byte changes, {len(resigned)} re-signed packets, "
                            f"{len(kinds) - 1} altered trails (+1 intact); {len(procs)} CLI runs",
                       injected="a byte changed; re-signed with a fresh Ed25519 key not in the ring (as is, and "
                                "with the finding changed); audit entry removed, two entries swapped, one edited",
                       leaked=undetected,
                       detail="verify_bytes, audit_trail and `python -m services.mediation packets verify` / "
                              "`audit verify` (exit 1) caught every one; the untouched packet and trail pass (exit 0)")
    assert not missed_flips, f"one-byte changes not caught at {missed_flips}"
    assert not missed_resigned, f"packets re-signed with a stranger's key accepted: {missed_resigned}"
    assert not missed_audit, f"audit tampering not caught in process: {in_process}"
    assert not missed_cli, (missed_cli, codes)


def _flip(raw: bytes) -> bytes:
    i = raw.index(b'"phase":"connecting"') + len(b'"phase":"')
    return raw[:i] + b"C" + raw[i + 1:]


def _pem(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _actor(med: Any) -> Any:
    from services.mediation.domain.model import Actor, Role

    uid, _ = med.add_user(role=Role.MEDIATOR, name="审计调解员", office="xiacheng")
    return Actor(Role.MEDIATOR, uid, "审计调解员", None, "xiacheng")


# ------------------------------------------------------------------------------------------------
# (d) the mediator reviews first: the insurer sees evidence only from proposal_sent on (runs last:
# it moves case A on)

def _evidence_markers(w: World) -> dict[str, str]:
    """What case A's evidence says, as strings a leak can be found by: the packet's id and digest,
    the phase in JSON and in words, a sentence of the explanation."""
    with w.system.client("mediator") as m:
        case = m.get(f"/api/v1/cases/{w.case_id}").json()
        packet = m.get(f"/api/v1/cases/{w.case_id}/evidence-packet").json()
    expl = packet["assessment"]["explanation_en"][0]
    return {"packet id": case["packet_id"], "packet sha256": case["packets"][0]["sha256"],
            "phase (json)": '"phase":"connecting"', "phase (zh)": "两单之间的合理衔接",
            "phase (en)": "between consecutive orders", "explanation": expl[:40],
            "assessment reason": "assessment: connecting"}


def test_insurer_sees_no_evidence_before_proposal_sent(world: World, reliability: Any) -> None:
    w = world
    markers = _evidence_markers(w)
    gets = [t for m, t in w.routes if m == "GET" and POLICY[("GET", t)].allowed("insurer_a") is not None
            and not POLICY[("GET", t)].public]
    assert "/api/v1/cases/{case_id}" in gets and "/insurer/cases/{case_id}" in gets
    found: list[str] = []
    with httpx.Client(base_url=w.system.base_url, timeout=60, follow_redirects=False) as client:
        def sweep() -> dict[str, httpx.Response]:
            out = {}
            for template in gets:
                url = fill(template, w)
                out[template] = client.get(url, **request_for("GET", template, "insurer_a", w))
            for lang in ("zh", "en"):  # the portal page in both languages
                out[f"/insurer/cases/{{case_id}}?lang={lang}"] = client.get(
                    fill("/insurer/cases/{case_id}", w), params={"lang": lang},
                    **request_for("GET", "/insurer/cases/{case_id}", "insurer_a", w))
            out["/api/v1/cases?insurer list"] = client.get("/api/v1/cases", headers={
                "Authorization": f"Bearer {w.tokens['insurer_a']}"})
            return out

        before = sweep()
        for where, r in before.items():
            text = r.content.decode("utf-8", "replace")
            hits = [k for k, v in markers.items() if v in text or v in text.replace(" ", "")]
            if hits:
                found.append(f"{where}: {r.status_code} {', '.join(hits)}")
        with w.system.client("mediator") as m:
            for to in ("under_review", "proposal_sent"):
                assert m.post(f"/api/v1/cases/{w.case_id}/transitions", json={"to": to}).status_code == 200
        after = sweep()
    reliability.record(6, "insurer sees no evidence before proposal_sent",
                       load=f"{len(before)} GET answers to the case's insurer at evidence_ready, then after the proposal",
                       injected="the case's own insurer reading every route before the mediator's review",
                       lost=len(found), leaked=len(found), detail="; ".join(found[:3]) or "nothing of the evidence shown")
    assert not found, "the insurer saw evidence before proposal_sent:\n" + "\n".join(found)
    for template in ("/api/v1/cases/{case_id}/evidence-packet", "/cases/{case_id}/packet.json",
                     "/cases/{case_id}/packet.pdf", "/cases/{case_id}/figures/{name}"):
        assert before[template].status_code == 403, template
        assert after[template].status_code == 200, (template, after[template].text[:200])
    assert markers["packet id"] in after["/api/v1/cases/{case_id}/evidence-packet"].text
    assert markers["phase (zh)"] in after["/insurer/cases/{case_id}?lang=zh"].text
