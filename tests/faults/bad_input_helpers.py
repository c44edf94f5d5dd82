"""Strategies for the bad-input scenarios (group 5): feed lines that are certainly good, certainly
bad, or anything at all, each with what a reader must make of it.

A *good* line must come out of the reader exactly as it went in (same line, rider, instant,
position); a *bad* line must be reported with its line number and a message naming what was wrong
(and must not come out); for *any* line (arbitrary bytes or JSON) the reader may decide either
way, but must decide exactly once: kept or reported, never both, never neither (unless blank).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import strategies as st

TZ = "Asia/Shanghai"  # UTC+8 all year since 1992: a naive local time has one reading
TZ_OFFSET_S = 8 * 3600

GOOD, BAD, ANY = "good", "bad", "any"


@dataclass(frozen=True)
class Raw:
    """A JSON token written as is (numbers orjson would not write: 1e400, -0.0, 2**70)."""

    text: bytes


def dumps(obj: dict[str, Any], spaced: bool = False) -> bytes:
    """A JSON object whose values (and values of nested objects) may be Raw tokens."""
    def enc(v: Any) -> bytes:
        return v.text if isinstance(v, Raw) else dumps(v, spaced) if isinstance(v, dict) else orjson.dumps(v)

    colon, comma = (b": ", b", ") if spaced else (b":", b",")
    return b"{" + comma.join(orjson.dumps(k) + colon + enc(v) for k, v in obj.items()) + b"}"


def unparseable(v: Any) -> bool:
    """A number JSON allows but orjson refuses (beyond float range): the whole line is 'not JSON'."""
    return isinstance(v, Raw) and b"e400" in v.text or isinstance(v, dict) and any(map(unparseable, v.values()))


@dataclass
class Line:
    kind: str  # GOOD, BAD or ANY
    raw: bytes
    expect: dict[str, Any] = field(default_factory=dict)  # for GOOD: what must come out
    fragment: str = ""  # for BAD: a word the problem's message must contain
    what: str = ""  # what was done to it, for failure messages


# ---------------------------------------------------------------- values

_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2100, 1, 1, tzinfo=UTC)

# characters for identifiers: anything JSON can carry, controls included (NUL apart: see below)
_ID_CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
_ALNUM = st.sampled_from("R0123456789abcXYZ骑手李明ÅßЖ")


@st.composite
def good_id(draw: st.DrawFn) -> str:
    """A non-blank identifier: short or 10,000 characters, any script, control characters."""
    core = draw(st.text(_ID_CHARS, max_size=12)) + draw(_ALNUM) + draw(st.text(_ID_CHARS, max_size=12))
    return draw(st.sampled_from([core, core, core, (core * (10_000 // len(core) + 1))[:10_000]]))


@st.composite
def with_nul(draw: st.DrawFn, text: str) -> str:
    """``text`` with a NUL character in it (which PostgreSQL text cannot hold)."""
    at = draw(st.integers(0, min(len(text), 50)))
    return text[:at] + "\x00" + text[at:]


@st.composite
def good_ts(draw: st.DrawFn) -> tuple[Any, float]:
    """(a timestamp in one of the contract's styles, its epoch seconds), between 2000 and 2100."""
    edge = draw(st.sampled_from(["none"] * 6 + ["first", "last"]))
    if edge == "first":  # the first instant the readers accept, in each style
        return draw(st.sampled_from(["2000-01-01T00:00:00Z", "2000-01-01T08:00:00+08:00", "2000-01-01 08:00:00",
                                     "2000-01-01T00:00:00.000Z", 946_684_800_000])), _EARLIEST.timestamp()
    if edge == "last":
        return draw(st.sampled_from(["2099-12-31T23:59:59Z", "2100-01-01T07:59:59+08:00"])), _LATEST.timestamp() - 1
    ms = draw(st.integers(int(_EARLIEST.timestamp() * 1000) + 86_400_000, int(_LATEST.timestamp() * 1000) - 86_400_000))
    style = draw(st.sampled_from(["ms", "offset", "utc", "naive", "naive_t"]))
    if style == "ms":
        return ms, ms / 1000.0
    whole, part = divmod(ms, 1000)
    digits = draw(st.integers(0, 9))
    frac_text = f"{part:03d}{draw(st.integers(0, 10**6 - 1)):06d}"[:digits] if digits else ""
    t = whole + (float("0." + frac_text) if frac_text else 0.0)
    frac = "." + frac_text if frac_text else ""
    if style == "offset":
        minutes = draw(st.one_of(st.integers(-14 * 60, 14 * 60), st.sampled_from([345, 525, 765, -570, -210, 0])))
        local = datetime.fromtimestamp(whole, UTC) + timedelta(minutes=minutes)
        sign = "-" if minutes < 0 else "+"
        hh, mm = divmod(abs(minutes), 60)
        colon = draw(st.sampled_from([":", ":", ""]))
        return f"{local:%Y-%m-%dT%H:%M:%S}{frac}{sign}{hh:02d}{colon}{mm:02d}", t
    if style == "utc":
        return f"{datetime.fromtimestamp(whole, UTC):%Y-%m-%dT%H:%M:%S}{frac}{draw(st.sampled_from('Zz'))}", t
    local = datetime.fromtimestamp(whole + TZ_OFFSET_S, UTC)
    sep = " " if style == "naive" else "T"
    return f"{local:%Y-%m-%d}{sep}{local:%H:%M:%S}{frac}", t


BAD_TIMESTAMPS: list[Any] = [
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+08:00", "1999-12-31T23:59:59.999Z", "2100-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z", -1, -1778722521218, 0, "", " ", "yesterday", "14:02:11", "2026-05-14",
    "2026-13-01T00:00:00Z", "2026-02-30T12:00:00Z", "2026-05-14T25:00:00Z", "2026-05-14T14:60:00Z",
    "2026-05-14T14:02:11+24:00", "2026-05-14T14:02:11+08:60", "2026-05-14T14:02:11+8:00",
    "2026-05-14T14:02:11 +08:00 junk", "2026-05-14T14:02:11.1234567890Z", "NaN", "Infinity", "-Infinity",
    Raw(b"1e300"), Raw(b"-1e300"), Raw(b"1e400"), Raw(b"123456789012345678901234567890"), True, False,
    [2026, 5, 14], {"t": 1778722521218},
]


@st.composite
def bad_ts(draw: st.DrawFn) -> Any:
    """A timestamp that names no instant of 2000-2100: odd text, the wrong epoch unit, the far past."""
    kind = draw(st.sampled_from(["list", "seconds", "micros", "negative", "far"]))
    if kind == "list":
        return draw(st.sampled_from(BAD_TIMESTAMPS))
    if kind == "seconds":  # epoch seconds read as the contract's milliseconds: January 1970
        return draw(st.integers(946_684_800, 4_102_444_799))
    if kind == "micros":  # microseconds read as milliseconds: tens of thousands of years ahead
        return draw(st.integers(946_684_800_000_000, 4_102_444_799_999_999))
    if kind == "negative":
        return draw(st.integers(-(2**63), -1))
    year = draw(st.one_of(st.integers(1, 1999), st.integers(2100, 9999)))
    return f"{year:04d}-06-15T12:00:00{draw(st.sampled_from(['Z', '+08:00', '', '-11:30']))}"


@st.composite
def good_latlon(draw: st.DrawFn) -> tuple[float, float]:
    edge_lat = st.sampled_from([90.0, -90.0, 89.999999999, -89.999999999, 0.0, 1e-300, -0.0])
    edge_lon = st.sampled_from([180.0, -180.0, 179.999999999, -180.0, 0.0, 5e-324])
    lat = draw(st.one_of(st.floats(-90, 90), edge_lat))
    lon = draw(st.one_of(st.floats(-180, 180), edge_lon))
    if lat == 0 and lon == 0:  # (0, 0): a phone without a fix, refused on purpose
        lon = 114.6
    return lat, lon


BAD_LAT: list[Any] = [90.0000001, -90.0000001, 91, 180, -1e308, 1e308, "NaN", "Infinity", "-Infinity", "north",
                      Raw(b"1e400"), Raw(b"-1e400"), [23.7], {"deg": 23.7}, True]
BAD_LON: list[Any] = [180.0000001, -180.0000001, 360, 1e308, -1e308, "NaN", "Infinity", "east", Raw(b"1e400"),
                      [114.6], {"deg": 114.6}, False]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)

# extra fields a producer may add: a reader ignores them
_EXTRA_KEYS = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)


_EXTRAS: dict[tuple[str, ...], st.SearchStrategy[dict[str, Any]]] = {}


def extras(reserved: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    if reserved not in _EXTRAS:  # built once: building a strategy costs more than drawing from it
        _EXTRAS[reserved] = st.dictionaries(_EXTRA_KEYS.filter(lambda k: k not in reserved), json_values,
                                            max_size=3)
    return _EXTRAS[reserved]


def _shuffled(draw: st.DrawFn, obj: dict[str, Any]) -> dict[str, Any]:
    keys = draw(st.permutations(list(obj)))
    return {k: obj[k] for k in keys}


@st.composite
def layout(draw: st.DrawFn, obj: dict[str, Any]) -> bytes:
    """How a producer writes the object on its line: compact, spaced, padded."""
    style = draw(st.sampled_from(["compact", "compact", "spaced", "padded"]))
    raw = dumps(obj, spaced=style == "spaced")
    if style == "padded":
        return draw(st.sampled_from([b" ", b"\t", b""])) + raw + draw(st.sampled_from([b" ", b"\t", b"\r", b""]))
    return raw


def _garbage_bytes() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
        st.sampled_from([b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"{", b"}", b"[", b"null", b"{}", b"[]", b'""',
                         b"NaN", b'{"rider_id":', b"\x1b[31m", b"\r", b"\x0b", b"<html>", "骑手".encode("gbk")]),
    )


@st.composite
def any_line(draw: st.DrawFn, required: tuple[str, ...]) -> Line:
    """Anything: bytes, a JSON value, an object with the right keys and any values."""
    kind = draw(st.sampled_from(["bytes", "json", "object"]))
    if kind == "bytes":
        return Line(ANY, draw(_garbage_bytes()), what="bytes")
    if kind == "json":
        return Line(ANY, orjson.dumps(draw(json_values)), what="json value")
    obj = {k: draw(json_values) for k in required if draw(st.booleans())}
    return Line(ANY, dumps({**obj, **draw(extras(required))}), what="object of any values")


# ---------------------------------------------------------------- GPS

GPS_FIELDS = ("rider_id", "ts", "lat", "lon", "accuracy_m", "speed_mps", "heading_deg", "crs")


@st.composite
def good_gps(draw: st.DrawFn) -> Line:
    rider, (ts, t), (lat, lon) = draw(good_id()), draw(good_ts()), draw(good_latlon())
    obj: dict[str, Any] = {"rider_id": rider, "ts": ts, "lat": lat, "lon": lon}
    if draw(st.booleans()):
        obj["accuracy_m"] = draw(st.one_of(st.floats(0, 1e6), st.sampled_from([0, 0.0, 5000])))
    if draw(st.booleans()):
        obj["speed_mps"] = draw(st.floats(-1e6, 1e6))
    if draw(st.booleans()):
        obj["heading_deg"] = draw(st.floats(0, 360))
    crs = draw(st.sampled_from([None, "absent", "wgs84", "WGS84", " wgs84 "]))
    if crs != "absent":
        obj["crs"] = crs
    obj.update(draw(extras(GPS_FIELDS)))
    obj = _shuffled(draw, obj)
    return Line(GOOD, draw(layout(obj)), {"rider": rider, "t": t, "lat": lat, "lon": lon}, what="good ping")


@st.composite
def bad_gps(draw: st.DrawFn) -> Line:
    """A good ping with one thing made certainly wrong."""
    base = draw(good_gps())
    obj = orjson.loads(base.raw)
    how = draw(st.sampled_from(["drop", "null", "blank_id", "nul_id", "ts", "lat", "lon", "zero", "accuracy", "crs",
                                "truncate", "array"]))
    fragment = ""
    if how == "nul_id":
        obj["rider_id"] = draw(with_nul(obj["rider_id"]))
        fragment = "rider_id"
    elif how in ("drop", "null"):
        key = draw(st.sampled_from(["rider_id", "ts", "lat", "lon"]))
        if how == "drop":
            del obj[key]
        else:
            obj[key] = None
        fragment = key
    elif how == "blank_id":
        obj["rider_id"] = draw(st.sampled_from(["", " ", "\t", "  \u3000 ", "\u00a0"]))
        fragment = "rider_id"
    elif how == "ts":
        obj["ts"] = draw(bad_ts())
        fragment = "JSON" if unparseable(obj["ts"]) else "timestamp"
    elif how == "lat":
        obj["lat"] = draw(st.one_of(st.sampled_from(BAD_LAT), st.floats(90, 1e308, exclude_min=True)))
        fragment = "JSON" if unparseable(obj["lat"]) else "lat"
    elif how == "lon":
        obj["lon"] = draw(st.one_of(st.sampled_from(BAD_LON), st.floats(-1e308, -180, exclude_max=True)))
        fragment = "JSON" if unparseable(obj["lon"]) else "lon"
    elif how == "zero":
        obj["lat"], obj["lon"] = draw(st.sampled_from([(0, 0), (0.0, 0.0), (-0.0, 0), (0, -0.0)]))
        fragment = "coordinate"
    elif how == "accuracy":
        obj["accuracy_m"] = draw(st.sampled_from([-1, -0.001, -1e308, "NaN", "Infinity", "far", [1]]))
        fragment = "accuracy_m"
    elif how == "crs":
        obj["crs"] = draw(st.sampled_from(["utm", "wgs 84", "", "epsg:4326", 4326, ["wgs84"], {"name": "wgs84"}]))
        fragment = "crs"
    elif how == "array":
        return Line(BAD, orjson.dumps([obj]), fragment="JSON object", what="ping inside an array")
    else:
        raw = dumps(obj)
        cut = draw(st.integers(1, len(raw) - 1))
        return Line(BAD, raw[:cut], fragment="JSON", what=f"truncated at {cut}")
    return Line(BAD, dumps(_shuffled(draw, obj)), fragment=fragment, what=how)


# ---------------------------------------------------------------- platform events

PLATFORM_FIELDS = ("event_id", "kind", "type", "rider_id", "platform", "ts", "order_id", "merchant", "customer", "crs")
ORDER_TYPES = ("accepted", "arrived_merchant", "picked_up", "delivered", "cancelled")


@st.composite
def good_platform(draw: st.DrawFn) -> Line:
    rider, (ts, t) = draw(good_id()), draw(good_ts())
    kind = draw(st.sampled_from(["order", "presence"]))
    obj: dict[str, Any] = {"kind": kind, "rider_id": rider, "ts": ts}
    if draw(st.booleans()):
        obj["event_id"] = draw(st.one_of(good_id(), st.integers(0, 2**63 - 1)))
    if draw(st.booleans()):
        obj["platform"] = draw(st.sampled_from(["meituan", "eleme", "", "美团", "x" * 1000]))
    if kind == "order":
        obj["type"] = draw(st.sampled_from(ORDER_TYPES))
        obj["order_id"] = draw(st.one_of(good_id(), st.integers(0, 2**63 - 1)))
        for place in ("merchant", "customer"):
            if draw(st.booleans()):
                la, lo = draw(good_latlon())
                obj[place] = {"lat": la, "lon": lo}
        if draw(st.booleans()):
            obj["crs"] = "wgs84"
    else:
        obj["type"] = draw(st.sampled_from(["online", "offline"]))
    obj.update(draw(extras(PLATFORM_FIELDS)))
    obj = _shuffled(draw, obj)
    expect = {"rider": rider, "t": t, "kind": kind, "type": obj["type"],
              "merchant": _place(obj.get("merchant")), "customer": _place(obj.get("customer"))}
    return Line(GOOD, draw(layout(obj)), expect, what=f"good {kind} event")


def _place(v: Any) -> tuple[float, float] | None:
    return None if v is None else (v["lat"], v["lon"])


@st.composite
def bad_platform(draw: st.DrawFn) -> Line:
    base = draw(good_platform())
    obj = orjson.loads(base.raw)
    how = draw(st.sampled_from(["drop", "blank", "nul", "kind", "type", "ts", "place", "crs", "array", "truncate"]))
    if how == "nul":
        key = draw(st.sampled_from(["rider_id", "event_id", "platform"] + (["order_id"] if obj["kind"] == "order" else [])))
        obj[key] = draw(with_nul(str(obj.get(key, "x"))))
        fragment = key
    elif how == "drop":
        key = draw(st.sampled_from(["kind", "type", "rider_id", "ts"] + (["order_id"] if obj["kind"] == "order" else [])))
        del obj[key]
        fragment = key
    elif how == "blank":
        key = draw(st.sampled_from(["kind", "type", "rider_id"] + (["order_id"] if obj["kind"] == "order" else [])))
        obj[key] = draw(st.sampled_from(["", "  ", None, [], {}, True, 1.5]))
        fragment = key
    elif how == "kind":
        obj["kind"] = draw(st.sampled_from(["Order", "refund", "ORDER ", "0"]))
        fragment = "kind"
    elif how == "type":
        obj["type"] = draw(st.sampled_from(["Accepted", "delivered ", "teleported", "on line", "0"]))
        fragment = "type"
    elif how == "ts":
        obj["ts"] = draw(bad_ts())
        fragment = "JSON" if unparseable(obj["ts"]) else "timestamp"
    elif how == "place":
        if obj["kind"] != "order":
            obj["kind"], obj["type"], obj["order_id"] = "order", "accepted", "O-1"
        key = draw(st.sampled_from(["merchant", "customer"]))
        obj[key] = draw(st.sampled_from([{"lat": 91, "lon": 1}, {"lat": 1, "lon": 181}, {"lat": 0, "lon": 0},
                                         {"lat": "NaN", "lon": 1}, {"lat": 1}, {"lon": 1}, [1, 2], "here", 5,
                                         {"lat": Raw(b"1e400"), "lon": 1}]))
        fragment = "JSON" if unparseable(obj[key]) else key
    elif how == "crs":
        if obj["kind"] != "order":
            obj["kind"], obj["type"], obj["order_id"] = "order", "accepted", "O-1"
        obj["crs"] = draw(st.sampled_from(["utm", "", 4326, ["gcj02"]]))
        fragment = "crs"
    elif how == "array":
        return Line(BAD, orjson.dumps([obj]), fragment="JSON object", what="event inside an array")
    else:
        raw = dumps(obj)
        cut = draw(st.integers(1, len(raw) - 1))
        return Line(BAD, raw[:cut], fragment="JSON", what=f"truncated at {cut}")
    return Line(BAD, dumps(_shuffled(draw, obj)), fragment=fragment, what=how)


# ---------------------------------------------------------------- incidents

INCIDENT_FIELDS = ("incident_id", "rider_id", "at", "location", "crs")


@st.composite
def good_incident(draw: st.DrawFn) -> Line:
    iid, rider, (at, t) = draw(good_id()), draw(good_id()), draw(good_ts())
    obj: dict[str, Any] = {"incident_id": iid, "rider_id": rider, "at": at}
    loc = None
    if draw(st.booleans()):
        loc = draw(good_latlon())
        obj["location"] = {"lat": loc[0], "lon": loc[1]}
    obj.update(draw(extras(INCIDENT_FIELDS)))
    obj = _shuffled(draw, obj)
    return Line(GOOD, draw(layout(obj)), {"id": iid, "rider": rider, "t": t, "location": loc}, what="good incident")


@st.composite
def bad_incident(draw: st.DrawFn) -> Line:
    obj = orjson.loads(draw(good_incident()).raw)
    how = draw(st.sampled_from(["drop", "blank", "nul", "at", "location", "truncate"]))
    if how == "nul":
        key = draw(st.sampled_from(["incident_id", "rider_id"]))
        obj[key] = draw(with_nul(obj[key]))
        fragment = key
    elif how == "drop":
        key = draw(st.sampled_from(["incident_id", "rider_id", "at"]))
        del obj[key]
        fragment = key
    elif how == "blank":
        key = draw(st.sampled_from(["incident_id", "rider_id"]))
        obj[key] = draw(st.sampled_from(["", " ", None, [], {}, False]))
        fragment = key
    elif how == "at":
        obj["at"] = draw(bad_ts())
        fragment = "JSON" if unparseable(obj["at"]) else "timestamp"
    elif how == "location":
        obj["location"] = draw(st.sampled_from([{"lat": 91, "lon": 1}, {"lat": 0, "lon": 0}, [23.7, 114.6], "here",
                                                {"lat": 23.7}, {"lat": 23.7, "lon": 114.6, "crs": "utm"}]))
        fragment = "crs" if isinstance(obj["location"], dict) and "crs" in obj["location"] else "location"
    else:
        raw = dumps(obj)
        cut = draw(st.integers(1, len(raw) - 1))
        return Line(BAD, raw[:cut], fragment="JSON", what=f"truncated at {cut}")
    return Line(BAD, dumps(obj), fragment=fragment, what=how)


# ---------------------------------------------------------------- whole feeds


def feed(good: st.SearchStrategy[Line], bad: st.SearchStrategy[Line], required: tuple[str, ...],
         max_lines: int = 50) -> st.SearchStrategy[list[Line]]:
    """Lines of one feed: good ones mixed with bad ones, garbage and blank lines."""
    blank = st.sampled_from([b"", b"  ", b"\t", b"\r"]).map(lambda b: Line(ANY, b, what="blank"))
    return st.lists(st.one_of(good, good, bad, bad, any_line(required), blank), min_size=5, max_size=max_lines)


def join(lines: list[Line], ending: bytes, final: bytes) -> bytes:
    return ending.join(x.raw for x in lines) + final


@dataclass
class Tally:
    """What a run of the readers did with the lines it was given, summed over examples."""

    examples: int = 0
    lines: int = 0
    good: int = 0
    bad: int = 0
    lost: int = 0  # good lines that did not come out (or came out changed)
    duplicated: int = 0  # lines that came out, or were reported, more than once
    leaked: int = 0  # bad lines that came out as if good
    failures: list[str] = field(default_factory=list)

    def fail(self, msg: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(msg)
