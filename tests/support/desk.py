"""The mediator's desk as a browser without JavaScript reaches it: the sign-in form, then pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx


@contextmanager
def signed_in(system: Any, token: str) -> Iterator[httpx.Client]:
    """A client of ``system``'s pages signed in with ``token`` (CSRF token from the form)."""
    with system.client(follow_redirects=False) as web:
        csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/").text)
        assert csrf, "no sign-in form"
        r = web.post("/signin", data={"csrf": csrf.group(1), "token": token, "next": "/"})
        assert r.status_code == 303, r.text
        yield web
