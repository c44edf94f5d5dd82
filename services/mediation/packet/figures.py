"""The packet's two figures, drawn from its own data with no online tile server.

Each figure is first laid out as a ``Scene`` (a list of rectangles, lines, polylines, circles and
texts in a fixed view box, y pointing down), then written as SVG (``to_svg``) for the packet, or
drawn with reportlab for the PDF (``services.mediation.packet.pdf``): one layout, two renderings,
so the printed map is the signed map. Everything is a pure function of its input, numbers are
written with one decimal, and nothing depends on the clock or on randomness: the same input gives
the same bytes, which the manifest digests.

``map_svg``: the trajectory in the window, projected to metres (equirectangular around the centre,
exact enough within a city), coloured by phase (or by time when no phases are given), dashed where
the GPS was silent, with start and end, the reported incident place (red cross in a circle), the
rider's position at the reported time, the pickup places of the orders in the window, a scale bar
in metres, a north arrow, a light grid, and bilingual labels.

``timeline_svg``: the phases across the window as one coloured band, one row per order with its
events, the incident as a red vertical line, the incident's aftermath (DATA_CONTRACT §5 rule 6)
as its own band after it, the moment the rider passed the reported place when the reported time
may be off (§6) as a dashed blue line, local HH:MM on the time axis, and a bilingual legend.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pendulum

from shared.geo import local_xy_m

# phase -> (colour, Chinese, English), in the order of the legend
PHASES: dict[str, tuple[str, str, str]] = {
    "to_pickup": ("#4C78A8", "前往取餐", "to_pickup"),
    "at_merchant": ("#F28E2B", "到店等餐", "at_merchant"),
    "delivering": ("#59A14F", "配送中", "delivering"),
    "connecting": ("#B07AA1", "两单衔接", "connecting"),
    "idle": ("#A5A5A5", "空闲", "idle"),
    "offline": ("#4D4D4D", "下线", "offline"),
    "insufficient_data": ("#E3DCC8", "数据不足", "insufficient_data"),
}
UNKNOWN_PHASE = ("#CCCCCC", "未知", "unknown")
INCIDENT_RED = "#D62728"
AFTERMATH_FILL = "#F6C9C2"  # the stay the incident caused (DATA_CONTRACT §5 rule 6)
PASSED_BLUE = "#1F3A93"  # when the rider passed the reported place (§6 time check)
GAP_GREY = "#8C8C8C"
OBSERVATION_GAP_S = 150.0  # no fix for longer than this: drawn dashed, "no GPS"
FONT_FAMILY = "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',SimHei,sans-serif"


# ----------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class Span:
    """A stretch of the window with one phase (epoch seconds)."""

    start: float
    end: float
    phase: str
    orders: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderEvents:
    """An order's platform events (epoch seconds, None when it did not happen)."""

    order_id: str
    accepted: float | None = None
    arrived: float | None = None
    picked_up: float | None = None
    ended: float | None = None
    end_kind: str | None = None
    platform: str = ""


@dataclass(frozen=True)
class Place:
    """A labelled place on the map (WGS-84)."""

    lat: float
    lon: float
    label: str


# ----------------------------------------------------------------------------------------------
# scenes


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str | None = None
    stroke: str | None = None
    width: float = 1.0
    opacity: float = 1.0


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str = "#000000"
    width: float = 1.0
    dash: tuple[float, ...] = ()


@dataclass(frozen=True)
class Poly:
    points: tuple[tuple[float, float], ...]
    stroke: str | None = "#000000"
    width: float = 1.0
    fill: str | None = None
    closed: bool = False
    dash: tuple[float, ...] = ()


@dataclass(frozen=True)
class Circle:
    cx: float
    cy: float
    r: float
    fill: str | None = None
    stroke: str | None = None
    width: float = 1.0


@dataclass(frozen=True)
class Text:
    x: float
    y: float  # baseline
    text: str
    size: float = 12.0
    fill: str = "#222222"
    anchor: str = "start"  # start | middle | end
    bold: bool = False


Item = Rect | Line | Poly | Circle | Text


@dataclass
class Scene:
    width: float
    height: float
    title: str
    items: list[Item] = field(default_factory=list)

    def add(self, *items: Item) -> None:
        self.items.extend(items)


def text_width(text: str, size: float) -> float:
    """An estimate of the width of a text (CJK characters are one em, others about 0.58 em). SVG
    viewers measure for real; the estimate only keeps labels from overlapping."""
    return sum(size * (1.0 if ord(c) >= 0x2E80 else 0.58) for c in text)


def to_svg(scene: Scene) -> str:
    """The scene as a standalone SVG document."""
    w, h = _n(scene.width), _n(scene.height)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'font-family={quoteattr(FONT_FAMILY)}>',
        f"<title>{escape(scene.title)}</title>",
    ]
    for it in scene.items:
        out.append(_svg_item(it))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _n(v: float) -> str:
    s = f"{v:.1f}"
    return "0.0" if s == "-0.0" else s


def _paint(fill: str | None, stroke: str | None, width: float) -> str:
    s = f' fill="{fill or "none"}"'
    if stroke:
        s += f' stroke="{stroke}" stroke-width="{_n(width)}"'
    return s


def _dash(dash: tuple[float, ...]) -> str:
    return f' stroke-dasharray="{" ".join(_n(d) for d in dash)}"' if dash else ""


def _svg_item(it: Item) -> str:
    if isinstance(it, Rect):
        op = f' fill-opacity="{it.opacity:.2f}"' if it.opacity < 1 else ""
        return (f'<rect x="{_n(it.x)}" y="{_n(it.y)}" width="{_n(it.w)}" height="{_n(it.h)}"'
                f"{_paint(it.fill, it.stroke, it.width)}{op}/>")
    if isinstance(it, Line):
        return (f'<line x1="{_n(it.x1)}" y1="{_n(it.y1)}" x2="{_n(it.x2)}" y2="{_n(it.y2)}" stroke="{it.stroke}" '
                f'stroke-width="{_n(it.width)}"{_dash(it.dash)}/>')
    if isinstance(it, Poly):
        pts = " ".join(f"{_n(x)},{_n(y)}" for x, y in it.points)
        tag = "polygon" if it.closed else "polyline"
        join = ' stroke-linejoin="round" stroke-linecap="round"' if it.stroke else ""
        return f'<{tag} points="{pts}"{_paint(it.fill, it.stroke, it.width)}{join}{_dash(it.dash)}/>'
    if isinstance(it, Circle):
        return f'<circle cx="{_n(it.cx)}" cy="{_n(it.cy)}" r="{_n(it.r)}"{_paint(it.fill, it.stroke, it.width)}/>'
    weight = ' font-weight="bold"' if it.bold else ""
    return (f'<text x="{_n(it.x)}" y="{_n(it.y)}" font-size="{_n(it.size)}" fill="{it.fill}" '
            f'text-anchor="{it.anchor}"{weight}>{escape(it.text)}</text>')


# ----------------------------------------------------------------------------------------------
# time helpers


def _local(t: float, tz: str) -> datetime:
    return datetime.fromtimestamp(round(t), tz=pendulum.timezone(tz))


def hhmm(t: float, tz: str) -> str:
    return _local(t, tz).strftime("%H:%M")


_STEPS_MIN = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 360, 720)


def time_ticks(t0: float, t1: float, tz: str, most: int = 8) -> list[float]:
    """Instants on round local minutes across [t0, t1], at most about ``most`` of them."""
    span_min = max((t1 - t0) / 60.0, 1.0)
    step = next((s for s in _STEPS_MIN if span_min / s <= most), _STEPS_MIN[-1]) * 60
    off = _local(t0, tz).utcoffset()
    offset = off.total_seconds() if off is not None else 0.0
    t = math.ceil((t0 + offset) / step) * step - offset
    ticks = []
    while t <= t1 + 1e-6:
        ticks.append(float(t))
        t += step
    return ticks


# ----------------------------------------------------------------------------------------------
# label placement: a label goes to the first candidate spot that overlaps nothing placed so far


Box = tuple[float, float, float, float]  # x0, y0, x1, y1


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _Labeller:
    def __init__(self, scene: Scene, bounds: Box) -> None:
        self.scene = scene
        self.bounds = bounds
        self.taken: list[Box] = []

    def block(self, box: Box) -> None:
        self.taken.append(box)

    def place(self, x: float, y: float, text: str, size: float = 11.0, *, fill: str = "#222222",
              gap: float = 8.0, optional: bool = False) -> bool:
        w, h = text_width(text, size), size * 1.15
        candidates = [  # (anchor x offset, baseline offset, text-anchor)
            (gap, -gap, "start"), (gap, h, "start"), (-gap, -gap, "end"), (-gap, h, "end"),
            (gap, h / 3, "start"), (-gap, h / 3, "end"), (0, -gap - 2, "middle"), (0, h + gap, "middle"),
            (2 * gap, -2.5 * gap, "start"), (-2 * gap, 2.5 * gap + h, "end"),
        ]
        fallback: tuple[float, float, str, Box] | None = None
        for dx, dy, anchor in candidates:
            tx, ty = x + dx, y + dy
            x0 = tx if anchor == "start" else tx - w if anchor == "end" else tx - w / 2
            box = (x0 - 2, ty - size * 0.9 - 1, x0 + w + 2, ty + size * 0.25 + 1)
            inside = (box[0] >= self.bounds[0] and box[2] <= self.bounds[2]
                      and box[1] >= self.bounds[1] and box[3] <= self.bounds[3])
            if not inside:
                continue
            if fallback is None:
                fallback = (tx, ty, anchor, box)
            if not any(_overlap(box, b) for b in self.taken):
                self._put(tx, ty, anchor, box, text, size, fill)
                return True
        if fallback is None or optional:
            return False
        self._put(*fallback, text=text, size=size, fill=fill)
        return True

    def _put(self, tx: float, ty: float, anchor: str, box: Box, text: str, size: float, fill: str) -> None:
        self.taken.append(box)
        self.scene.add(Rect(box[0], box[1], box[2] - box[0], box[3] - box[1], fill="#FFFFFF", opacity=0.82),
                       Text(tx, ty, text, size, fill, anchor))


# ----------------------------------------------------------------------------------------------
# the map


MAP_W, MAP_H = 800.0, 600.0
_FRAME: Box = (16.0, 58.0, 784.0, 508.0)
_PAD = 34.0


def _nice(x: float) -> float:
    """The largest 1, 2 or 5 times a power of ten not above x."""
    if x <= 0:
        return 1.0
    e = 10.0 ** math.floor(math.log10(x))
    for m in (5.0, 2.0, 1.0):
        if m * e <= x:
            return m * e
    return e


def _metres(m: float) -> str:
    return f"{m / 1000:g} km" if m >= 1000 else f"{m:g} m"


def _time_colour(f: float) -> str:
    """From blue (early) to orange (late)."""
    a, b = (0x1F, 0x5A, 0xA6), (0xE8, 0x6A, 0x10)
    c = [round(a[i] + (b[i] - a[i]) * min(max(f, 0.0), 1.0)) for i in range(3)]
    return f"#{c[0]:02X}{c[1]:02X}{c[2]:02X}"


def _phase_at(spans: Sequence[Span], t: float) -> str | None:
    starts = [s.start for s in spans]
    i = bisect.bisect_right(starts, t) - 1
    if i >= 0 and spans[i].start <= t < spans[i].end:
        return spans[i].phase
    if i >= 0 and t == spans[i].end:
        return spans[i].phase
    return None


def _position_at(points: Sequence[tuple[float, float, float]], t: float) -> tuple[float, float] | None:
    """The rider's position at t, interpolated between the fixes around it when they are close
    enough in time; None when t is outside the track or inside a GPS silence."""
    ts = [p[0] for p in points]
    if not points or t < ts[0] or t > ts[-1]:
        return None
    j = bisect.bisect_left(ts, t)
    if ts[j] == t:
        return points[j][1], points[j][2]
    a, b = points[j - 1], points[j]
    if b[0] - a[0] > OBSERVATION_GAP_S:
        return None
    f = (t - a[0]) / (b[0] - a[0])
    return a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f


def map_scene(track_points: Sequence[tuple[float, float, float]], incident: tuple[float, float] | None,
              places: Sequence[Place] = (), window: tuple[float, float] | None = None, *,
              segments: Sequence[Span] = (), incident_at: float | None = None,
              tz: str = "Asia/Shanghai") -> Scene:
    """The map's layout; see ``map_svg``."""
    pts = sorted((float(t), float(la), float(lo)) for t, la, lo in track_points
                 if math.isfinite(t) and math.isfinite(la) and math.isfinite(lo))
    spans = sorted(segments, key=lambda s: s.start)
    if window is None and pts:
        window = (pts[0][0], pts[-1][0])
    period = f"{hhmm(window[0], tz)}–{hhmm(window[1], tz)}" if window else ""
    scene = Scene(MAP_W, MAP_H, f"轨迹图 Trajectory map {period}".strip())
    scene.add(Text(16, 26, "轨迹图  Trajectory map", 17, bold=True),
              Text(784, 26, f"{period}  ({tz})" if period else "", 13, "#444444", "end"),
              Text(16, 46, "WGS-84 坐标，等距投影，无在线底图  ·  WGS-84, equirectangular projection, no online base map",
                   10.5, "#666666"))
    x0, y0, x1, y1 = _FRAME
    scene.add(Rect(x0, y0, x1 - x0, y1 - y0, fill="#F7F7F2", stroke="#BBBBBB"))

    lats = [p[1] for p in pts] + [pl.lat for pl in places] + ([incident[0]] if incident else [])
    lons = [p[2] for p in pts] + [pl.lon for pl in places] + ([incident[1]] if incident else [])
    if not lats:
        scene.add(Text((x0 + x1) / 2, (y0 + y1) / 2, "窗口内没有定位点  No GPS fixes in the window", 14,
                       "#666666", "middle"))
        _finish(scene, _map_legend(scene, [], False, bool(incident), False, False, window, tz))
        return scene

    lat0 = (min(lats) + max(lats)) / 2.0
    lon0 = (min(lons) + max(lons)) / 2.0
    xs, ys = local_xy_m(np.array(lats), np.array(lons), lat0, lon0)
    span_x = max(float(xs.max() - xs.min()), 150.0)
    span_y = max(float(ys.max() - ys.min()), 150.0)
    scale = min((x1 - x0 - 2 * _PAD) / span_x, (y1 - y0 - 2 * _PAD) / span_y)  # px per metre
    cx_m, cy_m = float(xs.max() + xs.min()) / 2.0, float(ys.max() + ys.min()) / 2.0
    mx, my = (x0 + x1) / 2.0, (y0 + y1) / 2.0

    def proj(lat: float, lon: float) -> tuple[float, float]:
        px, py = local_xy_m(lat, lon, lat0, lon0)
        return mx + (float(px) - cx_m) * scale, my - (float(py) - cy_m) * scale

    # a grid every "nice" number of metres, anchored at the projection's origin
    step_m = _nice((x1 - x0) / scale / 6.0)
    gx = math.floor(((x0 - mx) / scale + cx_m) / step_m) * step_m
    while True:
        px = mx + (gx - cx_m) * scale
        if px > x1:
            break
        if px >= x0:
            scene.add(Line(px, y0, px, y1, "#E4E4DC", 1.0))
        gx += step_m
    gy = math.floor((cy_m - (y1 - my) / scale) / step_m) * step_m
    while True:
        py = my - (gy - cy_m) * scale
        if py < y0:
            break
        if py <= y1:
            scene.add(Line(x0, py, x1, py, "#E4E4DC", 1.0))
        gy += step_m

    labels = _Labeller(scene, (x0 + 2, y0 + 2, x1 - 2, y1 - 2))
    xy = [proj(la, lo) for _, la, lo in pts]

    # the path, one polyline per run of the same colour; dashed across GPS silences
    runs: list[tuple[str, bool, list[tuple[float, float]]]] = []
    w0, w1 = window if window else (pts[0][0], pts[-1][0])
    used_phases: list[str] = []
    has_gap = False
    for i in range(len(pts) - 1):
        t_a, t_b = pts[i][0], pts[i + 1][0]
        gap = t_b - t_a > OBSERVATION_GAP_S
        if gap:
            colour = GAP_GREY
            has_gap = True
        elif spans:
            ph = _phase_at(spans, (t_a + t_b) / 2.0)
            colour = PHASES.get(ph or "", UNKNOWN_PHASE)[0]
            if ph and ph not in used_phases:
                used_phases.append(ph)
        else:
            colour = _time_colour(((t_a + t_b) / 2.0 - w0) / max(w1 - w0, 1.0))
        if runs and runs[-1][0] == colour and runs[-1][1] == gap:
            runs[-1][2].append(xy[i + 1])
        else:
            runs.append((colour, gap, [xy[i], xy[i + 1]]))
    for _colour, _gap, line in runs:  # a white casing first, so crossings stay readable
        scene.add(Poly(tuple(line), "#FFFFFF", 6.5))
    for colour, gap, line in runs:
        scene.add(Poly(tuple(line), colour, 2.2 if gap else 3.6, dash=(5.0, 4.0) if gap else ()))
    for x, y in xy[:: max(len(xy) // 400, 1)]:
        labels.block((x - 2, y - 2, x + 2, y + 2))

    # pickup places
    for pl in places:
        px, py = proj(pl.lat, pl.lon)
        scene.add(Rect(px - 6, py - 6, 12, 12, fill="#8C564B", stroke="#FFFFFF", width=1.5))
        labels.block((px - 7, py - 7, px + 7, py + 7))

    # start and end of the path
    if xy:
        sx, sy = xy[0]
        ex, ey = xy[-1]
        scene.add(Circle(sx, sy, 6.5, "#2CA02C", "#FFFFFF", 1.5),
                  Rect(ex - 6, ey - 6, 12, 12, fill="#222222", stroke="#FFFFFF", width=1.5))
        labels.block((sx - 7, sy - 7, sx + 7, sy + 7))
        labels.block((ex - 7, ey - 7, ex + 7, ey + 7))

    # the reported incident place
    if incident is not None:
        ix, iy = proj(*incident)
        scene.add(Circle(ix, iy, 11, None, "#FFFFFF", 5.0), Circle(ix, iy, 11, None, INCIDENT_RED, 2.6),
                  Line(ix - 8, iy - 8, ix + 8, iy + 8, INCIDENT_RED, 2.6),
                  Line(ix - 8, iy + 8, ix + 8, iy - 8, INCIDENT_RED, 2.6))
        labels.block((ix - 12, iy - 12, ix + 12, iy + 12))

    # where the rider was at the reported time (over the incident mark, which it is often close to)
    rider_at = _position_at(pts, incident_at) if incident_at is not None else None
    if rider_at is not None:
        rx, ry = proj(*rider_at)
        scene.add(Poly(((rx, ry - 8), (rx + 8, ry), (rx, ry + 8), (rx - 8, ry)), "#FFFFFF", 1.5, fill="#1F3A93",
                       closed=True))
        labels.block((rx - 9, ry - 9, rx + 9, ry + 9))

    # north arrow and scale bar first, so labels keep off them
    nx, ny = x1 - 34, y0 + 16
    scene.add(Circle(nx, ny + 22, 17, "#FFFFFF", "#999999", 1.0),
              Poly(((nx, ny + 6), (nx + 8, ny + 32), (nx, ny + 26), (nx - 8, ny + 32)), "#222222", 1.0,
                   fill="#222222", closed=True),
              Text(nx, ny + 52, "N 北", 11, "#222222", "middle", True))
    labels.block((nx - 20, ny, nx + 20, ny + 56))
    bar_m = _nice((x1 - x0) / 4.0 / scale)
    bar_px = bar_m * scale
    bx, by = x0 + 16, y1 - 18
    scene.add(Rect(bx - 6, by - 26, bar_px + 60, 38, fill="#FFFFFF", opacity=0.85),
              Rect(bx, by - 4, bar_px / 2, 6, fill="#222222", stroke="#222222"),
              Rect(bx + bar_px / 2, by - 4, bar_px / 2, 6, fill="#FFFFFF", stroke="#222222"),
              Text(bx, by - 9, "0", 10, anchor="middle"),
              Text(bx + bar_px, by - 9, _metres(bar_m), 10, anchor="middle"),
              Text(bx + bar_px + 8, by + 2, "比例尺 scale", 9.5, "#555555"))
    labels.block((bx - 6, by - 26, bx + bar_px + 54, by + 12))

    # labels, most important first
    if incident is not None:
        ix, iy = proj(*incident)
        labels.place(ix, iy, "事发地点 incident place", 11.5, fill=INCIDENT_RED, gap=15)
    if rider_at is not None and incident_at is not None:
        rx, ry = proj(*rider_at)
        labels.place(rx, ry, f"事发时骑手位置 rider at {hhmm(incident_at, tz)}", 11, fill="#1F3A93", gap=12)
    if xy:
        labels.place(xy[0][0], xy[0][1], f"起 start {hhmm(pts[0][0], tz)}", 10.5, fill="#1E7B1E", gap=10)
        labels.place(xy[-1][0], xy[-1][1], f"止 end {hhmm(pts[-1][0], tz)}", 10.5, gap=10)
    for pl in places:
        px, py = proj(pl.lat, pl.lon)
        labels.place(px, py, pl.label, 10, fill="#6B3E35", gap=10)
    # time marks along the path
    if pts:
        for tick in time_ticks(pts[0][0], pts[-1][0], tz, most=7)[1:]:
            pos = _position_at(pts, tick)
            if pos is None or (rider_at is not None and incident_at is not None and abs(tick - incident_at) < 90):
                continue  # the rider's mark at the incident already says where he was then
            tx, ty = proj(*pos)
            if labels.place(tx, ty, hhmm(tick, tz), 9.5, fill="#444444", gap=6, optional=True):
                scene.add(Circle(tx, ty, 3.0, "#FFFFFF", "#444444", 1.2))

    _finish(scene, _map_legend(scene, used_phases, bool(spans), incident is not None, rider_at is not None,
                               bool(places), window, tz, has_gap=has_gap, has_track=bool(pts)))
    return scene


def _finish(scene: Scene, last_baseline: float) -> None:
    """Fit the height to the legend and put the white background under everything."""
    scene.height = max(MAP_H, last_baseline + 16)
    scene.items.insert(0, Rect(0, 0, scene.width, scene.height, fill="#FFFFFF"))


def _map_legend(scene: Scene, used: list[str], by_phase: bool, incident: bool, rider: bool, places: bool,
                window: tuple[float, float] | None, tz: str, *, has_gap: bool = False,
                has_track: bool = False) -> float:
    """The legend under the map; returns its last baseline."""
    x, y = 16.0, _FRAME[3] + 26
    right = MAP_W - 16

    def room(w: float) -> None:
        nonlocal x, y
        if x + w > right:
            x, y = 16.0, y + 22

    if by_phase:
        for ph in [p for p in PHASES if p in used]:
            colour, zh, en = PHASES[ph]
            label = f"{zh} {en}"
            w = 30 + text_width(label, 11) + 18
            room(w)
            scene.add(Line(x, y - 4, x + 24, y - 4, colour, 4.0), Text(x + 30, y, label, 11))
            x += w
    elif has_track and window:
        label0, label1 = f"早 earlier {hhmm(window[0], tz)}", f"晚 later {hhmm(window[1], tz)}"
        w = text_width(label0, 11) + 8 + 80 + 8 + text_width(label1, 11) + 18
        room(w)
        scene.add(Text(x, y, label0, 11))
        gx = x + text_width(label0, 11) + 8
        for k in range(8):
            scene.add(Line(gx + k * 10, y - 4, gx + k * 10 + 10, y - 4, _time_colour(k / 7), 4.0))
        scene.add(Text(gx + 88, y, label1, 11))
        x += w
    items: list[tuple[str, Item | tuple[Item, ...]]] = []
    if has_gap:
        items.append(("无定位 no GPS fix", Line(0, -4, 24, -4, GAP_GREY, 2.2, (5.0, 4.0))))
    if has_track:
        items.append(("起点 start", Circle(8, -4, 5.5, "#2CA02C", "#FFFFFF", 1.0)))
        items.append(("终点 end", Rect(3, -9, 10, 10, fill="#222222")))
    if incident:
        items.append(("事发地点 incident place", (Circle(8, -4, 7, None, INCIDENT_RED, 2.0),
                                              Line(3, -9, 13, 1, INCIDENT_RED, 2.0), Line(3, 1, 13, -9, INCIDENT_RED, 2.0))))
    if rider:
        items.append(("事发时骑手位置 rider at reported time",
                      Poly(((8, -11), (15, -4), (8, 3), (1, -4)), None, 1.0, fill="#1F3A93", closed=True)))
    if places:
        items.append(("取餐点 pickup place", Rect(3, -9, 10, 10, fill="#8C564B")))
    for label, shape in items:
        w = 30 + text_width(label, 11) + 18
        room(w)
        for s in shape if isinstance(shape, tuple) else (shape,):
            scene.add(_shift(s, x, y))
        scene.add(Text(x + 30, y, label, 11))
        x += w
    return y


def _shift(it: Item, dx: float, dy: float) -> Item:
    if isinstance(it, Rect):
        return Rect(it.x + dx, it.y + dy, it.w, it.h, it.fill, it.stroke, it.width, it.opacity)
    if isinstance(it, Line):
        return Line(it.x1 + dx, it.y1 + dy, it.x2 + dx, it.y2 + dy, it.stroke, it.width, it.dash)
    if isinstance(it, Poly):
        return Poly(tuple((a + dx, b + dy) for a, b in it.points), it.stroke, it.width, it.fill, it.closed, it.dash)
    if isinstance(it, Circle):
        return Circle(it.cx + dx, it.cy + dy, it.r, it.fill, it.stroke, it.width)
    return Text(it.x + dx, it.y + dy, it.text, it.size, it.fill, it.anchor, it.bold)


def map_svg(track_points: Sequence[tuple[float, float, float]], incident: tuple[float, float] | None,
            places: Sequence[Place] = (), window: tuple[float, float] | None = None, *,
            segments: Sequence[Span] = (), incident_at: float | None = None, tz: str = "Asia/Shanghai") -> str:
    """The trajectory in the window as SVG. ``track_points``: (epoch s, lat, lon) WGS-84;
    ``incident``: the reported place (lat, lon) or None; ``places``: labelled places such as the
    pickup points of the orders in the window; ``window``: (from, to) epoch seconds; ``segments``:
    the phases, to colour the path by phase (else it is coloured by time); ``incident_at``: the
    reported time, to mark where the rider was then."""
    return to_svg(map_scene(track_points, incident, places, window, segments=segments,
                            incident_at=incident_at, tz=tz))


# ----------------------------------------------------------------------------------------------
# the timeline


TL_W = 800.0
_TL_L, _TL_R = 132.0, 24.0
_EVENTS = (  # field, Chinese, English
    ("accepted", "接单", "accepted"),
    ("arrived", "到店", "arrived"),
    ("picked_up", "取餐", "picked up"),
    ("ended", "送达", "delivered"),
    ("cancelled", "取消", "cancelled"),
)


def _event_marker(kind: str, x: float, y: float) -> tuple[Item, ...]:
    c = "#222222"
    if kind == "accepted":
        return (Circle(x, y, 5, "#FFFFFF", c, 1.6),)
    if kind == "arrived":
        return (Poly(((x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)), c, 1.4, fill="#FFFFFF", closed=True),)
    if kind == "picked_up":
        return (Circle(x, y, 5, c, "#FFFFFF", 1.0),)
    if kind == "ended":
        return (Rect(x - 5, y - 5, 10, 10, fill=c),)
    return (Line(x - 5, y - 5, x + 5, y + 5, INCIDENT_RED, 2.2), Line(x - 5, y + 5, x + 5, y - 5, INCIDENT_RED, 2.2))


@dataclass(frozen=True)
class Marks:
    """What the assessment adds to the timeline: the incident's aftermath (rule 6) as a band after
    the incident mark, when the rider went offline in it, and when he passed the reported place
    if the reported time may be off (§6 time check). Epoch seconds."""

    aftermath: tuple[float, float] | None = None
    offline_at: float | None = None
    passed_at: float | None = None
    passed_phase: str | None = None
    other_at: float | None = None  # a second pass about as likely, when he was doing something else then
    other_phase: str | None = None


NO_MARKS = Marks()
_AM_H = 16.0  # height of the aftermath band


def timeline_scene(timeline: Sequence[Span], orders: Sequence[OrderEvents], incident_at: float | None,
                   window: tuple[float, float], tz: str = "Asia/Shanghai", marks: Marks = NO_MARKS) -> Scene:
    """The timeline's layout; see ``timeline_svg``."""
    w0, w1 = window
    x0, x1 = _TL_L, TL_W - _TL_R
    passed = marks.passed_at if marks.passed_at is not None and w0 <= marks.passed_at <= w1 else None
    other = marks.other_at if passed is not None and marks.other_at is not None and w0 <= marks.other_at <= w1 else None
    band_y, band_h = 46.0 + (16.0 if passed is not None else 0.0) + (16.0 if other is not None else 0.0), 36.0
    am = marks.aftermath
    if am is not None and (am[1] <= w0 or am[0] >= w1):
        am = None
    am_y = band_y + band_h + 6
    row_y, row_h = band_y + band_h + 14 + (_AM_H + 8 if am is not None else 0), 26.0
    rows = sorted(orders, key=lambda o: (o.accepted if o.accepted is not None else w0, o.order_id))
    n_rows = max(len(rows), 1)
    axis_y = row_y + n_rows * row_h + 4
    legend_y = axis_y + 44

    def X(t: float) -> float:
        return x0 + (min(max(t, w0), w1) - w0) / max(w1 - w0, 1e-9) * (x1 - x0)

    extra = _extra_legend(am is not None, passed is not None)
    legend_items = _timeline_legend_rows(x0=16, right=TL_W - 16, y=legend_y, extra=extra)
    height = legend_items[1] + 14
    scene = Scene(TL_W, height, f"时间线 Timeline {hhmm(w0, tz)}–{hhmm(w1, tz)}")
    scene.add(Rect(0, 0, TL_W, height, fill="#FFFFFF"),
              Text(16, 24, "时间线  Timeline", 17, bold=True),
              Text(TL_W - 16, 24, f"{hhmm(w0, tz)}–{hhmm(w1, tz)}  ({tz})", 13, "#444444", "end"))

    # grid and axis
    scene.add(Rect(x0, band_y, x1 - x0, band_h, fill="#F4F4F4", stroke="#CCCCCC"))
    for t in time_ticks(w0, w1, tz):
        x = X(t)
        scene.add(Line(x, band_y + band_h, x, axis_y, "#E6E6E6", 1.0),
                  Line(x, axis_y, x, axis_y + 5, "#444444", 1.0),
                  Text(x, axis_y + 18, hhmm(t, tz), 11, "#333333", "middle"))
    scene.add(Line(x0, axis_y, x1, axis_y, "#444444", 1.0),
              Text(x0 - 24, axis_y + 18, "时间 time", 10.5, "#555555", "end"))

    # the phase band
    scene.add(Text(x0 - 10, band_y + 15, "阶段", 12, anchor="end", bold=True),
              Text(x0 - 10, band_y + 30, "phase", 11, "#555555", "end"))
    for s in sorted(timeline, key=lambda s: s.start):
        if s.end <= w0 or s.start >= w1:
            continue
        a, b = X(s.start), X(s.end)
        colour, zh, en = PHASES.get(s.phase, UNKNOWN_PHASE)
        scene.add(Rect(a, band_y, max(b - a, 0.6), band_h, fill=colour, stroke="#FFFFFF", width=0.8))
        ink = "#FFFFFF" if s.phase in ("to_pickup", "delivering", "connecting", "offline") else "#222222"
        if b - a >= text_width(en, 10) + 8:
            scene.add(Text((a + b) / 2, band_y + 16, zh, 11.5, ink, "middle", True),
                      Text((a + b) / 2, band_y + 30, en, 9.5, ink, "middle"))
        elif b - a >= text_width(zh, 11.5) + 6:
            scene.add(Text((a + b) / 2, band_y + 23, zh, 11.5, ink, "middle", True))

    # the aftermath: its own band under the phases, from where the stay began (rule 6)
    if am is not None:
        a, b = X(am[0]), X(am[1])
        scene.add(Text(x0 - 10, am_y + 12, "事发后 aftermath", 10, "#8C2D19", "end"),
                  Rect(a, am_y, max(b - a, 1.0), _AM_H, fill=AFTERMATH_FILL, stroke=INCIDENT_RED, width=0.8))
        minutes = (am[1] - am[0]) / 60.0
        label = f"事发后停留 {minutes:.0f} 分钟 stayed {minutes:.0f} min"
        if b - a >= text_width(label, 9.5) + 6:
            scene.add(Text((a + b) / 2, am_y + 12, label, 9.5, "#5A1A0E", "middle"))
        elif b - a >= text_width(f"{minutes:.0f} min", 9.5) + 4:
            scene.add(Text((a + b) / 2, am_y + 12, f"{minutes:.0f} min", 9.5, "#5A1A0E", "middle"))
        if marks.offline_at is not None and w0 <= marks.offline_at <= w1:
            xo = X(marks.offline_at)
            scene.add(Line(xo, am_y - 2, xo, am_y + _AM_H + 2, PHASES["offline"][0], 2.0))

    # one row per order
    scene.add(Text(16, row_y - 3, "订单 orders", 10, "#555555"))
    if not rows:
        scene.add(Text((x0 + x1) / 2, row_y + 17, "窗口内无订单  no orders in the window", 11, "#666666", "middle"))
    for k, o in enumerate(rows):
        y = row_y + k * row_h + row_h / 2
        scene.add(Text(x0 - 10, y + 4, o.order_id, 10.5, anchor="end"))
        start = o.accepted if o.accepted is not None else w0
        end = o.ended if o.ended is not None else w1
        if end >= w0 and start <= w1:
            scene.add(Line(X(start), y, X(end), y, "#888888", 2.4))
            if start < w0:
                scene.add(Poly(((x0 + 1, y), (x0 + 8, y - 4), (x0 + 8, y + 4)), None, 1.0, fill="#888888", closed=True))
            if end > w1:
                scene.add(Poly(((x1 - 1, y), (x1 - 8, y - 4), (x1 - 8, y + 4)), None, 1.0, fill="#888888", closed=True))
        for name in ("accepted", "arrived", "picked_up", "ended"):
            t = getattr(o, name)
            if t is None or not (w0 <= t <= w1):
                continue
            kind = "cancelled" if name == "ended" and o.end_kind == "cancelled" else name
            scene.add(*_event_marker(kind, X(t), y))

    # the incident
    if incident_at is not None and w0 <= incident_at <= w1:
        x = X(incident_at)
        scene.add(Line(x, band_y - 4, x, axis_y, INCIDENT_RED, 2.2))
        label = f"事发 incident {hhmm(incident_at, tz)}"
        w = text_width(label, 11)
        lx = min(max(x, x0 + w / 2), x1 - w / 2)
        scene.add(Rect(lx - w / 2 - 3, band_y - 17, w + 6, 14, fill="#FFFFFF", opacity=0.9),
                  Text(lx, band_y - 6, label, 11, INCIDENT_RED, "middle", True))

    # the moment he passed the reported place, when the reported time may be off (and a second
    # pass about as likely, a row higher)
    for k, (at, ph) in enumerate(((passed, marks.passed_phase), (other, marks.other_phase))):
        if at is None:
            continue
        x, top = X(at), band_y - 20 - 16 * k
        scene.add(Line(x, top, x, axis_y, PASSED_BLUE, 1.8, (5.0, 3.0)))
        what = PHASES.get(ph or "", UNKNOWN_PHASE)
        label = f"{'也' if k else ''}经过报告地点 {'also ' if k else ''}passed the place {hhmm(at, tz)} · {what[1]} {what[2]}"
        w = text_width(label, 10.5)
        lx = min(max(x, x0 + w / 2), x1 - w / 2)
        scene.add(Rect(lx - w / 2 - 3, top - 13, w + 6, 14, fill="#FFFFFF", opacity=0.9),
                  Text(lx, top - 2, label, 10.5, PASSED_BLUE, "middle", True))

    _timeline_legend(scene, x0=16, right=TL_W - 16, y=legend_y, extra=extra)
    return scene


def _extra_legend(aftermath: bool, passed: bool) -> list[tuple[str, tuple[Item, ...]]]:
    out: list[tuple[str, tuple[Item, ...]]] = []
    if aftermath:
        out.append(("事发后停留（不计为休息） aftermath, not a break",
                    (Rect(0, -11, 22, 13, fill=AFTERMATH_FILL, stroke=INCIDENT_RED, width=0.8),)))
    if passed:
        out.append(("经过报告地点 passed the reported place", (Line(10, -13, 10, 4, PASSED_BLUE, 1.8, (5.0, 3.0)),)))
    return out


def _legend_entries(extra: Sequence[tuple[str, tuple[Item, ...]]] = ()) -> list[tuple[str, tuple[Item, ...]]]:
    out: list[tuple[str, tuple[Item, ...]]] = []
    for _ph, (colour, zh, en) in PHASES.items():
        out.append((f"{zh} {en}", (Rect(0, -11, 22, 13, fill=colour, stroke="#999999", width=0.5),)))
    out.append(("BREAK", ()))
    for kind, zh, en in _EVENTS:
        out.append((f"{zh} {en}", _event_marker(kind, 10, -4)))
    out.append(("事发时刻 incident", (Line(10, -13, 10, 4, INCIDENT_RED, 2.2),)))
    out.extend(extra)
    return out


def _timeline_legend_rows(*, x0: float, right: float, y: float,
                          extra: Sequence[tuple[str, tuple[Item, ...]]] = ()) -> tuple[float, float]:
    """Where the legend starts and where it ends (its last baseline)."""
    x, yy = x0, y
    for label, _shape in _legend_entries(extra):
        if label == "BREAK":
            x, yy = x0, yy + 22
            continue
        w = 28 + text_width(label, 11) + 16
        if x + w > right:
            x, yy = x0, yy + 22
        x += w
    return y, yy


def _timeline_legend(scene: Scene, *, x0: float, right: float, y: float,
                     extra: Sequence[tuple[str, tuple[Item, ...]]] = ()) -> None:
    x, yy = x0, y
    for label, shape in _legend_entries(extra):
        if label == "BREAK":
            x, yy = x0, yy + 22
            continue
        w = 28 + text_width(label, 11) + 16
        if x + w > right:
            x, yy = x0, yy + 22
        for s in shape:
            scene.add(_shift(s, x, yy))
        scene.add(Text(x + 28, yy, label, 11))
        x += w


def timeline_svg(timeline: Sequence[Span], orders: Sequence[OrderEvents], incident_at: float | None,
                 window: tuple[float, float], tz: str = "Asia/Shanghai", marks: Marks = NO_MARKS) -> str:
    """The phases over the window as SVG: a band coloured by phase with a bilingual legend, the
    orders' events as markers (one row per order), the incident as a red vertical line, the
    incident's aftermath as its own band after it, the moment the rider passed the reported place
    as a dashed blue line, and the time axis in local HH:MM."""
    return to_svg(timeline_scene(timeline, orders, incident_at, window, tz, marks))


# ----------------------------------------------------------------------------------------------
# from a packet's own sections


def epoch(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso).timestamp()


@dataclass(frozen=True)
class FigureInputs:
    points: tuple[tuple[float, float, float], ...]
    incident: tuple[float, float] | None
    incident_at: float | None
    places: tuple[Place, ...]
    window: tuple[float, float]
    spans: tuple[Span, ...]
    orders: tuple[OrderEvents, ...]
    tz: str
    marks: Marks = NO_MARKS


def inputs_from_sections(body: dict[str, Any]) -> FigureInputs:
    """What the figures show, read back from a packet body's data sections (``case``,
    ``timeline``, ``orders``, ``track``, ``timezone``). The builder draws from this too, so the
    figures can be redrawn from any packet."""
    tz = str(body.get("timezone") or "Asia/Shanghai")
    track = body["track"]
    w0, w1 = epoch(track["window"]["from"]), epoch(track["window"]["to"])
    if w0 is None or w1 is None:
        raise ValueError("the track has no window")

    def at(iso: str | None, default: float) -> float:
        t = epoch(iso)
        return default if t is None else t

    points = tuple((at(t, w0), float(la), float(lo)) for t, la, lo in track["points"])
    inc = body["case"]["incident"]
    loc = inc.get("location")
    incident = (float(loc["lat"]), float(loc["lon"])) if loc else None
    spans = tuple(Span(at(s["start"], w0), at(s["end"], w1), str(s["phase"]),
                       tuple(s.get("orders") or ())) for s in body["timeline"])
    orders = tuple(OrderEvents(o["order_id"], epoch(o.get("accepted")), epoch(o.get("arrived")),
                               epoch(o.get("picked_up")), epoch(o.get("ended")), o.get("end_kind"),
                               o.get("platform") or "") for o in body["orders"])
    places = tuple(Place(float(o["merchant"]["lat"]), float(o["merchant"]["lon"]), f"取餐点 pickup {o['order_id']}")
                   for o in body["orders"] if o.get("merchant"))
    return FigureInputs(points, incident, epoch(inc.get("at")), places, (w0, w1), spans, orders, tz,
                        marks_from_assessment(body.get("assessment")))


def marks_from_assessment(a: Any) -> Marks:
    """The aftermath and the time check's moment, read from an assessment (DATA_CONTRACT §6)."""
    if not isinstance(a, dict):
        return NO_MARKS
    am, lc = a.get("aftermath"), a.get("location_check")
    span = None
    offline = None
    if isinstance(am, dict):
        s, e = _instant_or_none(am.get("start_at")), _instant_or_none(am.get("end_at"))
        span = (s, e) if s is not None and e is not None and e > s else None
        offline = _instant_or_none(am.get("offline_at"))
    passed = phase = other = other_phase = None
    if isinstance(lc, dict) and lc.get("phase_at_nearest"):
        passed, phase = _instant_or_none(lc.get("nearest_at")), str(lc["phase_at_nearest"])
        if lc.get("phase_at_other_pass"):
            other, other_phase = _instant_or_none(lc.get("other_pass_at")), str(lc["phase_at_other_pass"])
    return Marks(span, offline, passed, phase, other, other_phase)


def _instant_or_none(v: Any) -> float | None:
    if not isinstance(v, str):
        return None
    try:
        return epoch(v)
    except ValueError:
        return None


def scenes_from_sections(body: dict[str, Any]) -> dict[str, Scene]:
    f = inputs_from_sections(body)
    return {
        "map.svg": map_scene(f.points, f.incident, f.places, f.window, segments=f.spans,
                             incident_at=f.incident_at, tz=f.tz),
        "timeline.svg": timeline_scene(f.spans, f.orders, f.incident_at, f.window, f.tz, f.marks),
    }


def figures_from_sections(body: dict[str, Any]) -> dict[str, str]:
    """``{"map.svg": ..., "timeline.svg": ...}`` for a packet body."""
    return {name: to_svg(scene) for name, scene in scenes_from_sections(body).items()}

