"""What every page shares: the templates, the reader's language, the session and the signed-in
user, CSRF checks on forms, security headers, and one place that turns domain errors into pages
(never a 500 for anything a user can send)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.responses import HTMLResponse, RedirectResponse, Response

from services.mediation.domain.errors import ConsentMissing, Forbidden, IllegalTransition, NotFound
from services.mediation.domain.model import Actor, Role
from services.mediation.entrypoints.web import i18n, lookups, views
from services.mediation.entrypoints.web.session import LANG_COOKIE, Sessions, WebSession
from services.mediation.service_layer.cases import Locked, Mediation
from services.mediation.settings import MediationSettings

logger = logging.getLogger(__name__)
HERE = Path(__file__).parent

PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class WrongRole(Exception):
    """A signed-in user on the other audience's pages: sent to his own."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor


class CsrfRefused(Exception):
    pass


@dataclass
class Static:
    body: bytes
    media_type: str
    version: str


@dataclass
class Web:
    mediation: Mediation
    engine: Engine
    settings: MediationSettings
    sessions: Sessions
    poke: Callable[[], None] = lambda: None
    # notify's records, injected by the wiring (a port, not an import): every notification of a
    # case (phones masked) and what the rider was sent; None where notify is not deployed here
    case_notes: Callable[[str], list[dict[str, Any]] | None] = lambda _case_id: None
    rider_notes: Callable[[str], list[dict[str, Any]] | None] = lambda _case_id: None
    env: jinja2.Environment = field(init=False)
    static: dict[str, Static] = field(init=False)

    def __post_init__(self) -> None:
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                      autoescape=jinja2.select_autoescape(["html"], default=True),
                                      undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.static = {}
        for path in sorted((HERE / "static").iterdir()):
            if path.suffix in (".css", ".js"):
                body = path.read_bytes()
                media = "text/css" if path.suffix == ".css" else "text/javascript"
                self.static[path.name] = Static(body, f"{media}; charset=utf-8", hashlib.sha256(body).hexdigest()[:10])

    @property
    def tz(self) -> str:
        return self.settings.timezone

    # ------------------------------------------------------------ language

    def lang(self, request: Request, fallback: str | None = None) -> str:
        return (i18n.pick_lang(request.query_params.get("lang")) or i18n.pick_lang(request.cookies.get(LANG_COOKIE))
                or i18n.pick_lang(fallback) or i18n.DEFAULT_LANG)

    @staticmethod
    def url_with(request: Request, **params: str | None) -> str:
        """The current page's URL with some query parameters replaced (None drops one)."""
        q = {k: v for k, v in request.query_params.items() if k not in params}
        q.update({k: v for k, v in params.items() if v is not None})
        return request.url.path + (f"?{urlencode(q)}" if q else "")

    # ------------------------------------------------------------ sessions

    def session(self, request: Request) -> WebSession:
        s = getattr(request.state, "xj_session", None)
        if s is None:
            s = self.sessions.load(request)
            request.state.xj_session = s
        return s

    def actor(self, request: Request) -> Actor | None:
        """The signed-in user (blocking: reads the database once per request)."""
        if not hasattr(request.state, "xj_actor"):
            s = self.session(request)
            request.state.xj_actor = lookups.actor_of(self.engine, s.user_id, s.data.get("tfp"))
        actor: Actor | None = request.state.xj_actor
        return actor

    def finish(self, request: Request, response: Response) -> Response:
        self.sessions.save(response, self.session(request), request)
        explicit = i18n.pick_lang(request.query_params.get("lang"))
        if explicit and explicit != request.cookies.get(LANG_COOKIE):
            self.sessions.set_lang(response, explicit, request)
        return response

    def redirect(self, request: Request, url: str) -> Response:
        return self.finish(request, RedirectResponse(url, status_code=303))

    # ------------------------------------------------------------ pages

    def render(self, request: Request, template: str, ctx: Mapping[str, Any] | None = None, *, status: int = 200,
               lang: str | None = None, headers: Mapping[str, str] | None = None) -> Response:
        lang = lang or self.lang(request)
        session = self.session(request)
        actor: Actor | None = getattr(request.state, "xj_actor", None)
        flash = session.pop_flash()
        _ = i18n.translator(lang)
        other = "en" if lang == "zh" else "zh"
        context = {
            "lang": lang, "_": _, "user": actor, "csrf": session.csrf, "path": request.url.path,
            "lang_url": self.url_with(request, lang=other), "other_lang": other,
            "flash": (flash[0], _(flash[1], **flash[2])) if flash else None,
            "static": {n: f"/static/{n}?v={s.version}" for n, s in self.static.items()},
            "status_label": lambda s: i18n.status_label(s, lang),
            "phase_label": lambda p: i18n.phase_label(p, lang),
            "action_label": lambda s: i18n.action_label(s, lang),
            "audit_action": lambda a: i18n.audit_action(a, lang),
            "label": lambda prefix, value: i18n.label(prefix, value, lang),
            "reason_text": lambda r: views.reason_text(r, lang),
            "dt": lambda v, fmt="%Y-%m-%d %H:%M": views.local(v, self.tz, fmt),
            "tz": self.tz, "section": "desk", "refresh": None,
            **(ctx or {}),
        }
        html = self.env.get_template(template).render(context)
        response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
        return self.finish(request, response)

    def error(self, request: Request, status: int, message: str) -> Response:
        lang = self.lang(request)
        section = "insurer" if request.url.path.startswith("/insurer") else \
            "status" if request.url.path.startswith("/status") else "desk"
        return self.render(request, "error.html", {"status": status, "message": message, "section": section},
                           status=status, lang=lang)

    def now(self) -> datetime:
        return self.mediation.clock()


def safe_next(value: str | None, default: str) -> str:
    """A local path to go to after signing in; anything else (another site, //host) is ignored."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else default


def home_of(actor: Actor) -> str:
    return "/insurer/" if actor.role is Role.INSURER else "/"


def route_class(web: Web) -> type[APIRoute]:
    """Routes whose errors become pages in the reader's language, with security headers."""

    class WebRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def run(request: Request) -> Response:
                request.state.xj_web = web
                _ = i18n.translator(web.lang(request))
                try:
                    response = await handler(request)
                except SignInRequired as e:
                    target = "/insurer/" if e.next_path.startswith("/insurer") else "/signin"
                    response = web.redirect(request, f"{target}?{urlencode({'next': e.next_path})}")
                except WrongRole as e:
                    response = web.redirect(request, home_of(e.actor))
                except CsrfRefused:
                    response = web.error(request, 403, _("csrf"))
                except NotFound:
                    response = web.error(request, 404, _("e404"))
                except Forbidden:
                    response = web.error(request, 403, _("e403"))
                except IllegalTransition as e:
                    allowed = ", ".join(i18n.status_label(s.value, web.lang(request)) for s in e.allowed)
                    response = web.error(request, 409, _("e409", detail=_(
                        "flash_illegal", current=i18n.status_label(e.current.value, web.lang(request)),
                        to=i18n.status_label(str(getattr(e.to, "value", e.to)), web.lang(request)),
                        allowed=allowed or _("none_allowed"))))
                except ConsentMissing:
                    response = web.error(request, 409, _("flash_consent"))
                except Locked:
                    response = web.error(request, 429, _("locked_plain"))
                except RequestValidationError:
                    response = web.error(request, 422, _("e422"))
                except (OperationalError, PoolTimeout):
                    logger.exception("database unavailable")
                    response = web.error(request, 503, _("e503"))
                except Exception:
                    logger.exception("web page failed", extra={"path": request.url.path})
                    response = web.error(request, 500, _("e500"))
                h = response.headers
                h.setdefault("content-security-policy", PAGE_CSP)
                h.setdefault("x-content-type-options", "nosniff")
                h.setdefault("x-frame-options", "DENY")
                h.setdefault("referrer-policy", "same-origin")
                h.setdefault("cache-control", "no-store")
                return response

            return run

    return WebRoute


# ------------------------------------------------------------ dependencies
# (module-level aliases; each route's Web is put on request.state by WebRoute before they run)


def web_of(request: Request) -> Web:
    web: Web = request.state.xj_web
    return web


def _maybe(request: Request) -> Actor | None:
    return web_of(request).actor(request)


def _mediator(request: Request) -> Actor:
    return _require(request, Role.MEDIATOR)


def _insurer(request: Request) -> Actor:
    return _require(request, Role.INSURER)


def _require(request: Request, role: Role) -> Actor:
    web = web_of(request)
    actor = web.actor(request)
    if actor is None:
        raise SignInRequired(web.url_with(request))
    if actor.role is not role:
        raise WrongRole(actor)
    return actor


async def _checked_form(request: Request) -> dict[str, str]:
    """The fields of a POSTed form, after checking its CSRF token (and Origin, when sent)."""
    form = await request.form()
    session = web_of(request).session(request)
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        logger.warning("cross-origin form refused", extra={"origin": origin[:100], "path": request.url.path})
        raise CsrfRefused()
    if not session.csrf_ok(form.get("csrf")):
        logger.warning("form without a valid CSRF token refused", extra={"path": request.url.path})
        raise CsrfRefused()
    return {k: v.strip() for k, v in form.items() if isinstance(v, str)}


Maybe = Annotated[Actor | None, Depends(_maybe)]
MediatorUser = Annotated[Actor, Depends(_mediator)]
InsurerUser = Annotated[Actor, Depends(_insurer)]
CheckedForm = Annotated[dict[str, str], Depends(_checked_form)]
