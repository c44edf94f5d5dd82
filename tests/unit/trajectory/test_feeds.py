"""Reading the feeds of DATA_CONTRACT §1, §2, §4: the fast (polars) and slow (orjson line by line)
GPS paths agree, every bad line is reported once with its line number and skipped, coordinates
arrive in WGS-84, and platform events assemble into orders."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.trajectory.adapters.feeds import (
    GpsColumns,
    Problem,
    _fast_frame,
    assemble,
    load_dir,
    read_gps,
    read_incidents,
    read_platform,
)
from services.trajectory.domain.clean import clean
from services.trajectory.domain.model import Params
from shared.geo import from_wgs84, haversine_m, to_wgs84, valid_latlon
from shared.timeutil import EARLIEST, LATEST, iso_local

pytestmark = pytest.mark.unit

TZ = "Asia/Shanghai"
HEYUAN = (23.74, 114.70)
T0 = 1778724000.0  # 2026-05-14T10:00:00+08:00
T0_MS = int(T0 * 1000)


def jsonl(*rows: dict[str, Any] | bytes) -> bytes:
    """NDJSON of dicts (and raw byte lines, verbatim), one per line, with a final newline."""
    return b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in rows)


def ping(k: int, rider: str = "R1", **over: Any) -> dict[str, Any]:
    """A valid ping k*10 s after T0, drifting north-east a few metres at a time."""
    p: dict[str, Any] = {"rider_id": rider, "ts": T0_MS + 10_000 * k, "lat": HEYUAN[0] + 1e-4 * k,
                         "lon": HEYUAN[1] + 1e-4 * k, "accuracy_m": 5.0 + k % 7, "speed_mps": 4.2}
    p.update(over)
    return {k_: v for k_, v in p.items() if v is not _DROP}


_DROP = object()


def varied_pings() -> list[dict[str, Any]]:
    """A clean feed using every style the contract allows: timestamps, crs, optional fields."""
    out: list[dict[str, Any]] = []
    styles = [
        lambda ms: ms,
        lambda ms: str(ms),
        lambda ms: iso_local(ms / 1000, TZ),
        lambda ms: iso_local(ms / 1000, "Europe/Berlin"),
        lambda ms: f"{iso_local(ms / 1000, 'UTC')[:19]}.{ms % 1000:03d}Z",
        lambda ms: iso_local(ms / 1000, TZ)[:19].replace("T", " "),  # naive local
    ]
    for k in range(30):
        p = ping(k, rider="R1" if k % 3 else "R2")
        p["ts"] = styles[k % len(styles)](T0_MS + 10_000 * k)
        crs = ("wgs84", "gcj02", "bd09", None, "GCJ02")[k % 5]
        if crs is not None:
            p["crs"] = crs
            p["lat"], p["lon"] = (float(x) for x in from_wgs84(p["lat"], p["lon"], crs.lower()))  # type: ignore[arg-type]
        if k % 4 == 0:
            del p["accuracy_m"]
        if k % 6 == 1:
            p["heading_deg"] = 90
            p["extra"] = {"battery": 0.5}
        out.append(p)
    return out


def columns_equal(a: GpsColumns, b: GpsColumns) -> None:
    assert a.rider.to_list() == b.rider.to_list()
    np.testing.assert_array_equal(a.t, b.t)
    np.testing.assert_array_equal(a.lat, b.lat)
    np.testing.assert_array_equal(a.lon, b.lon)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)


def nonblank_lines(data: bytes) -> list[int]:
    return [no for no, raw in enumerate(data.split(b"\n"), start=1) if raw.strip()]


# ================================================================== GPS: fast and slow paths agree

def test_clean_file_takes_the_fast_path_and_keeps_every_line() -> None:
    rows = varied_pings()
    data = jsonl(*rows)
    assert _fast_frame(data) is not None
    cols, problems = read_gps(data, "gps.jsonl", TZ)
    assert problems == []
    assert cols.line.tolist() == list(range(1, len(rows) + 1))
    np.testing.assert_allclose(cols.t, [(T0_MS + 10_000 * k) / 1000 for k in range(30)], rtol=0, atol=1e-3)
    assert cols.rider.to_numpy().astype(str).tolist() == [r["rider_id"] for r in rows]
    # every crs came back to the WGS-84 it was rendered from
    d = haversine_m(cols.lat, cols.lon, [HEYUAN[0] + 1e-4 * k for k in range(30)],
                    [HEYUAN[1] + 1e-4 * k for k in range(30)])
    assert d.max() < 0.01
    assert np.isnan(cols.accuracy[::4]).all()
    assert np.isfinite(np.delete(cols.accuracy, np.s_[::4])).all()


@pytest.mark.parametrize(("insert", "what"), [
    (b"", "blank line"),
    (b"   \t ", "whitespace-only line"),
    (b"this is not json", "garbage line"),
    (b'{"rider_id": "R1", "ts": 17787', "truncated JSON"),
    (b"[1, 2, 3]", "JSON array"),
    (b"null", "JSON null"),
])
@pytest.mark.parametrize("at", [0, 7, 30])
def test_slow_path_gives_the_same_columns_and_right_line_numbers(insert: bytes, what: str, at: int) -> None:
    rows = varied_pings()
    clean_data = jsonl(*rows)
    fast, fast_problems = read_gps(clean_data, "gps.jsonl", TZ)
    lines = clean_data.split(b"\n")[:-1]
    dirty = b"\n".join([*lines[:at], insert, *lines[at:]]) + b"\n"
    if insert or at < len(rows):  # (trailing blank lines are harmless to polars)
        assert _fast_frame(dirty) is None, what
    slow, problems = read_gps(dirty, "gps.jsonl", TZ)
    assert fast_problems == []
    columns_equal(fast, slow)
    # lines after the inserted one moved down by one
    expected_lines = [k + 1 if k < at else k + 2 for k in range(len(rows))]
    assert slow.line.tolist() == expected_lines
    if insert.strip():
        assert [p.line for p in problems] == [at + 1]
        assert problems[0].source == "gps.jsonl"
    else:
        assert problems == []


def test_crlf_line_endings_read_like_lf() -> None:
    rows = varied_pings()
    fast, _ = read_gps(jsonl(*rows), "gps.jsonl", TZ)
    slow, problems = read_gps(jsonl(*rows).replace(b"\n", b"\r\n"), "gps.jsonl", TZ)
    assert problems == []
    columns_equal(fast, slow)
    assert slow.line.tolist() == fast.line.tolist()


@pytest.mark.parametrize("ending", [b"", b"\n", b"\n\n", b"\n  \n"])
def test_file_endings(ending: bytes) -> None:
    rows = varied_pings()[:5]
    data = jsonl(*rows)[:-1] + ending
    cols, problems = read_gps(data, "gps.jsonl", TZ)
    assert problems == []
    assert cols.line.tolist() == [1, 2, 3, 4, 5]


def test_fast_and_slow_paths_report_the_same_bad_lines() -> None:
    rows: list[dict[str, Any] | bytes] = [*varied_pings()]
    rows[3] = ping(3, lat=999)
    rows[8] = ping(8, crs="utm")
    rows[12] = ping(12, accuracy_m=-1)
    rows[20] = ping(20, ts="1970-01-01T00:00:01Z")
    fast_data = jsonl(*rows)
    assert _fast_frame(fast_data) is not None
    fast, fast_problems = read_gps(fast_data, "gps.jsonl", TZ)
    slow, slow_problems = read_gps(b"\n" + fast_data, "gps.jsonl", TZ)
    columns_equal(fast, slow)
    assert [p.line for p in fast_problems] == [4, 9, 13, 21]
    assert [p.line for p in slow_problems] == [5, 10, 14, 22]
    assert [p.message for p in fast_problems] == [p.message for p in slow_problems]


def test_a_big_file_validated_in_two_halves_reads_as_in_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files of _SPLIT_ROWS lines and more are validated in two threads, half each: the same
    columns, lines and problems (in line order, from both halves) as in one go."""
    from services.trajectory.adapters import feeds

    rows: list[dict[str, Any] | bytes] = [*varied_pings(), *(ping(k, rider="R2", crs="bd09") for k in range(40))]
    for i, bad in ((2, ping(2, lat=999)), (17, ping(17, crs="utm")), (41, ping(41, ts="1970-01-01T00:00:01Z")),
                   (len(rows) - 1, ping(0, rider=""))):
        rows[i] = bad
    data = jsonl(*rows)
    whole, whole_problems = read_gps(data, "gps.jsonl", TZ)
    monkeypatch.setattr(feeds, "_SPLIT_ROWS", 10)
    halves, halves_problems = read_gps(data, "gps.jsonl", TZ)
    columns_equal(whole, halves)
    np.testing.assert_array_equal(whole.line, halves.line)
    assert halves_problems == whole_problems
    assert [p.line for p in halves_problems] == [3, 18, 42, len(rows)]


ODD_VALUES = [True, False, None, [], [1], 5, 5.5, "5", "", " ", -1, "nan", "inf", "23.7", "gcj02", "R1"]


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
@pytest.mark.parametrize("field", ["rider_id", "ts", "lat", "lon", "accuracy_m", "speed_mps", "crs"])
def test_fast_and_slow_paths_agree_on_odd_field_values(field: str, value: Any) -> None:
    rows = [ping(0), ping(1, **{field: value}), ping(2)]
    data = jsonl(*rows)
    fast, fast_problems = read_gps(data, "gps.jsonl", TZ)
    slow, slow_problems = read_gps(b"\n" + data, "gps.jsonl", TZ)
    assert slow.line.tolist() == [n + 1 for n in fast.line.tolist()]
    columns_equal(fast, slow)
    assert [(p.line + 1, p.message) for p in fast_problems] == [(p.line, p.message) for p in slow_problems]


def test_empty_gps_file() -> None:
    for data in (b"", b"\n", b"\n\n  \n"):
        cols, problems = read_gps(data, "gps.jsonl", TZ)
        assert problems == []
        assert cols.t.size == cols.lat.size == cols.line.size == 0
        assert cols.by_rider() == {}


# ================================================================== GPS: each kind of bad line

BAD_GPS: list[tuple[str, bytes | dict[str, Any], str, bool]] = [
    # (name, line, fragment of the message, polars can read the line)
    ("not JSON", b"{rider_id: R1}", "not json", False),
    ("truncated", b'{"rider_id": "R1", "ts": ', "not json", False),
    ("JSON array", b'["R1", 1778724000000, 23.7, 114.7]', "not a json object", False),
    ("JSON string", b'"R1"', "not a json object", False),
    ("missing rider_id", ping(2, rider_id=_DROP), "'rider_id'", True),
    ("empty rider_id", ping(2, rider_id="  "), "'rider_id'", True),
    ("null rider_id", ping(2, rider_id=None), "'rider_id'", True),
    ("missing ts", ping(2, ts=_DROP), "'ts'", True),
    ("missing lat", ping(2, lat=_DROP), "'lat'", True),
    ("missing lon", ping(2, lon=_DROP), "'lon'", True),
    ("null lat", ping(2, lat=None), "'lat'", True),
    ("lat 999", ping(2, lat=999.0), "impossible coordinate", True),
    ("lon -200", ping(2, lon=-200.0), "impossible coordinate", True),
    ("(0, 0)", ping(2, lat=0.0, lon=0.0), "impossible coordinate", True),
    ("lat not a number", ping(2, lat="north"), "impossible coordinate", False),
    ("unreadable ts", ping(2, ts="yesterday at noon"), "timestamp", True),
    ("ts in 1970 (ISO)", ping(2, ts="1970-01-01T08:00:00+08:00"), "absurd timestamp", True),
    ("ts in 1970 (epoch seconds)", ping(2, ts=1778724020), "absurd timestamp", True),
    ("ts in 2200", ping(2, ts="2200-01-01T00:00:00Z"), "absurd timestamp", True),
    ("crs utm", ping(2, crs="utm"), "unknown crs 'utm'", True),
    ("negative accuracy", ping(2, accuracy_m=-3.0), "accuracy_m", True),
]


@pytest.mark.parametrize("force_slow", [False, True], ids=["fast", "slow"])
@pytest.mark.parametrize(("name", "bad", "fragment", "typed"), BAD_GPS, ids=[b[0] for b in BAD_GPS])
def test_bad_gps_line_is_reported_and_skipped(name: str, bad: bytes | dict[str, Any], fragment: str,
                                              typed: bool, force_slow: bool) -> None:
    rows = [ping(0), ping(1), bad, ping(3), ping(4)]
    data = (b"\n" if force_slow else b"") + jsonl(*rows)
    shift = 1 if force_slow else 0
    assert (_fast_frame(data) is not None) == (typed and not force_slow)
    cols, problems = read_gps(data, "gps.jsonl", TZ)
    assert len(problems) == 1, problems
    p = problems[0]
    assert (p.source, p.line) == ("gps.jsonl", 3 + shift)
    assert fragment in p.message.lower(), p.message
    assert str(p).startswith(f"gps.jsonl:{3 + shift}: ")
    assert cols.line.tolist() == [1 + shift, 2 + shift, 4 + shift, 5 + shift]
    np.testing.assert_allclose(cols.t, [T0 + 0, T0 + 10, T0 + 30, T0 + 40])


def test_missing_fields_are_all_named() -> None:
    _, problems = read_gps(jsonl(ping(0), {"speed_mps": 3.0}), "gps.jsonl", TZ)
    assert len(problems) == 1
    for field in ("rider_id", "ts", "lat", "lon"):
        assert repr(field) in problems[0].message


def test_several_bad_lines_each_reported_once_in_line_order() -> None:
    rows: list[dict[str, Any] | bytes] = [ping(k) for k in range(12)]
    rows[1] = b"garbage"
    rows[4] = ping(4, lat=999)
    rows[5] = ping(5, crs="utm", accuracy_m=-1)  # two faults, one report
    rows[9] = b"[]"
    cols, problems = read_gps(jsonl(*rows), "gps.jsonl", TZ)
    assert [p.line for p in problems] == [2, 5, 6, 10]
    assert "crs" in problems[2].message
    assert cols.line.tolist() == [1, 3, 4, 7, 8, 9, 11, 12]


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "GCJ02", " bd09 "])
def test_gcj02_and_bd09_pings_are_converted_to_wgs84(crs: str) -> None:
    lat, lon = HEYUAN
    c_lat, c_lon = (float(x) for x in from_wgs84(lat, lon, crs.strip().lower()))  # type: ignore[arg-type]
    assert float(haversine_m(lat, lon, c_lat, c_lon)) > 300  # the test can tell converted from not
    data = jsonl(ping(0), ping(1, lat=c_lat, lon=c_lon, crs=crs), ping(2, crs="wgs84"))
    cols, problems = read_gps(data, "gps.jsonl", TZ)
    assert problems == []
    assert float(haversine_m(cols.lat[1], cols.lon[1], lat, lon)) < 0.01
    # the WGS-84 pings are untouched
    assert (cols.lat[0], cols.lon[0]) == (ping(0)["lat"], ping(0)["lon"])
    assert (cols.lat[2], cols.lon[2]) == (ping(2)["lat"], ping(2)["lon"])


def test_by_rider_groups_pings_in_file_order() -> None:
    rows = [ping(0, "R2"), ping(1, "R1"), ping(2, "R2"), ping(3, "R1"), ping(4, "R3")]
    cols, _ = read_gps(jsonl(*rows), "gps.jsonl", TZ)
    tracks = cols.by_rider()
    assert sorted(tracks) == ["R1", "R2", "R3"]
    np.testing.assert_allclose(tracks["R1"].t, [T0 + 10, T0 + 30])
    np.testing.assert_allclose(tracks["R2"].t, [T0, T0 + 20])
    np.testing.assert_allclose(tracks["R2"].lat, [ping(0)["lat"], ping(2)["lat"]])
    assert len(tracks["R3"]) == 1


def test_numeric_rider_id_is_read_as_text() -> None:
    cols, problems = read_gps(jsonl(ping(0, rider_id=700)), "gps.jsonl", TZ)
    assert problems == []
    assert list(cols.by_rider()) == ["700"]


# ================================================================== platform events

def order_ev(typ: str, t: float, oid: str = "O1", **over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"event_id": f"ev-{oid}-{typ}", "kind": "order", "type": typ, "rider_id": "R1",
                         "platform": "meituan", "ts": int(t * 1000), "order_id": oid,
                         "merchant": {"lat": 23.75, "lon": 114.70}, "customer": {"lat": 23.76, "lon": 114.71}}
    e.update(over)
    return {k: v for k, v in e.items() if v is not _DROP}


def presence_ev(online: bool, t: float, platform: str = "meituan", **over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"event_id": f"ev-p-{platform}-{t}", "kind": "presence",
                         "type": "online" if online else "offline", "rider_id": "R1", "platform": platform,
                         "ts": int(t * 1000)}
    e.update(over)
    return {k: v for k, v in e.items() if v is not _DROP}


BAD_PLATFORM: list[tuple[str, bytes | dict[str, Any], str]] = [
    ("not JSON", b"{'kind': 'order'}", "not json"),
    ("JSON array", b"[]", "not a json object"),
    ("unknown kind", order_ev("accepted", T0, kind="refund"), "unknown kind 'refund'"),
    ("missing kind", order_ev("accepted", T0, kind=_DROP), "'kind'"),
    ("unknown order type", order_ev("teleported", T0), "unknown order event type 'teleported'"),
    ("unknown presence type", presence_ev(True, T0, type="busy"), "unknown presence event type 'busy'"),
    ("missing order_id", order_ev("accepted", T0, order_id=_DROP), "'order_id'"),
    ("empty order_id", order_ev("accepted", T0, order_id=""), "'order_id'"),
    ("missing rider_id", order_ev("accepted", T0, rider_id=_DROP), "'rider_id'"),
    ("missing type", presence_ev(True, T0, type=_DROP), "'type'"),
    ("merchant lat 999", order_ev("accepted", T0, merchant={"lat": 999, "lon": 114.7}), "impossible coordinate in 'merchant'"),
    ("customer (0, 0)", order_ev("accepted", T0, customer={"lat": 0, "lon": 0}), "impossible coordinate in 'customer'"),
    ("merchant not an object", order_ev("accepted", T0, merchant=[23.7, 114.7]), "'merchant' must be an object"),
    ("merchant without lon", order_ev("accepted", T0, merchant={"lat": 23.7}), "impossible coordinate in 'merchant'"),
    ("unknown crs", order_ev("accepted", T0, crs="utm"), "unknown crs 'utm'"),
    ("bad ts", order_ev("accepted", T0, ts="soon"), "unreadable or absurd timestamp 'soon'"),
    ("ts in 1970", order_ev("accepted", T0, ts="1970-01-02 00:00:00"), "absurd timestamp"),
    ("ts as object", presence_ev(True, T0, ts={"ms": 1}), "timestamp"),
    ("missing ts", order_ev("accepted", T0, ts=_DROP), "missing field 'ts'"),
    ("null ts", presence_ev(True, T0, ts=None), "missing field 'ts'"),
]


@pytest.mark.parametrize(("name", "bad", "fragment"), BAD_PLATFORM, ids=[b[0] for b in BAD_PLATFORM])
def test_bad_platform_line_is_reported_and_skipped(name: str, bad: bytes | dict[str, Any], fragment: str) -> None:
    data = jsonl(presence_ev(True, T0 - 60), bad, order_ev("accepted", T0, oid="O2"))
    events, problems = read_platform(data, "platform.jsonl", TZ)
    assert len(problems) == 1, problems
    assert (problems[0].source, problems[0].line) == ("platform.jsonl", 2)
    assert fragment in problems[0].message.lower() or fragment in problems[0].message, problems[0].message
    assert [ev.line for ev, _ in events] == [1, 3]


def test_platform_problems_sorted_by_line_whatever_the_stage_that_found_them() -> None:
    data = jsonl(order_ev("accepted", T0, ts="soon"), b"", b"oops", order_ev("accepted", T0, kind="x"),
                 order_ev("accepted", T0))
    events, problems = read_platform(data, "platform.jsonl", TZ)
    assert [p.line for p in problems] == [1, 3, 4]
    assert [ev.line for ev, _ in events] == [5]


def test_platform_timestamps_in_every_style() -> None:
    styles = [int(T0 * 1000), str(int(T0 * 1000)), "2026-05-14T10:00:00+08:00", "2026-05-14T02:00:00Z",
              "2026-05-14T02:00:00.000Z", "2026-05-14 10:00:00"]
    data = jsonl(*(presence_ev(True, T0, ts=s, event_id=f"e{i}") for i, s in enumerate(styles)))
    events, problems = read_platform(data, "platform.jsonl", TZ)
    assert problems == []
    assert [t for _, t in events] == [T0] * len(styles)
    # a naive time is read in the zone passed in
    (ev, t), = read_platform(jsonl(presence_ev(True, T0, ts="2026-05-14 04:00:00")), "p", "Europe/Berlin")[0]
    assert t == T0


def test_platform_coordinates_are_converted_to_wgs84() -> None:
    m_wgs, c_wgs = (23.75, 114.70), (23.76, 114.71)
    rows = []
    for i, crs in enumerate(["wgs84", "gcj02", "bd09", None]):
        m = from_wgs84(*m_wgs, crs or "wgs84")
        c = from_wgs84(*c_wgs, crs or "wgs84")
        e = order_ev("accepted", T0 + i, oid=f"O{i}", merchant={"lat": float(m[0]), "lon": float(m[1])},
                     customer={"lat": float(c[0]), "lon": float(c[1])})
        if crs is not None:
            e["crs"] = crs
        rows.append(e)
    events, problems = read_platform(jsonl(*rows), "platform.jsonl", TZ)
    assert problems == []
    for ev, _ in events:
        assert ev.merchant is not None and ev.customer is not None
        assert float(haversine_m(*ev.merchant, *m_wgs)) < 0.01, ev
        assert float(haversine_m(*ev.customer, *c_wgs)) < 0.01, ev


def test_merchant_and_customer_are_optional() -> None:
    e = order_ev("picked_up", T0, merchant=_DROP, customer=None)
    events, problems = read_platform(jsonl(e), "platform.jsonl", TZ)
    assert problems == []
    assert events[0][0].merchant is None and events[0][0].customer is None


# ================================================================== assembling orders

def test_assemble_builds_an_order_lifecycle() -> None:
    g = from_wgs84(23.75, 114.70, "gcj02")
    rows = [
        presence_ev(True, T0 - 600),
        order_ev("accepted", T0, crs="gcj02", merchant={"lat": float(g[0]), "lon": float(g[1])}),
        order_ev("arrived_merchant", T0 + 180),
        order_ev("picked_up", T0 + 300),
        order_ev("delivered", T0 + 900),
        presence_ev(False, T0 + 3600),
    ]
    events, problems = read_platform(jsonl(*rows), "platform.jsonl", TZ)
    assert problems == []
    per = assemble(events)
    assert list(per) == ["R1"]
    orders, presence = per["R1"]
    (o,) = orders
    assert (o.order_id, o.platform) == ("O1", "meituan")
    assert (o.accepted, o.arrived, o.picked_up, o.ended, o.end_kind) == (T0, T0 + 180, T0 + 300, T0 + 900, "delivered")
    assert o.merchant is not None and float(haversine_m(*o.merchant, 23.75, 114.70)) < 0.01
    # the record's crs covers the customer too
    assert o.customer == tuple(float(x) for x in to_wgs84(23.76, 114.71, "gcj02"))
    assert [(p.t, p.online) for p in presence] == [(T0 - 600, True), (T0 + 3600, False)]


def test_assemble_does_not_depend_on_line_order() -> None:
    rows = [order_ev("accepted", T0), order_ev("arrived_merchant", T0 + 180),
            order_ev("picked_up", T0 + 300), order_ev("delivered", T0 + 900),
            order_ev("accepted", T0 + 1000, oid="O2"), order_ev("cancelled", T0 + 1100, oid="O2"),
            presence_ev(True, T0 - 5), presence_ev(False, T0 + 5000)]
    expected = assemble(read_platform(jsonl(*rows), "p", TZ)[0])
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert assemble(read_platform(jsonl(*shuffled), "p", TZ)[0]) == expected


def test_cancelled_order_and_missing_arrival() -> None:
    rows = [order_ev("accepted", T0), order_ev("cancelled", T0 + 120)]
    (o,) = assemble(read_platform(jsonl(*rows), "p", TZ)[0])["R1"][0]
    assert (o.accepted, o.arrived, o.picked_up, o.ended, o.end_kind) == (T0, None, None, T0 + 120, "cancelled")


def test_open_order_has_no_end() -> None:
    rows = [order_ev("accepted", T0), order_ev("picked_up", T0 + 300)]
    (o,) = assemble(read_platform(jsonl(*rows), "p", TZ)[0])["R1"][0]
    assert (o.ended, o.end_kind, o.picked_up) == (None, None, T0 + 300)
    assert o.end_or_inf == float("inf")


def test_order_seen_without_its_accepted_event_starts_at_its_first_event() -> None:
    rows = [order_ev("picked_up", T0 + 300), order_ev("delivered", T0 + 900)]
    (o,) = assemble(read_platform(jsonl(*rows), "p", TZ)[0])["R1"][0]
    assert (o.accepted, o.picked_up, o.ended) == (T0 + 300, T0 + 300, T0 + 900)


def test_inconsistent_platform_times_are_clamped() -> None:
    rows = [order_ev("accepted", T0), order_ev("delivered", T0 - 60), order_ev("picked_up", T0 + 60)]
    (o,) = assemble(read_platform(jsonl(*rows), "p", TZ)[0])["R1"][0]
    assert o.ended == o.accepted == T0  # never ends before it starts
    assert o.picked_up is None  # a pick-up after the end is not believed


def test_duplicate_event_id_counts_once() -> None:
    accepted = order_ev("accepted", T0)
    # the same event id delivered twice by the bus, once with different content: the first counts
    replay = dict(accepted, type="delivered", ts=int((T0 + 60) * 1000))
    rows = [accepted, accepted, replay, order_ev("picked_up", T0 + 300), order_ev("picked_up", T0 + 300)]
    events, problems = read_platform(jsonl(*rows), "platform.jsonl", TZ)
    assert problems == []  # a duplicate is not a bad line
    assert len(events) == 5
    (o,) = assemble(events)["R1"][0]
    assert (o.accepted, o.picked_up, o.ended, o.end_kind) == (T0, T0 + 300, None, None)


def test_duplicate_presence_counts_once() -> None:
    on = presence_ev(True, T0)
    rows = [on, on, dict(on, event_id="another-id"), presence_ev(False, T0 + 60)]
    _, presence = assemble(read_platform(jsonl(*rows), "p", TZ)[0])["R1"]
    assert [(p.t, p.online) for p in presence] == [(T0, True), (T0 + 60, False)]


def test_earliest_instant_of_a_repeated_event_type_counts() -> None:
    rows = [order_ev("accepted", T0), order_ev("picked_up", T0 + 400, event_id="late"),
            order_ev("picked_up", T0 + 300, event_id="early")]
    (o,) = assemble(read_platform(jsonl(*rows), "p", TZ)[0])["R1"][0]
    assert o.picked_up == T0 + 300


def test_orders_from_two_platforms() -> None:
    rows = [
        presence_ev(True, T0 - 300, "meituan"),
        presence_ev(True, T0 - 200, "eleme"),
        order_ev("accepted", T0, oid="ME1"),
        order_ev("accepted", T0 + 60, oid="EL1", platform="eleme", ts="2026-05-14T02:01:00Z"),
        order_ev("picked_up", T0 + 300, oid="EL1", platform="eleme"),
        order_ev("picked_up", T0 + 400, oid="ME1"),
        order_ev("delivered", T0 + 800, oid="EL1", platform="eleme"),
        order_ev("delivered", T0 + 900, oid="ME1"),
        presence_ev(False, T0 + 1000, "eleme"),
    ]
    per = assemble(read_platform(jsonl(*rows), "p", TZ)[0])
    orders, presence = per["R1"]
    assert [(o.order_id, o.platform, o.accepted, o.picked_up, o.ended) for o in orders] == [
        ("ME1", "meituan", T0, T0 + 400, T0 + 900),
        ("EL1", "eleme", T0 + 60, T0 + 300, T0 + 800),
    ]
    assert [(p.platform, p.online) for p in presence] == [("meituan", True), ("eleme", True), ("eleme", False)]


def test_same_order_id_for_two_riders_is_two_orders() -> None:
    rows = [order_ev("accepted", T0), order_ev("accepted", T0 + 5, rider_id="R2", event_id="x"),
            order_ev("delivered", T0 + 100, rider_id="R2", event_id="y")]
    per = assemble(read_platform(jsonl(*rows), "p", TZ)[0])
    assert sorted(per) == ["R1", "R2"]
    assert per["R1"][0][0].ended is None
    assert per["R2"][0][0].ended == T0 + 100


def test_assemble_of_nothing() -> None:
    assert assemble([]) == {}
    assert read_platform(b"", "p", TZ) == ([], [])


# ================================================================== incidents

def incident(iid: str = "INC-1", **over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"incident_id": iid, "rider_id": "R1", "at": "2026-05-14T10:00:00+08:00"}
    e.update(over)
    return {k: v for k, v in e.items() if v is not _DROP}


def test_incident_location_in_gcj02_inside_or_at_top_level() -> None:
    w = (23.734376, 114.670795)
    g = tuple(float(x) for x in from_wgs84(*w, "gcj02"))
    b = tuple(float(x) for x in from_wgs84(*w, "bd09"))
    rows = [
        incident("in-location", location={"lat": g[0], "lon": g[1], "crs": "gcj02"}),
        incident("top-level", location={"lat": g[0], "lon": g[1]}, crs="gcj02"),
        incident("location-wins", location={"lat": g[0], "lon": g[1], "crs": "gcj02"}, crs="bd09"),
        incident("bd09", location={"lat": b[0], "lon": b[1]}, crs="BD09"),
        incident("wgs84", location={"lat": w[0], "lon": w[1]}),
        incident("no-location"),
        incident("null-location", location=None),
    ]
    incidents, problems = read_incidents(jsonl(*rows), "incidents.jsonl", TZ)
    assert problems == []
    assert [i.incident_id for i in incidents] == [r["incident_id"] for r in rows]  # input order
    for inc in incidents[:5]:
        assert inc.location is not None
        assert float(haversine_m(*inc.location, *w)) < 0.01, inc.incident_id
    assert incidents[4].location == w
    assert incidents[5].location is None and incidents[6].location is None
    # unconverted, the GCJ-02 point would be hundreds of metres off
    assert float(haversine_m(*g, *w)) > 300


def test_incident_time_styles() -> None:
    rows = [incident("a"), incident("b", at=int(T0 * 1000)), incident("c", at="2026-05-14 10:00:00"),
            incident("d", at="2026-05-14T02:00:00Z")]
    incidents, problems = read_incidents(jsonl(*rows), "incidents.jsonl", TZ)
    assert problems == []
    assert [i.at for i in incidents] == [T0] * 4
    # the text the rider gave is kept; an epoch number is rendered in the local zone
    assert [i.at_text for i in incidents] == ["2026-05-14T10:00:00+08:00", "2026-05-14T10:00:00+08:00",
                                              "2026-05-14 10:00:00", "2026-05-14T02:00:00Z"]


BAD_INCIDENTS: list[tuple[str, bytes | dict[str, Any], str]] = [
    ("not JSON", b"INC-1 at noon", "not json"),
    ("JSON number", b"42", "not a json object"),
    ("missing incident_id", incident(incident_id=_DROP), "'incident_id'"),
    ("missing rider_id", incident(rider_id=""), "'rider_id'"),
    ("missing at", incident(at=_DROP), "missing field 'at'"),
    ("bad at", incident(at="half past ten"), "unreadable or absurd timestamp"),
    ("at in 1970", incident(at=0), "absurd timestamp"),
    ("location lat 999", incident(location={"lat": 999, "lon": 114.7}), "impossible coordinate in 'location'"),
    ("location not an object", incident(location="near the bridge"), "'location' must be an object"),
    ("location crs utm", incident(location={"lat": 23.7, "lon": 114.7, "crs": "utm"}), "unknown crs 'utm'"),
    ("top-level crs utm", incident(location={"lat": 23.7, "lon": 114.7}, crs="utm"), "unknown crs 'utm'"),
]


@pytest.mark.parametrize(("name", "bad", "fragment"), BAD_INCIDENTS, ids=[b[0] for b in BAD_INCIDENTS])
def test_bad_incident_line_is_reported_and_skipped(name: str, bad: bytes | dict[str, Any], fragment: str) -> None:
    data = jsonl(incident("first"), b"", bad, incident("last"))
    incidents, problems = read_incidents(data, "incidents.jsonl", TZ)
    assert [(p.source, p.line) for p in problems] == [("incidents.jsonl", 3)]
    assert fragment in problems[0].message.lower() or fragment in problems[0].message, problems[0].message
    assert [i.incident_id for i in incidents] == ["first", "last"]


def test_top_level_crs_is_ignored_without_a_location() -> None:
    incidents, problems = read_incidents(jsonl(incident(crs="utm")), "incidents.jsonl", TZ)
    assert problems == [] and incidents[0].location is None


# ================================================================== a rider-day folder

def test_load_dir(tmp_path: Path) -> None:
    (tmp_path / "platform.jsonl").write_bytes(jsonl(
        presence_ev(True, T0 - 60), order_ev("accepted", T0), b"broken", order_ev("delivered", T0 + 600)))
    (tmp_path / "gps.jsonl").write_bytes(jsonl(ping(0), ping(1), ping(2, lat=999), ping(3, rider="R9")))
    feeds = load_dir(tmp_path, TZ)  # no incidents.jsonl: an empty feed
    assert feeds.incidents == []
    assert sorted(feeds.days) == ["R1", "R9"]
    r1 = feeds.days["R1"]
    assert [o.order_id for o in r1.orders] == ["O1"] and r1.orders[0].ended == T0 + 600
    assert len(r1.gps) == 2 and len(r1.presence) == 1
    r9 = feeds.days["R9"]
    assert r9.orders == () and r9.presence == () and len(r9.gps) == 1
    assert [str(p).split(": ")[0] for p in feeds.problems] == ["platform.jsonl:3", "gps.jsonl:3"]


def test_load_dir_of_an_empty_folder(tmp_path: Path) -> None:
    feeds = load_dir(tmp_path, TZ)
    assert (feeds.days, feeds.incidents, feeds.problems) == ({}, [], [])


# ================================================================== property: nothing crashes, nothing is lost

KEYS = ["rider_id", "ts", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg", "crs", "event_id", "kind",
        "type", "platform", "order_id", "merchant", "customer", "incident_id", "at", "location"]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
plausible_ts = st.one_of(
    st.integers(min_value=T0_MS - 10**7, max_value=T0_MS + 10**7),
    st.sampled_from(["2026-05-14T10:00:00+08:00", "2026-05-14T02:00:00.250Z", "2026-05-14 10:00:00",
                     "2026-03-29 02:30:00", "1778724000000", "1970-01-01T00:00:00Z", "", "soon"]),
)
plausible_lat = st.one_of(st.floats(min_value=-100, max_value=100), st.sampled_from([0.0, 23.74, 999.0]))
plausible_lon = st.one_of(st.floats(min_value=-200, max_value=200), st.sampled_from([0.0, 114.7, -200.0]))
place = st.fixed_dictionaries({}, optional={"lat": plausible_lat | json_values, "lon": plausible_lon | json_values,
                                            "crs": st.sampled_from(["wgs84", "gcj02", "bd09", "utm"])})
by_key: dict[str, st.SearchStrategy[Any]] = {
    "rider_id": st.sampled_from(["R1", "R2", "", " "]),
    "ts": plausible_ts,
    "at": plausible_ts,
    "lat": plausible_lat,
    "lon": plausible_lon,
    "accuracy_m": st.floats(min_value=-10, max_value=200),
    "crs": st.sampled_from(["wgs84", "gcj02", "bd09", "GCJ02", "utm", ""]),
    "kind": st.sampled_from(["order", "presence", "refund"]),
    "type": st.sampled_from(["accepted", "arrived_merchant", "picked_up", "delivered", "cancelled",
                             "online", "offline", "teleported"]),
    "platform": st.sampled_from(["meituan", "eleme"]),
    "order_id": st.sampled_from(["O1", "O2", ""]),
    "event_id": st.sampled_from(["e1", "e2", "e3"]),
    "incident_id": st.sampled_from(["I1", "I2", ""]),
    "merchant": place,
    "customer": place,
    "location": place,
}
json_objects = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries({}, optional={k: by_key.get(k, json_values) | json_values for k in KEYS}),
    st.dictionaries(st.text(max_size=6), json_values, max_size=2),
)
valid_gps = st.builds(
    lambda k, rider, crs: orjson.dumps(ping(k, rider, crs=crs)),
    st.integers(0, 500), st.sampled_from(["R1", "R2"]), st.sampled_from(["wgs84", "gcj02", "bd09"]),
)
valid_platform = st.builds(
    lambda typ, t, oid: orjson.dumps(order_ev(typ, T0 + t, oid, event_id=f"{oid}-{typ}-{t}")),
    st.sampled_from(["accepted", "arrived_merchant", "picked_up", "delivered", "cancelled"]),
    st.integers(0, 3600), st.sampled_from(["O1", "O2"]),
)
valid_incident = st.builds(lambda i: orjson.dumps(incident(f"I{i}")), st.integers(0, 9))
lines = st.one_of(
    json_objects.map(orjson.dumps),
    json_values.map(orjson.dumps),
    st.text(st.characters(exclude_characters="\n"), max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"", b"  ", b"\t", b"\r", b"{}", b"[]", b"null", b'{"ts": }']),
    valid_gps, valid_platform, valid_incident,
)
files = st.builds(lambda ls, end: b"\n".join(ls) + end, st.lists(lines, max_size=25),
                  st.sampled_from([b"", b"\n", b"\n\n"]))


def _check_partition(accepted: list[int], problems: list[Problem], data: bytes, source: str) -> None:
    reported = [p.line for p in problems]
    assert len(reported) == len(set(reported)), problems  # each bad line reported once
    assert len(accepted) == len(set(accepted))
    assert not set(accepted) & set(reported)
    assert sorted(set(accepted) | set(reported)) == nonblank_lines(data)
    assert all(p.source == source and p.message for p in problems)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files)
def test_any_lines_never_crash_and_every_line_is_accepted_or_reported_once(data: bytes) -> None:
    cols, problems = read_gps(data, "gps.jsonl", TZ)
    _check_partition(cols.line.tolist(), problems, data, "gps.jsonl")
    n = cols.line.size
    assert cols.t.size == cols.lat.size == cols.lon.size == cols.accuracy.size == cols.rider.len() == n
    assert ((cols.t >= EARLIEST) & (cols.t < LATEST)).all()
    assert valid_latlon(cols.lat, cols.lon).all()
    assert not ((cols.lat == 0) & (cols.lon == 0)).any()
    assert (np.isnan(cols.accuracy) | (cols.accuracy >= 0)).all()
    assert sum(len(tr) for tr in cols.by_rider().values()) == n

    events, problems = read_platform(data, "platform.jsonl", TZ)
    _check_partition([ev.line for ev, _ in events], problems, data, "platform.jsonl")
    assert all(EARLIEST <= t < LATEST for _, t in events)
    assemble(events)

    incidents, problems = read_incidents(data, "incidents.jsonl", TZ)
    reported = [p.line for p in problems]
    assert len(reported) == len(set(reported))
    assert set(reported) <= set(nonblank_lines(data))
    assert len(incidents) + len(problems) == len(nonblank_lines(data))
    assert all(EARLIEST <= i.at < LATEST for i in incidents)


# ================================================================== property: order and repeats do not matter

@st.composite
def gps_feeds(draw: st.DrawFn) -> list[bytes]:
    n = draw(st.integers(1, 40))
    out = []
    t, lat, lon = T0_MS, *HEYUAN
    for _ in range(n):
        t += draw(st.sampled_from([0, 400, 3000, 5000, 15000, 60000, 400000]))
        lat += draw(st.floats(-3e-4, 3e-4))
        lon += draw(st.floats(-3e-4, 3e-4))
        if draw(st.integers(0, 9)) == 0:  # a teleport
            p_lat, p_lon = lat + 0.02, lon - 0.02
        else:
            p_lat, p_lon = lat, lon
        row: dict[str, Any] = {"rider_id": draw(st.sampled_from(["R1", "R2"])), "lat": p_lat, "lon": p_lon,
                               "ts": draw(st.sampled_from([t, str(t), f"{iso_local(t // 1000, 'UTC')[:19]}.{t % 1000:03d}Z"]))}
        acc = draw(st.one_of(st.none(), st.floats(1, 100)))
        if acc is not None:
            row["accuracy_m"] = acc
        out.append(orjson.dumps(row))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gps_feeds(), st.randoms(use_true_random=False), st.data())
def test_shuffling_and_duplicating_lines_changes_nothing_after_cleaning(
        rows: list[bytes], rnd: random.Random, data: st.DataObject) -> None:
    dups = data.draw(st.lists(st.sampled_from(rows), max_size=len(rows)))
    mixed = rows + dups
    rnd.shuffle(mixed)
    if data.draw(st.booleans()):
        mixed.insert(rnd.randrange(len(mixed) + 1), b"")  # also through the slow path
    a, pa = read_gps(b"\n".join(rows) + b"\n", "gps.jsonl", TZ)
    b, pb = read_gps(b"\n".join(mixed) + b"\n", "gps.jsonl", TZ)
    assert pa == pb == []
    ta, tb = a.by_rider(), b.by_rider()
    assert sorted(ta) == sorted(tb)
    params = Params()
    for rider in ta:
        ca, ra = clean(ta[rider], params)
        cb, rb = clean(tb[rider], params)
        for field in ("t", "lat", "lon", "accuracy"):
            np.testing.assert_array_equal(getattr(ca, field), getattr(cb, field), err_msg=field)
        assert np.all(np.diff(ca.t) >= 0)
        assert (ra.used, ra.outliers, ra.inaccurate, ra.observation_gaps) == \
               (rb.used, rb.outliers, rb.inaccurate, rb.observation_gaps)
        assert rb.raw == ra.raw + sum(1 for r in dups if orjson.loads(r)["rider_id"] == rider)
