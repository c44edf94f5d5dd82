"""Time at the edges: parse every timestamp style of the data contract, render in the local zone.

Inside the system, an instant is a float of UTC epoch seconds (numpy float64 arrays for
tracks). ``parse_one`` (one value) and ``parse_many`` (a column) accept exactly the same forms
and give the same instant, or both refuse (``TimestampError`` / NaN), on every input:

- **Epoch milliseconds**: a JSON number, or a string of ASCII digits with an optional leading
  ``-`` and an optional ``.`` fraction (``1778738531000``, ``"1778738531000.5"``).
- **Date and time**: ``YYYY-MM-DD``, then ``T``, ``t`` or one space, then ``HH:MM:SS``, every field
  zero-padded ASCII digits (``2026-5-14``, ``14:02:1`` and full-width digits are refused); hours
  00-23, minutes and seconds 00-59 (a leap second ``23:59:60`` is refused, not rolled over), a real
  calendar date; then optionally ``.`` and 1 to 9 fraction digits (a comma, or 10 digits, is
  refused); then optionally the zone: ``Z`` or ``z`` (UTC), or an offset ``+HH:MM``, ``+HHMM`` or
  ``+HH`` (or ``-``), HH 00-23 and MM 00-59 (``+08:60`` is refused). Without a zone the time is a
  wall-clock time in the deployment's zone (``tz``): a time the clocks skip (a DST gap) is refused,
  not shifted; a time they pass twice is the earlier instant.
- Spaces, tabs, CR and LF around a value are ignored; nothing else is (``\u3000`` is refused).
- The instant must lie in [2000-01-01, 2100-01-01) UTC (outside, it is mostly a unit mix-up:
  epoch seconds read as milliseconds).

``parse_many`` is the feeds' hot path: the strings of a column are laid side by side as bytes,
one numpy matrix per string length, and every field is checked and read with array arithmetic
(no regular expression, no strptime, no Python per row); only wall-clock times go through
polars' time-zone rules (chrono-tz), and epoch strings through one polars cast. ``parse_one``
reads the same grammar with one regular expression and the standard library. Tests fuzz both
against each other and against ciso8601.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import polars as pl

DEFAULT_TZ = "Asia/Shanghai"
# Instants outside this range are absurd for this system (and mostly a unit mix-up).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
LATEST = datetime(2100, 1, 1, tzinfo=UTC).timestamp()

_WS = " \t\r\n"
_EPOCH_MS = r"-?[0-9]+(?:\.[0-9]+)?"
_ONE = re.compile(
    rf"(?P<ms>{_EPOCH_MS})"
    r"|(?P<Y>[0-9]{4})-(?P<M>[0-9]{2})-(?P<D>[0-9]{2})[Tt ]"
    r"(?P<h>[01][0-9]|2[0-3]):(?P<m>[0-5][0-9]):(?P<s>[0-5][0-9])"
    r"(?:\.(?P<f>[0-9]{1,9}))?"
    r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<oh>[01][0-9]|2[0-3])(?::?(?P<om>[0-5][0-9]))?)?"
)
_HEAD = 19  # len("YYYY-MM-DDTHH:MM:SS")
_LONGEST = _HEAD + 10 + 6  # a 9-digit fraction and "+HH:MM"
F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]
B = npt.NDArray[np.bool_]
I64 = npt.NDArray[np.int64]


class TimestampError(ValueError):
    """A timestamp that cannot be read, or that names an absurd instant."""


def parse_many(values: Sequence[object] | pl.Series, tz: str = DEFAULT_TZ) -> F64:
    """Epoch seconds for each value; NaN where the value is unreadable or absurd (the forms of
    the module's docstring)."""
    s = values if isinstance(values, pl.Series) else pl.Series("ts", [_as_text(v) for v in values], dtype=pl.String)
    s = s.cast(pl.String)
    t = _parse(s, tz)
    # the rare value with spaces around it: a second pass over the values that failed
    retry = np.isnan(t) & s.is_not_null().to_numpy()
    if retry.any():
        t[retry] = _parse(s.filter(pl.Series(retry)).str.strip_chars(_WS), tz)
    return np.where((t >= EARLIEST) & (t < LATEST), t, np.nan)


def _parse(s: pl.Series, tz: str) -> F64:
    n = len(s)
    t = np.full(n, np.nan)
    if n == 0:
        return t
    lens = s.str.len_bytes().fill_null(0).to_numpy()
    dated = np.zeros(n, dtype=bool)
    head_s = np.zeros(n, dtype=np.int64)  # the date and time of day read as UTC, in seconds
    frac_ms = np.zeros(n)
    offset_s = np.full(n, np.nan)  # NaN: no zone, a wall-clock time in tz
    counts = np.bincount(np.minimum(lens, _LONGEST + 1))
    for length in np.flatnonzero(counts[_HEAD:_LONGEST + 1]) + _HEAD:
        rows = np.flatnonzero(lens == length)
        part = s if rows.size == n else s.gather(rows)
        raw = part.str.join("").cast(pl.Binary).item()  # the UTF-8 bytes, copied once
        # one row of bytes per string, transposed so that each character position is contiguous
        m = np.frombuffer(raw, dtype=np.uint8).reshape(rows.size, int(length)).T.copy()
        ok, secs, ms, off = _read_fixed(m)
        if rows.size == n:  # one length for the whole column: no scatter
            dated, head_s, frac_ms, offset_s = ok, secs, ms, off
        else:
            dated[rows], head_s[rows], frac_ms[rows], offset_s[rows] = ok, secs, ms, off
    zoned = dated & ~np.isnan(offset_s)
    t[zoned] = (head_s[zoned].astype(np.float64) * 1000.0 + frac_ms[zoned]) / 1000.0 - offset_s[zoned]
    local = dated & np.isnan(offset_s)
    if local.any():
        naive = pl.Series(head_s[local] * 1000).cast(pl.Datetime("ms"))
        aware = naive.dt.replace_time_zone(tz, non_existent="null", ambiguous="earliest").dt.epoch("ms")
        t[local] = aware.cast(pl.Float64).fill_null(np.nan).to_numpy() / 1000.0 + frac_ms[local] / 1000.0
    rest = ~dated & (lens > 0)
    if rest.any():  # epoch milliseconds (or nothing readable)
        sub = s.filter(pl.Series(rest))
        numeric = sub.str.contains(f"^{_EPOCH_MS}$").fill_null(False)
        t[rest] = sub.cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy() / 1000.0
        t[np.flatnonzero(rest)[~numeric.to_numpy()]] = np.nan
    return t


def _digits(m: U8, first: int, last: int) -> tuple[B, I64]:
    """Whether character positions first..last-1 of every string are ASCII digits, and the number
    they spell (``m``: one row per character position, one column per string)."""
    d = m[first:last] - np.uint8(48)  # wraps around below "0": anything but a digit is > 9
    value = d[0].astype(np.int32)  # at most 9 digits: fits
    for row in d[1:]:
        value = value * 10 + row
    return np.asarray((d <= 9).all(axis=0), dtype=bool), value.astype(np.int64, copy=False)


_DATE_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_DATE_PUNCT = np.array([4, 7, 13, 16])
_DATE_PUNCT_CHARS = np.array([[ord("-")], [ord("-")], [ord(":")], [ord(":")]], dtype=np.uint8)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int16)


def _read_fixed(m: U8) -> tuple[B, I64, F64, F64]:
    """Strings of one byte length (``m``: character positions by strings): whether each is a date
    and time of the accepted forms, its date and time of day as UTC epoch seconds, its fraction in
    milliseconds, and its offset in seconds (NaN without a zone).

    The usual feed writes one date and one zone on every line of a day: when every string shares
    its date, separator and everything after the seconds, those are read once (from the first
    string with its time of day set to midnight) and only the time of day is read per string."""
    length, n = m.shape
    if n > 64 and all(bool((m[c] == m[c, 0]).all()) for c in (*range(11), *range(_HEAD, length))):
        probe = m[:, :1].copy()
        probe[11:_HEAD, 0] = np.frombuffer(b"00:00:00", dtype=np.uint8)
        ok0, secs0, ms0, off0 = _read_any(probe)
        ok_h, hour = _digits(m, 11, 13)
        ok_mi, minute = _digits(m, 14, 16)
        ok_s, sec = _digits(m, 17, 19)
        ok = (ok_h & ok_mi & ok_s & (m[13] == ord(":")) & (m[16] == ord(":")) & (hour <= 23) & (minute <= 59)
              & (sec <= 59) & bool(ok0[0]))
        secs = secs0[0] + hour * 3600 + minute * 60 + sec
        return ok, secs, np.full(n, ms0[0]), np.full(n, off0[0])
    return _read_any(m)


def _read_any(m: U8) -> tuple[B, I64, F64, F64]:
    """``_read_fixed`` for strings that share nothing."""
    length, n = m.shape
    d = m[_DATE_DIGITS] - np.uint8(48)
    ok = (d <= 9).all(axis=0) & (m[_DATE_PUNCT] == _DATE_PUNCT_CHARS).all(axis=0)
    sep = m[10]
    ok &= (sep == ord("T")) | (sep == ord("t")) | (sep == ord(" "))
    two = d[0::2].astype(np.int16) * 10 + d[1::2]  # the 2-digit fields: century, year, month, ...
    year = two[0].astype(np.int32) * 100 + two[1]
    month, day, hour, minute, sec = two[2], two[3], two[4], two[5], two[6]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.clip(month, 0, 12)] + (leap & (month == 2))
    ok &= (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    ok &= (hour <= 23) & (minute <= 59) & (sec <= 59)
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month.astype(np.int32) + 9) % 12) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    secs = days.astype(np.int64) * 86400 + (hour.astype(np.int32) * 3600 + minute * 60 + sec)
    # the rest: [.fraction][zone], one layout per (fraction length, zone length) that fits
    frac_ms = np.zeros(n)
    offset = np.full(n, np.nan)
    matched = np.zeros(n, dtype=bool)
    rest = length - _HEAD
    dot = m[_HEAD] == ord(".") if rest else np.zeros(n, dtype=bool)
    for zone_len in (0, 1, 3, 5, 6):
        frac_len = rest - zone_len  # "." and 1-9 digits, or nothing
        if not (frac_len == 0 or 2 <= frac_len <= 10):
            continue
        good = dot.copy() if frac_len else ~dot
        if not good.any():
            continue
        z = _HEAD + frac_len
        if zone_len == 1:
            good &= (m[z] == ord("Z")) | (m[z] == ord("z"))
        elif zone_len:
            sign = m[z]
            good_h, oh = _digits(m, z + 1, z + 3)
            good &= ((sign == ord("+")) | (sign == ord("-"))) & good_h & (oh <= 23)
            om = np.zeros(n, dtype=np.int64)
            if zone_len >= 5:
                good_m, om = _digits(m, z + zone_len - 2, z + zone_len)
                good &= good_m & (om <= 59)
                if zone_len == 6:
                    good &= m[z + 3] == ord(":")
        if frac_len:
            good_f, f = _digits(m, _HEAD + 1, z)
            good &= good_f
        good &= ~matched
        every = bool(good.all())  # the usual case: one layout for every string of this length
        if not every and not good.any():
            continue
        sel = slice(None) if every else good
        matched |= good
        if frac_len:
            frac_ms[sel] = f[sel] / float(10 ** (frac_len - 1)) * 1000.0
        if zone_len == 1:
            offset[sel] = 0.0
        elif zone_len:
            offset[sel] = np.where(sign[sel] == ord("-"), -1.0, 1.0) * (oh[sel] * 3600 + om[sel] * 60)
    return ok & matched, secs, frac_ms, offset


def _as_text(v: object) -> str | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float | str):
        return str(v)
    return None


def parse_one(value: object, tz: str = DEFAULT_TZ) -> float:
    """Epoch seconds of one timestamp (the forms of the module's docstring, read as parse_many
    reads them, to the same float); raises TimestampError naming the problem."""
    if isinstance(value, bool) or value is None:
        raise TimestampError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        t = float(value) / 1000.0
    elif isinstance(value, str):
        m = _ONE.fullmatch(value.strip(_WS))
        if m is None:
            raise TimestampError(f"unreadable timestamp {value!r}")
        if m["ms"] is not None:
            t = float(m["ms"]) / 1000.0
        else:
            try:
                wall = datetime(int(m["Y"]), int(m["M"]), int(m["D"]), int(m["h"]), int(m["m"]), int(m["s"]))
            except ValueError as e:
                raise TimestampError(f"unreadable timestamp {value!r}: {e}") from e
            f = m["f"]
            frac_ms = int(f) / float(10 ** len(f)) * 1000.0 if f else 0.0
            if m["z"] is not None or m["sign"] is not None:
                off = 0.0
                if m["sign"] is not None:
                    off = (-1.0 if m["sign"] == "-" else 1.0) * float(int(m["oh"]) * 3600 + int(m["om"] or 0) * 60)
                head_ms = float(calendar.timegm(wall.timetuple()) * 1000)
                t = (head_ms + frac_ms) / 1000.0 - off
            else:
                local_ms = int(_local(wall, tz, value).timestamp()) * 1000
                t = float(local_ms) / 1000.0 + frac_ms / 1000.0
    else:
        raise TimestampError(f"not a timestamp: {value!r}")
    if not (EARLIEST <= t < LATEST):
        raise TimestampError(f"absurd timestamp {value!r} (outside 2000-2100)")
    return t


def _local(naive: datetime, tz: str, value: object) -> datetime:
    """A naive wall-clock time in ``tz``, as parse_many reads it: the earlier instant when the clock
    goes back, TimestampError when the clock jumps over it (rather than shift it)."""
    zone = _zone(tz)
    aware = datetime(naive.year, naive.month, naive.day, naive.hour, naive.minute, naive.second,
                     naive.microsecond, tzinfo=zone, fold=0)
    back = datetime.fromtimestamp(aware.timestamp(), zone).replace(tzinfo=None)
    if back != aware.replace(tzinfo=None):
        raise TimestampError(f"nonexistent local time {value!r} in {tz} (clocks skip it)")
    return aware


def check_zone(tz: str) -> str:
    """The zone name if the tz database knows it, else ValueError."""
    try:
        _zone(tz)
    except Exception as e:  # ZoneInfoNotFoundError (a KeyError), or ValueError for a malformed key
        raise ValueError(f"unknown time zone {tz!r}") from e
    return tz


@functools.lru_cache(maxsize=16)
def _zone(tz: str) -> ZoneInfo:
    # the tz database pendulum reads too (its Timezone is a ZoneInfo); importing pendulum on the
    # batch path cost more than what it was used for here
    return ZoneInfo(tz)


def iso_local(t: float, tz: str = DEFAULT_TZ) -> str:
    """ISO 8601 with the zone's offset, to the second: what users read and what we print."""
    return datetime.fromtimestamp(round(t), tz=_zone(tz)).isoformat()
