"""The trajectory service's message handlers: decode, call the store and the engine, encode.

Framework-free: they take a batch of :class:`shared.bus.Message` and something that publishes, so
the in-process runtime (:mod:`services.trajectory.entrypoints.worker`) and a faust agent (``take()`` a batch,
wrap the records as Messages, await the handler) call them alike. Blocking work (parsing, the
database, the engine) runs in a worker thread so the event loop keeps serving others.

Bad input never takes good input down with it: a message that cannot be read is handed to
``reject(message, reason)`` when the caller gives one (the runtime sends it to the dead-letter
topic), else the handler raises *after* storing the good ones, so that a bus that retries a
failed batch message by message dead-letters only the bad message (storing is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import polars as pl
from sqlalchemy.exc import OperationalError

from services.trajectory.adapters.feeds import (
    GpsColumns,
    Problem,
    read_gps,
    read_gps_messages,
    read_platform,
    read_platform_messages,
)
from services.trajectory.adapters.store import FeedStore, Progress
from services.trajectory.domain.assess import DayAnalysis, analyse, assess
from services.trajectory.domain.model import Incident, Params, RiderDay
from shared import topics
from shared.bus import Headers, Message
from shared.events import (
    AssessmentFailed,
    AssessmentReady,
    AssessmentRequested,
    Envelope,
    EventError,
    decode,
)
from shared.timeutil import DEFAULT_TZ, iso_local

logger = logging.getLogger(__name__)

PRODUCER = "trajectory"
MAX_ID_LEN = 200  # rider ids longer than this are not ids
DAY_MARGIN_S = 12 * 3600.0  # the rider-day read for an assessment: the incident's local day ± this
CUSTOMER_DECIMALS = 3  # a customer's address is a third party's: shared to about 100 m

Reject = Callable[[Message, str], Awaitable[None]]


class Publisher(Protocol):
    async def publish(self, topic: str, key: str, value: bytes, headers: Headers = ()) -> None: ...


class RejectedMessages(ValueError):
    """Some messages of a batch could not be read (the rest were handled)."""

    def __init__(self, bad: list[tuple[Message, str]]) -> None:
        self.bad = bad
        first = bad[0]
        super().__init__(f"{len(bad)} unreadable message(s); first at {first[0].topic}@{first[0].offset}: {first[1]}")


@dataclass(frozen=True)
class FeedBatchResult:
    messages: int
    pings_stored: int  # new rows: a ping already stored is not counted again
    events_stored: int
    rejected: int


# ---------------------------------------------------------------- feeds

async def handle_feed_batch(store: FeedStore, messages: Sequence[Message], *, tz: str = DEFAULT_TZ,
                            reject: Reject | None = None, now: float | None = None,
                            scope: str | None = None) -> FeedBatchResult:
    """Store a batch of feed messages (``rider.gps`` and ``rider.platform-events``, one contract
    line each, in any mix) in one unit of work. Unreadable messages go to ``reject`` or, without
    one, make the handler raise :class:`RejectedMessages` once the good ones are stored."""
    result, bad = await asyncio.to_thread(ingest, store, messages, tz=tz, now=now, scope=scope)
    await _settle(bad, reject)
    return result


def positions(messages: Sequence[Message]) -> Progress:
    """The offset after the last of ``messages`` in each (topic, partition) they come from."""
    out: Progress = {}
    for m in messages:
        if m.offset >= 0:
            key = (m.topic, m.partition)
            out[key] = max(out.get(key, 0), m.offset + 1)
    return out


def ingest(store: FeedStore, messages: Sequence[Message], *, tz: str = DEFAULT_TZ,
           now: float | None = None, scope: str | None = None) -> tuple[FeedBatchResult, list[tuple[Message, str]]]:
    """The blocking part of :func:`handle_feed_batch`: parse, validate, store. Returns the bad
    messages with their reasons. ``scope``: record in the same transaction how far in each
    partition the batch reaches (bad messages included: they are handled, by refusal)."""
    gps_msgs = [m for m in messages if m.topic == topics.GPS]
    plat_msgs = [m for m in messages if m.topic == topics.PLATFORM_EVENTS]
    bad: list[tuple[Message, str]] = [(m, f"not a feed topic: {m.topic!r}") for m in messages
                                      if m.topic not in (topics.GPS, topics.PLATFORM_EVENTS)]
    gps: GpsColumns | None = None
    if gps_msgs:
        gps, gps_bad = read_pings([m.value for m in gps_msgs], tz)
        bad += [(gps_msgs[i], reason) for i, reason in gps_bad]
    events = []
    if plat_msgs:
        parsed, problems = read_platform_messages([m.value for m in plat_msgs], tz, topics.PLATFORM_EVENTS)
        bad += [(plat_msgs[p.line - 1], p.message) for p in problems]
        for ev, t in parsed:
            if len(ev.rider_id) > MAX_ID_LEN or len(ev.event_id or "") > MAX_ID_LEN:
                bad.append((plat_msgs[ev.line - 1], "rider_id or event_id too long"))
            else:
                events.append((ev, t, bytes(plat_msgs[ev.line - 1].value).strip()))
    received = time.time() if now is None else now
    progress = positions(messages) if scope is not None else None
    stored = _retrying(lambda: store.add(gps=gps, events=events, received_at=received, progress=progress,
                                         scope=scope or ""))
    return FeedBatchResult(len(messages), stored.pings, stored.events, len(bad)), bad


# ---------------------------------------------------------------- uploads (POST /feeds/*)

@dataclass(frozen=True)
class Intake:
    """What an upload did: lines stored now, lines stored before (or repeated in the upload), and
    the lines refused with their number and why. ``accepted`` counts both stored kinds."""

    accepted: int
    duplicates: int
    rejected: list[Problem]
    spans: dict[str, tuple[float, float]]  # rider -> first and last time of what the upload held


def take_gps(store: FeedStore, body: bytes, *, tz: str = DEFAULT_TZ, now: float | None = None) -> Intake:
    """An NDJSON upload of GPS pings (DATA_CONTRACT §2), parsed once and stored before this returns:
    whatever is asked of the store afterwards sees every accepted line."""
    gps, problems = read_gps(body, "gps", tz)
    long_id = gps.rider.str.len_chars().to_numpy() > MAX_ID_LEN
    if long_id.any():
        problems += [Problem("gps", int(n), "rider_id too long") for n in gps.line[long_id]]
        gps = _keep(gps, ~long_id)
    stored = _retrying(lambda: store.add(gps=gps, received_at=now, exact=True))
    n = int(gps.t.size)
    spans = pl.DataFrame({"r": gps.rider, "t": gps.t}).group_by("r").agg(pl.col("t").min().alias("a"),
                                                                         pl.col("t").max().alias("b"))
    return Intake(n, n - stored.pings, sorted(problems, key=lambda p: p.line),
                  {r: (a, b) for r, a, b in spans.iter_rows()})


def take_platform(store: FeedStore, body: bytes, *, tz: str = DEFAULT_TZ, now: float | None = None) -> Intake:
    """An NDJSON upload of platform events (DATA_CONTRACT §1), parsed once and stored before this
    returns. An event is its (platform, rider, event id): the same triple again is a duplicate."""
    parsed, problems = read_platform(body, "platform-events", tz)
    lines = body.split(b"\n")
    events = []
    for ev, t in parsed:
        if len(ev.rider_id) > MAX_ID_LEN or len(ev.event_id or "") > MAX_ID_LEN:
            problems.append(Problem("platform-events", ev.line, "rider_id or event_id too long"))
        else:
            events.append((ev, t, lines[ev.line - 1].strip()))
    stored = _retrying(lambda: store.add(events=events, received_at=now))
    spans: dict[str, tuple[float, float]] = {}
    for ev, t, _ in events:
        a, b = spans.get(ev.rider_id, (t, t))
        spans[ev.rider_id] = (min(a, t), max(b, t))
    return Intake(len(events), len(events) - stored.events, sorted(problems, key=lambda p: p.line), spans)


def read_pings(values: Sequence[bytes], tz: str) -> tuple[GpsColumns, list[tuple[int, str]]]:
    """``rider.gps`` message values as columns, and the index and reason of each unreadable one."""
    gps, problems = read_gps_messages(values, tz, topics.GPS)
    bad = [(p.line - 1, p.message) for p in problems]
    long_id = gps.rider.str.len_chars().to_numpy() > MAX_ID_LEN
    if long_id.any():
        bad += [(int(n) - 1, "rider_id too long") for n in gps.line[long_id]]
        gps = _keep(gps, ~long_id)
    return gps, bad


def _keep(cols: GpsColumns, ok: np.ndarray) -> GpsColumns:
    return GpsColumns(cols.rider.filter(pl.Series(ok)), cols.t[ok], cols.lat[ok], cols.lon[ok],
                      cols.accuracy[ok], cols.line[ok])


def _retrying(fn: Callable[[], Any], attempts: int = 3, pause_s: float = 0.5) -> Any:
    """A database that is busy or restarting gets a few tries before the batch fails."""
    for k in range(attempts):
        try:
            return fn()
        except OperationalError:
            if k == attempts - 1:
                raise
            logger.warning("feed store busy or away; retrying in %.1f s", pause_s * 2**k, exc_info=True)
            time.sleep(pause_s * 2**k)
    raise AssertionError("unreachable")


async def _settle(bad: list[tuple[Message, str]], reject: Reject | None) -> None:
    if not bad:
        return
    for m, reason in bad:
        logger.warning("unreadable message on %s at offset %s (key %r): %s", m.topic, m.offset, m.key, reason)
    if reject is None:
        raise RejectedMessages(bad)
    for m, reason in bad:
        await reject(m, reason)


# ---------------------------------------------------------------- assessment requests

async def handle_assessment_requests(store: FeedStore, bus: Publisher, messages: Sequence[Message],
                                     params: Params, tz: str = DEFAULT_TZ, *,
                                     reject: Reject | None = None) -> int:
    """Answer each ``AssessmentRequested`` on ``trajectory.assessment-ready`` (key ``case_id``):
    ``AssessmentReady``, or ``AssessmentFailed`` with a reason. A repeated ``request_id`` gets the
    very envelope it got the first time. Returns how many requests were answered."""
    bad: list[tuple[Message, str]] = []
    answered = 0
    for m in messages:
        try:
            req = decode(Envelope.from_bytes(m.value))
            if not isinstance(req, AssessmentRequested):
                raise EventError(f"expected AssessmentRequested, got {type(req).__name__}")
        except EventError as e:
            bad.append((m, str(e)[:500]))
            continue
        reply = await asyncio.to_thread(answer, store, req, params, tz)
        await bus.publish(topics.ASSESSMENT_READY, req.case_id, reply)
        answered += 1
    await _settle(bad, reject)
    return answered


def answer(store: FeedStore, req: AssessmentRequested, params: Params, tz: str = DEFAULT_TZ) -> bytes:
    """The reply envelope to a request, computed once per ``request_id`` and kept."""
    stored = store.reply_for(req.request_id)
    if stored is not None:
        logger.info("request %s answered before; sending the same answer", req.request_id)
        return stored
    ev = assess_request(store, req, params, tz)
    env = ev.envelope(key=req.case_id, producer=PRODUCER)
    return store.save_reply(request_id=req.request_id, case_id=req.case_id, rider_id=req.rider_id,
                            type_=env.type, envelope=env.to_bytes())


def incident_time(req: AssessmentRequested, tz: str) -> float:
    at = req.incident_at if req.incident_at.tzinfo is not None else req.incident_at.replace(tzinfo=ZoneInfo(tz))
    return at.timestamp()


def day_window(t: float, tz: str, margin_s: float = DAY_MARGIN_S) -> tuple[float, float]:
    """The incident's local calendar day, widened by ``margin_s`` each side (night shifts)."""
    zone = ZoneInfo(tz)
    local = datetime.fromtimestamp(t, zone)
    start = datetime(local.year, local.month, local.day, tzinfo=zone)
    end = start + timedelta(days=1)  # wall-clock arithmetic: the next local midnight
    return start.timestamp() - margin_s, end.timestamp() + margin_s


def assess_request(store: FeedStore, req: AssessmentRequested, params: Params,
                   tz: str = DEFAULT_TZ) -> AssessmentReady | AssessmentFailed:
    """Freeze the rider's feeds around the incident, read the rider-day, assess, and cut the
    evidence to the window: the trajectory is never shared beyond ± ``window_min``."""
    t = incident_time(req, tz)
    hold = req.freeze_hours * 3600.0
    store.freeze(req.rider_id, t - hold, t + hold, req.case_id)
    d0, d1 = day_window(t, tz)
    day = store.load_rider(req.rider_id, d0, d1)
    if not day.orders and not day.presence and len(day.gps) == 0:
        reason = (f"no feeds of rider {req.rider_id} between {iso_local(d0, tz)} and {iso_local(d1, tz)}: "
                  "nothing to assess")
        logger.info("request %s: %s", req.request_id, reason)
        return AssessmentFailed(request_id=req.request_id, case_id=req.case_id, reason=reason)
    w = max(req.window_min, 0.0) * 60.0
    w0, w1 = t - w, t + w
    at_text = datetime.fromtimestamp(t, ZoneInfo(tz)).isoformat()
    inc = Incident(req.case_id, req.rider_id, t, at_text, req.location)
    try:
        analysis = analyse(day, params)
        # the nearest approach to the reported place is sought in the window only: a packet
        # must not say where the rider was at any other time of the day
        result = assess(analysis, inc, params, lambda x: iso_local(x, tz), within=(w0, w1))
        timeline, orders = timeline_in(analysis, w0, w1, tz), orders_in(day, analysis, w0, w1, tz)
        track = track_in(analysis, w0, w1)
        flags = flags_in(store, req.rider_id, w0, w1, tz)
        cite(result, flags, t, None if req.claimed_at is None else req.claimed_at.timestamp())
    except Exception as e:  # an engine fault must answer the case, not leave it waiting forever
        logger.exception("request %s: assessment failed", req.request_id)
        return AssessmentFailed(request_id=req.request_id, case_id=req.case_id,
                                reason=f"assessment error: {type(e).__name__}: {e}"[:500])
    return AssessmentReady(request_id=req.request_id, case_id=req.case_id, rider_id=req.rider_id,
                           assessment=_plain(result), timeline=timeline, orders=orders, track=track, window=(w0, w1),
                           gap_flags=[{k: v for k, v in f.items() if k not in ("start", "end", "flagged_epoch")}
                                      for f in flags])


# ---------------------------------------------------------------- evidence, cut to the window

def timeline_in(a: DayAnalysis, w0: float, w1: float, tz: str = DEFAULT_TZ) -> list[dict[str, Any]]:
    """The phase segments overlapping [w0, w1], clipped to it."""
    out = []
    for seg in a.timeline.segments:
        if seg.end <= w0 or seg.start >= w1:
            continue
        s, e = max(seg.start, w0), min(seg.end, w1)
        out.append({"start": s, "end": e, "start_at": iso_local(s, tz), "end_at": iso_local(e, tz),
                    "phase": seg.phase.value, "continuous_delivery": seg.phase.continuous_delivery,
                    "orders": list(seg.orders), "why": seg.why})
    return out


def orders_in(day: RiderDay, a: DayAnalysis, w0: float, w1: float, tz: str = DEFAULT_TZ) -> list[dict[str, Any]]:
    """The orders active at some instant of [w0, w1], as the platform recorded them (field names
    of the engine's ``Order``; epoch seconds, and ISO local time under ``*_at``), with the arrival
    at the merchant the engine found (``arrived_how``: event, gps, gps-geocode or none).
    The merchant's place is exact; the customer's is coarsened (a third party's address)."""
    out = []
    for o in day.orders:
        if o.accepted > w1 or o.end_or_inf < w0:
            continue
        arr = a.timeline.arrivals.get(o.order_id)
        arrived = arr.t if arr is not None else o.arrived
        row: dict[str, Any] = {"order_id": o.order_id, "platform": o.platform}
        for name, v in (("accepted", o.accepted), ("arrived", arrived), ("picked_up", o.picked_up), ("ended", o.ended)):
            row[name] = v
            row[name + "_at"] = None if v is None else iso_local(v, tz)
        row["arrived_how"] = arr.how if arr is not None else ("event" if o.arrived is not None else "none")
        row["end_kind"] = o.end_kind
        row["merchant"] = None if o.merchant is None else [round(o.merchant[0], 6), round(o.merchant[1], 6)]
        row["customer"] = None if o.customer is None else [round(o.customer[0], CUSTOMER_DECIMALS),
                                                          round(o.customer[1], CUSTOMER_DECIMALS)]
        out.append(row)
    return out


PHASE_ZH = {"connecting": "两单之间的合理衔接", "idle": "空闲", "insufficient_data": "待定（数据不足）"}


def flags_in(store: FeedStore, rider_id: str, w0: float, w1: float, tz: str = DEFAULT_TZ) -> list[dict[str, Any]]:
    """The rider's gaps inside [w0, w1] as they were flagged when they closed, clipped to it."""
    return [{"from": iso_local(max(f.start, w0), tz), "to": iso_local(min(f.end, w1), tz), "phase": f.phase.value,
             "continuous_delivery": f.continuous_delivery, "why": f.why,
             "flagged_at": iso_local(r.flagged_at, tz), "previous_order": f.previous_order,
             "next_order": f.next_order, "start": f.start, "end": f.end, "flagged_epoch": r.flagged_at}
            for r in store.flags(rider_id, w0, w1) for f in (r.flag,)]


def cite(result: dict[str, Any], flags: list[dict[str, Any]], t: float, claimed_at: float | None) -> None:
    """Name, in the answer's explanation, the flag recorded for the gap the incident falls in: a
    judgement made when the orders closed, before anyone had a reason to argue (said so when it
    was made before the case was opened)."""
    flag = next((f for f in flags if f["start"] <= t <= f["end"]), None)
    if flag is None:
        return
    when = flag["flagged_at"].replace("T", " ")[:19]
    early = claimed_at is not None and flag["flagged_epoch"] < claimed_at
    result["gap_flag"] = {k: v for k, v in flag.items() if k not in ("start", "end", "flagged_epoch")}
    result["gap_flag"]["before_claim"] = early
    result.setdefault("explanation", []).append(
        f"该两单间隔在订单结束时已被系统标记为「{PHASE_ZH.get(flag['phase'], flag['phase'])}」"
        f"（标记时间 {when}{'，早于理赔申请' if early else ''}）。")
    result.setdefault("explanation_en", []).append(
        f"The system flagged this gap between orders as {flag['phase']} when the orders closed, at {when}"
        f"{', before any claim' if early else ''}.")


def track_in(a: DayAnalysis, w0: float, w1: float) -> list[tuple[float, float, float]]:
    """The cleaned fixes, on the platform clock, with w0 <= t <= w1: never one more."""
    sel = (a.track_t >= w0) & (a.track_t <= w1)
    return [(round(t, 3), round(la, 6), round(lo, 6)) for t, la, lo in
            zip(a.track_t[sel].tolist(), a.track_lat[sel].tolist(), a.track_lon[sel].tolist(), strict=True)
            if w0 <= round(t, 3) <= w1]


def _plain(obj: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe (no numpy scalars), as the batch command prints it."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))
    return out


__all__ = ["FeedBatchResult", "Intake", "take_gps", "take_platform", "Publisher", "Reject", "RejectedMessages", "answer", "assess_request", "day_window",
           "handle_assessment_requests", "handle_feed_batch", "incident_time", "ingest", "positions", "orders_in",
           "timeline_in", "track_in"]
