"""Gap flags on the embedded default, through the running system: the trajectory service judges each
gap between a rider's orders as it closes in the uploaded feeds, publishes ``GapFlagged`` and records
it; the flags equal the batch engine's classification of the same gaps on every public scenario.
For the seed case the mediation service keeps the flags of the rider's open case, ``GET
/cases/{id}/gaps`` returns them (the insurer: only once the proposal is sent) and the packet cites
the flag covering the incident."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import orjson
import pytest
import sqlalchemy as sa

from services.embedded import running_system, wait_for
from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse
from services.trajectory.domain.model import Params
from tests.support.desk import signed_in
from tests.support.evidence_path import DAYS, case_body, packet_assessment, upload

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"


def recorded(url: str) -> list[tuple[str, float, str | None, float | None]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(sa.text(
                "SELECT rider_id, start, phase, flagged_at FROM trajectory_gap ORDER BY rider_id, start"))]
    finally:
        engine.dispose()


@pytest.mark.parametrize("day", DAYS, ids=[d.name for d in DAYS])
def test_flags_equal_the_batch_engine(day: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'xj.db'}"
    feeds = load_dir(day, TZ)
    batch = {}  # (rider, tA) -> phase of every gap the next order closed
    for rider, d in feeds.days.items():
        for g in analyse(d, Params()).timeline.gaps:
            if np.isfinite(g.start) and np.isfinite(g.end):
                batch[(rider, round(g.start, 3))] = g.phase.value
    assert batch
    with running_system(tmp_path / "var", url) as s:
        s.tokens = {"feed": s.add_user("feed", "platform feed")}
        with s.client("feed") as f:
            upload(f, (day / "platform.jsonl").read_bytes(), (day / "gps.jsonl").read_bytes(), random.Random(1))
        rows = wait_for(lambda: (r := recorded(url)) and all(x[3] is not None for x in r)
                        and {(x[0], round(x[1], 3)) for x in r} >= set(batch) and r, timeout=60)
    got = {(r, round(t, 3)): p for r, t, p, _ in rows}
    assert {k: got[k] for k in batch} == batch
    # the gaps no next order closed (the rider went offline, or 30 min passed) are idle
    assert all(p == "idle" for k, p in got.items() if k not in batch and p is not None)


def test_seed_case_flags_through_the_api(tmp_path: Path) -> None:
    day = next(d for d in DAYS if d.name == "seed-case-between")
    incident = orjson.loads((day / "incidents.jsonl").read_bytes().splitlines()[0])
    url = f"sqlite:///{tmp_path / 'xj.db'}"
    with running_system(tmp_path / "var", url, env={"XJ_GAP_GPS_WAIT_S": "600"}) as s:
        s.tokens = {"feed": s.add_user("feed", "platform feed"),
                    "mediator": s.add_user("mediator", "王调解", office="xiacheng"),
                    "insurer": s.add_user("insurer", "PICC claims", insurer="PICC")}
        with s.client("feed") as f, s.client("mediator") as m, s.client("insurer") as ins:
            # the platform's events first: the gaps close, and wait for the rider's GPS
            r = f.post("/api/v1/feeds/platform-events", content=(day / "platform.jsonl").read_bytes())
            assert r.status_code == 200
            cid = m.post("/api/v1/cases", json=case_body(incident)).json()["case_id"]
            at = incident["at"]
            # the gap the fall is in waits for the rider's GPS (a gap no order closed need not)
            assert not [g for g in m.get(f"/api/v1/cases/{cid}/gaps").json() if g["from"] <= at <= g["to"]]
            # then his GPS: the gaps are judged, flagged, and kept for his open case
            assert f.post("/api/v1/feeds/gps", content=(day / "gps.jsonl").read_bytes()).status_code == 200
            gaps = wait_for(lambda: (g := m.get(f"/api/v1/cases/{cid}/gaps").json())
                            and any(x["from"] <= at <= x["to"] for x in g) and g, timeout=30)
            [covering] = [g for g in gaps if g["from"] <= at <= g["to"]]
            assert covering["phase"] == "connecting" and covering["continuous_delivery"] is True
            assert covering["flagged_at"] and set(covering) >= {"from", "to", "phase", "continuous_delivery",
                                                                 "flagged_at"}
            # the insurer sees them only once the proposal is sent
            assert ins.get(f"/api/v1/cases/{cid}/gaps").status_code in (403, 404)
            assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
            a = packet_assessment(m, cid)
            assert a["phase"] == "connecting" and a["gap_flag"]["phase"] == "connecting"
            assert a["gap_flag"]["before_claim"] is False  # flagged after the case was opened
            assert any("标记" in x for x in a["explanation"]) and any("flagged" in x for x in a["explanation_en"])
            for to in ("under_review", "proposal_sent"):
                assert m.post(f"/api/v1/cases/{cid}/transitions", json={"to": to, "reason": "审查"}).status_code == 200
            assert ins.get(f"/api/v1/cases/{cid}/gaps").json() == m.get(f"/api/v1/cases/{cid}/gaps").json()
        # the mediator's desk shows them on the case page
        with signed_in(s, s.tokens["mediator"]) as web:
            page = web.get(f"/cases/{cid}").text
            assert 'id="gap-flags"' in page and "订单间隔标记" in page and "两单之间的合理衔接" in page
            assert covering["flagged_at"].replace("T", " ")[:19] in page


def test_flags_made_before_the_claim_say_so(tmp_path: Path) -> None:
    day = next(d for d in DAYS if d.name == "seed-case-between")
    incident = orjson.loads((day / "incidents.jsonl").read_bytes().splitlines()[0])
    url = f"sqlite:///{tmp_path / 'xj.db'}"
    with running_system(tmp_path / "var", url) as s:
        s.tokens = {"feed": s.add_user("feed", "platform feed"),
                    "mediator": s.add_user("mediator", "王调解", office="xiacheng"),
                    "insurer": s.add_user("insurer", "PICC claims", insurer="PICC")}
        with s.client("feed") as f, s.client("mediator") as m:
            upload(f, (day / "platform.jsonl").read_bytes(), (day / "gps.jsonl").read_bytes(), random.Random(2))
            wait_for(lambda: (r := recorded(url)) and all(x[3] is not None for x in r), timeout=30)
            cid = m.post("/api/v1/cases", json=case_body(incident)).json()["case_id"]
            assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
            a = packet_assessment(m, cid)
            assert a["gap_flag"]["before_claim"] is True and a["gap_flag"]["phase"] == "connecting"
            assert any("早于理赔申请" in x for x in a["explanation"])
            gaps = m.get(f"/api/v1/cases/{cid}/gaps").json()  # kept from the assessment's reply
            assert any(g["phase"] == "connecting" and g["from"] <= incident["at"] <= g["to"] for g in gaps)
