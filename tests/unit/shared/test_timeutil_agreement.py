"""parse_one and parse_many accept one set of forms (shared/timeutil.py's docstring) and give the
same instant, or the same refusal, on every input: the forms of issue 15's table, and 10,000
generated strings (100 examples of 100) built from good and bad parts, each read by both paths,
alone and in a mixed column, and checked against ciso8601 as the reference for the instant.

ciso8601 reads more than the contract allows (a comma fraction, 10 fraction digits, 24:00:00):
the reference's answer counts only for strings in the grammar; any string outside it, or that
ciso8601 refuses, must be refused by both paths."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import ciso8601
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.timeutil import EARLIEST, LATEST, TimestampError, parse_many, parse_one

pytestmark = pytest.mark.unit

ZONES = ["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]
T_EX = datetime(2026, 5, 14, 6, 2, 11, tzinfo=UTC).timestamp()  # 2026-05-14T14:02:11+08:00
REFUSED = None

# issue 15's table: what each path did before, and what both do now
TABLE = [
    ("2026-05-14T06:02:11z", T_EX),  # lowercase z (parse_one refused, parse_many accepted)
    ("2026-05-14t06:02:11Z", T_EX),  # lowercase t, as RFC 3339 allows
    ("2026-05-14T14:02:11+08", T_EX),  # hour-only offset (parse_one accepted, parse_many refused)
    ("2026-05-14T14:02:11+0800", T_EX),
    ("2026-05-14T14:02:11,5+08:00", REFUSED),  # comma fraction (parse_one accepted)
    ("2026-05-14T14:02:11.1234567890+08:00", REFUSED),  # 10 fraction digits (parse_one accepted)
    ("2026-05-14T14:02:11.123456789+08:00", T_EX + 0.123456789),  # 9 are fine
    ("2026-05-14T14:02:11+08:60", REFUSED),  # (parse_one accepted)
    ("２０２６-０５-１４T14:02:11+08:00", REFUSED),  # full-width digits (parse_one accepted)
    ("１７７８７３８５３１０００", REFUSED),  # full-width epoch milliseconds
    ("2026-05-14T23:59:60Z", REFUSED),  # leap second (parse_many rolled it to the next day)
    ("2026-05-14T14:02:11", T_EX),  # naive: Shanghai time
    ("2026-5-14T14:02:11", REFUSED),  # unpadded (parse_many accepted as Shanghai time)
    ("2026-05-14T14:02:1", REFUSED),
    ("2026-05-14 14:2:11", REFUSED),
    ("2026-05-14T24:00:00Z", REFUSED),
    ("2026-05-14T14:02Z", REFUSED),
    ("2026-05-14", REFUSED),
    ("\u30002026-05-14T14:02:11", REFUSED),  # an ideographic space is not white space here
    (" \t2026-05-14T14:02:11+08:00\r\n", T_EX),
]


def outcome_one(value: object, tz: str = "Asia/Shanghai") -> float | None:
    try:
        return parse_one(value, tz)
    except TimestampError:
        return None


def outcome_many(value: object, tz: str = "Asia/Shanghai") -> float | None:
    t = float(parse_many([value], tz)[0])
    return None if np.isnan(t) else t


@pytest.mark.parametrize(("value", "expected"), TABLE, ids=repr)
def test_the_issue_table_reads_the_same_on_both_paths(value: str, expected: float | None) -> None:
    one, many = outcome_one(value), outcome_many(value)
    assert one == many, (value, one, many)
    if expected is None:
        assert one is None
    else:
        assert one is not None and abs(one - expected) < 1e-9


# ------------------------------------------------------------------ the reference

_GRAMMAR = re.compile(  # written apart from the module's, from its docstring
    r"(?P<date>\d{4}-\d\d-\d\d)[Tt ](?P<time>\d\d:\d\d:\d\d)(?P<frac>\.\d{1,9})?(?P<zone>[Zz]|[+-]\d\d(:?\d\d)?)?",
    re.ASCII,
)
_EPOCH = re.compile(r"-?\d+(\.\d+)?", re.ASCII)


def reference(value: str, tz: str) -> float | None:
    """The instant by ciso8601 (naive wall times placed in tz with zoneinfo), or None."""
    text = value.strip(" \t\r\n")
    if _EPOCH.fullmatch(text):
        t = float(text) / 1000.0
    else:
        m = _GRAMMAR.fullmatch(text)
        if m is None or m["time"] >= "24":  # ciso8601 reads 24:00:00 as the next midnight
            return None
        try:
            dt = ciso8601.parse_datetime(text.upper())
        except ValueError:
            return None
        if dt.tzinfo is None:
            zone = ZoneInfo(tz)
            aware = dt.replace(tzinfo=zone, fold=0)
            if datetime.fromtimestamp(aware.timestamp(), zone).replace(tzinfo=None) != dt:
                return None  # a wall time the clocks skip
            dt = aware
        # ciso8601 keeps microseconds: add back the digits beyond them
        frac = m["frac"] or ""
        t = dt.timestamp() + (int(frac[7:].ljust(3, "0")) * 1e-9 if len(frac) > 7 else 0.0)
    return t if EARLIEST <= t < LATEST else None


# ------------------------------------------------------------------ generated strings

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _num(draw: st.DrawFn, lo: int, hi: int, width: int, bad: list[str]) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(bad))
    return str(draw(st.integers(lo, hi))).zfill(width)


@st.composite
def timestamp_text(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 24))
    if kind == 0:
        return draw(st.text(max_size=30))
    if kind <= 2:  # the forms of the issue's table, as they are or spoilt further below
        return draw(st.sampled_from([v for v, _ in TABLE]))
    if kind == 3:
        ms = draw(st.integers(int(EARLIEST * 1000) - 10**6, int(LATEST * 1000) + 10**6))
        text = str(ms) + draw(st.sampled_from(["", ".5", ".25", ".", "e3", ".0"]))
        return text.translate(FULL_WIDTH) if draw(st.integers(0, 9)) == 0 else text
    year = _num(draw, 1999, 2100, 4, ["26", "0000", "20260", "2O26"])
    month = _num(draw, 1, 12, 2, ["0", "00", "13", "5", "1O"])
    day = _num(draw, 1, 31, 2, ["0", "00", "32", "7"])
    hour = _num(draw, 0, 23, 2, ["24", "9", "99"])
    minute = _num(draw, 0, 59, 2, ["60", "2", "5a"])
    second = _num(draw, 0, 59, 2, ["60", "61", "1"])
    sep = draw(st.sampled_from(["T", "T", "T", " ", "t", "_", "  ", "TT"]))
    frac = draw(st.one_of(
        st.just(""),
        st.integers(1, 10).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)).map(lambda d: "." + d),
        st.sampled_from([",5", ",123", ".", ".12a"]),
    ))
    zone = draw(st.one_of(
        st.just(""),
        st.sampled_from(["Z", "z", "UTC", "+8", "+08:0", "+0", "+", "Z+08:00", "+08:00Z"]),
        st.tuples(st.sampled_from("+-"), st.integers(0, 25), st.integers(0, 61),
                  st.sampled_from(["hh:mm", "hhmm", "hh"])).map(
            lambda p: p[0] + f"{p[1]:02d}" + {"hh:mm": f":{p[2]:02d}", "hhmm": f"{p[2]:02d}", "hh": ""}[p[3]]),
    ))
    text = f"{year}-{month}-{day}{sep}{hour}:{minute}:{second}{frac}{zone}"
    if draw(st.integers(0, 19)) == 0:  # full-width digits somewhere
        k = draw(st.integers(0, len(text) - 1))
        text = text[:k] + text[k:].translate(FULL_WIDTH)
    pad = draw(st.sampled_from(["", "", "", " ", "\t", "\n", "\u3000", "\r\n"]))
    return draw(st.sampled_from([text, pad + text, text + pad, pad + text + pad]))


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a is None and b is None)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ZONES), st.lists(timestamp_text(), min_size=25, max_size=25))
def test_both_paths_agree_with_each_other_and_ciso8601(tz: str, values: list[str]) -> None:
    column = parse_many(values, tz)  # one mixed column: many lengths and forms at once
    for k, (value, in_column) in enumerate(zip(values, column.tolist(), strict=True)):
        one = outcome_one(value, tz)
        in_col = None if np.isnan(in_column) else in_column
        assert _same(one, in_col), (value, tz, one, in_col)
        if k < 5:  # and alone, as a column of one (the answer does not depend on the neighbours)
            alone = outcome_many(value, tz)
            assert _same(one, alone), (value, tz, one, alone)
        ref = reference(value, tz)
        if ref is None:
            assert one is None, (value, tz, one)
        else:
            assert one is not None and abs(one - ref) < 1e-6, (value, tz, one, ref)


def test_a_column_with_every_length_and_many_fractions() -> None:
    """More distinct values than the earlier per-value table allowed (5,000): 6,000 fractions."""
    rng = np.random.default_rng(15)
    values = [f"2026-05-14T06:02:11.{int(f):0{w}d}{z}" for f, w, z in
              zip(rng.integers(0, 10**6, 6000), rng.integers(6, 10, 6000), rng.choice(["Z", "+00:00", "-0000", ""], 6000),
                  strict=True)]
    column = parse_many(values, "UTC")
    ones = np.array([parse_one(v, "UTC") for v in values])
    np.testing.assert_array_equal(column, ones)
    assert np.all(np.abs(ones - T_EX) < 1.0)


@st.composite
def one_day_column(draw: st.DrawFn) -> list[str]:
    """A feed's usual column: more than 64 strings of one length sharing the date, the separator
    and the fraction and zone (parse_many reads those once), times of day varying, some spoilt;
    the shared part itself good or bad."""
    date = draw(st.sampled_from(["2026-05-14", "2026-03-29", "2026-10-25", "2024-02-29", "2026-02-29",
                                 "2026-13-01", "２０２６-05-14", "2099-12-31", "1999-12-31"]))
    sep = draw(st.sampled_from(["T", "t", " ", "_"]))
    rest = draw(st.sampled_from(["", "Z", "z", "+08:00", "+0800", "+08", "-05:30", "+08:60", ".5Z", ".250+08:00",
                                 ".123456789", ",5Z", "Zz"]))
    times = draw(st.lists(st.one_of(
        st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)).map(lambda x: f"{x[0]:02d}:{x[1]:02d}:{x[2]:02d}"),
        st.sampled_from(["24:00:00", "23:59:60", "02:30:00", "1a:00:00", "12-00:00", "12:00:0 ", "１２:00:00"]),
    ), min_size=65, max_size=120))
    return [f"{date}{sep}{time}{rest}" for time in times]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ZONES), one_day_column())
def test_a_one_day_column_reads_as_each_value_alone(tz: str, values: list[str]) -> None:
    column = parse_many(values, tz)
    for value, in_column in zip(values, column.tolist(), strict=True):
        one = outcome_one(value, tz)
        assert _same(one, None if np.isnan(in_column) else in_column), (value, tz, one, in_column)
        ref = reference(value, tz)
        assert _same(one, ref) or (one is not None and ref is not None and abs(one - ref) < 1e-6), (value, one, ref)
