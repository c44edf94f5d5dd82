"""Time at the edges: parse every timestamp style of the data contract, render in the local zone.

Inside the system, an instant is a float of UTC epoch seconds (numpy float64 arrays for
tracks). Styles accepted (DATA_CONTRACT §3): ISO 8601 with an offset, ISO 8601 UTC (``Z``),
naive local ``YYYY-MM-DD HH:MM:SS`` (or with ``T``), read in the deployment's zone, and integer
epoch milliseconds. Whole columns are parsed at once with polars (chrono-tz underneath); single
values with pendulum. A property test keeps the two parsers in agreement.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pendulum
import polars as pl

DEFAULT_TZ = "Asia/Shanghai"
# Instants outside this range are absurd for this system (and mostly a unit mix-up).
EARLIEST = pendulum.datetime(2000, 1, 1).timestamp()
LATEST = pendulum.datetime(2100, 1, 1).timestamp()

_NUMERIC = r"^\s*-?\d+(\.\d+)?\s*$"
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}")


class TimestampError(ValueError):
    """A timestamp that cannot be read, or that names an absurd instant."""


def parse_many(values: Sequence[object] | pl.Series, tz: str = DEFAULT_TZ) -> npt.NDArray[np.float64]:
    """Epoch seconds for each value; NaN where the value is unreadable or absurd.

    A timestamp is cut in two: the date and time of day (19 characters, parsed in one vectorised
    pass) and the rest (fraction and offset), which takes few distinct values in a real feed and
    is read once per distinct value."""
    s = values if isinstance(values, pl.Series) else pl.Series("ts", [_as_text(v) for v in values], dtype=pl.String)
    s = s.cast(pl.String)
    t = _parse(s, tz)
    # the rare value with spaces around it, or a space between date and time: a second pass
    retry = np.isnan(t) & s.is_not_null().to_numpy()
    if retry.any():
        again = s.filter(pl.Series(retry)).str.strip_chars().str.replace(" ", "T", literal=True, n=1)
        t[retry] = _parse(again, tz)
    return np.where((t >= EARLIEST) & (t < LATEST), t, np.nan)


def _parse(s: pl.Series, tz: str) -> npt.NDArray[np.float64]:
    frame = pl.DataFrame({"s": s}).select(
        numeric=pl.col("s").str.contains(_NUMERIC).fill_null(False),
        head=pl.col("s").str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False, time_unit="ms")
        .dt.epoch("ms"),
        rest=pl.col("s").str.slice(19),
    )
    numeric = frame["numeric"].to_numpy()
    t = np.full(len(frame), np.nan)
    if numeric.any():
        t[numeric] = s.filter(pl.Series(numeric)).cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy() / 1000.0
    dated = ~numeric & frame["head"].is_not_null().to_numpy()
    if dated.any():
        part = frame.filter(pl.Series(dated))
        head_ms = part["head"].to_numpy().astype(np.float64)
        rests = part["rest"].unique()
        if len(rests) > 5000:  # e.g. microsecond fractions everywhere: too many to read one by one
            rest_ms, offset_s, ok = _rest_columns(part["rest"])
        else:
            table = {r: _read_rest(r) for r in rests.to_list()}
            rest_ms = part["rest"].replace_strict(
                {k: v[0] for k, v in table.items()}, return_dtype=pl.Float64).to_numpy()
            offset_s = part["rest"].replace_strict(
                {k: v[1] for k, v in table.items()}, return_dtype=pl.Float64).fill_null(np.nan).to_numpy()
            ok = part["rest"].replace_strict({k: v[2] for k, v in table.items()}, return_dtype=pl.Boolean).to_numpy()
        local = ok & np.isnan(offset_s)
        u = (head_ms + rest_ms) / 1000.0 - np.nan_to_num(offset_s)
        if local.any():
            naive = pl.Series(head_ms[local].astype(np.int64)).cast(pl.Datetime("ms"))
            aware = naive.dt.replace_time_zone(tz, non_existent="null", ambiguous="earliest").dt.epoch("ms")
            u[local] = aware.cast(pl.Float64).fill_null(np.nan).to_numpy() / 1000.0 + rest_ms[local] / 1000.0
        t[dated] = np.where(ok, u, np.nan)
    return t


_REST = re.compile(r"(?:\.(\d{1,9}))?(?:([+-])(\d\d):?(\d\d)|([zZ]))?")


def _read_rest(rest: str) -> tuple[float, float | None, bool]:
    """Milliseconds of the fraction, offset seconds (None: local time), and whether it is valid."""
    m = _REST.fullmatch(rest)
    if m is None:
        return 0.0, None, False
    frac, sign, hh, mm, z = m.groups()
    ms = float("0." + frac) * 1000.0 if frac else 0.0
    if z:
        return ms, 0.0, True
    if sign:
        h, mi = int(hh), int(mm)
        if h > 23 or mi > 59:
            return 0.0, None, False
        return ms, (1.0 if sign == "+" else -1.0) * float(h * 3600 + mi * 60), True
    return ms, None, True


def _rest_columns(rest: pl.Series) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    pat = r"^(?:\.(\d{1,9}))?(?:([+-])(\d\d):?(\d\d)|([zZ]))?$"
    f = pl.DataFrame({"r": rest}).select(
        ok=pl.col("r").str.contains(pat),
        frac=pl.col("r").str.extract(pat, 1),
        sign=pl.col("r").str.extract(pat, 2),
        hh=pl.col("r").str.extract(pat, 3).cast(pl.Float64),
        mm=pl.col("r").str.extract(pat, 4).cast(pl.Float64),
        z=pl.col("r").str.extract(pat, 5).is_not_null(),
    )
    frac = f["frac"].fill_null("").to_list()
    ms = np.array([float("0." + x) * 1000.0 if x else 0.0 for x in frac])
    sign = np.where(f["sign"].fill_null("+").to_numpy() == "-", -1.0, 1.0)
    hh, mm = f["hh"].fill_null(np.nan).to_numpy(), f["mm"].fill_null(np.nan).to_numpy()
    z = f["z"].to_numpy()
    off = np.where(z, 0.0, sign * (hh * 3600 + mm * 60))
    ok = f["ok"].fill_null(False).to_numpy() & ~((hh > 23) | (mm > 59))
    return ms, off, ok


def _as_text(v: object) -> str | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float | str):
        return str(v)
    return None


def parse_one(value: object, tz: str = DEFAULT_TZ) -> float:
    """Epoch seconds of one timestamp, with pendulum; raises TimestampError naming the problem."""
    if isinstance(value, bool) or value is None:
        raise TimestampError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        t = float(value) / 1000.0
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text.lstrip("-").replace(".", "", 1).isdigit():
                t = float(text) / 1000.0
            else:
                if not _DATE_TIME.match(text):  # pendulum would complete a bare time with today's date
                    raise TimestampError(f"not a date and time: {value!r}")
                parsed = pendulum.parse(text.replace(" ", "T", 1), tz=None, strict=True)
                if not isinstance(parsed, datetime):
                    raise TimestampError(f"not a date and time: {value!r}")
                t = _local(parsed, tz, value).timestamp() if parsed.tzinfo is None else parsed.timestamp()
        except (ValueError, pendulum.parsing.exceptions.ParserError) as e:
            raise TimestampError(f"unreadable timestamp {value!r}") from e
    else:
        raise TimestampError(f"not a timestamp: {value!r}")
    if not (EARLIEST <= t < LATEST):
        raise TimestampError(f"absurd timestamp {value!r} (outside 2000-2100)")
    return t


def _local(naive: datetime, tz: str, value: object) -> datetime:
    """A naive wall-clock time in ``tz``, as parse_many reads it: the earlier instant when the clock
    goes back, TimestampError when the clock jumps over it (pendulum would silently shift it)."""
    zone = pendulum.timezone(tz)
    aware = datetime(naive.year, naive.month, naive.day, naive.hour, naive.minute, naive.second,
                     naive.microsecond, tzinfo=zone, fold=0)
    back = datetime.fromtimestamp(aware.timestamp(), zone).replace(tzinfo=None)
    if back != aware.replace(tzinfo=None):
        raise TimestampError(f"nonexistent local time {value!r} in {tz} (clocks skip it)")
    return aware


def check_zone(tz: str) -> str:
    """The zone name if the tz database knows it, else ValueError."""
    try:
        pendulum.timezone(tz)
    except Exception as e:  # pendulum raises its own InvalidTimezone
        raise ValueError(f"unknown time zone {tz!r}") from e
    return tz


@functools.lru_cache(maxsize=16)
def _zone(tz: str) -> pendulum.Timezone:
    return pendulum.timezone(tz)


def iso_local(t: float, tz: str = DEFAULT_TZ) -> str:
    """ISO 8601 with the zone's offset, to the second: what users read and what we print."""
    # stdlib datetime with the zone pendulum resolved: same answer, a tenth of the cost
    return datetime.fromtimestamp(round(t), tz=_zone(tz)).isoformat()


def hm_local(t: float, tz: str = DEFAULT_TZ) -> str:
    """Wall-clock ``HH:MM:SS`` in the zone, for sentences."""
    return datetime.fromtimestamp(round(t), tz=_zone(tz)).strftime("%H:%M:%S")
