"""What was sent, for whom it may concern. The mediation app owns authentication and mounts
``make_router(require_mediator, require_case_reader)``; the rider's status page calls
``notifications_for_case(engine, case_id)``.

The routes need the database engine: ``get_engine`` (a FastAPI dependency) if given, else
``request.app.state.engine``.
"""


from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from services.notify.adapters.sql import SqlNotificationStore
from services.notify.domain.errors import NotificationNotFound, NotifyError, NotReplayable
from services.notify.domain.model import Notification, Role, State


class NotificationPublic(BaseModel):
    """A notification and its delivery state, as mediators (and the case's insurer) see it.
    Phone numbers are masked; bodies of webhooks are the JSON that was sent."""

    id: str
    event_id: str
    case_id: str
    case_number: str | None
    role: str
    channel: str
    recipient: str
    template: str
    lang: str
    subject: str | None
    body: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class ReplayAccepted(BaseModel):
    id: str
    state: str
    next_attempt_at: datetime | None


def mask_phone(phone: str) -> str:
    digits = phone.strip()
    if len(digits) <= 7:
        return digits[:2] + "*" * max(0, len(digits) - 2)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def public(n: Notification) -> NotificationPublic:
    recipient = mask_phone(n.recipient) if n.channel == "sms" else n.recipient
    return NotificationPublic(
        id=n.id, event_id=n.event_id, case_id=n.case_id, case_number=n.case_number, role=n.role,
        channel=n.channel, recipient=recipient, template=n.template, lang=n.lang, subject=n.subject,
        body=n.body, state=n.state, attempts=n.attempts, next_attempt_at=n.next_attempt_at,
        last_error=n.last_error, created_at=n.created_at, sent_at=n.sent_at)


def case_notes(engine: Engine, case_id: str) -> list[dict[str, Any]]:
    """Every notification of a case with its delivery state (phone numbers masked), oldest first:
    the mediator desk's view."""
    return [public(n).model_dump() for n in SqlNotificationStore(engine).for_case(case_id)]


def notifications_for_case(engine: Engine, case_id: str) -> list[dict[str, Any]]:
    """What was sent to the rider about this case, oldest first, for the rider's status page:
    channel, the text, the number (masked), language, whether it went out, and when. Nothing
    sent to the insurer or the mediator."""
    out = []
    for n in SqlNotificationStore(engine).for_case(case_id):
        if n.role != Role.RIDER.value:
            continue
        out.append({"channel": n.channel, "text": n.body, "to": mask_phone(n.recipient), "lang": n.lang,
                    "state": "sent" if n.state == State.SENT.value else
                             "failed" if n.state == State.DEAD.value else "sending",
                    "created_at": n.created_at.isoformat(),
                    "sent_at": n.sent_at.isoformat() if n.sent_at else None})
    return out


def _app_engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise RuntimeError("notify routes need app.state.engine (or make_router(get_engine=...))")
    return engine  # type: ignore[no-any-return]


def error_status(e: NotifyError) -> int:
    """Domain errors to HTTP status codes, in one place."""
    if isinstance(e, NotificationNotFound):
        return 404
    if isinstance(e, NotReplayable):
        return 409
    return 422


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[str, Field(pattern=r"^https?://", max_length=500)]
    secret: Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$", max_length=200)]


def make_router(require_mediator: Callable[..., Any], require_case_reader: Callable[..., Any], *,
                get_engine: Callable[..., Engine] | None = None,
                known_insurer: Callable[[str], str] | None = None, allow_private: bool = False) -> APIRouter:
    """``require_mediator`` and ``require_case_reader`` are FastAPI dependencies of the
    mediation app (401/403 as it decides; the latter reads the ``case_id`` path parameter).
    ``known_insurer``: the registered spelling of an insurer code, raising (404) for an unknown one
    (the wiring injects mediation's registry)."""
    router = APIRouter(prefix="/api/v1", tags=["notifications"])
    EngineDep = Annotated[Engine, Depends(get_engine or _app_engine)]

    @router.put("/insurers/{code}/webhook", tags=["insurers"], dependencies=[Depends(require_mediator)])
    def set_insurer_webhook(code: Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")],
                            body: WebhookIn, engine: EngineDep) -> Any:
        """An insurer's webhook URL and Standard Webhooks secret; the URL's resolved address must
        not be loopback, private, link-local or metadata (422) unless XJ_WEBHOOK_ALLOW_PRIVATE=1."""
        from services.notify.adapters.channels.ssrf import check_target
        from services.notify.adapters.sql import set_webhook
        from services.notify.domain.errors import WebhookConfigError

        if known_insurer is not None:
            code = known_insurer(code)
        try:
            check_target(body.url, allow_private=allow_private)
            set_webhook(engine, code, body.url, body.secret)
        except WebhookConfigError as e:
            return JSONResponse({"detail": f"invalid request: {e.field}: {e}",
                                 "errors": [{"loc": ["body", e.field], "msg": str(e)}]}, status_code=422)
        return {"insurer_code": code, "url": body.url, "secret": "whsec_…" + body.secret[-4:]}

    @router.get("/cases/{case_id}/notifications", response_model=list[NotificationPublic],
                summary="A case's notifications and their delivery state")
    def case_notifications(case_id: str, engine: EngineDep,
                           reader: Annotated[Any, Depends(require_case_reader)]) -> list[NotificationPublic]:
        """All of them for a mediator; for the case's insurer, only what was sent to the insurer
        (what the rider and the mediator were told may carry evidence the insurer is not shown yet)."""
        found = SqlNotificationStore(engine).for_case(case_id)
        if str(getattr(getattr(reader, "role", None), "value", "")) == Role.INSURER.value:
            found = [n for n in found if n.role == Role.INSURER.value]
        return [public(n) for n in found]

    @router.get("/notifications/dead", response_model=list[NotificationPublic],
                dependencies=[Depends(require_mediator)],
                summary="Notifications every attempt of which failed (newest first)")
    def dead_notifications(engine: EngineDep, limit: Annotated[int, Query(ge=1, le=500)] = 100,
                           offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,  # past it: an SQL overflow
                           ) -> list[NotificationPublic]:
        return [public(n) for n in SqlNotificationStore(engine).dead(limit=limit, offset=offset)]

    @router.post("/notifications/{notification_id}/replay", response_model=ReplayAccepted, status_code=202,
                 dependencies=[Depends(require_mediator)],
                 responses={404: {"description": "no such notification"},
                            409: {"description": "not dead (pending, failed or sent)"}},
                 summary="Try a dead notification again, from its first attempt")
    def replay(notification_id: str, engine: EngineDep) -> ReplayAccepted:
        try:
            n = SqlNotificationStore(engine).replay(notification_id, now=datetime.now(UTC))
        except NotifyError as e:
            raise HTTPException(error_status(e), str(e)) from e
        return ReplayAccepted(id=n.id, state=n.state, next_attempt_at=n.next_attempt_at)

    return router
