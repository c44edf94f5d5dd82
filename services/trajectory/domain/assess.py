"""The assessment of an incident: phase, why, how sure, and what a mediator can check."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shared.geo import haversine_m

from .aftermath import Aftermath, Judgement, find_aftermath, judge, moved_m
from .clean import CleanReport, clean
from .clock import SkewEstimate, estimate_skew
from .model import Incident, Order, Params, Phase, RiderDay, Segment
from .motion import STEP_S, Grid, longest_dwell, resample, stops
from .passes import Pass, choose, line_distance
from .phases import Gap, Timeline, build_timeline


@dataclass(frozen=True)
class DayAnalysis:
    """Everything derived once per rider-day; incidents are looked up in it."""

    rider_id: str
    timeline: Timeline
    grid: Grid  # platform clock
    cleaning: CleanReport
    skew: SkewEstimate
    track_t: np.ndarray  # cleaned fixes, platform clock
    track_lat: np.ndarray
    track_lon: np.ndarray


def analyse(day: RiderDay, params: Params) -> DayAnalysis:
    track, report = clean(day.gps, params)
    phone_grid = resample(track, params)
    skew = estimate_skew(stops(phone_grid, params), day.orders, params)
    track = track.shifted(-skew.skew_s)
    grid = phone_grid.shifted(-skew.skew_s)
    timeline = build_timeline(day.orders, day.presence, grid, params)
    return DayAnalysis(day.rider_id, timeline, grid, report, skew, track.t, track.lat, track.lon)


# Sentences, as (key, values); rendered in Chinese and English by render().
Sentence = tuple[str, dict[str, Any]]


def assess(a: DayAnalysis, inc: Incident, params: Params, fmt_time: Any,
           within: tuple[float, float] | None = None) -> dict[str, Any]:
    """The assessment as the data contract's JSON object. ``fmt_time`` renders an instant.
    ``within`` (from, to): the span whose fixes may be named -- the evidence window of a packet;
    the nearest approach to the reported place is then sought in it, not in the whole day."""
    tl = a.timeline
    seg = tl.at(inc.at)
    phase = seg.phase
    orders = {o.order_id: o for o in tl.orders}
    says: list[Sentence] = []
    prev = _previous_order(tl.orders, inc.at)
    nxt = _next_order(tl.orders, inc.at, prev)
    gap = tl.gap_at(inc.at)
    result: dict[str, Any] = {
        "incident_id": inc.incident_id,
        "rider_id": inc.rider_id,
        "at": inc.at_text,
        "phase": phase.value,
        "continuous_delivery": phase.continuous_delivery,
    }
    if not tl.orders and not tl.online and len(a.grid) == 0:
        phase = Phase.INSUFFICIENT_DATA
        result.update(phase=phase.value, continuous_delivery=None)
        says.append(("no_data", {}))
    if prev is not None and prev.ended is not None:
        result["previous_order"] = {"order_id": prev.order_id, "platform": prev.platform,
                                    "ended": fmt_time(prev.ended), "how": prev.end_kind}
    if nxt is not None:
        result["next_order"] = {"order_id": nxt.order_id, "platform": nxt.platform, "accepted": fmt_time(nxt.accepted)}
    if gap is not None and np.isfinite(gap.start) and np.isfinite(gap.end):
        result["gap_minutes"] = round((gap.end - gap.start) / 60.0, 1)
    elif prev is not None and prev.ended is not None and nxt is not None and nxt.accepted >= prev.ended:
        result["gap_minutes"] = round((nxt.accepted - prev.ended) / 60.0, 1)

    rule6 = _rule6(a, inc, seg, gap, params) if phase is not Phase.INSUFFICIENT_DATA or seg.why == "unobserved" else None
    if rule6 is not None and gap is not None:
        am, jd = rule6
        phase = jd.phase
        seg = Segment(gap.start, am.start, phase, seg.orders, jd.why)
        result.update(phase=phase.value, continuous_delivery=phase.continuous_delivery)
        if within is not None:  # what is shown stays inside the evidence window (the finding does not)
            am, jd = _clipped(am, jd, within)
        result["aftermath"] = _aftermath_fields(am, jd, gap, inc, fmt_time)
        says.extend(_explain_rule6(am, jd, gap, inc, a, params))
        margin = inc.at - gap.start
    else:
        if phase is not Phase.INSUFFICIENT_DATA or seg.why == "unobserved":
            says.extend(_explain(seg, tl, orders, inc, a, params, fmt_time))
        margin = min(inc.at - seg.start, seg.end - inc.at)
    result["confidence"] = _confidence(seg, margin, a, inc.at)
    result["phase_window"] = {
        "from": fmt_time(seg.start) if np.isfinite(seg.start) else None,
        "to": fmt_time(seg.end) if np.isfinite(seg.end) else None,
    }
    if margin < 120:
        says.append(("near_boundary", {"s": round(margin)}))
    dq: dict[str, Any] = {
        "gps_points_raw": a.cleaning.raw,
        "gps_points_used": a.cleaning.used,
        "gps_duplicates": a.cleaning.duplicates,
        "gps_outliers": a.cleaning.outliers,
        "gps_inaccurate": a.cleaning.inaccurate,
        "clock_skew_s": round(a.skew.skew_s, 1),
        "clock_skew_events": a.skew.events_used,
        "gps_coverage_30min": round(_coverage(a.grid, inc.at - 900, inc.at + 900), 2),
    }
    result["data_quality"] = dq
    if abs(a.skew.skew_s) >= 30:
        says.append(("skew", {"s": round(a.skew.skew_s), "n": a.skew.events_used}))
    if inc.location is not None:
        lc = location_check(a, inc, within, params)
        result["location_check"] = {k: (fmt_time(v) if k in _LC_TIMES and v is not None else v) for k, v in lc.items()}
        says.extend(_explain_location(lc, inc, fmt_time, within))
    result["explanation"] = render(says, "zh", fmt_time)
    result["explanation_en"] = render(says, "en", fmt_time)
    return result


def _previous_order(orders: tuple[Order, ...], t: float) -> Order | None:
    done = [o for o in orders if o.ended is not None and o.ended <= t]
    return max(done, key=lambda o: o.ended or 0.0, default=None)


def _next_order(orders: tuple[Order, ...], t: float, prev: Order | None) -> Order | None:
    after = prev.ended if prev is not None and prev.ended is not None else -np.inf
    live_or_next = [o for o in orders if o.accepted >= after and (o.ended is None or o.ended > t)]
    return min(live_or_next, key=lambda o: o.accepted, default=None)


def _confidence(seg: Segment, margin: float, a: DayAnalysis, t: float) -> float:
    if seg.phase is Phase.INSUFFICIENT_DATA:
        return 0.0
    # boundaries from platform events are exact; those from GPS carry its uncertainty
    base = 0.97
    if seg.phase in (Phase.AT_MERCHANT, Phase.CONNECTING) or seg.why in ("dwelt",):
        base = 0.92 * (0.6 + 0.4 * _coverage(a.grid, t - 900, t + 900))
    sigma = 60.0 + (a.skew.spread_s if a.skew.reliable else 60.0)
    closeness = 1.0 - 0.5 * np.exp(-max(margin, 0.0) / sigma)
    return round(float(base * closeness), 2)


def _coverage(grid: Grid, t0: float, t1: float) -> float:
    if len(grid) == 0:
        return 0.0
    g = grid.slice(t0, t1)
    step = float(grid.t[1] - grid.t[0]) if len(grid) > 1 else 5.0
    return float(min(1.0, g.known.sum() * step / (t1 - t0)))


def location_check(a: DayAnalysis, inc: Incident, within: tuple[float, float] | None = None,
                   params: Params | None = None) -> dict[str, Any]:
    """How far the rider was from the reported place at the reported time, and when he was at it:
    that day, or only among the fixes ``within`` (from, to) when given.

    "When he was nearest" is the pass by the place that best explains the report (``passes``: a
    pass within ``time_check_radius_m``, or an outage with the place on his way; one reaching
    within ``time_check_min_s`` of the reported time if there is one, else the one nearest the
    place once a report's likely error in time is allowed for). Without any pass it is simply the
    nearest fix. Of a pass, the moment named is the nearest approach in the phase he spent most of
    that pass in (``_moment_in``); of an unseen pass, when riding steadily he was there (or the
    reported time, when it fits), with the distance of the straight line between the two fixes
    from the place (no fix saw him there) and the outage as
    ``gps_silent_from``/``gps_silent_to`` and ``detour_m``.

    When no pass fits the reported time and one lies within ``time_check_radius_m`` (or on his way
    through an outage), the reported time may be off: the phase then (rules 1 to 5) is added as ``phase_at_nearest`` and
    ``continuous_delivery_at_nearest`` (DATA_CONTRACT §6)."""
    params = params if params is not None else Params()
    assert inc.location is not None
    lat, lon = inc.location
    out: dict[str, Any] = {"distance_m": None, "nearest_at": None, "nearest_distance_m": None}
    pos = a.grid.at(inc.at)
    if pos is not None:
        out["distance_m"] = round(float(haversine_m(pos[0], pos[1], lat, lon)), 1)
    t, la, lo = a.track_t, a.track_lat, a.track_lon
    if within is not None:
        sel = (t >= within[0]) & (t <= within[1])
        t, la, lo = t[sel], la[sel], lo[sel]
    if not t.size:
        return out
    # the passes in metres from the place (exact enough within a city), sought around the reported
    # time first: the same answer as over the whole day (passes.choose), on fewer fixes
    c = choose(t, la, lo, (lat, lon), inc.at, params)
    t, x, y, fit, chosen = c.t, c.x, c.y, c.fit, c.chosen
    if fit is not None and fit.unseen:
        when, far = (inc.at if fit.start <= inc.at <= fit.end else fit.t), line_distance(fit, t, x, y)
    elif fit is not None:
        when, far = _moment_near(fit, inc.at, t, x, y, params)
    elif chosen is not None:
        when = _moment_of(chosen, inc.at, a.timeline, t, x, y, params)
        far = line_distance(chosen, t, x, y) if chosen.unseen else float(
            np.hypot(np.interp(when, t, x), np.interp(when, t, y)))
    else:
        i = int(np.argmin(x * x + y * y))
        when, far = float(t[i]), float(np.hypot(x[i], y[i]))
    out["nearest_at"] = when
    out["nearest_distance_m"] = round(far, 1)
    out["minutes_from_reported"] = round((when - inc.at) / 60.0, 1)
    named = fit if fit is not None else chosen
    if named is not None and named.gap is not None:  # an unseen pass
        out["gps_silent_from"], out["gps_silent_to"] = named.gap
        out["detour_m"] = round(named.d)
    if chosen is not None:
        then = a.timeline.at(when)
        out.update(_doing_then(then, "nearest"))
        if c.other is not None:  # named only when it would say something else
            when2 = _moment_of(c.other, inc.at, a.timeline, t, x, y, params)
            then2 = a.timeline.at(when2)
            if then2.phase is not then.phase:
                out["other_pass_at"] = when2
                out["minutes_from_reported_other"] = round((when2 - inc.at) / 60.0, 1)
                out.update(_doing_then(then2, "other_pass"))
    return out


def _doing_then(then: Segment, at: str) -> dict[str, Any]:
    """What he was doing at a moment the time check names: ``phase_at_<at>`` and the rest."""
    return {f"phase_at_{at}": then.phase.value, f"continuous_delivery_at_{at}": then.phase.continuous_delivery,
            f"orders_at_{at}": list(then.orders) if then.phase in _WITH_ORDER else []}


def _moment_of(p: Pass, at: float, tl: Timeline, t: np.ndarray, x: np.ndarray, y: np.ndarray,
               params: Params) -> float:
    """The moment a named pass stands for: of an unseen pass, when riding steadily he was there."""
    return p.t if p.unseen else _moment_in(p, at, tl, t, x, y, params)


_WITH_ORDER = (Phase.TO_PICKUP, Phase.AT_MERCHANT, Phase.DELIVERING)
_LC_TIMES = {"nearest_at", "gps_silent_from", "gps_silent_to", "other_pass_at"}


def _moment_near(p: Pass, at: float, t: np.ndarray, x: np.ndarray, y: np.ndarray,
                 params: Params) -> tuple[float, float]:
    """The time fits: his nearest approach within ``time_check_min_s`` of the reported time (or,
    if he was only just inside the radius then, the edge of the pass nearest to it)."""
    w = np.abs(p.ts - at) <= params.time_check_min_s
    if w.any():
        k = int(np.argmin(np.where(w, p.ds, np.inf)))
        return float(p.ts[k]), float(p.ds[k])
    when = float(np.clip(at, p.start, p.end))
    return when, float(np.hypot(np.interp(when, t, x), np.interp(when, t, y)))


def _moment_in(p: Pass, at: float, tl: Timeline, t: np.ndarray, x: np.ndarray, y: np.ndarray,
               params: Params) -> float:
    """The moment of a pass that says what he was doing there. Any moment he was at the place may
    be the one meant: a rider who waited four minutes at a door and then delivered was mostly
    waiting. So each moment of the pass (every ``STEP_S``) is weighted as ``passes.misfit`` weighs
    a pass (how near the place he was, how far from the reported time), the phase with the most
    weight is taken, and of that phase his nearest approach. A quick ride past weighs only around
    its nearest point, so it is that point."""
    if p.end - p.start < STEP_S:
        return p.t
    g = np.append(np.arange(p.start, p.end, STEP_S), p.end)
    z = np.hypot(np.interp(g, t, x), np.interp(g, t, y)) / params.time_check_place_sigma_m
    w = np.exp(-0.5 * z * z - np.abs(g - at) / params.time_check_offset_scale_s)
    phase = [tl.at(float(s)).phase for s in g]
    weight: dict[Phase, float] = {}
    for ph, v in zip(phase, w, strict=True):
        weight[ph] = weight.get(ph, 0.0) + float(v)
    top = max(weight, key=lambda ph: weight[ph])
    mine = [k for k in range(p.ts.size) if tl.at(float(p.ts[k])).phase is top]
    if mine:
        return float(p.ts[min(mine, key=lambda k: float(p.ds[k]))])
    return float(g[max((k for k in range(g.size) if phase[k] is top), key=lambda k: float(w[k]))])


# ---------------------------------------------------------------- rule 6: the incident's aftermath

def _rule6(a: DayAnalysis, inc: Incident, seg: Segment, gap: Gap | None,
           params: Params) -> tuple[Aftermath, Judgement] | None:
    """The aftermath of an incident between orders (after a previous one), and the gap judged on
    what happened up to it (DATA_CONTRACT §5 rule 6); None when rule 6 does not apply."""
    if gap is None or not np.isfinite(gap.start) or seg.phase is Phase.OFFLINE:
        return None
    if seg.phase not in (Phase.CONNECTING, Phase.IDLE, Phase.INSUFFICIENT_DATA):
        return None
    place = inc.location if inc.location is not None else _position_near(a.grid, inc.at, params)
    if place is None:
        return None
    am = find_aftermath(a.grid, inc.at, place, params, until=gap.end)
    if am is None:
        return None
    return am, judge(gap, am, inc.at, a.timeline.online, a.grid, params)


def _position_near(grid: Grid, t: float, params: Params) -> tuple[float, float] | None:
    """Where the rider was at t; if the GPS was silent then, where he was first seen after it
    (within the aftermath's start window): a fall is often where the phone lost its fix."""
    here = grid.at(t)
    if here is not None or len(grid) == 0:
        return here
    g = grid.slice(t, t + params.aftermath_start_s)
    k = np.flatnonzero(g.known)
    return (float(g.lat[k[0]]), float(g.lon[k[0]])) if k.size else None


def _clipped(am: Aftermath, jd: Judgement, within: tuple[float, float]) -> tuple[Aftermath, Judgement]:
    """The aftermath as far as the evidence window shows it: a packet never says where the rider
    was, or when he went offline, outside it."""
    end = min(am.end, within[1])
    off = jd.offline_at if jd.offline_at is not None and jd.offline_at <= within[1] else None
    return replace(am, end=end, beyond=am.end > within[1]), replace(jd, offline_at=off)


def _aftermath_fields(am: Aftermath, jd: Judgement, gap: Gap, inc: Incident, fmt_time: Any) -> dict[str, Any]:
    """The aftermath as surfaces draw it: the band [start, end) after the incident mark."""
    out: dict[str, Any] = {
        "start": round(am.start, 3), "end": round(am.end, 3),
        "start_at": fmt_time(am.start), "end_at": fmt_time(am.end),
        "minutes": round(am.seconds / 60.0, 1),
        "continues_after_window": am.beyond,
        "offline_at": fmt_time(jd.offline_at) if jd.offline_at is not None and jd.offline_at < gap.end else None,
        "place": "reported" if inc.location is not None else "position_at_reported_time",
        "distance_m": am.distance_m,
        "minutes_since_previous_order": round((inc.at - gap.start) / 60.0, 1),
        "rule": "DATA_CONTRACT §5 rule 6",
    }
    if jd.why == "aftermath_no_next":
        out["evidence_needed"] = ["rider_statement_of_destination", "next_order_dispatch_log", "witness"]
    return out


def _gap_args(gap: Gap, params: Params) -> dict[str, Any]:
    p, n = gap.prev, gap.next
    return {"prev": p.order_id if p else None, "ended": gap.start, "next": n.order_id if n else None,
            "accepted": gap.end,
            "min": round((gap.end - gap.start) / 60.0, 1) if np.isfinite(gap.end - gap.start) else None,
            "max": round(params.max_connecting_gap_s / 60), "dwell_min": round(params.dwell_min_s / 60),
            "r": round(params.dwell_radius_m)}


def _explain_rule6(am: Aftermath, jd: Judgement, gap: Gap, inc: Incident, a: DayAnalysis,
                   params: Params) -> list[Sentence]:
    args = _gap_args(gap, params)
    if jd.dwell is not None:
        args.update(certain=round(jd.dwell.certain_s / 60.0, 1), possible=round(jd.dwell.possible_s / 60.0, 1),
                    dwell_at=jd.dwell.start)
    since = round((inc.at - gap.start) / 60.0, 1)
    moved = moved_m(a.grid, inc.at - 300.0, inc.at)
    stay = {"stay": round(am.seconds / 60.0, 1), "atleast": am.beyond, "from": am.start, "to": am.end, "off": jd.offline_at,
            "r": round(params.aftermath_radius_m), "w": round(params.aftermath_start_s / 60)}
    out: list[Sentence] = []
    if jd.why == "aftermath_connected":
        out.append(("aftermath_connected", args))
        out.append(("aftermath_stay_off" if jd.offline_at is not None and jd.offline_at < gap.end else
                    "aftermath_stay", stay))
    elif jd.why == "aftermath_no_next":
        out.append(("aftermath_no_next", {**args, "since": since,
                                          "moved": round(moved) if moved is not None else None}))
        out.append(("aftermath_stay_off" if jd.offline_at is not None else
                    "aftermath_stay" if am.beyond else "aftermath_stay_online", stay))
        out.append(("aftermath_undetermined", {"max": args["max"]}))
        out.append(("aftermath_settle", {}))
    else:
        out.append(("gap_" + jd.why, args))
        out.append(("aftermath_stay", stay))
    return out


def _explain(seg: Segment, tl: Timeline, orders: dict[str, Order], inc: Incident, a: DayAnalysis,
             params: Params, fmt_time: Any) -> list[Sentence]:
    out: list[Sentence] = []
    live = [orders[i] for i in seg.orders if i in orders]
    if seg.phase is Phase.DELIVERING:
        o = next((o for o in live if o.picked_up is not None and o.picked_up <= inc.at), live[0])
        out.append(("delivering", {"order": o.order_id, "platform": o.platform, "picked": o.picked_up}))
    elif seg.phase is Phase.AT_MERCHANT:
        o = next(o for o in live if (t := tl.arrivals[o.order_id].t) is not None and t <= inc.at)
        arr = tl.arrivals[o.order_id]
        out.append(("at_merchant_" + ("event" if arr.how == "event" else "gps"),
                    {"order": o.order_id, "platform": o.platform, "arrived": arr.t, "accepted": o.accepted,
                     "r": round(params.merchant_radius_m)}))
    elif seg.phase is Phase.TO_PICKUP:
        o = max(live, key=lambda o: o.accepted)
        out.append(("to_pickup", {"order": o.order_id, "platform": o.platform, "accepted": o.accepted}))
        prev = _previous_order(tl.orders, inc.at)
        if prev is not None and prev.ended is not None:
            out.append(("after_previous", {"order": prev.order_id, "ended": prev.ended,
                                           "min": round((inc.at - prev.ended) / 60.0, 1)}))
    elif seg.phase is Phase.OFFLINE:
        out.append(("offline", {}))
    else:
        gap = tl.gap_at(inc.at)
        if gap is not None:
            args = _gap_args(gap, params)
            dwell = gap.dwell
            if dwell is None and gap.why == "connected":
                dwell = longest_dwell(a.grid, gap.start, gap.end, params)
            if dwell is not None:
                args.update(certain=round(dwell.certain_s / 60.0, 1), possible=round(dwell.possible_s / 60.0, 1),
                            dwell_at=dwell.start)
            out.append(("gap_" + gap.why, args))
            if (dwell is not None and gap.phase is Phase.IDLE and dwell.drift_s > 0
                    and dwell.certain_s - dwell.drift_s < params.dwell_min_s):
                out.append(("drift", {"drift": round(dwell.drift_s / 60.0, 1), "max": round(params.drift_max_s / 60.0, 1),
                                      "far": round(params.drift_max_m), "v": params.drift_max_speed_mps,
                                      "r": round(params.bridge_radius_m)}))
            if dwell is not None and dwell.bridge_decided:
                out.append(("bridged", {"bridged": round(dwell.bridged_s / 60.0, 1),
                                        "max": round(params.bridge_max_s / 60.0, 1),
                                        "r": round(params.bridge_radius_m)}))
    return out


def _explain_location(lc: dict[str, Any], inc: Incident, fmt_time: Any,
                      within: tuple[float, float] | None = None) -> list[Sentence]:
    out: list[Sentence] = []
    if lc["distance_m"] is not None:
        out.append(("loc_at", {"d": lc["distance_m"]}))
    else:
        out.append(("loc_unobserved", {}))
    unseen = "gps_silent_from" in lc
    if lc["nearest_at"] is not None and "phase_at_nearest" not in lc:  # else the time check says it
        key = "loc_unseen" if unseen else "loc_nearest" if within is None else "loc_nearest_within"
        out.append((key, {"d": lc["nearest_distance_m"], "t": lc["nearest_at"], "rel": lc["minutes_from_reported"],
                          "from": lc.get("gps_silent_from"), "to": lc.get("gps_silent_to"),
                          "detour": lc.get("detour_m")}))
    if "phase_at_nearest" in lc:
        orders = lc.get("orders_at_nearest") or []
        out.append(("time_check_unseen" if unseen else "time_check",
                    {"n": f"{abs(lc['minutes_from_reported']):g}", "t": lc["nearest_at"],
                     "d": lc["nearest_distance_m"], "rel": lc["minutes_from_reported"],
                     "from": lc.get("gps_silent_from"), "to": lc.get("gps_silent_to"), "detour": lc.get("detour_m"),
                     "doing": lc["phase_at_nearest"], "order": orders[0] if orders else None,
                     "cd": lc["continuous_delivery_at_nearest"]}))
    if "other_pass_at" in lc:
        orders = lc.get("orders_at_other_pass") or []
        out.append(("time_check_other", {"t": lc["other_pass_at"], "rel": lc["minutes_from_reported_other"],
                                         "doing": lc["phase_at_other_pass"], "order": orders[0] if orders else None,
                                         "cd": lc["continuous_delivery_at_other_pass"]}))
    return out


_ZH: dict[str, str] = {
    "no_data": "没有该骑手的任何订单、在线或定位记录，无法判断。",
    "delivering": "事发时骑手正在配送：{platform}订单 {order} 已于 {picked} 取餐，尚未送达。",
    "at_merchant_event": "事发时骑手在商家处等餐：订单 {order} 的平台记录显示其于 {arrived} 到店，尚未取餐。",
    "at_merchant_gps": "事发时骑手在商家处等餐：平台没有到店记录，定位显示其于 {arrived} 到达订单 {order} 的商家（{r} 米内），尚未取餐。",
    "to_pickup": "事发时骑手正在前往取餐：已于 {accepted} 接单 {order}（{platform}），尚未到店。",
    "after_previous": "此前一单 {order} 于 {ended} 结束，事发在其后 {min} 分钟。",
    "offline": "事发时骑手在所有平台均处于下线状态，没有进行中的订单。",
    "gap_connected": "事发时骑手处于两单之间的合理衔接阶段：上一单 {prev} 于 {ended} 结束，下一单 {next} 于 {accepted} 接单，间隔 {min} 分钟（不超过 {max} 分钟），其间一直在线，且没有在 {r} 米范围内停留 {dwell_min} 分钟以上（最长停留约 {certain} 分钟）。属于连续配送。",
    "gap_dwelt": "事发时骑手在两单之间，但其间在 {r} 米范围内停留了约 {certain} 分钟（{dwell_at} 起），达到 {dwell_min} 分钟，视为休息等待，不属于连续配送的衔接。",
    "gap_unobserved": "事发时骑手在两单之间（{prev} 于 {ended} 结束，{next} 于 {accepted} 接单），但定位在此期间中断，无法排除停留 {dwell_min} 分钟以上（可确认的停留约 {certain} 分钟，可能最长约 {possible} 分钟），数据不足以判断。",
    "gap_gap_too_long": "事发时骑手在两单之间，但间隔 {min} 分钟，超过 {max} 分钟，视为空闲。",
    "gap_went_offline": "事发时骑手在两单之间，但其间曾下线，视为空闲。",
    "gap_before_first": "事发时骑手在线但当天尚未接单，视为空闲。",
    "gap_after_last": "事发时骑手已完成当天最后一单，此后未再接单，视为空闲。",
    "bridged": "其中约 {bridged} 分钟没有定位，但中断不超过 {max} 分钟且中断前后的位置相距不到 {r} 米（如在室内），按规则视为一直在原地；这一规则影响了结论。",
    "drift": "其中约 {drift} 分钟定位偏离原地后又回到原处（{max} 分钟内回到 {r} 米内，偏离不超过 {far} 米，速度始终低于每秒 {v} 米，不是骑行），按规则视为定位漂移、骑手仍在原地；这一规则影响了结论。",
    "near_boundary": "注意：事发时间距阶段变化仅约 {s} 秒，时间记录的细小误差可能改变结论。",
    "skew": "骑手手机时钟与平台时钟相差约 {s} 秒（由 {n} 次取餐/送达的位置推算），定位时间已据此校正。",
    "loc_at": "事发时刻骑手的定位距报告的事发地点约 {d} 米。",
    "loc_unobserved": "事发时刻没有骑手的定位记录。",
    "loc_nearest": "当天骑手离报告地点最近的时刻是 {t}（约 {d} 米），{rel}。",
    "loc_nearest_within": "在证据时段内，骑手离报告地点最近的时刻是 {t}（约 {d} 米），{rel}。",
    "time_check": "报告的事发时间可能有误，相差约 {n} 分钟：骑手于 {t} 经过报告地点（约 {d} 米），{rel}；当时骑手{doing}，{cd}。结论仍按报告时间作出。",
    "time_check_other": "骑手于 {t} 也经过报告地点，{rel}；当时骑手{doing}，{cd}。两次经过与报告的吻合程度相近，仅凭轨迹无法确定指的是哪一次。",
    "loc_unseen": "骑手的定位在 {from} 至 {to} 之间中断，报告地点正在这两个定位点之间的路上（经过该地点比两点间直线多走约 {detour} 米）：骑手可能于 {t} 经过报告地点，{rel}，报告的时间与轨迹相符。",
    "time_check_unseen": "报告的事发时间可能有误，相差约 {n} 分钟：骑手的定位在 {from} 至 {to} 之间中断，报告地点正在这两个定位点之间的路上（经过该地点比两点间直线多走约 {detour} 米），按匀速行驶推算，骑手约于 {t} 经过报告地点，{rel}；当时骑手{doing}，{cd}。结论仍按报告时间作出。",
    "aftermath_connected": "事发时骑手处于两单之间的合理衔接阶段：上一单 {prev} 于 {ended} 结束，下一单 {next} 于 {accepted} 接单，间隔 {min} 分钟（不超过 {max} 分钟）；直到事发时一直在线，事发前没有在 {r} 米范围内停留 {dwell_min} 分钟以上（最长停留约 {certain} 分钟）。属于连续配送。",
    "aftermath_stay": "事发后骑手在事发地点停留{atleast} {stay} 分钟（{from} 起）：这是事故之后的停留，不计为休息。",
    "aftermath_stay_off": "事发后骑手在事发地点停留{atleast} {stay} 分钟（{from} 起），并于 {off} 下线：这是事故之后的停留和下线，不计为休息，也不影响“一直在线”。",
    "aftermath_stay_online": "事发后骑手在事发地点停留{atleast} {stay} 分钟（{from} 起，至 {to}），期间没有下线：这是事故之后的停留，不计为休息。",
    "aftermath_no_next": "上一单 {prev} 于 {ended} 结束，事发在其后 {since} 分钟；直到事发时骑手一直在线并在移动（事发前 5 分钟骑行约 {moved} 米，最长停留约 {certain} 分钟）。",
    "aftermath_undetermined": "上一单结束后 {max} 分钟内没有接下一单，而骑手在事发地点停了下来：仅凭轨迹和订单记录无法区分骑手是在前往下一单取餐还是准备收工回家，因此结论待定（不是“否”）。",
    "aftermath_settle": "可补充以下证据来判断：骑手对事发时去向的陈述、平台对其下一单的派单记录、目击者证言。",
}

_EN: dict[str, str] = {
    "no_data": "There are no orders, presence or GPS records for this rider: no finding is possible.",
    "delivering": "The rider was delivering: {platform} order {order} was picked up at {picked} and not yet delivered.",
    "at_merchant_event": "The rider was at the merchant: the platform records arrival for order {order} at {arrived}, before pickup.",
    "at_merchant_gps": "The rider was at the merchant: the platform sent no arrival event; GPS shows the rider within {r} m of order {order}'s merchant from {arrived}, before pickup.",
    "to_pickup": "The rider was on the way to a pickup: order {order} ({platform}) was accepted at {accepted} and the merchant not yet reached.",
    "after_previous": "The previous order {order} ended at {ended}, {min} minutes before the incident.",
    "offline": "The rider was offline on every platform, with no order in progress.",
    "gap_connected": "The rider was between consecutive orders: {prev} ended at {ended}, {next} was accepted at {accepted}, {min} minutes apart (at most {max}); he stayed online and never stayed within {r} m for {dwell_min} minutes or more (longest stay about {certain} min). This is continuous delivery.",
    "gap_dwelt": "The rider was between orders but stayed within {r} m for about {certain} minutes (from {dwell_at}), at least {dwell_min}: a break, not a connection between orders.",
    "gap_unobserved": "The rider was between orders ({prev} ended at {ended}, {next} accepted at {accepted}) but GPS is missing for part of that time, so a stay of {dwell_min} minutes or more cannot be ruled out (observed stay about {certain} min, possibly up to {possible} min): the data cannot decide.",
    "gap_gap_too_long": "The rider was between orders, but {min} minutes apart, more than {max}: idle.",
    "gap_went_offline": "The rider was between orders but went offline in between: idle.",
    "gap_before_first": "The rider was online but had not yet accepted an order that day: idle.",
    "gap_after_last": "The rider had finished the last order and accepted no other: idle.",
    "bridged": "About {bridged} min of it had no GPS, but each outage lasted at most {max} min and began and ended within {r} m of the same place (indoors, for example), so by rule it counts as time spent there; this rule decided the finding.",
    "drift": "For about {drift} min of it the GPS wandered off and came back (within {r} m, in at most {max} min, never more than {far} m away nor faster than {v} m/s: not a ride), so by rule it counts as GPS drift with the rider still there; this rule decided the finding.",
    "near_boundary": "Note: the incident is only about {s} s from a change of phase; a small error in the recorded time could change the finding.",
    "skew": "The rider's phone clock differs from the platform clock by about {s} s (from {n} pickups and deliveries); GPS times were corrected for it.",
    "loc_at": "At the reported time the rider's GPS was about {d} m from the reported place.",
    "loc_unobserved": "There is no GPS fix of the rider at the reported time.",
    "loc_nearest": "The rider came nearest to the reported place at {t} (about {d} m), {rel}.",
    "loc_nearest_within": "Within the evidence window, the rider came nearest to the reported place at {t} (about {d} m), {rel}.",
    "time_check": "The reported time may be off by about {n} minutes: the rider passed the reported place at {t} (about {d} m), {rel}; he was then {doing}, which {cd}. The finding above is still for the reported time.",
    "time_check_other": "He also passed the reported place at {t}, {rel}; he was then {doing}, which {cd}. Both passes fit the report about equally well: the track alone cannot tell which one is meant.",
    "loc_unseen": "The rider's GPS was silent from {from} to {to}, and the reported place lies on his way between those two fixes (going by it makes the ride between them about {detour} m longer than a straight line): he may have passed it at {t}, {rel}, so the reported time fits his track.",
    "time_check_unseen": "The reported time may be off by about {n} minutes: the rider's GPS was silent from {from} to {to}, and the reported place lies on his way between those two fixes (going by it makes the ride between them about {detour} m longer than a straight line); riding steadily he would have passed it at about {t}, {rel}; he was then {doing}, which {cd}. The finding above is still for the reported time.",
    "aftermath_connected": "The rider was between consecutive orders: {prev} ended at {ended}, {next} was accepted at {accepted}, {min} minutes apart (at most {max}); until the incident he stayed online and never stayed within {r} m for {dwell_min} minutes or more (longest stay about {certain} min). This is continuous delivery.",
    "aftermath_stay": "He stayed {atleast}{stay} min at the place of the fall from {from}, after the incident: not counted as a break.",
    "aftermath_stay_off": "He stayed {atleast}{stay} min at the place of the fall from {from} and went offline at {off}, after the incident: neither counts as a break or breaks \"online throughout\".",
    "aftermath_stay_online": "He stayed {atleast}{stay} min at the place of the fall from {from} until {to}, after the incident, and did not go offline: not counted as a break.",
    "aftermath_no_next": "The previous order {prev} ended at {ended}, {since} minutes before the incident; until the incident the rider was online and moving (about {moved} m ridden in the 5 minutes before it, longest stay about {certain} min).",
    "aftermath_undetermined": "No next order was accepted within {max} minutes of the previous one, and the rider stopped at the place of the incident: the feeds cannot tell a rider heading to the next pickup from one heading home, so the finding is undetermined (not \"no\").",
    "aftermath_settle": "What would settle it: the rider's statement of where he was heading, the platform's dispatch log for his next order, a witness.",
}

_DOING_ZH = {"to_pickup": "正在前往取餐", "at_merchant": "在商家处等餐", "delivering": "正在配送",
             "connecting": "处于两单之间的衔接阶段", "idle": "处于空闲状态（两单之间的休息或等待）",
             "offline": "处于下线状态", "insufficient_data": "所处阶段无法由数据判断"}
_DOING_EN = {"to_pickup": "on the way to a pickup", "at_merchant": "waiting at the merchant",
             "delivering": "delivering", "connecting": "between consecutive orders (connecting)",
             "idle": "idle (a break or a wait between orders)", "offline": "offline",
             "insufficient_data": "in a phase the data cannot decide"}

_TIME_KEYS = {"picked", "arrived", "accepted", "ended", "dwell_at", "t", "from", "to", "off"}


def render(says: list[Sentence], lang: str, fmt_time: Any) -> list[str]:
    table = _ZH if lang == "zh" else _EN
    out = []
    for key, vals in says:
        shown = {k: (_clock(fmt_time(v)) if k in _TIME_KEYS and isinstance(v, float) and math.isfinite(v) else
                     ("—" if v is None else v)) for k, v in vals.items()}
        if "rel" in vals:
            shown["rel"] = _relative(vals["rel"], lang)
        if "doing" in vals:
            shown["doing"] = _doing(vals["doing"], vals.get("order"), lang)
        if "cd" in vals:
            shown["cd"] = _verdict(vals["cd"], lang)
        if "atleast" in vals:  # the stay went on after the evidence window
            shown["atleast"] = ("至少" if vals["atleast"] else "约") if lang == "zh" else (
                "at least " if vals["atleast"] else "")
        out.append(table[key].format_map(_Blank(shown)))
    return out


def _relative(minutes: float | None, lang: str) -> str:
    """A signed difference from the reported time, in words: never "-7.5 minutes"."""
    if minutes is None:
        return "—"
    n = abs(minutes)
    if n < 0.05:
        return "与报告时间相同" if lang == "zh" else "at the reported time"
    if lang == "zh":
        return f"比报告时间{'早' if minutes < 0 else '晚'} {n:g} 分钟"
    unit = "minute" if n == 1 else "minutes"
    return f"{n:g} {unit} {'before' if minutes < 0 else 'after'} the reported time"


def _doing(phase: str, order: str | None, lang: str) -> str:
    text = (_DOING_ZH if lang == "zh" else _DOING_EN).get(phase, phase)
    if order and phase in ("to_pickup", "at_merchant", "delivering"):
        text += f"（订单 {order}）" if lang == "zh" else f" (order {order})"
    return text


def _verdict(cd: bool | None, lang: str) -> str:
    if cd is None:
        return "是否属于连续配送待定" if lang == "zh" else "may or may not count as continuous delivery: undetermined"
    if lang == "zh":
        return "属于连续配送" if cd else "不属于连续配送"
    return "counts as continuous delivery" if cd else "does not count as continuous delivery"


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"


def _clock(iso: str) -> str:
    """``HH:MM:SS`` out of an ISO 8601 local time: sentences say the time of day."""
    return iso[11:19] if len(iso) >= 19 and iso[10] == "T" else iso
