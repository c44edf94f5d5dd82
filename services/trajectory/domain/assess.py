"""The assessment of an incident: phase, why, how sure, and what a mediator can check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.geo import haversine_m, local_xy_m

from .clean import CleanReport, clean
from .clock import SkewEstimate, estimate_skew
from .model import Incident, Order, Params, Phase, RiderDay, Segment
from .motion import Grid, longest_dwell, resample, stops
from .phases import Timeline, build_timeline


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
        lc = location_check(a, inc, within)
        result["location_check"] = {k: (fmt_time(v) if k == "nearest_at" and v is not None else v) for k, v in lc.items()}
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


def location_check(a: DayAnalysis, inc: Incident, within: tuple[float, float] | None = None) -> dict[str, Any]:
    """How far the rider was from the reported place at the reported time, and when he came
    nearest to it: that day, or only among the fixes ``within`` (from, to) when given."""
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
    if t.size:
        x, y = local_xy_m(la, lo, lat, lon)  # exact enough to find the nearest fix
        i = int(np.argmin(x * x + y * y))
        out["nearest_at"] = float(t[i])
        out["nearest_distance_m"] = round(float(haversine_m(la[i], lo[i], lat, lon)), 1)
        out["minutes_from_reported"] = round((float(t[i]) - inc.at) / 60.0, 1)
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
            p, n = gap.prev, gap.next
            args = {"prev": p.order_id if p else None, "ended": gap.start, "next": n.order_id if n else None,
                    "accepted": gap.end, "min": round((gap.end - gap.start) / 60.0, 1) if np.isfinite(gap.end - gap.start) else None,
                    "max": round(params.max_connecting_gap_s / 60), "dwell_min": round(params.dwell_min_s / 60),
                    "r": round(params.dwell_radius_m)}
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
    if lc["nearest_at"] is not None:
        out.append(("loc_nearest" if within is None else "loc_nearest_within",
                    {"d": lc["nearest_distance_m"], "t": lc["nearest_at"], "min": lc["minutes_from_reported"]}))
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
    "loc_nearest": "当天骑手离报告地点最近的时刻是 {t}（约 {d} 米），与报告时间相差 {min} 分钟。",
    "loc_nearest_within": "在证据时段内，骑手离报告地点最近的时刻是 {t}（约 {d} 米），与报告时间相差 {min} 分钟。",
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
    "loc_nearest": "The rider came nearest to the reported place at {t} (about {d} m), {min} minutes from the reported time.",
    "loc_nearest_within": "Within the evidence window, the rider came nearest to the reported place at {t} (about {d} m), {min} minutes from the reported time.",
}

_TIME_KEYS = {"picked", "arrived", "accepted", "ended", "dwell_at", "t"}


def render(says: list[Sentence], lang: str, fmt_time: Any) -> list[str]:
    table = _ZH if lang == "zh" else _EN
    out = []
    for key, vals in says:
        shown = {k: (_clock(fmt_time(v)) if k in _TIME_KEYS and isinstance(v, float) and np.isfinite(v) else
                     ("—" if v is None else v)) for k, v in vals.items()}
        out.append(table[key].format_map(_Blank(shown)))
    return out


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"


def _clock(iso: str) -> str:
    """``HH:MM:SS`` out of an ISO 8601 local time: sentences say the time of day."""
    return iso[11:19] if len(iso) >= 19 and iso[10] == "T" else iso
