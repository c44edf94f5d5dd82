"""What the pages show, made from the service's dicts and the signed packet: plain values for
the templates (times in the deployment's zone, labels in the reader's language). Pure functions."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pendulum

from services.mediation.domain.coverage import PRODUCTS, UNDETERMINED, settle_with
from services.mediation.entrypoints.web import i18n

FIGURE_NAMES = ("map.svg", "timeline.svg")
_SIZE = re.compile(r'<svg\b[^>]*?\swidth="(\d+(?:\.\d+)?)"[^>]*?\sheight="(\d+(?:\.\d+)?)"')


def as_datetime(v: Any) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    try:
        parsed = pendulum.parse(str(v))
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return None
    return parsed if isinstance(parsed, datetime) else None


def local(v: Any, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    t = as_datetime(v)
    if t is None:
        return ""
    return pendulum.instance(t).in_timezone(tz).strftime(fmt)


def duration(seconds: float, lang: str) -> str:
    _ = i18n.translator(lang)
    s = abs(seconds)
    if s < 3600:
        return _("minutes", n=max(1, round(s / 60)))
    if s < 48 * 3600:
        return _("hours", n=round(s / 3600))
    return _("days", n=round(s / 86400))


def due_view(due: Any, now: datetime, lang: str, tz: str, soon_h: float = 24) -> dict[str, Any] | None:
    """A deadline as the list shows it: when, how far, and whether it is near or past."""
    t = as_datetime(due)
    if t is None:
        return None
    left = (t - now).total_seconds()
    _ = i18n.translator(lang)
    return {"at": local(t, tz), "iso": t.isoformat(), "overdue": left < 0, "soon": 0 <= left <= soon_h * 3600,
            "text": _("overdue_by", h=duration(left, lang)) if left < 0 else _("due_in", h=duration(left, lang))}


def actor_name(label: str, names: dict[str, str], lang: str) -> str:
    """``mediator:<uuid>`` as a person: his name and role."""
    _ = i18n.translator(lang)
    if label.startswith("system:"):
        return _("system")
    role = label.split(":", 1)[0]
    who = names.get(label)
    role_text = _(f"role_{role}") if role in ("rider", "insurer", "mediator") else role
    return f"{who}（{role_text}）" if who and lang == "zh" else f"{who} ({role_text})" if who else role_text


def _hms(v: Any, tz: str) -> str:
    return local(v, tz, "%H:%M:%S")


def packet_view(packet: dict[str, Any], lang: str, tz: str) -> dict[str, Any]:
    """The readable parts of a signed evidence packet."""
    en = lang == "en"
    a = packet.get("assessment") or {}
    cov = packet.get("coverage") or {}
    case = packet.get("case") or {}
    product = PRODUCTS.get(str(cov.get("product")))
    incident_at = as_datetime((case.get("incident") or {}).get("at") or a.get("at"))
    spans: list[dict[str, Any]] = []
    for s in packet.get("timeline") or []:
        start, end = as_datetime(s.get("start")), as_datetime(s.get("end"))
        spans.append({"start": _hms(start, tz), "end": _hms(end, tz), "phase": s.get("phase"),
                      "label": i18n.phase_label(s.get("phase"), lang), "orders": ", ".join(s.get("orders") or []),
                      "incident": bool(incident_at and start and end and start <= incident_at < end)})
    orders = [{"id": o.get("order_id"), "platform": o.get("platform"),
               **{k: _hms(o.get(k), tz) for k in ("accepted", "arrived", "picked_up", "ended")},
               "end_kind": o.get("end_kind")} for o in packet.get("orders") or []]
    dq = a.get("data_quality") or {}
    points = (packet.get("track") or {}).get("points") or []
    open_ = a.get("phase") == UNDETERMINED or ("continuous_delivery" in a and a["continuous_delivery"] is None)
    settle = list(cov.get("settle_with_en" if en else "settle_with_zh") or [])
    if open_ and not settle:  # a packet made before coverage named them
        zh, en_ = settle_with(a)
        settle = list(en_ if en else zh)
    _ = i18n.translator(lang)
    aftermath = None
    am = a.get("aftermath")
    if isinstance(am, dict) and am.get("start_at") and am.get("end_at"):
        off = _("aftermath_offline", at=_hms(am["offline_at"], tz)) if am.get("offline_at") else ""
        aftermath = {"start": _hms(am["start_at"], tz), "end": _hms(am["end_at"], tz), "minutes": am.get("minutes"),
                     "offline_at": _hms(am.get("offline_at"), tz),
                     "text": _("aftermath_line", minutes=am.get("minutes"), start=_hms(am["start_at"], tz),
                               end=_hms(am["end_at"], tz), offline=off)}
    time_check = None
    lc = a.get("location_check")
    if isinstance(lc, dict) and lc.get("phase_at_nearest") and lc.get("nearest_at"):
        def passed(at: str, minutes: str, phase: str, cd: str) -> dict[str, Any]:
            """A moment he passed the place, as the time-check lines say it."""
            m, c = float(lc.get(minutes) or 0.0), lc.get(cd)
            return {"at": _hms(lc[at], tz), "rel": _("rel_before" if m < 0 else "rel_after", n=f"{abs(m):g}"),
                    "phase": i18n.phase_label(lc[phase], lang),
                    "cd": _("then_continuous") if c is True else _("then_not_continuous") if c is False
                    else _("then_undetermined")}

        then = passed("nearest_at", "minutes_from_reported", "phase_at_nearest", "continuous_delivery_at_nearest")
        text = (_("time_check_line_unseen", from_=_hms(lc["gps_silent_from"], tz), to=_hms(lc.get("gps_silent_to"), tz), **then)
                if lc.get("gps_silent_from") else _("time_check_line", d=lc.get("nearest_distance_m"), **then))
        time_check = {"at": then["at"], "phase": lc["phase_at_nearest"], "text": text, "other": None}
        if lc.get("phase_at_other_pass") and lc.get("other_pass_at"):  # a second pass about as likely
            other = passed("other_pass_at", "minutes_from_reported_other", "phase_at_other_pass",
                           "continuous_delivery_at_other_pass")
            time_check["other"] = {"at": other["at"], "phase_label": other["phase"],
                                   "text": _("time_check_other_line", **other)}
    return {
        "undetermined": open_,
        "settle": [str(x) for x in settle] if open_ else [],
        "packet_id": packet.get("packet_id"),
        "created_at": local(packet.get("created_at"), tz),
        "phase": a.get("phase"),
        "phase_label": i18n.phase_label(a.get("phase"), lang),
        "continuous": None if open_ else a.get("continuous_delivery"),
        "confidence": round(float(a["confidence"]) * 100) if isinstance(a.get("confidence"), int | float) else None,
        "explanation": list(a.get("explanation_en" if en else "explanation") or a.get("explanation") or []),
        "covered": None if open_ else cov.get("covered"),
        "clause": cov.get("clause_text_en" if en else "clause_text_zh") or "",
        "clause_id": cov.get("clause_id"),
        "product": (product.name_en if en else product.name_zh) if product else cov.get("product"),
        "incident_at": _hms(incident_at, tz),
        "incident_date": local(incident_at, tz, "%Y-%m-%d"),
        "spans": spans,
        "orders": orders,
        "gps_used": dq.get("gps_points_used"),
        "gps_raw": dq.get("gps_points_raw"),
        "clock_skew": dq.get("clock_skew_s"),
        "points": len(points),
        "figures": figure_sizes(packet.get("figures") or {}),
        "aftermath": aftermath,
        "time_check": time_check,
        "case": case,
    }


def figure_sizes(figures: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """The figures a packet holds, with their drawn size (for the page's layout before they load)."""
    out = {}
    for name in FIGURE_NAMES:
        svg = figures.get(name)
        if isinstance(svg, str):
            m = _SIZE.search(svg[:2000])
            out[name] = (round(float(m.group(1))), round(float(m.group(2)))) if m else (800, 500)
    return out


def reason_text(reason: str | None, lang: str) -> str:
    """The reasons the system writes itself, in the reader's language; people's own as written."""
    if not reason:
        return ""
    fixed = {"case opened": ("立案", "case opened"), "evidence requested": ("申请调取轨迹证据", "evidence requested")}
    if reason in fixed:
        return fixed[reason][1 if lang == "en" else 0]
    if reason.startswith("assessment: "):
        phase = i18n.phase_label(reason.removeprefix("assessment: "), lang)
        return f"Assessment: {phase}" if lang == "en" else f"轨迹分析：{phase}"
    if reason.startswith("no evidence: "):
        return ("No evidence: " if lang == "en" else "未能生成证据：") + reason.removeprefix("no evidence: ")
    if reason.startswith("corrected (") and "): " in reason:  # a correction: (why): field: old → new; ...
        why, _, changes = reason.removeprefix("corrected (").partition("): ")
        return (f"{why} — {changes}" if lang == "en" else f"{why}——{changes}")
    if reason == "evidence request superseded by a correction":
        return reason if lang == "en" else "案件信息已更正，原证据申请作废"
    return reason


def packet_facts(packet: dict[str, Any], tz: str) -> dict[str, Any]:
    """The case facts as the (masked) packet states them, for the insurer."""
    case = packet.get("case") or {}
    inc = case.get("incident") or {}
    consent = case.get("consent") or {}
    rider = case.get("rider") or {}
    return {"case_number": case.get("case_number"), "insurer_code": case.get("insurer_code"),
            "policy_number": case.get("policy_number"), "claim_number": case.get("claim_number"),
            "incident_at": local(inc.get("at"), tz), "location": inc.get("location"),
            "description": inc.get("description"), "injury": inc.get("injury"),
            "denial_reason": case.get("denial_reason"),
            "consent": {"given": consent.get("given"), "at": local(consent.get("at"), tz),
                        "method": consent.get("method"), "scope": consent.get("scope")},
            "rider": {"id": rider.get("rider_id"), "name": rider.get("name"), "phone": rider.get("phone")}}
