"""What the assessment adds to the figures and pages: the incident's aftermath (DATA_CONTRACT §5
rule 6) as its own band after the incident mark, and, when the reported time may be off (§6),
the moment the rider passed the reported place. Drawn from the packet's own sections."""

from __future__ import annotations

import copy
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest

from services.mediation.entrypoints.web.views import packet_view
from services.mediation.packet.body import build_packet
from services.mediation.packet.figures import (
    AFTERMATH_FILL,
    PASSED_BLUE,
    Marks,
    OrderEvents,
    Span,
    figures_from_sections,
    marks_from_assessment,
    timeline_svg,
)
from tests.support.sample_packet import seed_inputs

pytestmark = pytest.mark.unit

SCENARIOS = Path(__file__).resolve().parents[4] / "tests" / "data" / "scenarios"
SVG = "{http://www.w3.org/2000/svg}"
T0 = 1747202400.0  # 14:00 in Asia/Shanghai
W = (T0 - 1800, T0 + 1800)


def texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


@pytest.fixture(scope="module")
def fall_body():
    """The public fall-aftermath case that stopped working: undetermined."""
    return build_packet(**seed_inputs(SCENARIOS / "fall-aftermath"))


@pytest.fixture(scope="module")
def late_body(tmp_path_factory):
    """The seed case reported 8 minutes late at the right place."""
    d = tmp_path_factory.mktemp("late") / "seed-late"
    shutil.copytree(SCENARIOS / "seed-case-between", d)
    inc = orjson.loads((d / "incidents.jsonl").read_bytes().splitlines()[0])
    inc["at"] = "2025-05-14T14:18:00+08:00"
    (d / "incidents.jsonl").write_bytes(orjson.dumps(inc) + b"\n")
    return build_packet(**seed_inputs(d))


def test_the_aftermath_is_its_own_band_after_the_incident(fall_body):
    a = fall_body["assessment"]
    assert a["phase"] == "insufficient_data" and a["continuous_delivery"] is None
    svg = fall_body["figures"]["timeline.svg"]
    words = " ".join(texts(svg))
    assert "事发后 aftermath" in words and f"stayed {round(a['aftermath']['minutes'])} min" in words
    assert "事发后停留（不计为休息） aftermath, not a break" in words  # in the legend
    bands = [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("fill") == AFTERMATH_FILL]
    assert len(bands) == 2  # the band and its legend swatch
    incident = [ln for ln in ET.fromstring(svg).iter(f"{SVG}line") if ln.get("stroke-width") == "2.2"
                and ln.get("stroke") == "#D62728" and float(ln.get("y2") or 0) - float(ln.get("y1") or 0) > 30]
    assert incident, "the incident mark"
    band = max(bands, key=lambda r: float(r.get("width") or 0))
    x_inc = float(incident[0].get("x1") or 0)
    assert float(band.get("x") or 0) + float(band.get("width") or 0) > x_inc  # the stay runs on after the incident
    # the offline moment in the band
    assert any(ln.get("stroke") == "#4D4D4D" for ln in ET.fromstring(svg).iter(f"{SVG}line"))


def test_the_figures_redraw_the_marks_from_the_packet_alone(fall_body, late_body):
    for body in (fall_body, late_body):
        assert figures_from_sections(body) == body["figures"]


def test_a_late_report_shows_when_he_passed_the_place(late_body):
    lc = late_body["assessment"]["location_check"]
    assert lc["phase_at_nearest"] == "connecting" and lc["continuous_delivery_at_nearest"] is True
    assert lc["minutes_from_reported"] < -3
    assert late_body["assessment"]["phase"] == "to_pickup"  # the answer stays the reported time's
    svg = late_body["figures"]["timeline.svg"]
    words = " ".join(texts(svg))
    assert re.search(r"经过报告地点 passed the place 14:1\d · 两单衔接 connecting", words)
    assert "事发 incident 14:18" in words
    assert any(ln.get("stroke") == PASSED_BLUE and ln.get("stroke-dasharray") for ln in
               ET.fromstring(svg).iter(f"{SVG}line"))
    en = " ".join(late_body["assessment"]["explanation_en"])
    assert "minutes before the reported time" in en and "-" + str(abs(lc["minutes_from_reported"])) not in en


def test_marks_outside_the_window_are_not_drawn():
    spans = [Span(W[0], W[1], "idle")]
    orders: list[OrderEvents] = []
    plain = timeline_svg(spans, orders, T0, W)
    outside = timeline_svg(spans, orders, T0, W, marks=Marks(aftermath=(W[1] + 60, W[1] + 600), passed_at=W[0] - 600,
                                                            passed_phase="idle"))
    assert outside == plain
    inside = timeline_svg(spans, orders, T0, W, marks=Marks(aftermath=(T0 + 30, T0 + 900)))
    assert inside != plain and AFTERMATH_FILL in inside


def test_marks_from_an_assessment_without_them_are_none():
    assert marks_from_assessment({"phase": "connecting"}) == Marks()
    assert marks_from_assessment(None) == Marks()
    assert marks_from_assessment({"aftermath": {"start_at": "bad", "end_at": None}}) == Marks()


def test_the_desk_says_undetermined_and_names_the_aftermath(fall_body, late_body):
    v = packet_view(fall_body, "en", "Asia/Shanghai")
    assert v["continuous"] is None
    assert v["aftermath"] and "stayed" in v["aftermath"]["text"] and "went offline at 11:38:38" in v["aftermath"]["text"]
    zh = packet_view(fall_body, "zh", "Asia/Shanghai")
    assert "下线" in zh["aftermath"]["text"] and "不计为休息" in zh["aftermath"]["text"]
    late = packet_view(late_body, "en", "Asia/Shanghai")
    assert late["time_check"] and "minutes before the reported time" in late["time_check"]["text"]
    assert "-" not in late["time_check"]["text"].split("(")[1].split(")")[0].split(",")[1]
    assert packet_view(late_body, "zh", "Asia/Shanghai")["time_check"]["text"].count("比报告时间早") == 1


def test_the_desk_says_when_the_pass_was_hidden_in_a_gps_outage(late_body):
    body = copy.deepcopy(late_body)
    lc = body["assessment"]["location_check"]
    lc.update(nearest_distance_m=None, gps_silent_from="2025-05-14T14:05:00+08:00",
              gps_silent_to="2025-05-14T14:13:30+08:00", detour_m=40)
    en = packet_view(body, "en", "Asia/Shanghai")["time_check"]["text"]
    assert "GPS was silent from 14:05:00 to 14:13:30" in en and "None" not in en
    zh = packet_view(body, "zh", "Asia/Shanghai")["time_check"]["text"]
    assert "定位在 14:05:00 至 14:13:30 之间中断" in zh and "None" not in zh


def test_a_second_pass_about_as_likely_is_drawn_and_said_too(late_body):
    body = copy.deepcopy(late_body)
    lc = body["assessment"]["location_check"]
    lc.update(other_pass_at="2025-05-14T14:24:30+08:00", minutes_from_reported_other=6.5,
              phase_at_other_pass="to_pickup", continuous_delivery_at_other_pass=True, orders_at_other_pass=["B"])
    marks = marks_from_assessment(body["assessment"])
    assert marks.passed_phase == "connecting" and marks.other_phase == "to_pickup" and marks.other_at is not None
    svg = timeline_svg([Span(W[0], W[1], "connecting")], [], T0 + 1080, (T0, T0 + 1800), marks=marks)
    words = " ".join(texts(svg))
    assert re.search(r"(?<!也)经过报告地点 passed the place 14:1\d · 两单衔接 connecting", words)
    assert "也经过报告地点 also passed the place 14:24" in words
    dashed = [ln for ln in ET.fromstring(svg).iter(f"{SVG}line") if ln.get("stroke") == PASSED_BLUE
              and ln.get("stroke-dasharray") and float(ln.get("y2") or 0) - float(ln.get("y1") or 0) > 30]
    assert len(dashed) == 2 and dashed[0].get("x1") != dashed[1].get("x1")
    en = packet_view(body, "en", "Asia/Shanghai")["time_check"]["other"]["text"]
    assert "also passed the reported place at 14:24:30 (6.5 minutes after the reported time)" in en
    assert "he was then heading to a pickup, which counts as continuous delivery" in en
    zh = packet_view(body, "zh", "Asia/Shanghai")["time_check"]["other"]["text"]
    assert "14:24:30 也经过报告地点（比报告时间晚 6.5 分钟）" in zh
    assert packet_view(late_body, "en", "Asia/Shanghai")["time_check"]["other"] is None


def test_the_pdf_lists_the_second_pass(late_body, tmp_path):
    import subprocess

    from services.mediation.packet.pdf import render_pdf

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    body = copy.deepcopy(late_body)
    body["assessment"]["location_check"].update(
        other_pass_at="2025-05-14T14:24:30+08:00", minutes_from_reported_other=6.5, phase_at_other_pass="to_pickup",
        continuous_delivery_at_other_pass=True, orders_at_other_pass=["B"])
    f = tmp_path / "p.pdf"
    f.write_bytes(render_pdf(body))
    text = subprocess.run(["pdftotext", "-layout", str(f), "-"], capture_output=True, check=True, text=True).stdout
    assert "also passed it (as likely)" in text and "14:24" in text
