"""Group 7, privacy: an evidence packet (its JSON, its figures and its PDF) carries nothing of the
rider's trajectory outside the window it states (± 30 min around the incident) and never his phone
number in clear; the rider's status answer and page show the status and nothing else.

Cases: the seed case as reported, the seed rider with an incident place he passed *before* the
window (the engine finds when he was nearest to it that day), and a simulated rider-day (dirty
feeds) with a phone number written with +86 and spaces."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from services.embedded import System, running_system, wait_for
from tests.e2e.conftest import INCIDENT, SEED, feed_seed

TZ = ZoneInfo("Asia/Shanghai")
WINDOW_S = 30 * 60
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")
CLOCK = re.compile(r"(?<![\d:.])([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?(?![\d:])")
OFFSET = re.compile(r"(?:UTC|GMT)?[+-]\d{2}:\d{2}(?![\d:])")
# the contract: status, next step, last update, and the mediation office's name and phone
STATUS_FIELDS = {"case_number", "status", "status_label", "next_step", "updated_at", "deadline", "lang", "office"}


@dataclass
class Packet:
    name: str
    case: dict[str, Any]
    phone: str
    raw: bytes
    body: dict[str, Any]
    pdf_text: str
    pdf: bytes
    number: str
    code: str


def _case(rider_id: str, phone: str, at: str, location: dict[str, float] | None) -> dict[str, Any]:
    return {
        "rider": {"id": rider_id, "name": "欧阳明", "phone": phone},
        "insurer_code": "PICC", "policy_number": "PICC-PRIV-9931", "claim_number": "CLM-PRIV-4471",
        "incident": {"at": at, "location": location, "description": "摔倒 fell", "injury": "wrist"},
        "denial_reason": "not working at the time",
        "consent": {"given": True, "at": "2025-05-20T10:00:00+08:00", "method": "written"},
    }


def _seed_fixes() -> list[tuple[float, float, float]]:
    rows = [json.loads(line) for line in (SEED / "gps.jsonl").read_text().splitlines() if line.strip()]
    return sorted((r["ts"] / 1000.0, r["lat"], r["lon"]) for r in rows)


def _pdf_text(pdf: bytes, tmp: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    f = tmp / "p.pdf"
    f.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(f), "-"], capture_output=True, check=True,
                          timeout=60).stdout.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def packets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, list[Packet], dict[str, Any]]]:
    from shared.geo import to_wgs84
    from tests.support import simulate as sim

    d = tmp_path_factory.mktemp("privacy")
    day = sim.simulate(replace(sim.preset("dirty"), riders=1, hours=3.0, incidents_per_rider=4, seed=11))
    sim.write_day(d / "day", day)
    sim_incident = next((i for i in day.incidents if i.get("location")), day.incidents[0])
    rider = day.riders[0]
    with running_system(d / "var", f"sqlite:///{d / 'xianjie.db'}") as s:
        s.tokens = {"mediator": s.add_user("mediator", "王调解", office="xiacheng"),
                    "feed": s.add_user("feed", "feed")}
        s.add_user("insurer", "PICC claims", insurer="PICC")  # the cases' insurer code must be known
        feed_seed(s)
        with s.client("feed") as f:
            for name, path in (("platform-events", "platform.jsonl"), ("gps", "gps.jsonl")):
                r = f.post(f"/api/v1/feeds/{name}", content=(d / "day" / path).read_bytes())
                assert r.status_code == 200 and r.json()["accepted"] > 0, r.text
        before = _seed_fixes()[0]  # 13:24, sixteen minutes before the seed case's window opens
        loc = sim_incident.get("location")
        if loc and loc.get("crs", "wgs84") != "wgs84":
            la, lo = to_wgs84(loc["lat"], loc["lon"], loc["crs"])
            loc = {"lat": float(la), "lon": float(lo)}
        at = sim_incident["at"]
        if isinstance(at, int | float):
            at = datetime.fromtimestamp(at / 1000, TZ).isoformat()
        cases = {
            "seed case": _case("R-LIMING", "13907318264", INCIDENT["at"], INCIDENT["location"]),
            "seed rider, place passed before the window": _case(
                "R-LIMING", "13907318264", INCIDENT["at"], {"lat": before[1], "lon": before[2]}),
            "simulated day (dirty feeds)": _case(rider.rider_id, "+86 138 2468 1357", at,
                                                 {"lat": loc["lat"], "lon": loc["lon"]} if loc else None),
        }
        out = []
        with s.client("mediator") as m:
            for name, body in cases.items():
                r = m.post("/api/v1/cases", json=body)
                assert r.status_code == 201, r.text
                created = r.json()
                cid = created["case_id"]
                assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
                wait_for(lambda cid=cid: m.get(f"/api/v1/cases/{cid}").json()["status"] == "evidence_ready",
                         timeout=60)
                raw = m.get(f"/api/v1/cases/{cid}/evidence-packet").content
                pdf = m.get(f"/api/v1/cases/{cid}/evidence-packet", params={"format": "pdf"}).content
                out.append(Packet(name, body, body["rider"]["phone"], raw, orjson.loads(raw),
                                  _pdf_text(pdf, d), pdf, created["case_number"], created["rider_access_code"]))
        yield s, out, {"sim_fixes": day.gps.records(), "skew_s": rider.skew_s}


# ------------------------------------------------------------------------------------------------
# the window

def _t(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _platform_and_case_times(body: dict[str, Any]) -> set[float]:
    """Instants a packet may name outside its window: when it was made, when the rider consented,
    and the platform's own order records (accepted, at the merchant, picked up, ended) of the orders
    it shows or names as the previous and next one. None of them is a point of the trajectory."""
    times = {_t(body["created_at"])}
    if body["case"]["consent"]["at"]:
        times.add(_t(body["case"]["consent"]["at"]))
    for o in body["orders"]:
        times |= {_t(o[k]) for k in ("accepted", "arrived", "picked_up", "ended") if o.get(k)}
    a = body["assessment"]
    for k, field in (("previous_order", "ended"), ("next_order", "accepted")):
        if isinstance(a.get(k), dict) and a[k].get(field):
            times.add(_t(a[k][field]))
    pw = a.get("phase_window") or {}
    times |= {_t(v) for v in pw.values() if v}  # the phase's bounds: order events (or GPS, inside the gap)
    return times


def _clock_ok(h: int, mi: int, sec: int | None, w0: float, w1: float, allowed: set[float], day: datetime) -> bool:
    """A clock time read in a text: inside the window (to the minute when written without seconds)
    or one of the allowed instants."""
    t = day.replace(hour=h, minute=mi, second=sec or 0).timestamp()
    local = [datetime.fromtimestamp(a, TZ) for a in allowed]  # of any date (consent, creation)
    if sec is None:
        return w0 - 60 < t <= w1 or any((x.hour, x.minute) == (h, mi) for x in local)
    return w0 <= t <= w1 or any((x.hour, x.minute, x.second) == (h, mi, sec) for x in local)


def outside_window(p: Packet) -> list[str]:
    body = p.body
    win = body["track"]["window"]
    w0, w1 = _t(win["from"]), _t(win["to"])
    at = _t(body["case"]["incident"]["at"])
    found: list[str] = []
    if not (abs(w0 - (at - WINDOW_S)) <= 1 and abs(w1 - (at + WINDOW_S)) <= 1):
        found.append(f"the window {win} is not ±30 min around the incident {body['case']['incident']['at']}")
    for t, lat, lon in body["track"]["points"]:
        if not w0 <= _t(t) <= w1:
            found.append(f"track point {t} {lat},{lon}")
    for seg in body["timeline"]:
        if _t(seg["start"]) < w0 or _t(seg["end"]) > w1:
            found.append(f"timeline span {seg['start']}..{seg['end']}")
    allowed = _platform_and_case_times(body)
    figures = body.get("figures") or {}
    json_text = orjson.dumps({k: v for k, v in body.items() if k != "figures"}).decode()
    for iso in ISO.findall(json_text):
        t = _t(iso)
        if not (w0 <= t <= w1) and not any(abs(a - t) < 1 for a in allowed):
            found.append(f"instant {iso} in the packet's JSON")
    day = datetime.fromtimestamp(at, TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    texts = {"explanation": "\n".join(body["assessment"].get("explanation", []) +
                                      body["assessment"].get("explanation_en", [])),
             **{f"figure {n}": v for n, v in figures.items()}, "PDF text": p.pdf_text}
    for where, text in texts.items():
        text = OFFSET.sub("", ISO.sub("", text))  # whole instants were checked above; "UTC+08:00" is no time
        for h, mi, sec in CLOCK.findall(text):
            if not _clock_ok(int(h), int(mi), int(sec) if sec else None, w0, w1, allowed, day):
                found.append(f"clock time {h}:{mi}{':' + sec if sec else ''} in the {where}")
    return sorted(set(found))


def test_packets_carry_no_trajectory_outside_their_window(packets: Any, reliability: Any) -> None:
    _, out, sim = packets
    seed_fixes = _seed_fixes()
    problems: dict[str, list[str]] = {}
    checked_points = 0
    for p in out:
        found = outside_window(p)
        checked_points += len(p.body["track"]["points"])
        # and no fix of the day from well outside the window, by its coordinates, anywhere
        w0, w1 = (_t(p.body["track"]["window"][k]) for k in ("from", "to"))
        fixes = seed_fixes if p.case["rider"]["id"] == "R-LIMING" else _sim_fixes_wgs84(sim)
        far = [(t, la, lo) for t, la, lo in fixes if t < w0 - 600 or t > w1 + 600]
        # (the reported place itself is the case's, whoever stood there when)
        reported = p.body["case"]["incident"]["location"] or {}
        hay = p.raw.decode() + p.pdf_text
        found += [f"fix of {datetime.fromtimestamp(t, TZ):%H:%M:%S} ({la:.6f},{lo:.6f})" for t, la, lo in far
                  if f"{la:.6f}" in hay and f"{lo:.6f}" in hay
                  and (round(la, 6), round(lo, 6)) != (reported.get("lat"), reported.get("lon"))]
        if found:
            problems[p.name] = found
    leaked = sum(len(v) for v in problems.values())
    reliability.record(7, "packet carries nothing of the trajectory outside its window",
                       load=f"{len(out)} packets (seed case, seed rider with a place passed before the window, "
                            f"a simulated dirty day): {checked_points} track points, every instant of the JSON, "
                            "every clock time of the explanations, figures and PDF text",
                       injected="an incident place the rider passed 16 minutes before the window opens",
                       leaked=leaked, detail="; ".join(f"{k}: {v[:3]}" for k, v in problems.items())
                       or "every instant inside ±30 min, or a platform order record, or the case's own dates")
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)


def _sim_fixes_wgs84(sim: dict[str, Any]) -> list[tuple[float, float, float]]:
    from shared.geo import to_wgs84
    from shared.timeutil import parse_one

    out = []
    for r in sim["sim_fixes"]:
        la, lo = to_wgs84(r["lat"], r["lon"], r.get("crs") or "wgs84")
        out.append((parse_one(r["ts"], "Asia/Shanghai") - sim["skew_s"], round(float(la), 6), round(float(lo), 6)))
    return out


# ------------------------------------------------------------------------------------------------
# the phone number

def phone_hits(p: Packet) -> list[str]:
    digits = re.sub(r"\D", "", p.phone)[-11:]
    needles = {digits, p.phone, f"{digits[:3]} {digits[3:7]} {digits[7:]}", f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"}
    needles |= {digits[i:i + 7] for i in range(len(digits) - 6)}  # any 7 digits in a row of it
    needles.add(digits[3:7])  # the four a masked number hides, anywhere next to its prefix
    hay = {"packet bytes": p.raw.decode("utf-8"), "PDF text": p.pdf_text,
           "PDF bytes": p.pdf.decode("latin-1"),
           **{f"figure {n}": v for n, v in (p.body.get("figures") or {}).items()}}
    hits = []
    for where, text in hay.items():
        for n in sorted(needles):
            if n == digits[3:7]:
                if re.search(re.escape(digits[:3]) + r"\D{0,3}" + re.escape(n), text):
                    hits.append(f"{where}: prefix and hidden digits {digits[:3]}…{n}")
            elif n in text:
                hits.append(f"{where}: {n!r}")
    return hits


def test_packets_carry_no_phone_number_in_clear(packets: Any, reliability: Any) -> None:
    _, out, _ = packets
    hits = {p.name: phone_hits(p) for p in out}
    masked = {p.name: p.body["case"]["rider"]["phone"] for p in out}
    leaked = sum(len(v) for v in hits.values())
    reliability.record(7, "no rider phone number in clear in a packet",
                       load=f"{len(out)} packets: JSON bytes, both SVG figures, the PDF's bytes and its text "
                            "(pdftotext)",
                       injected="phone numbers 13907318264 and '+86 138 2468 1357' on the cases",
                       leaked=leaked, detail=f"the packets write {sorted(set(masked.values()))}; searched for the "
                                             "whole number, its spaced and dashed forms and every 7-digit run")
    assert all(re.fullmatch(r"1\d\d\*{4}\d{4}", v) for v in masked.values()), masked
    assert leaked == 0, hits


# ------------------------------------------------------------------------------------------------
# the rider's status

COORD = re.compile(r"(?<![\d.])\d{1,3}\.\d{4,}(?![\d.])")


def test_status_answer_and_page_show_only_the_status(packets: Any, reliability: Any) -> None:
    s, out, _ = packets
    secrets_of_case = ["欧阳明", "PICC", "PICC-PRIV-9931", "CLM-PRIV-4471", "王调解", "not working at the time",
                       "摔倒 fell", "R-LIMING", "xiacheng", "evidence-packet", "packet_id", "wrist"]
    found: list[str] = []
    answers = 0
    with s.client() as rider:
        for p in out:
            for lang in ("zh", "en"):
                r = rider.get(f"/api/v1/status/{p.number}", params={"code": p.code, "lang": lang})
                answers += 1
                assert r.status_code == 200, r.text
                st = r.json()
                if set(st) != STATUS_FIELDS:
                    found.append(f"status answer fields {sorted(set(st) ^ STATUS_FIELDS)} beyond/short of the contract")
                if st["case_number"] != p.number or st["status"] != "evidence_ready":
                    found.append(f"status answer {st}")
                found += _scan(f"status API ({p.name}, {lang})", r.text, secrets_of_case, p)
                page = rider.get("/status", params={"case": p.number, "code": p.code, "lang": lang})
                answers += 1
                assert page.status_code == 200
                visible = re.sub(r"<[^>]+>", " ", page.text)  # what a reader sees, and the attributes apart
                found += _scan(f"status page ({p.name}, {lang})", visible, secrets_of_case, p)
                found += _scan(f"status page markup ({p.name}, {lang})", re.sub(r'(href|src)="[^"]*"', "", page.text),
                               secrets_of_case, p)
    reliability.record(7, "the rider's status reveals nothing but the status",
                       load=f"{answers} answers (API and page, zh and en) for {len(out)} cases",
                       injected="cases with a rider name, insurer, policy, claim, mediator, incident place and "
                                "an evidence packet",
                       leaked=len(found), detail=f"the API answers exactly {sorted(STATUS_FIELDS)}; no coordinate, "
                                                 "no name, no insurer detail, no phone in clear on either")
    assert not found, found


def _scan(where: str, text: str, words: list[str], p: Packet) -> list[str]:
    hits = [f"{where}: {w!r}" for w in words if w in text]
    hits += [f"{where}: coordinate {c}" for c in COORD.findall(ISO.sub("", text))]
    digits = re.sub(r"\D", "", p.phone)[-11:]
    if any(form in text for form in (digits, f"{digits[:3]} {digits[3:7]} {digits[7:]}",
                                     f"{digits[:3]}-{digits[3:7]}-{digits[7:]}")):
        hits.append(f"{where}: the phone number in clear")
    return hits
