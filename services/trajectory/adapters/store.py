"""The trajectory service's durable feed store: GPS pings and platform events as received, evidence
holds, and the answers to assessment requests. SQLite by default, PostgreSQL in production; the
schema is created and upgraded by this service's own Alembic history (``migrate``), whose version
table is ``alembic_version_trajectory`` so that it can share a database with the other services.

Writes are one bulk statement per table and batch, never a round trip per ping. GPS fixes are
stored as columns, a row per rider, hour and batch (:class:`GpsChunk`): a replayed or backlogged
day costs a row and an index entry per few hundred fixes instead of one each, and a rider-day
loads in a few rows. A chunk delivered again (the same batch redelivered, a file ingested twice)
is stored once, by its digest; fixes delivered again in another batch are stored again and read
once (a fix is its rider, phone time, position and accuracy). Platform events go by ``INSERT ...
ON CONFLICT DO NOTHING``; an event's key is its ``(platform, rider_id, event_id)``, or for an event
without an id the SHA-256 of its canonical JSON.

Retention deletes what was *received* longer ago than the retention (so a replay of an old day
is kept as long as a live one), except inside the windows an evidence hold covers.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import polars as pl
import psycopg
from sqlalchemy import (
    BigInteger,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, SQLModel

from services.trajectory.adapters.feeds import GpsColumns, RawEvent, assemble
from services.trajectory.domain.gaps import Cause, ClosedGap, Flag
from services.trajectory.domain.model import Order, Phase, PresenceEvent, RiderDay, Track
from shared.db import unit_of_work

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_trajectory"
TABLE_PREFIX = "trajectory_"
ORDER_LOOKAROUND_S = 6 * 3600.0  # an order overlapping a window has all its events this close to it


# ---------------------------------------------------------------- tables

class GpsChunk(SQLModel, table=True):
    """A rider's GPS fixes within one hour (phone clock, ``hour = floor(t / 3600)``) that arrived in
    one batch: ``n`` fixes packed in ``data`` as little-endian float64 (t, lat, lon, accuracy) in
    time order, WGS-84 (converted at the edge), NaN where no accuracy was given. ``digest`` is an
    order-free hash of the fixes, so the same chunk stored twice is one row."""

    __tablename__ = "trajectory_gps_chunk"
    __table_args__ = (Index("ix_trajectory_gps_chunk_received_at", "received_at", postgresql_using="brin"),)
    rider_id: str = Field(primary_key=True, sa_type=String().with_variant(String(collation="C"), "postgresql"))
    hour: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False})
    digest: int = Field(primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False})
    t0: float  # the first and last fix's time
    t1: float
    n: int
    data: bytes = Field(sa_type=LargeBinary)
    received_at: float  # epoch s


class PlatformEvent(SQLModel, table=True):
    """One platform event (order lifecycle or presence) as received; places in WGS-84."""

    __tablename__ = "trajectory_platform_event"
    __table_args__ = (
        Index("ix_trajectory_platform_event_rider_t", "rider_id", "t"),
        Index("ix_trajectory_platform_event_received_at", "received_at"),
    )
    uid: str = Field(primary_key=True)  # 'id:["<platform>","<rider_id>","<event_id>"]' or "sha256:<hash of the canonical JSON>"
    rider_id: str
    event_id: str | None = None
    kind: str  # order | presence
    type: str
    t: float  # epoch s, platform clock
    platform: str
    order_id: str | None = None
    merchant_lat: float | None = None
    merchant_lon: float | None = None
    customer_lat: float | None = None
    customer_lon: float | None = None
    raw: str = Field(sa_type=Text)  # the line as received
    received_at: float


class EvidenceHold(SQLModel, table=True):
    """Feeds of ``rider_id`` are evidence for ``case_id``: its pings between ``t0`` and ``t1`` and its
    platform events between ``ev_t0`` and ``ev_t1`` (which covers every event of the orders that
    overlap the window, and the presence state at its start) are never purged."""

    __tablename__ = "trajectory_evidence_hold"
    __table_args__ = (
        UniqueConstraint("case_id", "rider_id", "t0", "t1", name="uq_trajectory_evidence_hold"),
        Index("ix_trajectory_evidence_hold_rider", "rider_id", "t0"),
    )
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True)
    rider_id: str
    t0: float
    t1: float
    ev_t0: float
    ev_t1: float
    created_at: float


class AssessmentReply(SQLModel, table=True):
    """The envelope answered to an assessment request, so that a repeated request gets it again."""

    __tablename__ = "trajectory_assessment_reply"
    request_id: str = Field(primary_key=True)
    case_id: str
    rider_id: str
    type: str  # AssessmentReady | AssessmentFailed
    envelope: str = Field(sa_type=Text)
    created_at: float = Field(index=True)


class GapRecord(SQLModel, table=True):
    """A gap between a rider's orders that the streaming tracker saw close, recorded before the
    platform events that closed it are acknowledged, and when it was flagged: a worker that dies
    in between leaves it for the next (``claim_gaps``), and a gap is flagged once whichever
    worker saw it close."""

    __tablename__ = "trajectory_gap"
    __table_args__ = (Index("ix_trajectory_gap_unflagged", "flagged_at", "recorded_at"),)
    rider_id: str = Field(primary_key=True)
    start: float = Field(primary_key=True)  # tA, platform clock
    end: float | None = None  # tB when the next order's accept closed it
    at: float  # event time at which it was known to be closed
    cause: str  # accepted | timeout | offline
    previous_order: str | None = None
    next_order: str | None = None
    recorded_at: float
    claimed_at: float | None = None  # a worker is classifying it (a lease)
    flagged_at: float | None = None  # GapFlagged published
    phase: str | None = None  # what the flag said (None: nothing to flag, the feeds that opened it not stored)
    why: str | None = None
    flag_end: float | None = None  # the gap's end as judged
    pings_seen: int | None = None  # the rider's fixes and platform events the judgement was made on
    events_seen: int | None = None


class FeedProgress(SQLModel, table=True):
    """Per Kafka feed partition, the offset after the last record whose batch is stored (or was
    refused): written in the batch's own transaction, so it never runs ahead of what is stored.
    ``scope``: the deployment's trajectory consumer group (``XJ_WORKER_GROUP``)."""

    __tablename__ = "trajectory_feed_progress"
    scope: str = Field(primary_key=True)
    topic: str = Field(primary_key=True)
    partition: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    next_offset: int = Field(sa_type=BigInteger)
    updated_at: float


TABLES = (GpsChunk.__table__, PlatformEvent.__table__, EvidenceHold.__table__, AssessmentReply.__table__,  # type: ignore[attr-defined]
          GapRecord.__table__, FeedProgress.__table__)  # type: ignore[attr-defined]
Progress = dict[tuple[str, int], int]  # (topic, partition) -> the offset after the last record handled
_GAP_COLS = ("rider_id", "start", '"end"', "at", "cause", "previous_order", "next_order", "recorded_at")


# ---------------------------------------------------------------- schema

def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring this service's tables up to ``revision`` (run at start-up; safe to run concurrently on
    PostgreSQL, where an advisory lock serialises workers starting together)."""
    _alembic(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Take this service's tables back to ``revision`` (``base``: none of them)."""
    _alembic(engine, "downgrade", revision)


def _alembic(engine: Engine, how: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7342001)"))
        cfg.attributes["connection"] = conn
        getattr(command, how)(cfg, revision)


# ---------------------------------------------------------------- ping keys

def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def ping_keys(lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64],
              accuracy: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """A 63-bit hash of each fix's position and accuracy: with the rider and the time, the identity
    of a ping (the same ping delivered twice has the same key)."""
    acc = np.where(np.isnan(accuracy), np.nan, accuracy)  # one NaN bit pattern
    h = np.full(lat.shape, 0x9E3779B97F4A7C15, dtype=np.uint64)
    for col in (lat, lon, acc):
        h = _mix(h ^ np.ascontiguousarray(col, dtype=np.float64).view(np.uint64))
    return (h >> np.uint64(1)).astype(np.int64)


def id_uid(platform: str, rider_id: str, event_id: str) -> str:
    """The key of an event that has an id: its platform, rider and id together (DATA_CONTRACT §1:
    ids are unique only within a platform and a rider), as a JSON array so no id can forge another."""
    return "id:" + orjson.dumps([platform, rider_id, event_id]).decode()


def fix_idents(t: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64],
               accuracy: npt.NDArray[np.float64]) -> npt.NDArray[np.uint64]:
    """A 64-bit hash of each fix with its time: with the rider, what makes two fixes the same."""
    return _mix(ping_keys(lat, lon, accuracy).view(np.uint64) ^ np.ascontiguousarray(t, np.float64).view(np.uint64))


def event_uid(ev: RawEvent, raw: bytes) -> str:
    if ev.event_id is not None:
        return id_uid(ev.platform, ev.rider_id, ev.event_id)
    try:
        canonical = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = raw
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


# ---------------------------------------------------------------- the store

@dataclass(frozen=True)
class Stored:
    pings: int  # new rows (duplicates of stored rows not counted)
    events: int


@dataclass(frozen=True)
class RecordedFlag:
    """A gap's flag as the trajectory service recorded it when it judged the gap."""

    flag: Flag
    flagged_at: float  # wall clock
    pings_seen: int
    events_seen: int


@dataclass(frozen=True)
class Compacted:
    groups: int  # rider-hours merged into a chunk each
    chunks: int  # chunks they were


@dataclass(frozen=True)
class Purged:
    pings: int
    events: int
    replies: int


_EVENT_COLS = ("uid", "rider_id", "event_id", "kind", "type", "t", "platform", "order_id",
               "merchant_lat", "merchant_lon", "customer_lat", "customer_lon", "raw", "received_at")


def _insert_sql(conn: Connection, table: str, cols: Sequence[str]) -> str:
    ph = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([ph] * len(cols))}) "
            "ON CONFLICT DO NOTHING")


def _bulk(conn: Connection, table: str, cols: Sequence[str], rows: list[tuple[Any, ...]]) -> int:
    if not rows:
        return 0
    result = conn.exec_driver_sql(_insert_sql(conn, table, cols), rows)
    return max(int(result.rowcount), 0)


FIX = np.dtype([("t", "<f8"), ("lat", "<f8"), ("lon", "<f8"), ("accuracy", "<f8")])  # a fix in a chunk
HOUR_S = 3600.0
CHUNK_COLS = ("rider_id", "hour", "digest", "t0", "t1", "n", "data", "received_at")


@dataclass(frozen=True)
class Chunks:
    """:class:`GpsChunk` rows as columns; chunk ``k``'s fixes are ``fixes[start[k]:start[k] + n[k]]``."""

    rider: list[str]
    hour: npt.NDArray[np.int64]
    digest: npt.NDArray[np.int64]
    t0: npt.NDArray[np.float64]
    t1: npt.NDArray[np.float64]
    n: npt.NDArray[np.int64]
    received_at: npt.NDArray[np.float64]
    fixes: npt.NDArray[np.void]
    start: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.rider)

    def rows(self) -> list[tuple[Any, ...]]:
        """As tuples of ``CHUNK_COLS``."""
        data, w = self.fixes.tobytes(), FIX.itemsize
        blobs = [data[a * w:(a + k) * w] for a, k in zip(self.start.tolist(), self.n.tolist(), strict=True)]
        return list(zip(self.rider, self.hour.tolist(), self.digest.tolist(), self.t0.tolist(), self.t1.tolist(),
                        self.n.tolist(), blobs, self.received_at.tolist(), strict=True))


def pack(gps: GpsColumns, received_at: float | npt.NDArray[np.float64]) -> Chunks:
    """Validated fixes as :class:`GpsChunk` rows: grouped by rider and hour, repeats within the
    batch dropped, each chunk in time order. Vectorised: no Python step per fix.
    ``received_at``: one time for all, or one per fix (a chunk then takes the latest of its fixes')."""
    acc = np.where(np.isnan(gps.accuracy), np.nan, gps.accuracy)  # one NaN bit pattern
    ident = fix_idents(gps.t, gps.lat, gps.lon, acc)
    codes = gps.rider.cast(pl.Categorical).to_physical().to_numpy()
    hour = np.floor(gps.t / HOUR_S).astype(np.int64)
    order = np.lexsort((ident, gps.t, hour, codes))
    c, h, i = codes[order], hour[order], ident[order]
    new_chunk = np.r_[True, (c[1:] != c[:-1]) | (h[1:] != h[:-1])][: order.size]
    first = new_chunk | np.r_[True, i[1:] != i[:-1]][: order.size]  # a repeat within the batch sits next to itself
    order, new_chunk, i = order[first], new_chunk[first], i[first]
    starts = np.flatnonzero(new_chunk)
    sizes = np.diff(np.r_[starts, order.size]).astype(np.int64)
    digests = (_mix(np.add.reduceat(i, starts) ^ sizes.astype(np.uint64)) >> np.uint64(1)).astype(np.int64) \
        if starts.size else np.empty(0, np.int64)
    fixes = np.empty(order.size, dtype=FIX)
    fixes["t"], fixes["lat"], fixes["lon"], fixes["accuracy"] = gps.t[order], gps.lat[order], gps.lon[order], acc[order]
    if np.ndim(received_at) == 0:
        at = np.full(starts.size, float(received_at))
    else:
        at = np.maximum.reduceat(np.asarray(received_at, dtype=np.float64)[order], starts) \
            if starts.size else np.empty(0)
    return Chunks(gps.rider.gather(order[starts]).to_list(), hour[order[starts]], digests, fixes["t"][starts],
                  fixes["t"][starts + sizes - 1], sizes, at, fixes, starts.astype(np.int64))


_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_MID = np.dtype([("l0", ">i4"), ("hour", ">i8"), ("l1", ">i4"), ("digest", ">i8"), ("l2", ">i4"), ("t0", ">f8"),
                 ("l3", ">i4"), ("t1", ">f8"), ("l4", ">i4"), ("n", ">i4"), ("ldata", ">i4")])  # after rider_id
_TAIL = np.dtype([("l", ">i4"), ("received_at", ">f8")])  # after data


def _binary_copy(ch: Chunks) -> bytes:
    """The chunks in PostgreSQL's binary COPY format (columns ``CHUNK_COLS``), built by numpy
    without a Python step per row: each row is the field count, the rider id, the fixed-size
    fields, the fixes as they lie in ``ch.fixes`` and the receipt time, each field after its length."""
    m, w = len(ch), FIX.itemsize
    names = "".join(ch.rider).encode()
    lens = np.fromiter((len(r.encode()) for r in ch.rider), dtype=np.int64, count=m)
    dlen = ch.n * w
    row = 2 + 4 + lens + _MID.itemsize + dlen + _TAIL.itemsize
    at = len(_COPY_HEADER) + np.concatenate(([0], np.cumsum(row)[:-1])).astype(np.int64)
    buf = np.empty(len(_COPY_HEADER) + int(row.sum()) + 2, dtype=np.uint8)

    def put(where: npt.NDArray[np.int64], values: npt.NDArray[Any]) -> None:
        k = values.dtype.itemsize
        buf[where[:, None] + np.arange(k)] = values.view(np.uint8).reshape(m, k)

    def spread(where: npt.NDArray[np.int64], sizes: npt.NDArray[np.int64], flat: bytes) -> None:
        before = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        buf[np.repeat(where - before, sizes) + np.arange(int(sizes.sum()))] = np.frombuffer(flat, dtype=np.uint8)

    buf[: len(_COPY_HEADER)] = np.frombuffer(_COPY_HEADER, dtype=np.uint8)
    head = np.empty(m, dtype=[("fields", ">i2"), ("l", ">i4")])
    head["fields"], head["l"] = len(CHUNK_COLS), lens
    put(at, head)
    spread(at + 6, lens, names)
    mid = np.empty(m, dtype=_MID)
    mid["l0"] = mid["l1"] = mid["l2"] = mid["l3"] = 8
    mid["l4"] = 4
    mid["hour"], mid["digest"], mid["t0"], mid["t1"], mid["n"], mid["ldata"] = ch.hour, ch.digest, ch.t0, ch.t1, ch.n, dlen
    put(at + 6 + lens, mid)
    spread(at + 6 + lens + _MID.itemsize, dlen, ch.fixes.tobytes())  # chunk k's fixes follow chunk k-1's
    tail = np.empty(m, dtype=_TAIL)
    tail["l"], tail["received_at"] = 8, ch.received_at
    put(at + 6 + lens + _MID.itemsize + dlen, tail)
    buf[-2:] = 0xFF  # the trailer: a field count of -1
    return buf.tobytes()


def _hour(t: float) -> int:
    return int(np.floor(t / HOUR_S)) if np.isfinite(t) else (1 << 62) * (1 if t > 0 else -1)


def _trim_to_holds(conn: Connection, rows: Sequence[Any]) -> int:
    """Chunks (rider, hour, digest, data) that holds cover in part: keep only the held fixes.
    Fixes deleted."""
    out, spans = 0, {}
    for rider, hour, digest, data in rows:
        if rider not in spans:
            spans[rider] = conn.execute(text("SELECT t0, t1 FROM trajectory_evidence_hold WHERE rider_id = :r"),
                                        {"r": rider}).all()
        fixes = np.frombuffer(data, dtype=FIX)
        keep = np.zeros(fixes.size, dtype=bool)
        for a, b in spans[rider]:
            keep |= (fixes["t"] >= a) & (fixes["t"] <= b)
        if keep.all():
            continue
        out += int(fixes.size - keep.sum())
        where, key = "WHERE rider_id = :r AND hour = :h AND digest = :k", {"r": rider, "h": hour, "k": digest}
        if not keep.any():  # the hold falls between two of its fixes
            conn.execute(text(f"DELETE FROM trajectory_gps_chunk {where}"), key)
            continue
        kept = fixes[keep]
        conn.execute(text(f"UPDATE trajectory_gps_chunk SET data = :d, n = :n, t0 = :a, t1 = :b {where}"),
                     {"d": kept.tobytes(), "n": int(kept.size), "a": float(kept["t"][0]), "b": float(kept["t"][-1]), **key})
    return out


def _merge(conn: Connection, groups: Sequence[tuple[str, int]]) -> tuple[int, int]:
    """Merge each (rider, hour)'s chunks into one. (rider-hours merged, chunks they were)."""
    table = GpsChunk.__table__  # type: ignore[attr-defined]
    by: dict[tuple[str, int], list[tuple[int, bytes, float]]] = {}
    for r in conn.execute(select(table.c.rider_id, table.c.hour, table.c.digest, table.c.data, table.c.received_at)
                          .where(tuple_(table.c.rider_id, table.c.hour).in_(groups))):
        by.setdefault((r[0], int(r[1])), []).append((int(r[2]), r[3], float(r[4])))
    by = {g: rows for g, rows in by.items() if len(rows) > 1}
    if not by:
        return 0, 0
    riders: list[str] = []
    parts: list[npt.NDArray[np.void]] = []
    received: list[npt.NDArray[np.float64]] = []
    for (rider, _), rows in by.items():
        fixes = unpack([d for _, d, _ in rows])
        riders += [rider] * fixes.size
        parts.append(fixes)
        received.append(np.full(fixes.size, max(at for _, _, at in rows)))
    fixes = np.concatenate(parts)
    gps = GpsColumns(pl.Series(riders, dtype=pl.String), fixes["t"].copy(), fixes["lat"].copy(), fixes["lon"].copy(),
                     fixes["accuracy"].copy(), np.arange(fixes.size))
    conn.execute(text("DELETE FROM trajectory_gps_chunk WHERE rider_id = :r AND hour = :h AND digest = :k"),
                 [{"r": rider, "h": hour, "k": d} for (rider, hour), rows in by.items() for d, _, _ in rows])
    insert_chunks(conn, pack(gps, np.concatenate(received)))
    return len(by), sum(len(rows) for rows in by.values())


def unpack(blobs: Sequence[bytes], t0: float = -np.inf, t1: float = np.inf) -> npt.NDArray[np.void]:
    """The distinct fixes of a rider's chunks between ``t0`` and ``t1`` (inclusive), in time order."""
    fixes = np.frombuffer(b"".join(blobs), dtype=FIX)
    fixes = fixes[(fixes["t"] >= t0) & (fixes["t"] <= t1)]
    _, first = np.unique(fixes.view(f"V{FIX.itemsize}"), return_index=True)  # a fix stored twice is read once
    fixes = fixes[first]
    return fixes[np.argsort(fixes["t"], kind="stable")]


def _advance(conn: Connection, scope: str, progress: Progress, now: float) -> None:
    """Move the recorded positions forward (never back: a batch read again after a rebalance)."""
    top = "GREATEST" if conn.dialect.name == "postgresql" else "MAX"
    conn.execute(text(
        "INSERT INTO trajectory_feed_progress (scope, topic, partition, next_offset, updated_at) "
        "VALUES (:s, :t, :p, :o, :now) ON CONFLICT (scope, topic, partition) DO UPDATE SET "
        f"next_offset = {top}(trajectory_feed_progress.next_offset, excluded.next_offset), updated_at = :now"),
        [{"s": scope, "t": t, "p": p, "o": o, "now": now} for (t, p), o in sorted(progress.items())])


def _unstored(conn: Connection, gps: GpsColumns, page: int = 500) -> GpsColumns:
    """The fixes of ``gps`` not stored yet (a fix is its rider, time, position and accuracy)."""
    hour = np.floor(gps.t / HOUR_S).astype(np.int64)
    frame = pl.DataFrame({"rider": gps.rider, "hour": hour})
    pairs = [tuple(r) for r in frame.unique().iter_rows()]
    stored: dict[str, list[bytes]] = {}
    for k in range(0, len(pairs), page):
        rows = conn.execute(select(GpsChunk.rider_id, GpsChunk.data).where(  # type: ignore[call-overload]
            tuple_(GpsChunk.rider_id, GpsChunk.hour).in_(pairs[k:k + page]))).all()
        for rider, data in rows:
            stored.setdefault(rider, []).append(data)
    if not stored:
        return gps
    acc = np.where(np.isnan(gps.accuracy), np.nan, gps.accuracy)
    ident = fix_idents(gps.t, gps.lat, gps.lon, acc)
    riders = gps.rider.to_numpy()
    keep = np.ones(gps.t.size, dtype=bool)
    for rider, blobs in stored.items():
        mine = riders == rider
        old = np.frombuffer(b"".join(blobs), dtype=FIX)
        seen = fix_idents(old["t"], old["lat"], old["lon"], old["accuracy"])
        keep[mine] = ~np.isin(ident[mine], seen)
    if keep.all():
        return gps
    return GpsColumns(gps.rider.filter(pl.Series(keep)), gps.t[keep], gps.lat[keep], gps.lon[keep],
                      gps.accuracy[keep], gps.line[keep])


def insert_chunks(conn: Connection, chunks: Chunks) -> int:
    """Store chunks; one stored already is skipped. Fixes in the chunks written. On PostgreSQL by
    binary COPY, or, when some are stored already (a redelivered batch), through a temporary table
    and ``INSERT ... ON CONFLICT DO NOTHING``; on SQLite through a temporary table."""
    if not len(chunks):
        return 0
    cols = ", ".join(CHUNK_COLS)
    if conn.dialect.name != "postgresql":  # SQLite: through a temporary table, to learn which were new
        conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS trajectory_chunk_in AS "
                             "SELECT * FROM trajectory_gps_chunk WHERE 0")
        conn.exec_driver_sql(f"INSERT INTO trajectory_chunk_in ({cols}) VALUES ({', '.join('?' * len(CHUNK_COLS))})",
                             chunks.rows())
        new = conn.exec_driver_sql(f"INSERT INTO trajectory_gps_chunk ({cols}) SELECT {cols} FROM trajectory_chunk_in "
                                   "WHERE true ON CONFLICT DO NOTHING RETURNING n").all()
        conn.exec_driver_sql("DELETE FROM trajectory_chunk_in")
        return sum(int(r[0]) for r in new)
    data = _binary_copy(chunks)
    cur = conn.connection.driver_connection.cursor()  # psycopg 3, inside the unit of work's transaction

    def copy(table: str) -> None:
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT binary)") as cp:
            cp.write(data)

    try:
        try:
            with conn.begin_nested():
                copy("trajectory_gps_chunk")
            return int(chunks.n.sum())
        except psycopg.errors.UniqueViolation:
            pass  # some are stored already: rolled back to the savepoint, merged below
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS trajectory_chunk_in "
                    "(LIKE trajectory_gps_chunk INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
        copy("trajectory_chunk_in")
        cur.execute(f"INSERT INTO trajectory_gps_chunk ({cols}) SELECT {cols} FROM trajectory_chunk_in "
                    "ON CONFLICT DO NOTHING RETURNING n")
        return sum(int(r[0]) for r in cur.fetchall())
    finally:
        cur.close()


class FeedStore:
    """The trajectory service's repository. Every method is one unit of work of its own."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writing feeds

    def add(self, *, gps: GpsColumns | None = None,
            events: Sequence[tuple[RawEvent, float, bytes]] = (), received_at: float | None = None,
            exact: bool = False, progress: Progress | None = None, scope: str = "") -> Stored:
        """Store validated pings and platform events (each with its time and raw line) in one
        transaction; events and chunks already stored are skipped. ``Stored.pings``: the fixes
        in the chunks written (a fix redelivered in another batch is counted again, read once).
        ``exact``: fixes stored before are left out first, whatever batch they came in, so that
        ``Stored.pings`` counts exactly the new ones (a read of the batch's rider-hours: for
        uploads, not for the stream's hot path). ``progress``: the Kafka positions this batch
        reaches, recorded for ``scope`` in the same transaction (see :meth:`caught_up`)."""
        now = time.time() if received_at is None else received_at
        event_rows = [_event_row(ev, t, raw, now) for ev, t, raw in events]
        with unit_of_work(self.engine) as s:
            conn = s.connection()
            if gps is not None and exact:
                gps = _unstored(conn, gps)
            p = insert_chunks(conn, pack(gps, now)) if gps is not None and gps.t.size else 0
            e = _bulk(conn, "trajectory_platform_event", _EVENT_COLS, event_rows)
            if progress:
                _advance(conn, scope, progress, now)
        return Stored(p, e)

    def advance(self, scope: str, progress: Progress, *, now: float | None = None) -> None:
        """Record Kafka positions handled without a batch of their own to store with (a batch
        stored message by message)."""
        if progress:
            with unit_of_work(self.engine) as s:
                _advance(s.connection(), scope, progress, time.time() if now is None else now)

    def progress(self, scope: str) -> Progress:
        with unit_of_work(self.engine) as s:
            rows = s.connection().execute(text(
                "SELECT topic, partition, next_offset FROM trajectory_feed_progress WHERE scope = :s"),
                {"s": scope}).all()
        return {(r[0], int(r[1])): int(r[2]) for r in rows}

    def lagging(self, scope: str, ends: Progress) -> Progress:
        """Of the partitions' ``ends`` (the offset the next record will get), those not stored up
        to yet, with how far they are: empty once every record before them is stored or refused."""
        got = self.progress(scope)
        return {tp: end - got.get(tp, 0) for tp, end in ends.items() if got.get(tp, 0) < end}

    # -- reading a rider-day

    def load_rider(self, rider_id: str, t0: float, t1: float) -> RiderDay:
        """What the engine needs to judge ``rider_id`` between ``t0`` and ``t1``: the pings in the
        window (phone clock), every event of the orders that overlap it, the presence events in it
        and, per platform, the last one before it (the state at ``t0``)."""
        with unit_of_work(self.engine) as s:
            conn = s.connection()
            blobs = [r[0] for r in conn.execute(text(
                "SELECT data FROM trajectory_gps_chunk WHERE rider_id = :r AND hour >= :h0 AND hour <= :h1"),
                {"r": rider_id, "h0": _hour(t0), "h1": _hour(t1)})]
            order_rows, presence_rows = _event_rows(conn, rider_id, t0, t1)
        fixes = unpack(blobs, t0, t1)
        track = Track(fixes["t"].copy(), fixes["lat"].copy(), fixes["lon"].copy(), fixes["accuracy"].copy())
        orders, presence, _ = _assemble_window(rider_id, t0, t1, order_rows, presence_rows)
        return RiderDay(rider_id, orders, presence, track)

    # -- evidence holds and retention

    def freeze(self, rider_id: str, t0: float, t1: float, case_id: str, *, now: float | None = None) -> None:
        """Hold ``rider_id``'s feeds between ``t0`` and ``t1`` (inclusive) as evidence for
        ``case_id``: retention never deletes them, nor the platform events that ``load_rider``
        needs for that window (whole orders, the presence state at ``t0``). Holding the same window
        again changes nothing."""
        with unit_of_work(self.engine) as s:
            conn = s.connection()
            _, _, (e0, e1) = _assemble_window(rider_id, t0, t1, *_event_rows(conn, rider_id, t0, t1))
            _bulk(conn, "trajectory_evidence_hold",
                  ("case_id", "rider_id", "t0", "t1", "ev_t0", "ev_t1", "created_at"),
                  [(case_id, rider_id, float(t0), float(t1), e0, e1, time.time() if now is None else now)])

    def release(self, case_id: str) -> int:
        """Drop the holds of a closed case; its feeds then age out like any other. Rows released."""
        with unit_of_work(self.engine) as s:
            r = s.connection().execute(text("DELETE FROM trajectory_evidence_hold WHERE case_id = :c"), {"c": case_id})
            return max(int(r.rowcount), 0)

    def holds(self, rider_id: str | None = None) -> list[tuple[str, str, float, float]]:
        """(case_id, rider_id, t0, t1) of the current holds."""
        q = "SELECT case_id, rider_id, t0, t1 FROM trajectory_evidence_hold"
        args: dict[str, Any] = {}
        if rider_id is not None:
            q += " WHERE rider_id = :r"
            args["r"] = rider_id
        with unit_of_work(self.engine) as s:
            return [(r[0], r[1], float(r[2]), float(r[3])) for r in s.connection().execute(text(q + " ORDER BY id"), args)]

    def purge(self, older_than: float) -> Purged:
        """Delete feeds received before ``older_than`` (epoch s) that no hold covers, and the
        answers to requests made before it. A chunk partly inside a hold keeps just those fixes."""
        with unit_of_work(self.engine) as s:
            conn = s.connection()
            held = ("EXISTS (SELECT 1 FROM trajectory_evidence_hold h WHERE h.rider_id = trajectory_gps_chunk.rider_id "
                    "AND trajectory_gps_chunk.t0 <= h.t1 AND trajectory_gps_chunk.t1 >= h.t0)")
            pings = sum(int(r[0]) for r in conn.execute(text(
                f"DELETE FROM trajectory_gps_chunk WHERE received_at < :cut AND NOT {held} RETURNING n"),
                {"cut": older_than}))
            pings += _trim_to_holds(conn, conn.execute(text(
                f"SELECT rider_id, hour, digest, data FROM trajectory_gps_chunk WHERE received_at < :cut AND {held}"),
                {"cut": older_than}).all())
            r = conn.execute(text(
                "DELETE FROM trajectory_platform_event WHERE received_at < :cut AND NOT EXISTS ("
                "SELECT 1 FROM trajectory_evidence_hold h WHERE h.rider_id = trajectory_platform_event.rider_id "
                "AND trajectory_platform_event.t >= h.ev_t0 AND trajectory_platform_event.t <= h.ev_t1)"),
                {"cut": older_than})
            events = max(int(r.rowcount), 0)
            conn.execute(text("DELETE FROM trajectory_gap WHERE flagged_at IS NOT NULL AND recorded_at < :cut"),
                         {"cut": older_than})
            r = conn.execute(text("DELETE FROM trajectory_assessment_reply WHERE created_at < :cut"), {"cut": older_than})
            return Purged(pings, events, max(int(r.rowcount), 0))

    def compact(self, received_since: float, closed_before: float, *, limit: int = 2000) -> Compacted:
        """Merge the chunks of each rider-hour that got one since ``received_since`` and ended
        before ``closed_before`` (phone clock) into one chunk of its distinct fixes, received when
        the latest of them was. At live rates a batch holds a fix or two per rider, so a live
        hour arrives as hundreds of chunks; merged, it is one row. Chunks that arrive for the hour
        later are merged by a later run. Up to ``limit`` rider-hours a transaction."""
        groups = chunks = 0
        last = _hour(closed_before) - 1
        with unit_of_work(self.engine) as s:
            todo = [tuple(r) for r in s.connection().execute(text(
                "SELECT DISTINCT rider_id, hour FROM trajectory_gps_chunk WHERE received_at >= :since AND hour <= :last"),
                {"since": received_since, "last": last})]
        for k in range(0, len(todo), limit):
            with unit_of_work(self.engine) as s:
                g, c = _merge(s.connection(), todo[k:k + limit])
            groups, chunks = groups + g, chunks + c
        return Compacted(groups, chunks)

    def pings(self, rider_id: str | None = None) -> int:
        """Distinct fixes stored (of one rider, or of all), as ``load_rider`` reads them."""
        q, args = "SELECT rider_id, data FROM trajectory_gps_chunk", {}
        if rider_id is not None:
            q, args = q + " WHERE rider_id = :r", {"r": rider_id}
        by: dict[str, list[bytes]] = {}
        with unit_of_work(self.engine) as s:
            for r in s.connection().execute(text(q), args):
                by.setdefault(r[0], []).append(r[1])
        return sum(len(unpack(blobs)) for blobs in by.values())

    # -- gaps closed in the stream

    def record_gaps(self, gaps: Sequence[ClosedGap], *, now: float | None = None) -> int:
        """Record closed gaps; one recorded before (by this or another worker) is left as it is."""
        if not gaps:
            return 0
        at = time.time() if now is None else now
        with unit_of_work(self.engine) as s:
            return _bulk(s.connection(), "trajectory_gap", _GAP_COLS,
                         [(g.rider_id, g.start, g.end, g.at, g.cause.value, g.previous_order, g.next_order, at)
                          for g in gaps])

    def claim_gap(self, rider_id: str, start: float, *, lease_s: float, now: float | None = None) -> bool:
        """Take the gap to classify it, unless it is flagged or another worker holds it."""
        at = time.time() if now is None else now
        with unit_of_work(self.engine) as s:
            r = s.connection().execute(text(
                "UPDATE trajectory_gap SET claimed_at = :now WHERE rider_id = :r AND start = :s "
                "AND flagged_at IS NULL AND (claimed_at IS NULL OR claimed_at < :expired)"),
                {"now": at, "r": rider_id, "s": start, "expired": at - lease_s})
            return int(r.rowcount) == 1

    def claim_gaps(self, *, recorded_before: float, lease_s: float, limit: int = 500,
                   now: float | None = None) -> list[ClosedGap]:
        """Gaps recorded before ``recorded_before`` and never flagged (their worker died, or it is
        slow beyond its lease), taken to classify."""
        at = time.time() if now is None else now
        with unit_of_work(self.engine) as s:
            rows = s.connection().execute(text(
                "UPDATE trajectory_gap SET claimed_at = :now WHERE (rider_id, start) IN ("
                "  SELECT rider_id, start FROM trajectory_gap WHERE flagged_at IS NULL AND recorded_at < :before"
                "  AND (claimed_at IS NULL OR claimed_at < :expired) ORDER BY recorded_at LIMIT :n) "
                'RETURNING rider_id, start, "end", at, cause, previous_order, next_order'),
                {"now": at, "before": recorded_before, "expired": at - lease_s, "n": limit}).all()
        return [ClosedGap(r[0], float(r[1]), None if r[2] is None else float(r[2]), float(r[3]), Cause(r[4]), r[5], r[6])
                for r in rows]

    def mark_flagged(self, rider_id: str, start: float, *, flag: Flag | None = None, pings_seen: int | None = None,
                     events_seen: int | None = None, now: float | None = None) -> None:
        """The gap is flagged (``flag`` None: there was nothing to flag); what it said and saw is kept."""
        with unit_of_work(self.engine) as s:
            s.connection().execute(text(
                "UPDATE trajectory_gap SET flagged_at = :now, phase = :phase, why = :why, flag_end = :end, "
                "pings_seen = :pings, events_seen = :events WHERE rider_id = :r AND start = :s"),
                {"now": time.time() if now is None else now, "r": rider_id, "s": start,
                 "phase": None if flag is None else flag.phase.value, "why": None if flag is None else flag.why,
                 "end": None if flag is None else flag.end, "pings": pings_seen, "events": events_seen})

    def flags(self, rider_id: str, t0: float, t1: float) -> list[RecordedFlag]:
        """The flags recorded for ``rider_id``'s gaps overlapping [t0, t1], in time order."""
        with unit_of_work(self.engine) as s:
            rows = s.connection().execute(text(
                "SELECT start, flag_end, phase, why, previous_order, next_order, flagged_at, pings_seen, events_seen "
                "FROM trajectory_gap WHERE rider_id = :r AND phase IS NOT NULL AND start <= :t1 AND flag_end >= :t0 "
                "ORDER BY start"), {"r": rider_id, "t0": t0, "t1": t1}).all()
        return [RecordedFlag(Flag(rider_id, float(r[0]), float(r[1]), Phase(r[2]), r[3] or "", r[4], r[5]),
                             float(r[6]), int(r[7] or 0), int(r[8] or 0)) for r in rows]

    def unflagged(self, rider_id: str) -> set[float]:
        """Starts of the rider's recorded gaps not flagged yet."""
        with unit_of_work(self.engine) as s:
            return {float(r[0]) for r in s.connection().execute(text(
                "SELECT start FROM trajectory_gap WHERE rider_id = :r AND flagged_at IS NULL"), {"r": rider_id})}

    def recent_events(self, received_since: float) -> list[tuple[str, str, str, str, float, str | None]]:
        """(rider, kind, type, platform, t, order) of the platform events received since then, in
        time order: what a gap tracker needs to pick up where a stopped worker left off."""
        with unit_of_work(self.engine) as s:
            rows = s.connection().execute(text(
                "SELECT rider_id, kind, type, platform, t, order_id FROM trajectory_platform_event "
                "WHERE received_at >= :since ORDER BY t, uid"), {"since": received_since}).all()
        return [(r[0], r[1], r[2], r[3], float(r[4]), r[5]) for r in rows]

    # -- answers to assessment requests

    def reply_for(self, request_id: str) -> bytes | None:
        with unit_of_work(self.engine) as s:
            row = s.connection().execute(text(
                "SELECT envelope FROM trajectory_assessment_reply WHERE request_id = :q"), {"q": request_id}).first()
        return None if row is None else str(row[0]).encode()

    def save_reply(self, *, request_id: str, case_id: str, rider_id: str, type_: str, envelope: bytes,
                   now: float | None = None) -> bytes:
        """Record the answer to a request; if another worker answered it first, that answer wins
        and is returned (so every copy of a request gets one and the same envelope)."""
        with unit_of_work(self.engine) as s:
            conn = s.connection()
            _bulk(conn, "trajectory_assessment_reply",
                  ("request_id", "case_id", "rider_id", "type", "envelope", "created_at"),
                  [(request_id, case_id, rider_id, type_, envelope.decode(), time.time() if now is None else now)])
            row = conn.execute(text("SELECT envelope FROM trajectory_assessment_reply WHERE request_id = :q"),
                               {"q": request_id}).one()
        return str(row[0]).encode()

    def counts(self) -> dict[str, int]:
        """Rows per table (tests, health)."""
        with unit_of_work(self.engine) as s:
            conn = s.connection()
            return {t.name: int(conn.execute(text(f"SELECT COUNT(*) FROM {t.name}")).scalar_one()) for t in TABLES}


_EV_FIELDS = ("uid", "event_id", "kind", "type", "platform", "order_id", "t",
              "merchant_lat", "merchant_lon", "customer_lat", "customer_lon")
_EV_SELECT = ", ".join(_EV_FIELDS)
_EV_SELECT_E = ", ".join("e." + f for f in _EV_FIELDS)


def _event_row(ev: RawEvent, t: float, raw: bytes, now: float) -> tuple[Any, ...]:
    m, c = ev.merchant, ev.customer
    return (event_uid(ev, raw), ev.rider_id, ev.event_id, ev.kind, ev.type, float(t), ev.platform, ev.order_id,
            m[0] if m else None, m[1] if m else None, c[0] if c else None, c[1] if c else None,
            raw.decode("utf-8", "replace"), now)


def _event_rows(conn: Connection, rider_id: str, t0: float, t1: float) -> tuple[list[Any], list[Any]]:
    """The order events near [t0, t1] and the presence events in it or, per platform, last before it."""
    order_rows = conn.execute(text(
        f"SELECT {_EV_SELECT} FROM trajectory_platform_event "
        "WHERE rider_id = :r AND kind = 'order' AND t >= :a AND t <= :b"),
        {"r": rider_id, "a": t0 - ORDER_LOOKAROUND_S, "b": t1 + ORDER_LOOKAROUND_S}).all()
    presence_rows = conn.execute(text(
        f"SELECT {_EV_SELECT} FROM trajectory_platform_event "
        "WHERE rider_id = :r AND kind = 'presence' AND t >= :t0 AND t <= :t1 "
        f"UNION SELECT {_EV_SELECT_E} FROM trajectory_platform_event e JOIN ("
        "  SELECT platform, MAX(t) AS mt FROM trajectory_platform_event"
        "  WHERE rider_id = :r AND kind = 'presence' AND t < :t0 GROUP BY platform"
        ") m ON e.platform = m.platform AND e.t = m.mt "
        "WHERE e.rider_id = :r AND e.kind = 'presence'"), {"r": rider_id, "t0": t0, "t1": t1}).all()
    return list(order_rows), list(presence_rows)


def _assemble_window(rider_id: str, t0: float, t1: float, order_rows: list[Any], presence_rows: list[Any]
                     ) -> tuple[tuple[Order, ...], tuple[PresenceEvent, ...], tuple[float, float]]:
    """The orders overlapping [t0, t1] and the presence events, as the engine takes them, and the
    span of the platform events they are made of."""
    rows = sorted([*order_rows, *presence_rows], key=lambda r: (r[6], r[0]))
    events = [(_raw_event(i, rider_id, r), float(r[6])) for i, r in enumerate(rows, start=1)]
    orders_all, presence = assemble(events).get(rider_id, ((), ()))
    orders = tuple(o for o in orders_all if o.accepted <= t1 and o.end_or_inf >= t0)
    kept = {o.order_id for o in orders}
    times = [float(r[6]) for r in order_rows if r[5] in kept] + [float(r[6]) for r in presence_rows]
    return orders, presence, (min([t0, *times]), max([t1, *times]))


def _raw_event(line: int, rider_id: str, r: Any) -> RawEvent:
    uid, event_id, kind, typ, platform, order_id, t, mla, mlo, cla, clo = r
    return RawEvent(line, event_id if event_id is not None else uid, kind, typ, rider_id, platform, t, order_id,
                    None if mla is None else (float(mla), float(mlo)),
                    None if cla is None else (float(cla), float(clo)), "wgs84")


def open_store(engine: Engine) -> FeedStore:
    """The store on ``engine``, its schema upgraded to the latest revision."""
    migrate(engine)
    return FeedStore(engine)
