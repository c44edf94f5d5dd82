"""The printable packet, read back by poppler's tools as a claims officer's viewer would; the seed
case's packet, PDF, figures and public key are written to var/test-artefacts/ for people to look at
(``python -m services.mediation packets verify var/test-artefacts/seed-case-packet.json --keys
var/test-artefacts/keys``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from services.mediation.packet import KeyRing, build_packet, dump_packet, packet_sha256, verify_file
from services.mediation.packet.pdf import render_pdf
from tests.support.sample_packet import seed_inputs

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ARTEFACTS = ROOT / "var" / "test-artefacts"


def poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing: CI must install poppler-utils")
        pytest.skip(f"{tool} not installed (apt-get install poppler-utils); the PDF's text is not checked")
    return path


@pytest.fixture(scope="module")
def seed_packet(tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    ring = KeyRing(keys)
    return ring.sign(build_packet(**seed_inputs())), ring


@pytest.fixture(scope="module")
def seed_pdf(seed_packet):
    packet, ring = seed_packet
    pdf = render_pdf(packet)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / "seed-case-packet.pdf").write_bytes(pdf)
    (ARTEFACTS / "seed-case-packet.json").write_bytes(dump_packet(packet))
    (ARTEFACTS / "seed-case-map.svg").write_text(packet["figures"]["map.svg"], encoding="utf-8")
    (ARTEFACTS / "seed-case-timeline.svg").write_text(packet["figures"]["timeline.svg"], encoding="utf-8")
    pub = ARTEFACTS / "keys"
    pub.mkdir(exist_ok=True)
    (pub / "packet-signing-key.pub.pem").write_text(ring.public_pem())  # the public half only
    return pdf


def test_the_pdf_is_a_reproducible_a4_document(seed_packet, seed_pdf):
    packet, _ = seed_packet
    assert seed_pdf.startswith(b"%PDF-") and seed_pdf.rstrip().endswith(b"%%EOF")
    assert render_pdf(packet) == seed_pdf


def test_the_written_artefacts_verify(seed_pdf):
    v = verify_file(ARTEFACTS / "seed-case-packet.json", ARTEFACTS / "keys")
    assert v.ok, v.problems


def test_the_pdf_reads_in_chinese_and_english(seed_packet, seed_pdf, tmp_path):
    tool = poppler("pdftotext")
    packet, ring = seed_packet
    f = tmp_path / "p.pdf"
    f.write_bytes(seed_pdf)
    text = subprocess.run([tool, "-enc", "UTF-8", str(f), "-"], capture_output=True, check=True).stdout.decode()
    for expected in ("XJ-2025-000123", "证据包", "Evidence packet", "两单衔接", "connecting", "案件事实", "Case facts",
                     "MEING001507", "MEING002716", ring.key_id, "python -m services.mediation packets verify FILE",
                     "138****5678", "Page 1 of", "事发时骑手处于两单之间的合理衔接阶段"):
        assert expected in text, expected
    assert "13812345678" not in text and "李明" not in text


def test_the_pdf_metadata_names_the_packet(seed_packet, seed_pdf, tmp_path):
    tool = poppler("pdfinfo")
    packet, _ = seed_packet
    f = tmp_path / "p.pdf"
    f.write_bytes(seed_pdf)
    info = subprocess.run([tool, str(f)], capture_output=True, check=True).stdout.decode()
    assert packet["packet_id"] in info and packet_sha256(packet) in info
    assert "Evidence packet XJ-2025-000123" in info and "A4" in info


@pytest.mark.parametrize("damage", [
    lambda p: {k: v for k, v in p.items() if k not in ("orders", "assessment", "figures")},
    lambda p: {},
    lambda p: {**p, "case": []},
    lambda p: {**p, "assessment": {"confidence": "x", "explanation": "str", "data_quality": [1]}},
    lambda p: {**p, "case": {"incident": {"location": {"lat": "a"}}}},
    lambda p: {**p, "orders": [{"order_id": None}, 5]},
    lambda p: {**p, "manifest": "x", "signature": []},
    lambda p: {**p, "track": {"window": {"from": "bad"}}},
    lambda p: {**p, "timeline": [{"start": 1}]},
])
def test_a_damaged_packet_still_prints_what_it_has(seed_packet, damage):
    packet, _ = seed_packet
    assert render_pdf(damage(packet)).startswith(b"%PDF-")


def test_very_long_free_text_is_cut_in_print_not_fatal(seed_packet, tmp_path):
    packet, _ = seed_packet
    case = {**packet["case"], "denial_reason": "拒赔" * 8000, "incident": {**packet["case"]["incident"],
                                                                            "description": "x" * 20000}}
    pdf = render_pdf({**packet, "case": case, "assessment": {**packet["assessment"], "explanation": ["长句" * 3000]}})
    assert pdf.startswith(b"%PDF-")
    tool = shutil.which("pdftotext")
    if tool:
        f = tmp_path / "long.pdf"
        f.write_bytes(pdf)
        text = subprocess.run([tool, "-enc", "UTF-8", str(f), "-"], capture_output=True, check=True).stdout.decode()
        assert "full text, 16000 characters, in the JSON file" in text.replace("\n", " ")


def _undetermined(packet: dict, *, legacy: bool = False) -> dict:
    """The seed packet as if the engine had abstained: no GPS, insufficient_data. ``legacy``: as
    packets made before coverage knew it (continuous_delivery and covered false)."""
    from services.mediation.domain.coverage import finding

    a = {**packet["assessment"], "phase": "insufficient_data", "continuous_delivery": False if legacy else None,
         "data_quality": {**packet["assessment"]["data_quality"], "gps_points_used": 0, "gps_coverage_30min": 0.0}}
    cov = finding("continuous-delivery", "insufficient_data", a).as_dict()
    if legacy:
        cov = {k: v for k, v in cov.items() if not k.startswith("settle_with")} | {"covered": False}
    return {**packet, "assessment": a, "coverage": cov}


@pytest.mark.parametrize("legacy", [False, True], ids=["undetermined", "legacy-false"])
def test_undetermined_prints_as_undetermined_never_no(seed_packet, tmp_path, legacy):
    """insufficient_data prints 待定 / UNDETERMINED for continuous delivery and cover, with what
    would settle it; a packet made before (false for insufficient_data) prints the same."""
    tool = poppler("pdftotext")
    packet, _ = seed_packet
    f = tmp_path / "undetermined.pdf"
    f.write_bytes(render_pdf(_undetermined(packet, legacy=legacy)))
    text = " ".join(subprocess.run([tool, "-enc", "UTF-8", str(f), "-"], capture_output=True,
                                   check=True).stdout.decode().split())
    assert text.count("UNDETERMINED") >= 3  # continuous delivery, covered, the clause line
    assert "Evidence that would settle it" in text and "GPS fixes" in text
    assert "undetermined (insufficient data)" in text
    assert "NO" not in text.split() and "否 NO" not in text
    determined = subprocess.run([tool, "-enc", "UTF-8", "-", "-"], input=render_pdf(packet), capture_output=True,
                                check=True).stdout.decode()
    assert "UNDETERMINED" not in determined and "YES" in determined


def test_a_fall_with_no_next_order_prints_undetermined_and_its_aftermath(tmp_path):
    """DATA_CONTRACT §5 rule 6: the public fall-aftermath rider who stopped working."""
    tool = poppler("pdftotext")
    body = build_packet(**seed_inputs(ROOT / "tests" / "data" / "scenarios" / "fall-aftermath"))
    assert body["assessment"]["continuous_delivery"] is None
    f = tmp_path / "fall.pdf"
    f.write_bytes(render_pdf(body))
    text = subprocess.run([tool, "-enc", "UTF-8", str(f), "-"], capture_output=True, check=True).stdout.decode()
    flat = " ".join(text.split())
    for expected in ("UNDETERMINED", "aftermath: stay from", "went offline at", "dispatch log", "witness",
                     "aftermath", "stayed"):  # (the Chinese runs need poppler-data to be read back)
        assert expected in flat, expected
    box = flat.split("Finding and reasons")[0]
    assert box.count("UNDETERMINED") == 2 and " NO " not in f"{box} "  # the finding box never says "no"


def test_a_late_report_prints_when_he_passed_the_place_in_words(tmp_path):
    """DATA_CONTRACT §6 time check: the seed case reported 8 minutes late at the right place."""
    tool = poppler("pdftotext")
    d = tmp_path / "seed-late"
    shutil.copytree(ROOT / "tests" / "data" / "scenarios" / "seed-case-between", d)
    inc = json.loads((d / "incidents.jsonl").read_text().splitlines()[0])
    inc["at"] = "2025-05-14T14:18:00+08:00"
    (d / "incidents.jsonl").write_text(json.dumps(inc) + "\n")
    body = build_packet(**seed_inputs(d))
    lc = body["assessment"]["location_check"]
    assert lc["phase_at_nearest"] == "connecting" and lc["minutes_from_reported"] < -3
    f = tmp_path / "late.pdf"
    f.write_bytes(render_pdf(body))
    flat = " ".join(subprocess.run([tool, "-enc", "UTF-8", str(f), "-"], capture_output=True,
                                   check=True).stdout.decode().split())
    n = f"{abs(lc['minutes_from_reported']):g}"
    assert f"{n} min before" in flat and f"{n} minutes before the reported time" in flat
    assert "phase when he passed it" in flat and "connecting" in flat and f"-{n}" not in flat
    assert "passed the place" in flat  # the timeline's mark
