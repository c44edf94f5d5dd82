"""`python -m services.trajectory assess DIR` as DATA_CONTRACT §6 says: one JSON object per incident
on stdout in input order, nothing else there; bad lines on stderr with file and line; exit 0."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"


def assess(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.trajectory", "assess", str(directory)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_seed_case_from_the_command_line():
    r = assess(SEED)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    res = orjson.loads(lines[0])
    assert res["incident_id"] == "LIMING-between"
    assert res["phase"] == "connecting" and res["continuous_delivery"] is True
    assert res["previous_order"]["order_id"] == "MEING001507"
    assert res["next_order"]["order_id"] == "MEING002716"
    assert res["gap_minutes"] == pytest.approx(11.0)
    assert res["location_check"]["distance_m"] < 100


def test_bad_lines_are_reported_and_skipped(tmp_path):
    d = tmp_path / "day"
    shutil.copytree(SEED, d)
    gps = (d / "gps.jsonl").read_text().splitlines()
    gps.insert(3, "this is not json")
    gps.insert(10, '{"rider_id": "R-LIMING", "ts": "yesterday-ish", "lat": 23.7, "lon": 114.7}')
    gps.insert(20, '{"rider_id": "R-LIMING", "ts": 1747200255218, "lat": 999, "lon": 114.7}')
    (d / "gps.jsonl").write_text("\n".join(gps) + "\n")
    plat = (d / "platform.jsonl").read_text().splitlines()
    plat.insert(2, '{"event_id": "x", "kind": "order", "type": "teleported", "rider_id": "R-LIMING", "ts": 1747200255218, "order_id": "Z"}')
    (d / "platform.jsonl").write_text("\n".join(plat) + "\n")
    inc = (d / "incidents.jsonl").read_text().splitlines()
    inc = ['{"incident_id": "no-time", "rider_id": "R-LIMING"}', *inc, '{"incident_id": "X2", "rider_id": "R-LIMING", "at": "2025-05-14 14:31:00"}']
    (d / "incidents.jsonl").write_text("\n".join(inc) + "\n")

    r = assess(d)
    assert r.returncode == 0, r.stderr
    err = r.stderr
    assert "gps.jsonl:4:" in err and "not JSON" in err
    assert "gps.jsonl:11:" in err and "timestamp" in err
    assert "gps.jsonl:21:" in err and "coordinate" in err
    assert "platform.jsonl:3:" in err and "teleported" in err
    assert "incidents.jsonl:1:" in err and "'at'" in err
    out = [orjson.loads(x) for x in r.stdout.splitlines()]
    assert [o["incident_id"] for o in out] == ["LIMING-between", "X2"]
    assert out[0]["phase"] == "connecting"
    assert out[1]["phase"] == "delivering"  # 14:31:00 local, before the 14:31:27 delivery


def test_unknown_rider_and_empty_folder(tmp_path):
    (tmp_path / "incidents.jsonl").write_text('{"incident_id": "I", "rider_id": "nobody", "at": 1747200255218}\n')
    r = assess(tmp_path)
    assert r.returncode == 0
    res = orjson.loads(r.stdout)
    assert res["phase"] == "insufficient_data" and res["continuous_delivery"] is None  # undetermined, never "no"


def test_missing_folder_is_a_clear_error(tmp_path):
    r = assess(tmp_path / "nope")
    assert r.returncode == 2 and "not a directory" in r.stderr and r.stdout == ""
