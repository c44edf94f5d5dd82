"""The public scenarios (copied from ../shared/scenarios into tests/data/scenarios): 100% on
`clean` incidents, at least 95% on `boundary` ones, 100% on `aftermath` ones (rule 6)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Params
from shared.timeutil import iso_local

pytestmark = pytest.mark.unit

SCENARIOS = Path(__file__).resolve().parents[2] / "data" / "scenarios"
DAYS = sorted(p for p in SCENARIOS.iterdir() if (p / "truth.jsonl").exists())


def run(directory: Path) -> dict[str, dict]:
    feeds = load_dir(directory, "Asia/Shanghai")
    assert feeds.problems == []
    params = Params()
    cache = {r: analyse(d, params) for r, d in feeds.days.items()}
    return {i.incident_id: assess(cache[i.rider_id], i, params, iso_local) for i in feeds.incidents}


def truth(directory: Path) -> list[dict]:
    return [orjson.loads(line) for line in (directory / "truth.jsonl").read_bytes().splitlines() if line.strip()]


def test_there_are_public_scenarios():
    assert len(DAYS) >= 8


def test_public_scenarios_score():
    hits = {"clean": [0, 0], "boundary": [0, 0], "aftermath": [0, 0]}
    misses = []
    for d in DAYS:
        got = run(d)
        for t in truth(d):
            g = got[t["incident_id"]]
            ok = g["phase"] == t["phase"] and g["continuous_delivery"] == t["continuous_delivery"]
            hits[t["category"]][0] += ok
            hits[t["category"]][1] += 1
            if not ok:
                misses.append((d.name, t["incident_id"], t["category"], t["phase"], g["phase"]))
    clean_ok, clean_n = hits["clean"]
    b_ok, b_n = hits["boundary"]
    assert clean_n > 100 and clean_ok == clean_n, misses
    assert b_n > 0 and b_ok >= 0.95 * b_n, misses
    a_ok, a_n = hits["aftermath"]  # DATA_CONTRACT §5 rule 6: falls between orders
    assert a_n >= 2 and a_ok == a_n, misses


@pytest.mark.parametrize("d", DAYS, ids=[d.name for d in DAYS])
def test_every_assessment_explains_itself(d):
    for res in run(d).values():
        assert res["explanation"] and all(isinstance(s, str) and s for s in res["explanation"])
        assert 0.0 <= res["confidence"] <= 1.0
        assert res["data_quality"]["gps_points_used"] > 0
