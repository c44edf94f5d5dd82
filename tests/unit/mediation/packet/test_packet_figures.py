"""The figures: well-formed SVG, the same bytes for the same input, drawn from the packet alone."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.mediation.packet.figures import (
    PHASES,
    OrderEvents,
    Place,
    Span,
    figures_from_sections,
    map_svg,
    time_ticks,
    timeline_svg,
)

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"
T0 = 1747202400.0  # 14:00 in Asia/Shanghai
TZ = "Asia/Shanghai"
W = (T0 - 1800, T0 + 1800)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("viewBox")
    return root


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_the_seed_figures_are_well_formed_and_say_what_they_show(seed_body):
    m = parse(seed_body["figures"]["map.svg"])
    words = " ".join(texts(m))
    for expected in ("轨迹图", "Trajectory map", "事发地点 incident place", "事发时骑手位置 rider at 14:10", "N 北",
                     "比例尺 scale", "两单衔接 connecting", "取餐点 pickup MEING002716", "起 start 13:40"):
        assert expected in words
    assert any(re.fullmatch(r"\d+(\.\d+)? k?m", t) for t in texts(m)), "a scale bar labelled in metres"
    assert m.findall(f"{SVG}polyline")
    assert PHASES["connecting"][0] in seed_body["figures"]["map.svg"]  # the path coloured by phase

    t = parse(seed_body["figures"]["timeline.svg"])
    words = " ".join(texts(t))
    for zh, en in (("前往取餐", "to_pickup"), ("到店等餐", "at_merchant"), ("配送中", "delivering"),
                   ("两单衔接", "connecting"), ("空闲", "idle"), ("下线", "offline"), ("数据不足", "insufficient_data")):
        assert f"{zh} {en}" in words
    for hhmm in ("13:40", "13:50", "14:00", "14:10", "14:20", "14:30", "14:40"):
        assert hhmm in texts(t)
    assert "事发 incident 14:10" in words and "MEING001507" in words


def test_figures_are_redrawn_identically_from_the_packet(seed_body):
    assert figures_from_sections(seed_body) == seed_body["figures"]


def test_the_same_input_gives_the_same_bytes():
    pts = [(T0 + i * 5.0, 23.75 + i * 1e-5, 114.70 + i * 2e-5) for i in range(300)]
    spans = [Span(W[0], T0, "delivering", ("A",)), Span(T0, W[1], "connecting", ("A", "B"))]
    a = map_svg(pts, (23.751, 114.701), [Place(23.752, 114.702, "取餐点 pickup B")], W, segments=spans,
                incident_at=T0, tz=TZ)
    b = map_svg(list(pts), (23.751, 114.701), [Place(23.752, 114.702, "取餐点 pickup B")], W, segments=list(spans),
                incident_at=T0, tz=TZ)
    assert a == b
    orders = [OrderEvents("A", W[0] - 60, W[0] + 60, W[0] + 120, T0, "delivered"), OrderEvents("B", T0 + 60)]
    assert timeline_svg(spans, orders, T0, W, TZ) == timeline_svg(spans, orders, T0, W, TZ)


def test_without_phases_the_path_is_coloured_by_time():
    pts = [(T0 + i * 10.0, 23.75 + i * 1e-5, 114.70) for i in range(100)]
    root = parse(map_svg(pts, None, (), W, tz=TZ))
    colours = {p.get("stroke") for p in root.iter(f"{SVG}polyline")} - {"#FFFFFF"}
    assert len(colours) > 5
    assert "早 earlier 13:30" in texts(root)


def test_a_gps_silence_is_drawn_dashed():
    pts = [(T0 - 300, 23.75, 114.70), (T0 - 290, 23.7501, 114.70), (T0 + 300, 23.76, 114.70), (T0 + 310, 23.7601, 114.7)]
    root = parse(map_svg(pts, None, (), W, tz=TZ))
    assert [p for p in root.iter(f"{SVG}polyline") if p.get("stroke-dasharray")]
    assert "无定位 no GPS fix" in " ".join(texts(root))


def test_empty_figures_still_draw():
    root = parse(map_svg([], None, (), W, tz=TZ))
    assert "窗口内没有定位点  No GPS fixes in the window" in texts(root)
    root = parse(timeline_svg([], [], None, W, TZ))
    assert "窗口内无订单  no orders in the window" in texts(root)


def test_labels_are_escaped():
    root = parse(map_svg([(T0, 23.75, 114.7)], None, [Place(23.76, 114.71, 'a <b> & "c"')], W, tz=TZ))
    assert 'a <b> & "c"' in texts(root)


@settings(max_examples=40, deadline=None)
@given(pts=st.lists(st.tuples(st.floats(W[0], W[1]), st.floats(-60, 60), st.floats(-179, 179)), max_size=30),
       incident=st.none() | st.tuples(st.floats(-60, 60), st.floats(-179, 179)))
def test_any_track_gives_well_formed_svg(pts, incident):
    svg = map_svg(pts, incident, (), W, incident_at=T0, tz=TZ)
    parse(svg)
    assert "nan" not in svg and "inf" not in svg


def test_time_ticks_fall_on_round_local_minutes():
    ticks = time_ticks(T0 - 1790, T0 + 1800, TZ)
    assert [int(t - T0) for t in ticks] == [-1200, -600, 0, 600, 1200, 1800]
    assert len(time_ticks(T0, T0 + 8 * 3600, TZ)) <= 9
