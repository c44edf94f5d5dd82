"""Time at the edges: parse every timestamp style of the data contract, render in the local zone.

Inside the system, an instant is a float of UTC epoch seconds (numpy float64 arrays for
tracks). Styles accepted (DATA_CONTRACT §3): ISO 8601 with an offset, ISO 8601 UTC (``Z``),
naive local ``YYYY-MM-DD HH:MM:SS`` (or with ``T``), read in the deployment's zone, and integer
epoch milliseconds. Whole columns are parsed at once with polars (chrono-tz underneath); single
values with pendulum. A property test keeps the two parsers in agreement.
"""

from __future__ import annotations

import re
import functools
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
_OFFSET = r"[+-]\d\d:?\d\d$"
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}")


class TimestampError(ValueError):
    """A timestamp that cannot be read, or that names an absurd instant."""


def parse_many(values: Sequence[object] | pl.Series, tz: str = DEFAULT_TZ) -> npt.NDArray[np.float64]:
    """Epoch seconds for each value; NaN where the value is unreadable or absurd."""
    s = values if isinstance(values, pl.Series) else pl.Series("ts", [_as_text(v) for v in values], dtype=pl.String)
    s = s.cast(pl.String).str.strip_chars()
    numeric = s.str.contains(_NUMERIC).fill_null(False)
    iso = s.str.replace(r"[zZ]$", "+00:00").str.replace(" ", "T", literal=True, n=1)
    has_offset = iso.str.contains(_OFFSET).fill_null(False)
    frame = pl.DataFrame({"s": s, "iso": iso, "numeric": numeric, "has_offset": has_offset})
    out = frame.select(
        pl.when(pl.col("numeric"))
        .then(pl.col("s").cast(pl.Float64, strict=False) / 1000.0)
        .when(pl.col("has_offset"))
        .then(
            pl.col("iso").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_unit="ms").dt.epoch("ms")
            / 1000.0
        )
        .otherwise(
            pl.col("iso")
            .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="ms")
            .dt.replace_time_zone(tz, non_existent="null", ambiguous="earliest")
            .dt.epoch("ms")
            / 1000.0
        )
        .alias("t")
    )["t"]
    t = out.cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64, copy=False)
    t = np.where((t >= EARLIEST) & (t < LATEST), t, np.nan)
    return t


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
    return pendulum.timezone(tz)  # type: ignore[return-value]


def iso_local(t: float, tz: str = DEFAULT_TZ) -> str:
    """ISO 8601 with the zone's offset, to the second: what users read and what we print."""
    return str(pendulum.from_timestamp(round(t), tz=_zone(tz)).isoformat())


def hm_local(t: float, tz: str = DEFAULT_TZ) -> str:
    """Wall-clock ``HH:MM:SS`` in the zone, for sentences."""
    return str(pendulum.from_timestamp(round(t), tz=_zone(tz)).format("HH:mm:ss"))
