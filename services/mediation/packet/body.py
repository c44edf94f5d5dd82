"""The unsigned evidence packet: a pure function of its inputs (no I/O, no clock).

Format ``xianjie.evidence-packet/2``, a JSON object::

    format       "xianjie.evidence-packet/2" (signed over its RFC 8785 form, see ``canonical``)
    packet_id    the caller's id
    created_at   ISO 8601 local time (the caller's "now")
    timezone     the zone every local time is written in, e.g. "Asia/Shanghai"
    case         the case facts; the rider's name and phone masked ("李*", "138****5678"), and any
                 mobile number in free text masked too
    assessment   the trajectory engine's assessment (DATA_CONTRACT §6), as given (phone numbers
                 masked should any appear in it)
    coverage     {product, clause_id, clause_text_zh, clause_text_en, covered, outcome, phase}, as given;
                 for an undetermined assessment (``insufficient_data``, ``continuous_delivery`` null)
                 ``covered`` is null, ``outcome`` "undetermined", with ``settle_with_zh`` /
                 ``settle_with_en``: the evidence that would settle it (``domain.coverage.finding``)
    timeline     [{start, end, phase, orders}], clipped to the window
    orders       [{order_id, platform, accepted, arrived, picked_up, ended, end_kind, merchant}]:
                 only the orders whose active time overlaps the window; ``merchant`` is the pickup
                 place {lat, lon} (WGS-84) or null. The customer's address is never included.
    track        {"window": {"from", "to"}, "points": [[iso time, lat, lon], ...]}: only the fixes
                 inside the window (bounds included), coordinates rounded to 6 decimals (~0.1 m)
    figures      {"map.svg": SVG text, "timeline.svg": SVG text}, drawn from the sections above
    manifest     {"algorithm": "SHA-256", "sections": {name: hex digest}} over the six data
                 sections (RFC 8785 canonical JSON, see ``canonical``) and the two figures (UTF-8 bytes)

Privacy (PIPL): nothing of the rider's day outside the window goes in: no fix, no order, no
phase. Times are rendered in ``tz``; inputs may be epoch seconds, aware datetimes or ISO strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from services.mediation.packet.canonical import FORMAT, manifest_for
from services.mediation.packet.figures import figures_from_sections
from services.mediation.packet.privacy import mask_name, mask_phone, redact_phones
from shared.timeutil import iso_local, parse_one

Instant = float | int | datetime | str | None


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """A field of a mapping or an attribute of an object (domain dataclasses and dicts alike)."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _instant(v: Instant, tz: str) -> float | None:
    """Epoch seconds of an instant given in any accepted form; None for None; infinities kept."""
    if v is None:
        return None
    if isinstance(v, datetime):
        if v.tzinfo is None:
            raise ValueError(f"naive datetime {v!r}: instants must be timezone-aware")
        return v.timestamp()
    if isinstance(v, bool):
        raise ValueError(f"not an instant: {v!r}")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        return parse_one(v, tz)
    raise ValueError(f"not an instant: {v!r}")


def _iso(v: Instant, tz: str) -> str | None:
    t = _instant(v, tz)
    return None if t is None else iso_local(t, tz)


def _latlon(v: Any) -> dict[str, float] | None:
    """``{"lat", "lon"}`` rounded to 6 decimals, from a (lat, lon) pair or a mapping; None if absent."""
    if v is None:
        return None
    if isinstance(v, Mapping):
        lat, lon = v.get("lat"), v.get("lon")
    else:
        lat, lon = v[0], v[1]
    if lat is None or lon is None:
        return None
    lat, lon = float(lat), float(lon)
    if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
        raise ValueError(f"not a WGS-84 position: {v!r}")
    return {"lat": round(lat, 6), "lon": round(lon, 6)}


def _text(v: Any) -> str | None:
    return None if v is None else redact_phones(str(v))


def _redact_all(obj: Any) -> Any:
    if isinstance(obj, str):
        return redact_phones(obj)
    if isinstance(obj, list):
        return [_redact_all(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _redact_all(v) for k, v in obj.items()}
    return obj


def _json(obj: Any) -> Any:
    """The value as it will read back from the packet file (numpy scalars, tuples and the like
    become plain JSON); raises on anything JSON cannot hold."""
    return orjson.loads(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))


def case_section(case: Any, tz: str) -> dict[str, Any]:
    """The case facts, with the rider's name and phone masked."""
    inc = _get(case, "incident")
    consent = _get(case, "consent")
    rider = _get(case, "rider")
    return {
        "case_number": str(_get(case, "case_number")),
        "insurer_code": _get(case, "insurer_code"),
        "policy_number": _get(case, "policy_number"),
        "claim_number": _get(case, "claim_number"),
        "incident": {
            "at": _iso(_get(inc, "at"), tz),
            "location": _latlon(_get(inc, "location")),
            "description": _text(_get(inc, "description")),
            "injury": _text(_get(inc, "injury")),
        },
        "denial_reason": _text(_get(case, "denial_reason")),
        "consent": {
            "given": bool(_get(consent, "given", False)),
            "at": _iso(_get(consent, "at"), tz),
            "method": _text(_get(consent, "method")),
            "scope": _text(_get(consent, "scope")),
        },
        "rider": {
            "rider_id": _text(_get(rider, "rider_id")),
            "name": mask_name(_get(rider, "name")),
            "phone": mask_phone(_get(rider, "phone")),
        },
    }


def timeline_section(timeline: Iterable[Any], window: tuple[float, float], tz: str) -> list[dict[str, Any]]:
    """Phase spans clipped to the window; spans wholly outside it are dropped. A span is a
    ``Segment`` of the trajectory engine or a mapping with start, end (None: open), phase, orders."""
    w0, w1 = window
    out: list[tuple[float, dict[str, Any]]] = []
    for s in timeline:
        start = _instant(_get(s, "start"), tz)
        end = _instant(_get(s, "end"), tz)
        a = max(start if start is not None else -math.inf, w0)
        b = min(end if end is not None else math.inf, w1)
        if not b > a:
            continue
        phase = _get(s, "phase")
        out.append((a, {"start": iso_local(a, tz), "end": iso_local(b, tz), "phase": str(getattr(phase, "value", phase)),
                        "orders": [str(o) for o in (_get(s, "orders") or ())]}))
    out.sort(key=lambda x: x[0])
    return [x[1] for x in out]


def orders_section(orders: Iterable[Any], window: tuple[float, float], tz: str) -> list[dict[str, Any]]:
    """The orders active at some instant of the window (from acceptance to end; an order without
    an end is active until the end of the window), earliest accepted first."""
    w0, w1 = window
    out: list[tuple[float, str, dict[str, Any]]] = []
    for o in orders:
        times = {k: _instant(_get(o, k), tz) for k in ("accepted", "arrived", "picked_up", "ended")}
        known = [t for t in times.values() if t is not None]
        if not known:
            continue
        start = times["accepted"] if times["accepted"] is not None else min(known)
        end = times["ended"] if times["ended"] is not None else math.inf
        if start > w1 or end < w0:
            continue
        oid = str(_get(o, "order_id"))
        out.append((start, oid, {
            "order_id": oid,
            "platform": _get(o, "platform"),
            **{k: (None if t is None else iso_local(t, tz)) for k, t in times.items()},
            "end_kind": _get(o, "end_kind"),
            "merchant": _latlon(_get(o, "merchant")),
        }))
    out.sort(key=lambda x: (x[0], x[1]))
    return [x[2] for x in out]


def track_section(track: Iterable[Sequence[float]], window: tuple[float, float], tz: str) -> dict[str, Any]:
    """The fixes inside the window, bounds included, in time order; lat/lon rounded to 6 decimals.
    Fixes with a non-finite or impossible position are dropped."""
    w0, w1 = window
    kept: list[tuple[float, float, float]] = []
    for p in track:
        t, lat, lon = float(p[0]), float(p[1]), float(p[2])
        if not (w0 <= t <= w1):
            continue
        if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
            continue
        kept.append((t, lat, lon))
    kept.sort()
    return {
        "window": {"from": iso_local(w0, tz), "to": iso_local(w1, tz)},
        "points": [[iso_local(t, tz), round(lat, 6), round(lon, 6)] for t, lat, lon in kept],
    }


def build_packet(*, packet_id: str, created_at: Instant, case: Any, assessment: Mapping[str, Any],
                 coverage: Mapping[str, Any], timeline: Iterable[Any], orders: Iterable[Any],
                 track: Iterable[Sequence[float]], window: tuple[float, float], tz: str) -> dict[str, Any]:
    """The unsigned packet body (see the module's docstring). ``window`` is (from, to) in epoch
    seconds; ``track`` is (epoch s, lat, lon) fixes, any number of them, which are filtered here."""
    w0, w1 = float(window[0]), float(window[1])
    if not (math.isfinite(w0) and math.isfinite(w1) and w0 < w1):
        raise ValueError(f"window must be two finite instants, from before to: {window!r}")
    # whole seconds, narrowed inwards: the bounds as written in the packet, and what filters it
    win = (float(math.ceil(w0)), float(math.floor(w1)))
    if not win[0] < win[1]:
        raise ValueError(f"window shorter than a second: {window!r}")
    body: dict[str, Any] = {
        "format": FORMAT,
        "packet_id": str(packet_id),
        "created_at": _iso(created_at, tz),
        "timezone": tz,
        "case": _json(case_section(case, tz)),
        "assessment": _redact_all(_json(dict(assessment))),
        "coverage": _json(dict(coverage)),
        "timeline": timeline_section(timeline, win, tz),
        "orders": orders_section(orders, win, tz),
        "track": track_section(track, win, tz),
    }
    body["figures"] = figures_from_sections(body)
    body["manifest"] = manifest_for(body)
    return body
