"""Issue 17 part 1: no rider-day shape crashes the engine or the batch, and a fault on one rider
never costs another rider's answer. Tiny and degenerate rider-days, through ``analyse``/``assess``
and through the batch command's ``assess_all`` (the path ``python -m services.trajectory assess``
takes)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Incident, Params, Phase
from services.trajectory.domain.motion import resample
from services.trajectory.entrypoints import cli
from shared.timeutil import iso_local

from .builders import PARAMS, T0, day, online, order, pos, track

pytestmark = pytest.mark.unit

PHASES = {p.value for p in Phase}


def check(res: dict[str, Any], iid: str) -> None:
    """An answer or an honest abstention: a phase, and null exactly when undetermined."""
    assert res["incident_id"] == iid
    assert res["phase"] in PHASES
    if res["phase"] == Phase.INSUFFICIENT_DATA.value:
        assert res["continuous_delivery"] is None
    else:
        assert res["continuous_delivery"] is Phase(res["phase"]).continuous_delivery
    assert "error" not in res


@pytest.mark.parametrize("n", [2, 3, 4])
def test_resample_of_two_to_four_grid_points_does_not_crash(n):
    tr = track([(5.0 * k, (k * 2.0, 0.0)) for k in range(n - 1)] if n > 1 else [(0, (0, 0))])
    g = resample(tr, PARAMS)
    assert len(g) in (n - 1, n)
    assert g.known.all() and np.isfinite(g.lat).all()
    # the smoothed positions stay between the fixes
    assert g.lat.min() >= tr.lat.min() - 1e-9 and g.lon.max() <= tr.lon.max() + 1e-9


def test_two_fixes_ten_seconds_apart_get_an_answer():
    d = day([order("A", 0, 300, 900)], online(-600), [(400, (0, 0)), (410, (5, 0))])
    a = analyse(d, PARAMS)
    res = assess(a, Incident("I", "R1", T0 + 500, "x", pos(0, 0)), PARAMS, iso_local)
    check(res, "I")
    assert res["phase"] == "delivering"  # the platform says so, whatever the GPS


SHAPES: dict[str, list[tuple[float, tuple[float, float]]]] = {
    "none": [],
    "one": [(100, (0, 0))],
    "two": [(100, (0, 0)), (110, (5, 0))],
    "two_far": [(100, (0, 0)), (110, (300, 0))],
    "five": [(100 + 5 * k, (3 * k, 0)) for k in range(5)],
    "one_instant": [(100, (0, 0))] * 4,
    "outside_window": [(-50_000, (0, 0)), (-49_990, (1, 0)), (90_000, (2, 0))],
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("feeds", ["nothing", "one_event", "events_no_gps", "order_and_presence"])
def test_every_small_shape_is_answered(shape, feeds):
    pts = SHAPES[shape]
    orders, presence = [], []
    if feeds == "one_event":
        orders = [order("A", 50)]
    elif feeds == "events_no_gps":
        orders, presence, pts = [order("A", 0, 300, 900)], online(-600), []
    elif feeds == "order_and_presence":
        orders, presence = [order("A", 0, 300, 900), order("B", 1200, 1500, 2000)], online(-600)
    a = analyse(day(orders, presence, pts), PARAMS)
    for at in (-3600, 0, 105, 1000, 86_400):
        check(assess(a, Incident("I", "R1", T0 + at, "x", pos(0, 0)), PARAMS, iso_local), "I")


# ---------------------------------------------------------------- the batch path, property-based

def _ll(x: float, y: float) -> tuple[float, float]:
    lat, lon = pos(x, y)
    return float(lat), float(lon)


def _ts(t: float) -> int:
    return int(round((T0 + t) * 1000))


def _gps_line(rider: str, t: float, x: float, y: float) -> bytes:
    lat, lon = _ll(x, y)
    return orjson.dumps({"rider_id": rider, "ts": _ts(t), "lat": lat, "lon": lon, "accuracy_m": 5.0})


def _order_lines(rider: str, oid: str, events: list[tuple[str, float]]) -> list[bytes]:
    m, c = _ll(0, 0), _ll(800, 0)
    return [orjson.dumps({"event_id": f"{oid}-{k}", "kind": "order", "type": typ, "rider_id": rider,
                          "platform": "meituan", "ts": _ts(t), "order_id": oid,
                          "merchant": {"lat": m[0], "lon": m[1]}, "customer": {"lat": c[0], "lon": c[1]}})
            for k, (typ, t) in enumerate(events)]


times = st.floats(-4000.0, 4000.0, allow_nan=False).map(lambda v: round(v, 1))
metres = st.floats(-500.0, 500.0, allow_nan=False)
fixes = st.one_of(
    st.lists(st.tuples(times, metres, metres), max_size=6),
    st.tuples(times, metres, metres, st.integers(1, 5)).map(lambda p: [p[:3]] * p[3]),  # one instant
)
ORDER_SHAPES = [[], [("accepted", 0.0)], [("accepted", 0.0), ("picked_up", 300.0)],
                [("accepted", 0.0), ("picked_up", 300.0), ("delivered", 900.0)],
                [("accepted", 0.0), ("arrived_merchant", 120.0), ("cancelled", 200.0)],
                [("delivered", 900.0)]]
rider_days = st.tuples(fixes, st.sampled_from(range(len(ORDER_SHAPES))), st.booleans(),
                       st.lists(times, min_size=1, max_size=3))


def write_dir(d: Path, riders: list[tuple[list[tuple[float, float, float]], int, bool, list[float]]],
              prefix: str = "R") -> None:
    """Riders ``{prefix}0``, ``{prefix}1``...; incidents ``I{k}-{j}``."""
    gps: list[bytes] = []
    plat: list[bytes] = []
    inc: list[bytes] = []
    for k, (pts, shape, presence, ats) in enumerate(riders):
        rider = f"{prefix}{k}"
        gps += [_gps_line(rider, t, x, y) for t, x, y in pts]
        plat += _order_lines(rider, f"O-{rider}", ORDER_SHAPES[shape])
        if presence:
            plat.append(orjson.dumps({"event_id": f"p-{rider}", "kind": "presence", "type": "online", "rider_id": rider,
                                      "platform": "meituan", "ts": _ts(-5000)}))
        inc += [orjson.dumps({"incident_id": f"I{k}-{j}", "rider_id": rider, "at": _ts(t)}) for j, t in enumerate(ats)]
    for name, ls in (("gps.jsonl", gps), ("platform.jsonl", plat), ("incidents.jsonl", inc)):
        (d / name).write_bytes(b"".join(x + b"\n" for x in ls))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rider_days, min_size=1, max_size=4))
def test_batch_answers_every_tiny_rider_day(riders):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_dir(d, riders)
        feeds = load_dir(d, "Asia/Shanghai")
        out = [orjson.loads(x) for x in cli.assess_all(feeds, Params(), "Asia/Shanghai", 1)]
    want = [f"I{k}-{j}" for k, r in enumerate(riders) for j in range(len(r[3]))]
    assert [r["incident_id"] for r in out] == want
    for r, iid in zip(out, want, strict=True):
        check(r, iid)


def test_a_fault_on_one_rider_costs_no_other_rider_its_answer(tmp_path, monkeypatch):
    write_dir(tmp_path, [([(0, 0, 0), (60, 100, 0)], 3, True, [100.0]),
                         ([(0, 0, 0), (60, 100, 0)], 3, True, [100.0, 500.0]),
                         ([(0, 0, 0)], 2, True, [350.0])])
    feeds = load_dir(tmp_path, "Asia/Shanghai")
    real = cli.analyse

    def flaky(d, params):
        if d.rider_id == "R1":
            raise RuntimeError("boom")
        return real(d, params)

    monkeypatch.setattr(cli, "analyse", flaky)
    out = [orjson.loads(x) for x in cli.assess_all(feeds, Params(), "Asia/Shanghai", 1)]
    assert [r["incident_id"] for r in out] == ["I0-0", "I1-0", "I1-1", "I2-0"]
    check(out[0], "I0-0")
    check(out[3], "I2-0")
    for r in out[1:3]:
        assert r["phase"] == "insufficient_data" and r["continuous_delivery"] is None
        assert r["error"] == "RuntimeError: boom"


def test_the_command_exits_non_zero_only_when_an_incident_could_not_be_assessed(tmp_path, monkeypatch, capsys):
    write_dir(tmp_path, [([(0, 0, 0), (10, 5, 0)], 3, True, [100.0]), ([(0, 0, 0)], 3, True, [200.0])])
    assert cli.main(["assess", str(tmp_path)]) == 0
    ok = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["incident_id"] for r in ok] == ["I0-0", "I1-0"]
    real = cli.analyse
    monkeypatch.setattr(cli, "analyse", lambda d, p: (_ for _ in ()).throw(ValueError("bad")) if d.rider_id == "R0"
                        else real(d, p))
    assert cli.main(["assess", str(tmp_path)]) == 1
    cap = capsys.readouterr()
    out = [orjson.loads(x) for x in cap.out.splitlines()]
    assert out[0]["error"] == "ValueError: bad" and out[0]["continuous_delivery"] is None
    assert out[1] == ok[1]
    assert "I0-0" in cap.err and "could not be assessed" in cap.err


def test_forked_workers_keep_every_other_rider_answer(tmp_path, monkeypatch):
    """The batch's worker processes (fork): nine riders, one whose analysis raises."""
    riders = [([(0, 0, 0), (60, 100, 0), (120, 100, 0)], 3, True, [100.0, 1000.0]) for _ in range(9)]
    write_dir(tmp_path, riders)
    feeds = load_dir(tmp_path, "Asia/Shanghai")
    alone = [orjson.loads(x) for x in cli.assess_all(feeds, Params(), "Asia/Shanghai", 1)]
    real = cli.analyse
    monkeypatch.setattr(cli, "analyse", lambda d, p: (_ for _ in ()).throw(MemoryError("x")) if d.rider_id == "R4"
                        else real(d, p))
    out = [orjson.loads(x) for x in cli.assess_all(feeds, Params(), "Asia/Shanghai", 2)]
    assert [r["incident_id"] for r in out] == [r["incident_id"] for r in alone]
    for got, want in zip(out, alone, strict=True):
        if got["rider_id"] == "R4":
            assert got["error"] == "MemoryError: x" and got["continuous_delivery"] is None
        else:
            assert got == want


def test_a_worker_process_that_dies_costs_no_answer(tmp_path, monkeypatch):
    import os
    riders = [([(0, 0, 0), (60, 100, 0), (120, 100, 0)], 3, True, [100.0]) for _ in range(9)]
    write_dir(tmp_path, riders)
    feeds = load_dir(tmp_path, "Asia/Shanghai")
    alone = [orjson.loads(x) for x in cli.assess_all(feeds, Params(), "Asia/Shanghai", 1)]
    real, parent = cli.analyse, os.getpid()

    def dies_in_a_worker(d, p):
        if d.rider_id == "R4" and os.getpid() != parent:
            os._exit(3)  # killed, as by the out-of-memory killer
        return real(d, p)

    monkeypatch.setattr(cli, "analyse", dies_in_a_worker)
    out = [orjson.loads(x) for x in cli.assess_all(feeds, Params(), "Asia/Shanghai", 2)]
    assert out == alone
