"""Issue 17's hidden-minutes case through the batch command and through the running system
(``assess_request`` on a FeedStore, SQLite and PostgreSQL): delivered 10:15 at the customer, GPS
lost 10:14-10:19:40, seen 5.5 min at the drop-off, rides on, next order 10:40. He may have stayed
10.2 min: ``insufficient_data`` (null), not ``connecting``, on both paths."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from services.trajectory.domain.model import Params
from services.trajectory.service_layer.handlers import assess_request, ingest
from shared.events import AssessmentReady, AssessmentRequested
from tests.unit.trajectory.builders import T0, pos, ride, stay

from .helpers import ROOT, gps, lines, platform

pytestmark = pytest.mark.integration
TZ = "Asia/Shanghai"
RIDER = "R-HIDDEN"
M1, C1, M2 = (0.0, 0.0), (1500.0, 0.0), (3000.0, 3000.0)
AT = 1800.0  # 10:30


def _ll(p: tuple[float, float]) -> dict[str, float]:
    lat, lon = pos(*p)
    return {"lat": float(lat), "lon": float(lon)}


def write_case(d: Path) -> None:
    pts = (ride(0, 60, (-300, 0), M1) + stay(60, 300, M1) + ride(300, 780, M1, C1) + stay(780, 841, C1, every=20)
           + stay(1180, 1510, C1, every=20, seed=4) + ride(1510, 2460, C1, (1500, 2500))
           + ride(2460, 2900, (1500, 2500), M2) + stay(2900, 3000, M2, seed=2) + ride(3000, 3600, M2, (3000, 4500)))
    ms = lambda t: int(round((T0 + t) * 1000))  # noqa: E731
    gps_lines = [orjson.dumps({"rider_id": RIDER, "ts": ms(t), **_ll(p), "accuracy_m": 5.0}) for t, p in pts]
    events = [("A", "accepted", 0), ("A", "arrived_merchant", 60), ("A", "picked_up", 300), ("A", "delivered", 900),
              ("B", "accepted", 2400), ("B", "arrived_merchant", 2900), ("B", "picked_up", 3000), ("B", "delivered", 3600)]
    plat = [orjson.dumps({"event_id": "on", "kind": "presence", "type": "online", "rider_id": RIDER,
                          "platform": "meituan", "ts": ms(-100)})]
    for k, (oid, typ, t) in enumerate(events):
        m, c = (M1, C1) if oid == "A" else (M2, (3000.0, 4500.0))
        plat.append(orjson.dumps({"event_id": f"e{k}", "kind": "order", "type": typ, "rider_id": RIDER,
                                  "platform": "meituan", "ts": ms(t), "order_id": f"ME-{oid}",
                                  "merchant": _ll(m), "customer": _ll(c)}))
    inc = [orjson.dumps({"incident_id": "HIDDEN", "rider_id": RIDER, "at": ms(AT)})]
    for name, ls in (("gps.jsonl", gps_lines), ("platform.jsonl", plat), ("incidents.jsonl", inc)):
        (d / name).write_bytes(b"".join(x + b"\n" for x in ls))


def test_hidden_minutes_through_the_batch_command(tmp_path):
    write_case(tmp_path)
    r = subprocess.run([sys.executable, "-m", "services.trajectory", "assess", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    res = orjson.loads(r.stdout)
    assert res["phase"] == "insufficient_data" and res["continuous_delivery"] is None
    assert "possibly up to 10." in " ".join(res["explanation_en"])


def test_hidden_minutes_through_the_running_system(store, tmp_path):
    write_case(tmp_path)
    ingest(store, gps(lines(tmp_path, "gps.jsonl")) + platform(lines(tmp_path, "platform.jsonl")), tz=TZ)
    req = AssessmentRequested(request_id="q-hidden", case_id="CASE-HIDDEN", rider_id=RIDER,
                              incident_at=datetime.fromtimestamp(T0 + AT, ZoneInfo(TZ)))
    ev = assess_request(store, req, Params(), TZ)
    assert isinstance(ev, AssessmentReady)
    assert ev.assessment["phase"] == "insufficient_data" and ev.assessment["continuous_delivery"] is None


def test_a_two_fix_rider_beside_the_seed_case_through_the_batch_command(tmp_path):
    """The issue's crash: one rider with two fixes 10 s apart made ``assess`` exit 1 with no answer
    for any rider of the folder."""
    seed = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"
    ms = lambda t: int(round((T0 + t) * 1000))  # noqa: E731
    fixes = [orjson.dumps({"rider_id": "R-TINY", "ts": ms(t), **_ll((x, 0.0)), "accuracy_m": 5.0})
             for t, x in ((0, 0.0), (10, 5.0))]
    inc = orjson.dumps({"incident_id": "TINY", "rider_id": "R-TINY", "at": ms(5)})
    for name in ("gps.jsonl", "platform.jsonl", "incidents.jsonl"):
        extra = {"gps.jsonl": fixes, "platform.jsonl": [], "incidents.jsonl": [inc]}[name]
        (tmp_path / name).write_bytes((seed / name).read_bytes().rstrip(b"\n") + b"\n" + b"".join(x + b"\n" for x in extra))
    r = subprocess.run([sys.executable, "-m", "services.trajectory", "assess", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    out = {o["incident_id"]: o for o in map(orjson.loads, r.stdout.splitlines())}
    assert out["LIMING-between"]["phase"] == "connecting"
    # GPS only, never online on any platform: offline, by rule 3
    assert out["TINY"]["phase"] == "offline" and out["TINY"]["continuous_delivery"] is False
    assert "error" not in out["TINY"]
