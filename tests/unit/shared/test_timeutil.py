"""Every timestamp style of DATA_CONTRACT §3, through both parsers (numpy columns, one regular
expression for scalars), against instants computed independently with the standard library."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shared.timeutil import EARLIEST, LATEST, TimestampError, iso_local, parse_many, parse_one

pytestmark = pytest.mark.unit


def epoch(*args: int, tz: str | timezone = "UTC", fold: int = 0) -> float:
    """Epoch seconds of a wall-clock time in a zone (independent of the code under test)."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return datetime(*args, tzinfo=zone, fold=fold).timestamp()


# 2026-05-14T14:02:11+08:00, the contract's example instant
T_EX = epoch(2026, 5, 14, 6, 2, 11)

GOOD = [
    # ISO 8601 with +08:00
    ("2026-05-14T14:02:11+08:00", "Asia/Shanghai", T_EX),
    ("2026-05-14T14:02:11.250+08:00", "Asia/Shanghai", T_EX + 0.25),
    ("2026-05-14T14:02:11+0800", "Asia/Shanghai", T_EX),
    # other offsets: the offset wins over the deployment zone
    ("2026-05-14T08:02:11+02:00", "Asia/Shanghai", T_EX),
    ("2026-05-14T01:02:11-05:00", "Asia/Shanghai", T_EX),
    ("2026-05-14T11:32:11+05:30", "Europe/Berlin", T_EX),
    ("2026-05-14T06:02:11+00:00", "Asia/Shanghai", T_EX),
    # ISO UTC, with and without milliseconds
    ("2026-05-14T06:02:11Z", "Asia/Shanghai", T_EX),
    ("2026-05-14T06:02:11.567Z", "Asia/Shanghai", T_EX + 0.567),
    ("2026-05-14T06:02:11.005Z", "Europe/Berlin", T_EX + 0.005),
    # naive local, in the deployment zone
    ("2026-05-14 14:02:11", "Asia/Shanghai", T_EX),
    ("2026-05-14T14:02:11", "Asia/Shanghai", T_EX),
    ("2026-05-14 08:02:11", "Europe/Berlin", T_EX),  # CEST, +02:00
    ("2026-01-14 08:02:11", "Europe/Berlin", epoch(2026, 1, 14, 7, 2, 11)),  # CET, +01:00
    ("  2026-05-14 14:02:11  ", "Asia/Shanghai", T_EX),
    # integer epoch milliseconds, as a number and as a digit string
    (1778738531000, "Asia/Shanghai", T_EX),
    (1778738531567, "Europe/Berlin", T_EX + 0.567),
    ("1778738531000", "Asia/Shanghai", T_EX),
    (" 1778738531567 ", "Asia/Shanghai", T_EX + 0.567),
    (1778738531567.0, "Asia/Shanghai", T_EX + 0.567),
    # the edges of the accepted range
    ("2000-01-01T00:00:00Z", "Asia/Shanghai", EARLIEST),
    ("2099-12-31T23:59:59Z", "Asia/Shanghai", LATEST - 1),
]

# Europe/Berlin, 2026: clocks jump 02:00 -> 03:00 on 29 March, fall back 03:00 -> 02:00 on 25 October.
DST = [
    ("2026-03-29 01:59:59", epoch(2026, 3, 29, 0, 59, 59)),
    ("2026-03-29 03:00:00", epoch(2026, 3, 29, 1, 0, 0)),
    ("2026-03-29 03:30:00", epoch(2026, 3, 29, 1, 30, 0)),
    # ambiguous: the earlier instant (CEST, +02:00) in both parsers
    ("2026-10-25 02:30:00", epoch(2026, 10, 25, 0, 30, 0)),
    ("2026-10-25 03:00:00", epoch(2026, 10, 25, 2, 0, 0)),
]

NONEXISTENT = ["2026-03-29 02:00:00", "2026-03-29 02:30:00", "2026-03-29T02:59:59"]

BAD = [
    "garbage",
    "",
    "   ",
    None,
    True,
    False,
    {},
    {"ts": 1778738531000},
    [1778738531000],
    "2026-13-14T14:02:11+08:00",  # month 13
    "2026-02-30 10:00:00",  # 30 February
    "2026-05-14T25:02:11Z",
    "14:02:11",
    "1970-01-01T00:00:00Z",
    "1970-06-01 12:00:00",
    "1999-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z",
    "2200-01-01T00:00:00Z",
    "2200-01-01 00:00:00",
    1778738531,  # epoch *seconds*: read as ms it is January 1970
    "1778738531",
    0,
    -1778738531000,
    7258118400000,  # 2200 in ms
    "7258118400000",
    "1778738531000000",  # microseconds: year ~58000
    float("nan"),
    float("inf"),
    "12abc",
    "--5",
]


@pytest.mark.parametrize(("value", "tz", "expected"), GOOD)
def test_parse_one_reads_every_contract_style(value: object, tz: str, expected: float) -> None:
    assert parse_one(value, tz) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("value", "tz", "expected"), GOOD)
def test_parse_many_reads_every_contract_style(value: object, tz: str, expected: float) -> None:
    out = parse_many([value], tz)
    assert out.shape == (1,)
    assert out[0] == pytest.approx(expected, abs=1e-6)


def test_parse_many_reads_a_mixed_column_in_one_go() -> None:
    # one zone for the whole column: keep the rows whose expectation assumes Shanghai
    rows = [(v, e) for v, tz, e in GOOD if tz == "Asia/Shanghai"]
    values = [v for v, _ in rows] + [None, "garbage"]
    out = parse_many(values)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out[: len(rows)], [e for _, e in rows], rtol=0, atol=1e-6)
    assert np.isnan(out[len(rows):]).all()


def test_parse_many_takes_a_polars_series_of_strings_or_integers() -> None:
    s = pl.Series("ts", ["2026-05-14T06:02:11Z", None, "x", "1778738531000"])
    np.testing.assert_allclose(parse_many(s), [T_EX, np.nan, np.nan, T_EX], atol=1e-6)
    ints = pl.Series("ts", [1778738531000, 1778738531567, None], dtype=pl.Int64)
    np.testing.assert_allclose(parse_many(ints), [T_EX, T_EX + 0.567, np.nan], atol=1e-6)


def test_parse_many_of_nothing_is_empty() -> None:
    out = parse_many([])
    assert out.shape == (0,)
    assert out.dtype == np.float64


def test_default_zone_is_shanghai() -> None:
    assert parse_one("2026-05-14 14:02:11") == T_EX
    assert parse_many(["2026-05-14 14:02:11"])[0] == T_EX


@pytest.mark.parametrize(("value", "expected"), DST)
def test_local_times_around_a_dst_change(value: str, expected: float) -> None:
    assert parse_one(value, "Europe/Berlin") == expected
    assert parse_many([value], "Europe/Berlin")[0] == expected


@pytest.mark.parametrize("value", NONEXISTENT)
def test_nonexistent_local_time_is_refused_not_shifted(value: str) -> None:
    assert np.isnan(parse_many([value], "Europe/Berlin")[0])
    with pytest.raises(TimestampError):
        parse_one(value, "Europe/Berlin")
    # the same wall time exists in Shanghai
    assert np.isfinite(parse_many([value], "Asia/Shanghai")[0])
    assert parse_one(value, "Asia/Shanghai") == parse_many([value], "Asia/Shanghai")[0]


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_bad_values_give_nan(value: object) -> None:
    assert np.isnan(parse_many([value])).all()


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_bad_values_raise_timestamp_error(value: object) -> None:
    with pytest.raises(TimestampError):
        parse_one(value)


def test_timestamp_error_is_a_value_error_naming_the_value() -> None:
    with pytest.raises(ValueError, match="garbage"):
        parse_one("garbage")
    with pytest.raises(TimestampError, match="2200"):
        parse_one("2200-01-01T00:00:00Z")


def test_one_bad_value_spoils_only_its_own_row() -> None:
    out = parse_many(["2026-05-14T06:02:11Z", "garbage", None, 1778738531000, "1970-01-01 00:00:00"])
    np.testing.assert_array_equal(np.isnan(out), [False, True, True, False, True])
    assert out[0] == out[3] == T_EX


def test_iso_local_renders_in_the_zone() -> None:
    assert iso_local(T_EX) == "2026-05-14T14:02:11+08:00"
    assert iso_local(T_EX, "Europe/Berlin") == "2026-05-14T08:02:11+02:00"
    assert iso_local(T_EX + 0.6) == "2026-05-14T14:02:12+08:00"  # to the nearest second
    assert iso_local(epoch(2026, 1, 14, 7, 2, 11), "Europe/Berlin") == "2026-01-14T08:02:11+01:00"


# ------------------------------------------------------------------ property: the parsers agree

ZONES = ["Asia/Shanghai", "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
         "Asia/Kolkata", "Pacific/Chatham"]
OFFSETS = [timezone(timedelta(minutes=m)) for m in (480, 0, -300, 330, 345, -570, 840, -720)]
STYLES = ["iso_offset", "iso_z", "naive", "ms_int", "ms_str"]

instants_ms = st.integers(
    min_value=int(epoch(2001, 1, 1) * 1000), max_value=int(epoch(2099, 12, 31, 23, 59, 59) * 1000)
)


def _wall_is_unique(wall: datetime, zone: ZoneInfo) -> bool:
    """The naive wall time names exactly one instant in the zone (not in a gap nor a fold)."""
    a, b = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    return a.utcoffset() == b.utcoffset()


@st.composite
def rendered(draw: st.DrawFn, tz: str | None = None) -> tuple[object, str, float]:
    """(value, tz to pass, true instant in epoch seconds); naive values are wall times in tz."""
    ms = draw(instants_ms)
    if draw(st.booleans()):
        ms -= ms % 1000  # whole seconds: rendered without a fraction
    true = ms / 1000.0
    dt = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)
    style = draw(st.sampled_from(STYLES))
    tz = tz if tz is not None else draw(st.sampled_from(ZONES))
    spec = "milliseconds" if ms % 1000 else "seconds"
    if style == "iso_offset":
        off = draw(st.sampled_from([*OFFSETS, *(ZoneInfo(z) for z in ZONES)]))
        return dt.astimezone(off).isoformat(timespec=spec), tz, true
    if style == "iso_z":
        return dt.isoformat(timespec=spec).replace("+00:00", "Z"), tz, true
    if style == "naive":
        zone = ZoneInfo(tz)
        wall = dt.astimezone(zone).replace(tzinfo=None)
        assume(_wall_is_unique(wall, zone))
        sep = draw(st.sampled_from([" ", "T"]))
        return wall.isoformat(sep=sep, timespec=spec), tz, true
    if style == "ms_int":
        return ms, tz, true
    return str(ms), tz, true


@settings(max_examples=100, deadline=None)
@given(rendered())
def test_parsers_agree_with_each_other_and_the_true_instant(case: tuple[object, str, float]) -> None:
    value, tz, true = case
    one = parse_one(value, tz)
    many = parse_many([value], tz)[0]
    assert abs(one - true) < 5e-4, (value, tz, one, true)
    assert abs(many - true) < 5e-4, (value, tz, many, true)
    assert abs(one - many) < 5e-4


column_cases = st.sampled_from(ZONES).flatmap(
    lambda tz: st.tuples(st.just(tz), st.lists(rendered(tz), min_size=1, max_size=20))
)


@settings(max_examples=50, deadline=None)
@given(column_cases)
def test_a_mixed_column_parses_to_the_true_instants(case: tuple[str, list[tuple[object, str, float]]]) -> None:
    tz, cases = case
    values = [v for v, _, _ in cases]
    out = parse_many(values, tz)
    np.testing.assert_allclose(out, [t for _, _, t in cases], rtol=0, atol=5e-4)


@settings(max_examples=100, deadline=None)
@given(st.one_of(
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
    st.booleans(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
))
def test_anything_gives_a_number_in_range_or_nan_and_never_raises(value: object) -> None:
    t = parse_many([value], "Europe/Berlin")[0]
    assert np.isnan(t) or EARLIEST <= t < LATEST
    try:
        one = parse_one(value, "Europe/Berlin")
    except TimestampError:
        return
    assert EARLIEST <= one < LATEST
