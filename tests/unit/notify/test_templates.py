"""Templates: every message routing can produce exists in Chinese and English, renders with
no missing variable, says what it must (case number, links), and escapes in HTML."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from services.notify.adapters.render import TEMPLATES, TemplateRenderer
from services.notify.domain.digest import digests
from services.notify.domain.model import Channel, InsurerContact, Intent, OverdueCase, Role
from services.notify.domain.routing import route

from .builders import (
    BASE,
    T0,
    changed,
    evidence_ready,
    evidence_shared,
    opened,
    overdue,
    responded,
    undetermined,
)

pytestmark = pytest.mark.unit

CJK = re.compile(r"[\u4e00-\u9fff]")
R = TemplateRenderer("Asia/Shanghai")
HOOK = InsurerContact("PICC", webhook=True)


def every_intent(lang: str) -> list[Intent]:
    events = [opened(), evidence_ready(), evidence_ready(**undetermined()), evidence_shared(),
              evidence_shared(**undetermined(covered=None)), evidence_shared(packet_id=None, packet_sha256=None, phase=None,
                                                                            continuous_delivery=None, covered=None),
              responded("accept"), responded("reject"), overdue(),
              *(changed(s) for s in ("proposal_sent", "escalated", "withdrawn", "closed", "resolved"))]
    out: list[Intent] = []
    for e in events:
        e = e.model_copy(update={"rider_lang": lang, "reason": "exclusion clause 3"} if hasattr(e, "reason")
                         else {"rider_lang": lang})
        out += route(e, event_id="e", occurred_at=T0, base_url=BASE,
                     insurer=InsurerContact("PICC", webhook=True, lang=lang), staff_lang=lang)
    cases = [OverdueCase("case-1", "XJ-2026-0001", "under_review", "PICC", "wang@m.example", T0)]
    out += digests(cases, day=date(2026, 11, 29), base_url=BASE, lang=lang)
    return out


def test_every_template_exists_in_both_languages() -> None:
    names = {(i.channel.value, i.template) for i in every_intent("zh") if i.channel is not Channel.WEBHOOK}
    assert len(names) == 10
    for channel, name in names:
        for lang in ("zh", "en"):
            assert (TEMPLATES / channel / f"{name}.{lang}.txt").is_file(), (channel, name, lang)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_everything_renders_in_its_language(lang: str) -> None:
    for i in every_intent(lang):
        if i.channel is Channel.WEBHOOK:
            continue
        c = R.render(i)
        text = (c.subject or "") + c.body
        assert "XJ-2026-0001" in text, i.template
        if lang == "zh":
            assert CJK.search(text), i.template
        else:
            assert not CJK.search(text), (i.template, text)
        assert "{{" not in text and "{%" not in text
        if i.channel is Channel.EMAIL:
            assert c.subject and "\n" not in c.subject
            assert c.html and c.html.lstrip().startswith("<!doctype html>")
        else:
            assert c.subject is None and c.html is None and "\n" not in c.body


def test_rider_sms_has_the_link_and_says_where_the_code_is() -> None:
    zh = R.render(next(i for i in route(opened(), event_id="e", occurred_at=T0, base_url=BASE, insurer=None)
                       if i.role is Role.RIDER))
    assert f"{BASE}/status?case=XJ-2026-0001" in zh.body and "回执" in zh.body
    en = R.render(next(i for i in route(opened(rider_lang="en"), event_id="e", occurred_at=T0, base_url=BASE,
                                        insurer=None) if i.role is Role.RIDER))
    assert f"{BASE}/status?case=XJ-2026-0001&lang=en" in en.body and "receipt" in en.body


def test_sms_are_short() -> None:
    for lang, limit in (("zh", 140), ("en", 320)):  # two segments at most, with the link
        for i in every_intent(lang):
            if i.channel is Channel.SMS:
                assert len(R.render(i).body) <= limit, (i.template, lang)


def test_times_are_shown_in_the_deployment_zone() -> None:
    i = next(i for i in route(overdue(), event_id="e", occurred_at=T0, base_url=BASE, insurer=None))
    assert "2026-11-29 14:10" in R.render(i).body  # 06:10 UTC in Shanghai
    assert "2026-11-29 06:10" in TemplateRenderer("UTC").render(i).body


def test_insurer_decision_and_phase_are_words_not_codes() -> None:
    zh = [R.render(i) for i in route(evidence_shared(), event_id="e", occurred_at=T0, base_url=BASE, insurer=None)]
    email = next(c for c in zh if c.subject)
    assert "两单之间的合理衔接" in email.body and "connecting" not in email.body
    rider = R.render(next(i for i in route(responded("reject"), event_id="e", occurred_at=T0, base_url=BASE,
                                           insurer=None) if i.role is Role.RIDER))
    assert "拒绝" in rider.body and "reject" not in rider.body


def test_html_part_escapes_and_links() -> None:
    e = changed("withdrawn", reason='<script>alert("x")</script> & more')
    i = next(i for i in route(e, event_id="e", occurred_at=T0, base_url=BASE, insurer=None)
             if i.channel is Channel.EMAIL)
    c = R.render(i)
    assert '<script>alert("x")</script>' in c.body  # plain text stays as written
    assert c.html is not None and "<script>" not in c.html and "&lt;script&gt;" in c.html
    assert f'<a href="{BASE}/insurer/?case=XJ-2026-0001">' in c.html


def test_webhook_body_is_the_payload_as_json() -> None:
    import orjson

    i = next(i for i in route(opened(), event_id="e", occurred_at=T0, base_url=BASE, insurer=HOOK)
             if i.channel is Channel.WEBHOOK)
    c = R.render(i)
    assert orjson.loads(c.body) == orjson.loads(orjson.dumps(dict(i.context)))


def test_digest_lists_cases_most_overdue_first() -> None:
    cases = [OverdueCase(f"c{k}", f"XJ-{k}", "under_review", "PICC", "wang@m.example", T0 + timedelta(days=k))
             for k in (2, 0, 1)]
    (intent,) = digests(cases, day=date(2026, 12, 5), base_url=BASE)
    c = R.render(intent)
    assert "3" in (c.subject or "") and "2026-12-05" in (c.subject or "")
    assert c.body.index("XJ-0") < c.body.index("XJ-1") < c.body.index("XJ-2")


def test_no_message_text_in_code() -> None:
    # every word a party reads lives in the templates: no CJK in notify's Python files
    from pathlib import Path

    import services.notify as pkg

    root = Path(pkg.__file__).parent
    offenders = [p for p in root.rglob("*.py") if CJK.search(p.read_text(encoding="utf-8"))
                 and p.name != "settings.py"]
    assert offenders == []


@pytest.mark.parametrize("lang, word, never", [("zh", "待定", ("是否处于连续配送中：否", "不在保险责任范围内。")),
                                               ("en", "undetermined", ("Continuous delivery: no", "not covered."))])
def test_undetermined_reads_as_undetermined_never_no(lang: str, word: str, never: tuple[str, ...]) -> None:
    """An insufficient_data finding: the rider's SMS and the insurer's email say undetermined (待定)
    and what would settle it; neither says no."""
    insurer = InsurerContact("PICC", webhook=True, lang=lang)
    sms = next(i for i in route(evidence_ready(**undetermined(), rider_lang=lang), event_id="e", occurred_at=T0,
                                base_url=BASE, insurer=insurer) if i.channel is Channel.SMS)
    email = next(i for i in route(evidence_shared(**undetermined(covered=None)), event_id="e", occurred_at=T0,
                                  base_url=BASE, insurer=insurer) if i.channel is Channel.EMAIL)
    for intent, settle in ((sms, ("记录", "records")), (email, ("定位记录", "GPS fixes"))):
        text = R.render(intent).body
        assert word in text.lower() or word in text, (intent.template, text)
        assert settle[0 if lang == "zh" else 1] in text, (intent.template, text)
        assert not any(n in text for n in never), (intent.template, text)
    determined = R.render(next(i for i in route(evidence_shared(), event_id="e", occurred_at=T0, base_url=BASE,
                                                insurer=insurer) if i.channel is Channel.EMAIL)).body
    assert word not in determined.lower()
