"""The path a mediator takes, with a mediator's timing: upload a rider's feeds in pieces, open the
case and ask for evidence at once; then compare what the signed packet says with what the batch
command ``assess DIR`` says on the same files. Used on the embedded default and on Kafka."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "tests" / "data" / "scenarios"
DAYS = sorted(p for p in SCENARIOS.iterdir() if (p / "incidents.jsonl").exists())


def batch_answers(directory: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """``python -m services.trajectory assess DIR``, by incident id."""
    r = subprocess.run([sys.executable, "-m", "services.trajectory", "assess", str(directory)], cwd=ROOT,
                       capture_output=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return {a["incident_id"]: a for a in map(orjson.loads, r.stdout.splitlines())}


def pieces(data: bytes, k: int, rng: random.Random) -> list[bytes]:
    """``data``'s lines cut into ``k`` pieces at random places."""
    lines = data.splitlines(keepends=True)
    cuts = sorted(rng.sample(range(1, len(lines)), min(k - 1, max(len(lines) - 1, 0))))
    return [b"".join(lines[a:b]) for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]


def upload(c: httpx.Client, platform: bytes, gps: bytes, rng: random.Random) -> dict[str, int]:
    """Both feeds in pieces, interleaved; every answer 200 and nothing rejected."""
    todo = [("/api/v1/feeds/platform-events", p) for p in pieces(platform, 3, rng)]
    todo += [("/api/v1/feeds/gps", p) for p in pieces(gps, 4, rng)]
    rng.shuffle(todo)
    totals = {"accepted": 0, "duplicates": 0}
    for path, body in todo:
        r = c.post(path, content=body)
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["rejected"] == [], got["rejected"][:3]
        totals["accepted"] += got["accepted"]
        totals["duplicates"] += got["duplicates"]
    return totals


def case_body(incident: dict[str, Any], insurer: str = "PICC") -> dict[str, Any]:
    inc: dict[str, Any] = {"at": incident["at"], "description": "摔倒 fell"}
    if incident.get("location"):
        inc["location"] = incident["location"]
    return {"rider": {"id": incident["rider_id"], "name": "骑手", "phone": "13800138000"},
            "insurer_code": insurer, "policy_number": "P-1", "claim_number": incident["incident_id"],
            "incident": inc, "denial_reason": "不在配送状态",
            "consent": {"given": True, "at": "2026-05-20T10:00:00+08:00", "method": "written"}}


def open_and_request(c: httpx.Client, incident: dict[str, Any], insurer: str = "PICC") -> str:
    """Open the case and ask for evidence straight away; the case id."""
    r = c.post("/api/v1/cases", json=case_body(incident, insurer))
    assert r.status_code == 201, r.text
    cid = str(r.json()["case_id"])
    r = c.post(f"/api/v1/cases/{cid}/evidence-requests")
    assert r.status_code == 202, r.text
    return cid


def packet_assessment(c: httpx.Client, cid: str, timeout: float = 120.0) -> dict[str, Any]:
    """The assessment in the case's signed packet, once it is there."""
    deadline = time.monotonic() + timeout
    while True:
        case = c.get(f"/api/v1/cases/{cid}").json()
        if case["status"] not in ("opened", "evidence_requested"):
            break
        assert time.monotonic() < deadline, f"case {cid} still {case['status']} after {timeout} s"
        time.sleep(0.05)
    r = c.get(f"/api/v1/cases/{cid}/evidence-packet")
    assert r.status_code == 200, (case["status"], r.text[:500])
    return dict(orjson.loads(r.content)["assessment"])


def differences(served: dict[str, Any], batch: dict[str, Any]) -> list[str]:
    """What the packet says differently from the batch command, on what decides a case: the phase,
    continuous delivery, the orders before and after, GPS coverage, distance from the reported place."""
    out = []

    def pick(a: dict[str, Any], *path: str) -> Any:
        for p in path:
            a = a.get(p) if isinstance(a, dict) else None  # type: ignore[assignment]
        return a

    for path in (("phase",), ("continuous_delivery",), ("previous_order", "order_id"), ("previous_order", "ended"),
                 ("next_order", "order_id"), ("next_order", "accepted"), ("data_quality", "gps_coverage_30min"),
                 ("location_check", "distance_m")):
        s, b = pick(served, *path), pick(batch, *path)
        if s != b:
            out.append(f"{'.'.join(path)}: packet {s!r}, assess {b!r}")
    return out


def late_day(tmp: Path, env: dict[str, str] | None = None) -> tuple[Path, dict[str, dict[str, Any]], list[str]]:
    """A simulated day of late reports (as ``bench.rules`` makes them: the dirty preset, half the
    incidents reported 4-12 min off at the right place; riders named ``late-…`` so as not to meet
    the public scenarios' riders), its batch answers, and three incidents the time check speaks
    of: one naming a second pass about as likely, one a pass hidden in a GPS outage, one plain."""
    from dataclasses import replace

    from tests.support import simulate as sim

    for seed in range(700, 720):
        d = tmp / f"late-{seed}"
        opts = replace(sim.preset("dirty"), riders=10, seed=seed, fall_rate=0.2, time_off_rate=0.5, garbage=0)
        sim.write_day(d, sim.simulate(opts))
        for name in ("platform.jsonl", "gps.jsonl", "incidents.jsonl"):
            p = d / name
            p.write_bytes(p.read_bytes().replace(b'"rider_id":"', b'"rider_id":"late-'))
        batch = batch_answers(d, env)
        checked = [i for i, a in batch.items() if "phase_at_nearest" in (a.get("location_check") or {})]
        other = [i for i in checked if "other_pass_at" in batch[i]["location_check"]]
        unseen = [i for i in checked if "gps_silent_from" in batch[i]["location_check"]]
        plain = [i for i in checked if i not in other and i not in unseen]
        if other and unseen and plain:
            return d, batch, [other[0], unseen[0], plain[0]]
    raise AssertionError("no simulated day with every kind of time check in 20 seeds")
