"""Messages from the Jinja2 templates in ``services/notify/templates`` (every word a party reads
is there, in Chinese and in English; none in code).

- ``sms/NAME.LANG.txt``: the text of an SMS;
- ``email/NAME.LANG.txt``: blocks ``subject`` and ``body`` (plain text); the HTML part is the
  same text laid out by ``email/_layout.html`` (escaped, links made clickable);
- ``_labels.LANG.j2``: words for status, decision and phase codes, given to templates as ``L``;
- a webhook's body is the JSON payload routing built (machine-readable, no template).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from services.notify.domain.model import Channel, Intent
from shared.timeutil import DEFAULT_TZ, check_zone

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_URL = re.compile(r"https?://[^\s<>\"'，。）)]+")
_BLANKS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Content:
    subject: str | None
    body: str
    html: str | None = None


class TemplateRenderer:
    def __init__(self, tz: str = DEFAULT_TZ, directory: Path = TEMPLATES) -> None:
        import zoneinfo

        self.zone = zoneinfo.ZoneInfo(check_zone(tz))
        common: dict[str, Any] = {"loader": FileSystemLoader(directory), "undefined": StrictUndefined,
                                  "trim_blocks": True, "lstrip_blocks": True}
        self.text = Environment(autoescape=False, **common)  # plain text, never HTML
        self.html = Environment(autoescape=True, **common)
        for env in (self.text, self.html):
            env.filters["local"] = self._local
        self.html.filters["linkify"] = _linkify

    def _local(self, value: datetime | date | str) -> str:
        """A time as people here read it: ``2026-11-29 14:10`` in the deployment's zone."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if isinstance(value, datetime):
            return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")
        return value.isoformat()

    def labels(self, lang: str) -> Any:
        return self.text.get_template(f"_labels.{lang}.j2").module

    def render(self, intent: Intent) -> Content:
        if intent.channel is Channel.WEBHOOK:
            return Content(None, orjson.dumps(dict(intent.context)).decode())
        ctx = {**intent.context, "L": self.labels(intent.lang), "lang": intent.lang}
        if intent.channel is Channel.SMS:
            body = self.text.get_template(f"sms/{intent.template}.{intent.lang}.txt").render(ctx)
            return Content(None, " ".join(body.split()))
        tpl = self.text.get_template(f"email/{intent.template}.{intent.lang}.txt")
        subject = " ".join("".join(tpl.blocks["subject"](tpl.new_context(ctx))).split())
        body = _tidy("".join(tpl.blocks["body"](tpl.new_context(ctx))))
        paragraphs = [p.split("\n") for p in body.strip().split("\n\n") if p.strip()]
        html = self.html.get_template("email/_layout.html").render(
            subject=subject, paragraphs=paragraphs, lang=intent.lang)
        return Content(subject, body, html)


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)) + "\n"


def _linkify(line: str) -> Markup:
    out, last = [], 0
    for m in _URL.finditer(line):
        out.append(escape(line[last:m.start()]))
        url = escape(m.group(0))
        out.append(Markup(f'<a href="{url}">{url}</a>'))
        last = m.end()
    out.append(escape(line[last:]))
    return Markup("").join(out)
