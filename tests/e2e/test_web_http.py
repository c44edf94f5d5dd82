"""The pages over plain HTTP (no browser needed): CSRF, cookies, headers, the rider's lockout,
language, and that nothing a user can send makes a 500."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from services.embedded import System

from .conftest import open_case_api

pytestmark = pytest.mark.e2e


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


@contextmanager
def signed_in(s: System, who: str = "mediator") -> Iterator[httpx.Client]:
    with s.client(follow_redirects=False) as c:
        token = csrf_of(c.get("/").text)
        r = c.post("/signin", data={"csrf": token, "token": s.tokens[who], "next": "/"})
        assert r.status_code == 303, r.text
        yield c


def test_every_form_needs_its_csrf_token(system: System) -> None:
    s = system
    cid = open_case_api(s)["case_id"]
    with s.client(follow_redirects=False) as anon:
        r = anon.post("/signin", data={"token": s.tokens["mediator"]})
        assert r.status_code == 403 and "表单已过期" in r.text
        assert anon.get(f"/cases/{cid}").status_code == 303  # still signed out
    with signed_in(s) as c:
        page = c.get(f"/cases/{cid}")
        token = csrf_of(page.text)
        for data, headers in [({"to": "withdrawn"}, {}),
                              ({"to": "withdrawn", "csrf": "forged"}, {}),
                              ({"to": "withdrawn", "csrf": token}, {"Origin": "https://evil.example"})]:
            r = c.post(f"/cases/{cid}/transitions", data=data, headers=headers)
            assert r.status_code == 403, (data, headers, r.status_code)
            assert "表单已过期" in r.text
        assert s.client("mediator").get(f"/api/v1/cases/{cid}").json()["status"] == "opened"
        for path, data in [("/cases/new", {}), ("/signout", {}), (f"/insurer/cases/{cid}/response", {})]:
            assert c.post(path, data=data).status_code in (403, 303), path
        # with the token (and a same-site Origin) it goes through
        r = c.post(f"/cases/{cid}/transitions", data={"to": "withdrawn", "csrf": token},
                   headers={"Origin": s.base_url})
        assert r.status_code == 303
        assert s.client("mediator").get(f"/api/v1/cases/{cid}").json()["status"] == "withdrawn"
        # signing out ends the session: the old cookie's token no longer works for a signed-in page
        r = c.post("/signout", data={"csrf": token, "section": "desk"})
        assert r.status_code == 303
        assert c.get(f"/cases/{cid}").status_code == 303


def test_session_cookie_and_headers(system: System) -> None:
    with system.client(follow_redirects=False) as c:
        r = c.get("/")
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower() and "Secure" not in cookie
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        css = c.get(re.search(r'href="(/static/xj\.css\?v=\w+)"', r.text).group(1))  # type: ignore[union-attr]
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert len(css.content) < 10_000
        r = c.post("/signin", data={"csrf": csrf_of(r.text), "token": "wrong"})
        assert r.status_code == 401 and "令牌无效" in r.text
        token = csrf_of(c.get("/").text)
        r = c.post("/signin", data={"csrf": token, "token": system.tokens["feed"]})
        assert r.status_code == 403 and "数据接口令牌" in r.text
        # a tampered cookie is a signed-out visitor, not an error
        c.cookies.set("xj_session", "eyJ1aWQiOiJ4In0.forged.sig")
        assert c.get("/cases/x").status_code == 303


def test_next_after_sign_in_stays_on_this_site(system: System) -> None:
    with system.client(follow_redirects=False) as c:
        token = csrf_of(c.get("/signin?next=//evil.example/x").text)
        r = c.post("/signin", data={"csrf": token, "token": system.tokens["mediator"], "next": "//evil.example/x"})
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_rider_lockout_and_language(system: System) -> None:
    created = open_case_api(system)
    number, code = created["case_number"], created["rider_access_code"]
    with system.client() as c:
        r = c.get("/status", params={"case": number, "code": code})
        assert r.status_code == 200 and "<html lang=\"zh-CN\">" in r.text and "已立案" in r.text
        assert r.headers["referrer-policy"] == "no-referrer"
        r = c.get("/status", params={"case": number, "code": code, "lang": "en"})
        assert "<html lang=\"en\">" in r.text and "Case opened" in r.text
        r = c.get("/status", params={"case": number.lower(), "code": f" {code[:4]} {code[4:]} "})
        assert r.status_code == 200 and "Case opened" in r.text  # remembered; forgiving input
        c.cookies.clear()
        assert c.get("/status", params={"case": number}).status_code == 400
        statuses = [c.get("/status", params={"case": number, "code": f"{k:08d}"}).status_code for k in range(11)]
        assert statuses[:10] == [404] * 10 and statuses[10] == 429
        r = c.get("/status", params={"case": number, "code": "12345678"})
        assert r.status_code == 429 and "尝试次数过多" in r.text and "之后再试" in r.text


def test_odd_requests_are_pages_not_500s(system: System) -> None:
    cid = open_case_api(system)["case_id"]
    with signed_in(system) as c:
        token = csrf_of(c.get("/").text)
        assert c.get("/cases/does-not-exist").status_code == 404
        assert c.get(f"/cases/{cid}/figures/evil.svg").status_code == 404
        assert c.get(f"/cases/{cid}/packet.json").status_code == 404  # no packet yet
        assert c.get(f"/cases/{cid}/figures/map.svg").status_code == 404
        r = c.post(f"/cases/{cid}/transitions", data={"csrf": token, "to": "flying"})
        assert r.status_code == 303
        assert "请求内容不正确" in c.get(f"/cases/{cid}").text
        r = c.post(f"/cases/{cid}/transitions", data={"csrf": token, "to": "resolved", "reason": "x" * 3000})
        assert r.status_code == 303
        r = c.post("/cases/new", data={"csrf": token, "incident_at": "yesterday", "lat": "999"})
        assert r.status_code == 422 and "请修改以下内容" in r.text
        assert c.get("/?page=abc&status=nonsense&overdue=maybe").status_code == 200
        assert c.get("/status?case=" + "X" * 500 + "&code=" + "1" * 500).status_code == 404
        assert c.get("/static/../web/pages.py").status_code == 404
