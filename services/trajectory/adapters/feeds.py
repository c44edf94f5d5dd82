"""Reading the data contract's feeds (NDJSON) into domain values. A bad line is reported with its
file and line number and skipped; nothing else is lost.

GPS files can hold millions of lines, so they are read column-wise: polars parses a clean file in
one go; a file with anything polars refuses (a line that is not a JSON object, a blank line) is read
line by line with orjson instead. Both paths feed the same vectorised validation.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

from services.trajectory.domain.model import Incident, Order, PresenceEvent, RiderDay, Track
from shared.geo import CRS_NAMES, to_wgs84, valid_latlon
from shared.timeutil import iso_local, parse_many


@dataclass(frozen=True)
class Problem:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


_GPS_SCHEMA = {
    "rider_id": pl.String, "ts": pl.String, "lat": pl.Float64, "lon": pl.Float64,
    "accuracy_m": pl.Float64, "speed_mps": pl.Float64, "heading_deg": pl.Float64, "crs": pl.String,
}
ORDER_TYPES = ("accepted", "arrived_merchant", "picked_up", "delivered", "cancelled")
PRESENCE_TYPES = ("online", "offline")


@dataclass(frozen=True)
class GpsColumns:
    rider: pl.Series  # String
    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    accuracy: np.ndarray
    line: np.ndarray

    def by_rider(self) -> dict[str, Track]:
        if self.t.size == 0:
            return {}
        # group by integer codes: sorting a million Python strings would cost more than the rest
        codes = self.rider.cast(pl.Categorical).to_physical().to_numpy()
        order = np.argsort(codes, kind="stable")
        cuts = np.flatnonzero(np.diff(codes[order])) + 1
        starts, ends = np.r_[0, cuts], np.r_[cuts, order.size]
        names = self.rider.gather(order[starts]).to_list()
        out: dict[str, Track] = {}
        for rid, a, b in zip(names, starts, ends, strict=True):
            sel = order[a:b]
            out[str(rid)] = Track(self.t[sel], self.lat[sel], self.lon[sel], self.accuracy[sel])
        return out


def read_gps(data: bytes, source: str, tz: str, first_line: int = 1,
             frame: pl.DataFrame | None = None) -> tuple[GpsColumns, list[Problem]]:
    """``frame``: what :func:`prefetch_gps` already parsed of ``data``, if anything."""
    problems: list[Problem] = []
    frame = frame if frame is not None else _fast_frame(data)
    if frame is None:
        frame, problems = _slow_frame(data, source)
    if first_line != 1:
        frame = frame.with_columns(pl.col("line") + (first_line - 1))
        problems = [Problem(p.source, p.line + first_line - 1, p.message) for p in problems]
    if frame.height < _SPLIT_ROWS:
        return _validate_gps(frame, source, tz, problems)
    # validation is row by row and mostly numpy and polars, which let go of the GIL: halves in two threads
    half = frame.height // 2
    with ThreadPoolExecutor(1) as pool:
        later = pool.submit(_validate_gps, frame.slice(half), source, tz, [])
        a, early = _validate_gps(frame.slice(0, half), source, tz, problems)
        b, more = later.result()
    cols = GpsColumns(pl.concat([a.rider, b.rider]), *(np.concatenate([getattr(a, k), getattr(b, k)])
                                                        for k in ("t", "lat", "lon", "accuracy", "line")))
    return cols, sorted(early + more, key=lambda p: p.line)


_SPLIT_ROWS = 200_000


def _fast_frame(data: bytes) -> pl.DataFrame | None:
    end = len(data)  # ignore trailing line ends (without copying a big buffer)
    while end and data[end - 1] == 0x0A:
        end -= 1
    if not end or data.find(b"\r") >= 0:
        return None
    try:
        df = pl.read_ndjson(data, schema=_GPS_SCHEMA)
    except Exception:  # polars refuses the file: read it line by line instead
        return None
    if df.height != data.count(b"\n", 0, end) + 1:  # polars skipped a blank or whitespace-only line
        return None
    return df.with_columns(pl.int_range(1, df.height + 1, dtype=pl.Int64).alias("line"))


def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return float("nan")
    return float("nan")


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):  # as polars renders it on the fast path, so that both paths agree
        return "true" if v else "false"
    if isinstance(v, str | int | float):
        return str(v)
    return orjson.dumps(v).decode()


def _slow_frame(data: bytes, source: str) -> tuple[pl.DataFrame, list[Problem]]:
    cols: dict[str, list[Any]] = {k: [] for k in (*_GPS_SCHEMA, "line")}
    problems: list[Problem] = []
    for no, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            problems.append(Problem(source, no, f"not JSON: {_snippet(raw)}"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(source, no, "not a JSON object"))
            continue
        cols["rider_id"].append(_text(obj.get("rider_id")))
        cols["ts"].append(_text(obj.get("ts")))
        for k in ("lat", "lon", "accuracy_m", "speed_mps", "heading_deg"):
            cols[k].append(_num(obj.get(k)))
        cols["crs"].append(_text(obj.get("crs")))
        cols["line"].append(no)
    schema = dict(_GPS_SCHEMA, line=pl.Int64)
    return pl.DataFrame(cols, schema=schema), problems


def _snippet(raw: bytes) -> str:
    text = raw[:60].decode("utf-8", "replace")
    return repr(text + ("…" if len(raw) > 60 else ""))


def _validate_gps(df: pl.DataFrame, source: str, tz: str, problems: list[Problem]) -> tuple[GpsColumns, list[Problem]]:
    t = parse_many(df["ts"], tz)
    crs_seen = [c for c in df["crs"].unique().to_list() if c is not None]
    crs_codes = {c: CRS_NAMES.index(c.strip().lower()) if c.strip().lower() in CRS_NAMES else -1 for c in crs_seen}
    flags = df.select(
        rider_ok=pl.col("rider_id").str.contains(r"\S").fill_null(False),
        rider_nul=pl.col("rider_id").str.contains("\x00", literal=True).fill_null(False),
        ts_given=pl.col("ts").is_not_null(),
        lat_given=pl.col("lat").is_not_null(),
        lon_given=pl.col("lon").is_not_null(),
        acc_given=pl.col("accuracy_m").is_not_null(),
        crs_code=pl.when(pl.col("crs").is_null()).then(pl.lit(0, dtype=pl.Int8))
        .otherwise(pl.col("crs").replace_strict(crs_codes, default=-1, return_dtype=pl.Int8)),
    )
    rider_ok, ts_given, lat_given, lon_given, acc_given = (
        flags[c].to_numpy() for c in ("rider_ok", "ts_given", "lat_given", "lon_given", "acc_given"))
    crs_code = flags["crs_code"].to_numpy()
    rider_nul = flags["rider_nul"].to_numpy()
    lat = df["lat"].fill_null(np.nan).to_numpy().astype(np.float64)
    lon = df["lon"].fill_null(np.nan).to_numpy().astype(np.float64)
    acc = df["accuracy_m"].fill_null(np.nan).to_numpy().astype(np.float64)
    crs_ok = crs_code >= 0
    coord_ok = valid_latlon(lat, lon) & ~((lat == 0) & (lon == 0))
    acc_ok = ~acc_given | (np.isfinite(acc) & (acc >= 0))
    ok = rider_ok & ~rider_nul & ts_given & lat_given & lon_given & np.isfinite(t) & coord_ok & crs_ok & acc_ok
    lines = df["line"].to_numpy()
    if not ok.all():
        ts_text, crs_raw = df["ts"].to_list(), df["crs"].to_list()
        for i in np.flatnonzero(~ok):
            if rider_nul[i] and rider_ok[i]:  # PostgreSQL text cannot hold it: refused at the door
                problems.append(Problem(source, int(lines[i]), "field 'rider_id' contains a NUL character"))
                continue
            problems.append(Problem(source, int(lines[i]), _gps_reason(
                rider_ok[i], ts_given[i], lat_given[i], lon_given[i], np.isfinite(t[i]), coord_ok[i],
                crs_ok[i], acc_ok[i], ts_text[i], lat[i], lon[i], crs_raw[i])))
    lat, lon, code = lat[ok], lon[ok], crs_code[ok]
    for k, name in enumerate(CRS_NAMES):
        m = code == k
        if k and m.any():
            lat[m], lon[m] = to_wgs84(lat[m], lon[m], name)
    problems.sort(key=lambda p: p.line)
    rider = df["rider_id"] if ok.all() else df["rider_id"].filter(pl.Series(ok))
    return GpsColumns(rider, t[ok], lat, lon, acc[ok], lines[ok]), problems


def _gps_reason(rider_ok: bool, ts_given: bool, lat_given: bool, lon_given: bool, t_ok: bool, coord_ok: bool,
                crs_ok: bool, acc_ok: bool, ts: Any, lat: float, lon: float, crs: Any) -> str:
    missing = [k for k, given in (("rider_id", rider_ok), ("ts", ts_given), ("lat", lat_given), ("lon", lon_given)) if not given]
    if missing:
        return "missing or empty field " + ", ".join(repr(m) for m in missing)
    if not t_ok:
        return f"unreadable or absurd timestamp {ts!r}"
    if not coord_ok:
        return f"impossible coordinate lat={lat}, lon={lon}"
    if not crs_ok:
        return f"unknown crs {crs!r} (expected one of {', '.join(CRS_NAMES)})"
    if not acc_ok:
        return "accuracy_m must be a non-negative number"
    return "invalid line"


# ---------------------------------------------------------------- platform events, incidents

@dataclass(frozen=True)
class RawEvent:
    line: int
    event_id: str | None
    kind: str
    type: str
    rider_id: str
    platform: str
    ts: Any
    order_id: str | None
    merchant: tuple[float, float] | None
    customer: tuple[float, float] | None
    crs: str = "wgs84"  # of merchant and customer; WGS-84 once read_platform returns


def _lines(data: bytes, source: str, problems: list[Problem]) -> Iterable[tuple[int, dict[str, Any]]]:
    for no, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            problems.append(Problem(source, no, f"not JSON: {_snippet(raw)}"))
            continue
        if not isinstance(obj, dict):
            problems.append(Problem(source, no, "not a JSON object"))
            continue
        yield no, obj


class _Bad(ValueError):
    pass


def _req_str(obj: dict[str, Any], key: str) -> str:
    v = obj.get(key)
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str) or not v.strip():
        raise _Bad(f"missing or empty field {key!r}")
    if "\x00" in v:  # PostgreSQL text cannot hold it: refused here rather than dead-lettered later
        raise _Bad(f"field {key!r} contains a NUL character")
    return v


def _place(obj: dict[str, Any], key: str) -> tuple[float, float] | None:
    """A validated place, still in its record's coordinate system."""
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise _Bad(f"{key!r} must be an object with lat and lon")
    la, lo = _num(v.get("lat")), _num(v.get("lon"))
    if la is None or lo is None or not bool(valid_latlon(la, lo)) or (la == 0 and lo == 0):
        raise _Bad(f"impossible coordinate in {key!r}: {v!r}")
    return la, lo


def _crs(obj: dict[str, Any]) -> str:
    c = obj.get("crs")
    if c is None:
        return "wgs84"
    if not isinstance(c, str) or c.strip().lower() not in CRS_NAMES:
        raise _Bad(f"unknown crs {c!r} (expected one of {', '.join(CRS_NAMES)})")
    return c.strip().lower()


def read_platform(data: bytes, source: str, tz: str) -> tuple[list[tuple[RawEvent, float]], list[Problem]]:
    problems: list[Problem] = []
    events: list[RawEvent] = []
    for no, obj in _lines(data, source, problems):
        try:
            kind = _req_str(obj, "kind")
            typ = _req_str(obj, "type")
            rider = _req_str(obj, "rider_id")
            if "ts" not in obj or obj["ts"] is None:
                raise _Bad("missing field 'ts'")
            if kind == "order":
                if typ not in ORDER_TYPES:
                    raise _Bad(f"unknown order event type {typ!r} (expected one of {', '.join(ORDER_TYPES)})")
                crs = _crs(obj)
                ev = RawEvent(no, _opt_str(obj.get("event_id"), "event_id"), kind, typ, rider,
                              _opt_str(obj.get("platform"), "platform") or "",
                              obj["ts"], _req_str(obj, "order_id"), _place(obj, "merchant"), _place(obj, "customer"), crs)
            elif kind == "presence":
                if typ not in PRESENCE_TYPES:
                    raise _Bad(f"unknown presence event type {typ!r} (expected online or offline)")
                ev = RawEvent(no, _opt_str(obj.get("event_id"), "event_id"), kind, typ, rider,
                              _opt_str(obj.get("platform"), "platform") or "",
                              obj["ts"], None, None, None)
            else:
                raise _Bad(f"unknown kind {kind!r} (expected order or presence)")
        except _Bad as e:
            problems.append(Problem(source, no, str(e)))
            continue
        events.append(ev)
    events = _to_wgs84(events)
    t = parse_many([e.ts for e in events], tz) if events else np.zeros(0)
    out: list[tuple[RawEvent, float]] = []
    for ev, ti in zip(events, t, strict=True):
        if not np.isfinite(ti):
            problems.append(Problem(source, ev.line, f"unreadable or absurd timestamp {ev.ts!r}"))
        else:
            out.append((ev, float(ti)))
    problems.sort(key=lambda p: p.line)
    return out, problems


def _to_wgs84(events: list[RawEvent]) -> list[RawEvent]:
    """Convert every place to WGS-84, one vectorised call per coordinate system."""
    places = [(i, k, ev.crs, p) for i, ev in enumerate(events) for k, p in (("merchant", ev.merchant), ("customer", ev.customer))
              if p is not None and ev.crs != "wgs84"]
    if not places:
        return events
    new: dict[tuple[int, str], tuple[float, float]] = {}
    for crs in {c for _, _, c, _ in places}:
        group = [x for x in places if x[2] == crs]
        lat, lon = to_wgs84(np.array([g[3][0] for g in group]), np.array([g[3][1] for g in group]), crs)  # type: ignore[arg-type]
        for (i, k, _, _), la, lo in zip(group, lat.tolist(), lon.tolist(), strict=True):
            new[(i, k)] = (la, lo)
    return [replace(ev, merchant=new.get((i, "merchant"), ev.merchant), customer=new.get((i, "customer"), ev.customer),
                    crs="wgs84") for i, ev in enumerate(events)]


def _opt_str(v: Any, key: str = "") -> str | None:
    if isinstance(v, str):
        if "\x00" in v:
            raise _Bad(f"field {key!r} contains a NUL character")
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return None


def assemble(events: list[tuple[RawEvent, float]]) -> dict[str, tuple[tuple[Order, ...], tuple[PresenceEvent, ...]]]:
    """Orders and presence per rider. An event is its (platform, rider, event id): every platform
    numbers its events in its own space (DATA_CONTRACT §1), so the same id from another platform or
    rider is another event, and only the same triple repeated counts once. An order is its
    (rider, platform, order id). For each order and event type the earliest instant counts."""
    seen: set[tuple[str, str, str]] = set()
    orders: dict[tuple[str, str, str], dict[str, Any]] = {}
    presence: dict[str, set[PresenceEvent]] = defaultdict(set)
    riders: set[str] = set()
    for ev, t in sorted(events, key=lambda x: (x[1], x[0].line)):
        if ev.event_id is not None:
            key = (ev.platform, ev.rider_id, ev.event_id)
            if key in seen:
                continue
            seen.add(key)
        riders.add(ev.rider_id)
        if ev.kind == "presence":
            presence[ev.rider_id].add(PresenceEvent(t, ev.platform, ev.type == "online"))
            continue
        assert ev.order_id is not None
        o = orders.setdefault((ev.rider_id, ev.platform, ev.order_id), {"platform": ev.platform})
        o.setdefault(ev.type, t)
        if ev.merchant is not None:
            o.setdefault("merchant", ev.merchant)
        if ev.customer is not None:
            o.setdefault("customer", ev.customer)
    per: dict[str, list[Order]] = defaultdict(list)
    for (rider, _, oid), o in orders.items():
        times = [o[k] for k in ORDER_TYPES if k in o]
        accepted = o.get("accepted", min(times))
        ends = [(o[k], k) for k in ("delivered", "cancelled") if k in o]
        ended, kind = min(ends) if ends else (None, None)
        if ended is not None and ended < accepted:
            ended = accepted
        picked = o.get("picked_up")
        if picked is not None and ended is not None and picked > ended:
            picked = None
        per[rider].append(Order(oid, o["platform"], accepted, o.get("arrived_merchant"), picked, ended, kind,
                                o.get("merchant"), o.get("customer")))
    return {r: (tuple(sorted(per.get(r, []), key=lambda o: (o.accepted, o.order_id))),
                tuple(sorted(presence.get(r, set()), key=lambda e: (e.t, e.platform, e.online))))
            for r in riders}


def read_incidents(data: bytes, source: str, tz: str) -> tuple[list[Incident], list[Problem]]:
    problems: list[Problem] = []
    pending: list[tuple[int, dict[str, Any], str, str, tuple[float, float] | None]] = []
    for no, obj in _lines(data, source, problems):
        try:
            iid = _req_str(obj, "incident_id")
            rider = _req_str(obj, "rider_id")
            if obj.get("at") is None:
                raise _Bad("missing field 'at'")
            loc = None
            if obj.get("location") is not None:
                crs = _crs(obj.get("location") if isinstance(obj.get("location"), dict) and "crs" in obj["location"] else obj)
                raw = _place(obj, "location")
                if raw is not None:
                    wl, wo = to_wgs84(raw[0], raw[1], crs)  # type: ignore[arg-type]
                    loc = (float(wl), float(wo))
        except _Bad as e:
            problems.append(Problem(source, no, str(e)))
            continue
        pending.append((no, obj, iid, rider, loc))
    t = parse_many([p[1]["at"] for p in pending], tz) if pending else np.zeros(0)
    out = []
    for (no, obj, iid, rider, loc), ti in zip(pending, t, strict=True):
        if not np.isfinite(ti):
            problems.append(Problem(source, no, f"unreadable or absurd timestamp {obj['at']!r}"))
            continue
        at = obj["at"] if isinstance(obj["at"], str) else iso_local(float(ti), tz)
        out.append(Incident(iid, rider, float(ti), at, loc))
    problems.sort(key=lambda p: p.line)
    return out, problems


@dataclass(frozen=True)
class Feeds:
    days: dict[str, RiderDay]
    incidents: list[Incident]
    problems: list[Problem]


@dataclass(frozen=True)
class GpsPrefetch:
    """A GPS file read and, if clean, parsed into a frame: the part that needs no time zone."""

    data: bytes
    frame: pl.DataFrame | None


def prefetch_gps(directory: Path) -> GpsPrefetch:
    p = directory / "gps.jsonl"
    data = p.read_bytes() if p.exists() else b""
    return GpsPrefetch(data, _fast_frame(data))


def load_dir(directory: Path, tz: str, gps: Future[GpsPrefetch] | None = None) -> Feeds:
    """The three files of a rider-day folder. A missing feed counts as empty. ``gps``: the GPS
    file being prefetched already (the command starts it before its settings load)."""
    def data(name: str) -> bytes:
        p = directory / name
        return p.read_bytes() if p.exists() else b""

    # polars parses the GPS without the GIL: the small feeds are read beside it
    with ThreadPoolExecutor(1) as pool:
        parsing = gps or pool.submit(prefetch_gps, directory)
        events, problems = read_platform(data("platform.jsonl"), "platform.jsonl", tz)
        incidents, incident_problems = read_incidents(data("incidents.jsonl"), "incidents.jsonl", tz)
        g = parsing.result()
    cols, gps_problems = read_gps(g.data, "gps.jsonl", tz, frame=g.frame)
    return Feeds(build_days(events, cols), incidents, problems + gps_problems + incident_problems)


def build_days(events: list[tuple[RawEvent, float]], gps: GpsColumns) -> dict[str, RiderDay]:
    per = assemble(events)
    tracks = gps.by_rider()
    return {r: RiderDay(r, *per.get(r, ((), ())), tracks.get(r, Track.empty())) for r in set(per) | set(tracks)}


# ---------------------------------------------------------------- bus messages

_BLANK_INSIDE = re.compile(rb"\n[ \t\f\v]*\n")


def message_lines(values: Sequence[bytes], source: str = "message") -> tuple[bytes, list[Problem]]:
    """Message values (one contract line each) as one NDJSON buffer in which line ``i + 1`` is
    message ``i``, for the file readers above. A value spread over several lines (pretty-printed
    JSON) is compacted; an empty value becomes a blank line (which the readers skip) and a Problem."""
    joined = b"\n".join(values)
    if (values and values[0].strip() and values[-1].strip() and joined.count(b"\n") == len(values) - 1
            and b"\r" not in joined and not _BLANK_INSIDE.search(joined)):
        return joined, []  # the usual batch: one non-blank line each, joined without a Python loop
    lines: list[bytes] = []
    problems: list[Problem] = []
    for no, value in enumerate(values, start=1):
        raw = bytes(value).strip()
        if not raw:
            problems.append(Problem(source, no, "empty message"))
            raw = b""
        elif b"\n" in raw or b"\r" in raw:
            try:
                raw = orjson.dumps(orjson.loads(raw))
            except orjson.JSONDecodeError:
                problems.append(Problem(source, no, f"not JSON: {_snippet(raw)}"))
                raw = b""
        lines.append(raw)
    return b"\n".join(lines), problems


def read_gps_messages(values: Sequence[bytes], tz: str, source: str = "message") -> tuple[GpsColumns, list[Problem]]:
    """GPS pings out of bus message values, validated and converted exactly as :func:`read_gps`
    does for a file; ``GpsColumns.line`` and ``Problem.line`` are the message's index + 1."""
    data, problems = message_lines(values, source)
    cols, more = read_gps(data, source, tz)
    return cols, sorted(problems + more, key=lambda p: p.line)


def read_platform_messages(values: Sequence[bytes], tz: str,
                           source: str = "message") -> tuple[list[tuple[RawEvent, float]], list[Problem]]:
    """Platform events out of bus message values, as :func:`read_platform` reads a file;
    ``RawEvent.line`` and ``Problem.line`` are the message's index + 1."""
    data, problems = message_lines(values, source)
    events, more = read_platform(data, source, tz)
    return events, sorted(problems + more, key=lambda p: p.line)
