"""From a case event to recorded notifications: decode, ask the directory about the insurer,
route (domain), render (templates), record in one unit of work with the event marked consumed.
Also the daily digest. Sending is the dispatcher's job."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from sqlalchemy.exc import OperationalError

from services.notify.adapters.render import TemplateRenderer
from services.notify.domain.digest import digests
from services.notify.domain.model import Draft, Intent
from services.notify.domain.ports import InsurerDirectory, NotificationStore
from services.notify.domain.routing import case_view, route
from services.notify.settings import NotifySettings
from shared.bus import Handler, Message
from shared.events import CaseEvent, Envelope, EventError, decode

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Recorder:
    def __init__(self, *, store: NotificationStore, directory: InsurerDirectory, renderer: TemplateRenderer,
                 settings: NotifySettings, clock: Callable[[], datetime] = utcnow,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self.store, self.directory, self.renderer = store, directory, renderer
        self.settings, self.clock, self.new_id = settings, clock, new_id

    def draft(self, intent: Intent, case_number: str | None = None) -> Draft:
        c = self.renderer.render(intent)
        return Draft(id=self.new_id(), event_id=intent.event_id, case_id=intent.case_id, role=intent.role.value,
                     channel=intent.channel.value, recipient=intent.recipient, template=intent.template,
                     lang=intent.lang, subject=c.subject, body=c.body, html=c.html, case_number=case_number)

    def record_envelope(self, env: Envelope) -> list[str] | None:
        """The ids of the notifications recorded for this event; None if it was consumed before;
        [] if it concerns nobody. EventError for a message that is not a valid event."""
        event = decode(env)
        if not isinstance(event, CaseEvent):
            return []
        found = self.directory.get(event.insurer_code)
        intents = route(event, event_id=env.id, occurred_at=env.occurred_at,
                        base_url=self.settings.public_base_url,
                        insurer=found.contact() if found else None, staff_lang=self.settings.staff_lang)
        drafts = [self.draft(i, event.case_number) for i in intents]
        ids = self.store.record_event(event_id=env.id, event_type=env.type, case_id=event.case_id,
                                      drafts=drafts, case=case_view(event, occurred_at=env.occurred_at),
                                      now=self.clock())
        if ids is None:
            logger.info("event already handled", extra={"event_id": env.id, "event_type": env.type})
        else:
            logger.info("event recorded", extra={"event_id": env.id, "event_type": env.type,
                                                 "case_id": event.case_id, "notifications": len(ids)})
        return ids

    def record_message(self, m: Message, *, retries: int = 5, backoff: float = 0.2) -> list[str] | None:
        """One bus message; a database that is briefly away is waited for (the message must not
        go to the dead letters for that), an invalid message raises at once."""
        env = Envelope.from_bytes(m.value)
        for attempt in range(retries + 1):
            try:
                return self.record_envelope(env)
            except OperationalError as e:
                if attempt == retries:
                    raise
                logger.warning("database unavailable recording event %s (%s); retrying", env.id, e.__class__.__name__)
                time.sleep(backoff * 2 ** attempt)
        return None  # unreachable

    def record_batch(self, batch: Sequence[Message]) -> tuple[int, list[BaseException]]:
        recorded, errors = 0, list[BaseException]()
        for m in batch:
            try:
                ids = self.record_message(m)
                recorded += len(ids or ())
            except EventError as e:
                logger.error("not a case event at %s:%s: %s", m.topic, m.offset, e)
                errors.append(e)
            except Exception as e:
                logger.exception("could not record event at %s:%s", m.topic, m.offset)
                errors.append(e)
        return recorded, errors

    def record_digests(self, *, day: date) -> list[str]:
        """Record today's digest for each mediator with overdue cases (once per day each)."""
        cases = self.store.overdue_cases()
        intents = digests(cases, day=day, base_url=self.settings.public_base_url, lang=self.settings.staff_lang)
        return self.store.record([self.draft(i) for i in intents], now=self.clock())


def make_handler(recorder: Recorder, on_recorded: Callable[[], None] = lambda: None) -> Handler:
    """The bus handler of group ``notify`` on CASE_EVENTS. A batch is recorded in a worker
    thread (the event loop keeps sending meanwhile); a message that cannot be recorded makes
    the batch raise after the others are recorded, so the bus retries it alone and then
    dead-letters it (the others, recorded already, are skipped as duplicates)."""

    async def handle(batch: Sequence[Message]) -> None:
        recorded, errors = await asyncio.to_thread(recorder.record_batch, batch)
        if recorded:
            on_recorded()
        if errors:
            raise errors[0]

    return handle
