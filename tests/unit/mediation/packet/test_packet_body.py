"""The unsigned packet: only the window, masked identity, manifest over every section."""

from __future__ import annotations

import copy
import math
import re
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.mediation.packet import FORMAT, build_packet, canonical_json
from services.mediation.packet.canonical import FIGURES, SECTIONS, manifest_for, section_digest

pytestmark = pytest.mark.unit

T0 = 1747202400.0  # 2025-05-14T14:00:00+08:00
TZ = "Asia/Shanghai"
# a mainland mobile number in clear: 11 digits, or 3-4-4 with spaces or dashes; not inside a longer
# run of letters or digits (a hex digest may hold digits, but always next to other hex characters)
PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9][0-9](?:[ -]?[0-9]{4}){2}(?![0-9])")


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def minimal(**over: Any) -> dict[str, Any]:
    """build_packet's arguments for a small made-up case, any of them replaced."""
    kw: dict[str, Any] = {
        "packet_id": "p-1", "created_at": T0 + 86400, "tz": TZ,
        "case": {"case_number": "XJ-T-1", "insurer_code": "INS", "policy_number": "P1", "claim_number": "C1",
                 "incident": {"at": T0, "location": (23.76, 114.70), "description": "fell", "injury": "hand"},
                 "denial_reason": "15 minutes off", "consent": {"given": True, "at": T0 + 3600, "method": "sms",
                                                                 "scope": "this case"},
                 "rider": {"rider_id": "R1", "name": "李明", "phone": "13812345678"}},
        "assessment": {"incident_id": "I1", "phase": "connecting", "continuous_delivery": True},
        "coverage": {"product": "x", "clause_id": "art-1", "clause_text_zh": "条款", "clause_text_en": "clause",
                     "covered": True, "phase": "connecting"},
        "timeline": [], "orders": [], "track": [], "window": (T0 - 1800, T0 + 1800),
    }
    kw.update(over)
    return kw


def test_seed_packet_has_every_part(seed_body):
    b = seed_body
    assert b["format"] == FORMAT
    assert set(SECTIONS) <= set(b) and set(b["figures"]) == set(FIGURES)
    assert b["timezone"] == TZ and b["created_at"].endswith("+08:00")
    assert b["assessment"]["phase"] == "connecting" and b["coverage"]["clause_id"] == "art-3.2"
    assert b["manifest"]["algorithm"] == "SHA-256"
    assert set(b["manifest"]["sections"]) == set(SECTIONS) | set(FIGURES)
    assert b["manifest"] == manifest_for(b)
    assert b["manifest"]["sections"]["map.svg"] == section_digest("map.svg", b["figures"]["map.svg"])
    # the digest of a section is SHA-256 of its canonical JSON (documented, reproducible elsewhere)
    import hashlib
    assert b["manifest"]["sections"]["case"] == hashlib.sha256(
        orjson.dumps(b["case"], option=orjson.OPT_SORT_KEYS)).hexdigest()


def test_seed_case_facts_are_masked_and_local(seed_body):
    c = seed_body["case"]
    assert c["rider"] == {"rider_id": "R-LIMING", "name": "李*", "phone": "138****5678"}
    assert c["incident"]["at"] == "2025-05-14T14:10:00+08:00"
    assert c["incident"]["location"] == {"lat": 23.760652, "lon": 114.705929}
    assert c["consent"]["given"] is True and c["consent"]["at"] == "2025-05-20T10:05:00+08:00"


def test_seed_track_is_only_the_window(seed_body, seed_kwargs):
    w0, w1 = seed_kwargs["window"]
    pts = seed_body["track"]["points"]
    assert seed_body["track"]["window"] == {"from": "2025-05-14T13:40:00+08:00", "to": "2025-05-14T14:40:00+08:00"}
    assert all(w0 <= at(p[0]) <= w1 for p in pts)
    inside = [p for p in seed_kwargs["track"] if w0 <= p[0] <= w1]
    assert len(pts) == len(inside) and len(inside) < len(seed_kwargs["track"])  # the day had more
    assert all(round(p[1], 6) == p[1] and round(p[2], 6) == p[2] for p in pts)
    assert [p[0] for p in pts] == sorted(p[0] for p in pts)


def test_seed_orders_and_timeline_stay_in_the_window(seed_body):
    assert [o["order_id"] for o in seed_body["orders"]] == ["MEING001507", "MEING002716"]
    first = seed_body["orders"][0]
    assert first["accepted"] == "2025-05-14T13:31:00+08:00" and first["end_kind"] == "delivered"
    assert first["merchant"] is not None and "customer" not in first
    tl = seed_body["timeline"]
    assert tl[0]["start"] == "2025-05-14T13:40:00+08:00" and tl[-1]["end"] == "2025-05-14T14:40:00+08:00"
    assert any(s["phase"] == "connecting" and s["orders"] == ["MEING001507", "MEING002716"] for s in tl)
    assert all(a["end"] == b["start"] for a, b in zip(tl, tl[1:], strict=False))


_t = st.floats(T0 - 7200, T0 + 7200, allow_nan=False)
_point = st.tuples(_t, st.floats(-90, 90, allow_nan=False), st.floats(-180, 180, allow_nan=False))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(track=st.lists(_point, max_size=40), a=_t, b=_t)
def test_no_point_outside_the_window(track, a, b):
    w0, w1 = min(a, b), max(a, b)
    if w1 - w0 < 2:
        w1 = w0 + 2
    body = build_packet(**minimal(track=track, window=(w0, w1)))
    pts = body["track"]["points"]
    assert all(w0 <= at(p[0]) <= w1 for p in pts)
    assert at(body["track"]["window"]["from"]) >= w0 and at(body["track"]["window"]["to"]) <= w1
    expected = [p for p in track if math.ceil(w0) <= p[0] <= math.floor(w1)]
    assert len(pts) == len(expected)
    # nor in the map: every point the map draws is one of the packet's
    assert body["figures"]["map.svg"].count("<polyline") >= (1 if len(pts) > 1 else 0)


@settings(max_examples=40, deadline=None)
@given(spans=st.lists(st.tuples(st.floats(T0 - 9000, T0 + 9000), st.floats(0, 5000),
                                st.sampled_from(["to_pickup", "delivering", "connecting", "idle", "offline"])),
                      max_size=8))
def test_timeline_is_clipped_to_the_window(spans):
    w0, w1 = T0 - 1800, T0 + 1800
    segs = [{"start": s, "end": s + d, "phase": ph, "orders": []} for s, d, ph in spans]
    body = build_packet(**minimal(timeline=segs))
    for s in body["timeline"]:
        assert w0 <= at(s["start"]) <= at(s["end"]) <= w1


def test_open_ended_segments_are_clipped():
    segs = [SimpleNamespace(start=-math.inf, end=T0 - 600, phase=SimpleNamespace(value="idle"), orders=()),
            SimpleNamespace(start=T0 - 600, end=math.inf, phase="to_pickup", orders=("A",)),
            {"start": None, "end": T0 - 4000, "phase": "offline"}]
    tl = build_packet(**minimal(timeline=segs))["timeline"]
    assert tl == [
        {"start": "2025-05-14T13:30:00+08:00", "end": "2025-05-14T13:50:00+08:00", "phase": "idle", "orders": []},
        {"start": "2025-05-14T13:50:00+08:00", "end": "2025-05-14T14:30:00+08:00", "phase": "to_pickup",
         "orders": ["A"]},
    ]


def test_orders_outside_the_window_are_absent():
    def o(oid, accepted, ended=None, **kw):
        return {"order_id": oid, "platform": "meituan", "accepted": accepted, "ended": ended, **kw}

    orders = [
        o("BEFORE", T0 - 7200, T0 - 3600, end_kind="delivered"),  # over before the window opens
        o("AFTER", T0 + 3600, T0 + 4000, end_kind="delivered"),  # accepted after it closes
        o("ACROSS-START", T0 - 2400, T0 - 600, picked_up=T0 - 1900, end_kind="delivered"),
        o("INSIDE", T0 + 60, T0 + 900, end_kind="cancelled"),
        o("OPEN", T0 - 5000),  # never ended: active until now
        o("ISO", "2025-05-14T14:20:00+08:00", "2025-05-14 14:45:00", merchant={"lat": 23.7, "lon": 114.7}),
    ]
    got = build_packet(**minimal(orders=orders))["orders"]
    assert [x["order_id"] for x in got] == ["OPEN", "ACROSS-START", "INSIDE", "ISO"]
    iso = got[-1]
    assert iso["ended"] == "2025-05-14T14:45:00+08:00" and iso["merchant"] == {"lat": 23.7, "lon": 114.7}
    assert got[1]["picked_up"] == "2025-05-14T13:28:20+08:00" and got[1]["arrived"] is None


def test_no_phone_number_in_clear_anywhere(keyring):
    case = minimal()["case"]
    case = {**case, "incident": {**case["incident"], "description": "rider said: call 139 1234 5678 or +86-137-1234-5678"},
            "denial_reason": "contact the rider at 15912345678", "rider": {**case["rider"], "rider_id": "18612345678"}}
    assessment = {"incident_id": "I1", "rider_id": "18612345678", "phase": "idle", "continuous_delivery": False,
                  "explanation": ["骑手 18612345678 在空闲"]}
    packet = keyring.sign(build_packet(**minimal(case=case, assessment=assessment)))
    text = canonical_json(packet).decode()
    assert PHONE.findall(text) == []
    for raw in ("13812345678", "13912345678", "13712345678", "15912345678", "18612345678"):
        assert raw not in re.sub(r"[ +-]", "", text)
    assert packet["case"]["rider"]["phone"] == "138****5678" and packet["case"]["rider"]["name"] == "李*"
    assert "139****5678" in packet["case"]["incident"]["description"]


def test_seed_packet_holds_no_phone_number(signed):
    assert PHONE.findall(canonical_json(signed).decode()) == []


def test_building_is_pure_and_reproducible(seed_kwargs):
    before = copy.deepcopy(seed_kwargs["case"]), list(seed_kwargs["track"])
    a = build_packet(**seed_kwargs)
    b = build_packet(**seed_kwargs)
    assert canonical_json(a) == canonical_json(b)
    assert (seed_kwargs["case"], seed_kwargs["track"]) == before


def test_case_given_as_objects_with_aware_datetimes():
    from datetime import UTC

    case = SimpleNamespace(case_number="XJ-O", insurer_code="I", policy_number="P", claim_number="C",
                           incident=SimpleNamespace(at=datetime(2025, 5, 14, 6, 0, tzinfo=UTC), location=None,
                                                    description="d", injury=""),
                           denial_reason="r", consent=SimpleNamespace(given=True, at=None, method="app", scope="s"),
                           rider=SimpleNamespace(rider_id="R", name="Li Ming", phone="+86 138 1234 5678"))
    c = build_packet(**minimal(case=case))["case"]
    assert c["incident"]["at"] == "2025-05-14T14:00:00+08:00" and c["incident"]["location"] is None
    assert c["rider"]["name"] == "L******" and c["rider"]["phone"] == "138****5678"


@pytest.mark.parametrize("window", [(T0, T0), (T0 + 10, T0), (T0, math.inf), (T0 + 0.2, T0 + 0.8)])
def test_a_window_must_be_a_real_interval(window):
    with pytest.raises(ValueError, match="window"):
        build_packet(**minimal(window=window))


def test_naive_datetimes_are_refused():
    case = minimal()["case"]
    case = {**case, "incident": {**case["incident"], "at": datetime(2025, 5, 14, 14, 0)}}
    with pytest.raises(ValueError, match="naive"):
        build_packet(**minimal(case=case))
