"""The feed store on SQLite and PostgreSQL: schema, idempotent bulk writes, rider-day reads,
evidence holds and retention."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from services.trajectory.adapters.feeds import read_gps_messages, read_platform_messages
from services.trajectory.adapters.store import (
    MIGRATIONS,
    TABLE_PREFIX,
    VERSION_TABLE,
    Compacted,
    FeedStore,
    downgrade,
    migrate,
)
from services.trajectory.service_layer.handlers import ingest
from shared.geo import to_wgs84

from .helpers import SEED, TZ, gps, lines, platform

pytestmark = pytest.mark.integration

T0 = 1778724000.0  # 2026-05-14T10:00:00+08:00
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


def ping(t: float, lat: float = 23.74, lon: float = 114.70, rider: str = "R1", **over) -> bytes:
    return orjson.dumps({"rider_id": rider, "ts": int(round(t * 1000)), "lat": lat, "lon": lon, **over})


def ev(typ: str, t: float, oid: str | None = "O1", rider: str = "R1", platform_: str = "meituan", **over) -> bytes:
    kind = "presence" if typ in ("online", "offline") else "order"
    obj = {"event_id": f"{rider}-{oid}-{typ}-{t}", "kind": kind, "type": typ, "rider_id": rider,
           "platform": platform_, "ts": int(t * 1000)}
    if kind == "order":
        obj.update(order_id=oid, merchant={"lat": 23.75, "lon": 114.71}, customer={"lat": 23.76, "lon": 114.72})
    obj.update(over)
    return orjson.dumps(obj)


def add_lines(store: FeedStore, gps_lines=(), platform_lines=(), now: float = 1e9):
    cols, problems = read_gps_messages(list(gps_lines), TZ)
    assert problems == []
    parsed, problems = read_platform_messages(list(platform_lines), TZ)
    assert problems == []
    return store.add(gps=cols, events=[(e, t, platform_lines[e.line - 1]) for e, t in parsed], received_at=now)


# ---------------------------------------------------------------- schema

def test_migration_creates_the_tables_under_its_own_version_table(engine):
    migrate(engine)
    migrate(engine)  # twice: nothing to do
    names = set(sa.inspect(engine).get_table_names())
    assert {VERSION_TABLE, "trajectory_gps_chunk", "trajectory_platform_event", "trajectory_evidence_hold",
            "trajectory_assessment_reply"} <= names
    assert "alembic_version" not in names  # the other services' histories are theirs
    with engine.connect() as c:
        assert c.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one() == HEAD


def test_models_and_migrations_agree(engine):
    migrate(engine)
    with engine.connect() as c:
        ctx = MigrationContext.configure(c, opts={
            "version_table": VERSION_TABLE, "compare_type": True,
            "include_name": lambda name, type_, parents: type_ != "table" or bool(name and name.startswith(TABLE_PREFIX)),
            # other services' tables are in the same metadata when their modules are imported
            "include_object": lambda obj, name, type_, reflected, compare_to:
                type_ != "table" or bool(name and name.startswith(TABLE_PREFIX)),
        })
        assert compare_metadata(ctx, SQLModel.metadata) == []


def test_downgrade_removes_only_its_own_tables(engine):
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE mediation_case (id INTEGER PRIMARY KEY)"))
    migrate(engine)
    downgrade(engine, "base")
    names = set(sa.inspect(engine).get_table_names())
    assert not {n for n in names if n.startswith(TABLE_PREFIX)}
    assert "mediation_case" in names


def test_migration_0004_moves_stored_pings_into_chunks_and_back(engine):
    migrate(engine, "0003")
    rows = [{"r": r, "t": T0 + 5 * i, "k": 1000 * j + i, "lat": 23.74 + i * 1e-5, "lon": 114.7,
             "acc": None if i % 4 == 0 else 3.0 + i % 3, "at": 100.0 + (i >= 30)}
            for j, r in enumerate(("R1", "骑手-2")) for i in range(60)]
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO trajectory_gps_ping (rider_id, t, k, lat, lon, accuracy, received_at) "
                          "VALUES (:r, :t, :k, :lat, :lon, :acc, :at)"), rows)
    migrate(engine)
    store = FeedStore(engine)
    assert store.pings() == 120 and "trajectory_gps_ping" not in sa.inspect(engine).get_table_names()
    day = store.load_rider("骑手-2", T0 - 1, T0 + 1000)
    mine = [x for x in rows if x["r"] == "骑手-2"]
    np.testing.assert_array_equal(day.gps.t, [x["t"] for x in mine])
    np.testing.assert_array_equal(day.gps.accuracy, [np.nan if x["acc"] is None else x["acc"] for x in mine])
    downgrade(engine, "0003")
    with engine.connect() as c:
        back = c.execute(sa.text("SELECT rider_id, t, lat, accuracy, received_at FROM trajectory_gps_ping "
                                 "ORDER BY rider_id, t")).all()
    assert [tuple(b) for b in back] == sorted((x["r"], x["t"], x["lat"], x["acc"], x["at"]) for x in rows)


def test_migration_0005_keys_stored_events_by_platform_rider_and_id(engine):
    """Events stored under their bare id before 0005 are read the same after it, and from then on
    another platform's or rider's event with the same id is another event, not a duplicate."""
    migrate(engine, "0004")
    old = [ev("online", T0 - 60, None, event_id="1"), ev("accepted", T0, event_id="2"),
           ev("delivered", T0 + 900, event_id="3")]
    parsed, _ = read_platform_messages(old, TZ)
    with engine.begin() as c:
        c.execute(sa.text(
            "INSERT INTO trajectory_platform_event (uid, rider_id, event_id, kind, type, t, platform, order_id, raw, "
            "received_at) VALUES (:uid, :r, :e, :k, :ty, :t, :p, :o, :raw, 1.0)"),
            [{"uid": "id:" + e.event_id, "r": e.rider_id, "e": e.event_id, "k": e.kind, "ty": e.type, "t": t,
              "p": e.platform, "o": e.order_id, "raw": old[e.line - 1].decode()} for e, t in parsed])
    migrate(engine)
    store = FeedStore(engine)
    day = store.load_rider("R1", T0 - 3600, T0 + 3600)
    assert [o.order_id for o in day.orders] == ["O1"] and day.orders[0].ended == T0 + 900
    # the same ids from another platform and from another rider are other events
    again = add_lines(store, platform_lines=old)
    assert again.events == 0
    other = [ev("online", T0 - 30, None, event_id="1", platform_="eleme"),
             ev("accepted", T0 + 60, "E9", event_id="2", platform_="eleme"),
             ev("accepted", T0 + 60, "O7", rider="R2", event_id="2")]
    assert add_lines(store, platform_lines=other).events == 3
    day = store.load_rider("R1", T0 - 3600, T0 + 3600)
    assert sorted(o.order_id for o in day.orders) == ["E9", "O1"]
    assert {(p.platform, p.online) for p in day.presence} == {("meituan", True), ("eleme", True)}
    downgrade(engine, "0004")  # the old keys can hold one event per id: the earliest received stays
    with engine.connect() as c:
        uids = sorted(r[0] for r in c.execute(sa.text("SELECT uid FROM trajectory_platform_event")))
    assert uids == ["id:1", "id:2", "id:3"]


# ---------------------------------------------------------------- writes

def test_the_same_feeds_delivered_twice_are_stored_once(store):
    g = [ping(T0 + 5 * i, 23.74 + i * 1e-5, accuracy_m=5.0) for i in range(50)]
    g.append(ping(T0 + 400, accuracy_m=5.0))
    g.append(ping(T0 + 400, accuracy_m=7.0))  # same instant and place, other accuracy: another fix
    p = [ev("online", T0 - 60, None), ev("accepted", T0), ev("delivered", T0 + 900)]
    first = add_lines(store, g, p)
    assert (first.pings, first.events) == (52, 3)
    again = add_lines(store, g + g[:10], p + p[:1])
    assert (again.pings, again.events) == (0, 0)
    assert store.pings() == 52 and store.counts()["trajectory_platform_event"] == 3


def test_a_redelivered_ping_with_other_json_layout_is_the_same_ping(store):
    a = b'{"rider_id": "R1", "ts": 1778724000000, "lat": 23.74, "lon": 114.7, "accuracy_m": 4}'
    b = b'{"accuracy_m": 4.0, "lon": 114.70, "lat": 23.740, "ts": "2026-05-14T10:00:00+08:00", "rider_id": "R1"}'
    add_lines(store, [a])
    assert add_lines(store, [b]).pings == 0


def test_events_without_an_id_are_deduplicated_by_content(store):
    a = b'{"kind": "presence", "type": "online", "rider_id": "R1", "platform": "eleme", "ts": 1778724000000}'
    b = b'{"ts": 1778724000000, "platform": "eleme", "rider_id": "R1", "type": "online", "kind": "presence"}'
    c = b'{"kind": "presence", "type": "offline", "rider_id": "R1", "platform": "eleme", "ts": 1778724000000}'
    assert add_lines(store, [], [a, b, c]).events == 2


def test_gcj02_places_are_stored_in_wgs84(store):
    add_lines(store, [ping(T0)], [ev("accepted", T0, crs="gcj02")])
    day = store.load_rider("R1", T0 - 3600, T0 + 3600)
    (o,) = day.orders
    lat, lon = to_wgs84(23.75, 114.71, "gcj02")
    assert o.merchant == pytest.approx((float(lat), float(lon)), abs=1e-9)
    assert abs(o.merchant[0] - 23.75) > 1e-4  # moved by the conversion


# ---------------------------------------------------------------- reads

def test_load_rider_returns_the_fixes_as_parsed(store):
    g = [ping(T0 + 7 * i, 23.74 + i * 1e-4, 114.70 - i * 1e-4, **({"accuracy_m": 3.5} if i % 2 else {}))
         for i in range(20)]
    g.append(ping(T0 + 5, rider="R2"))
    add_lines(store, g)
    cols, _ = read_gps_messages(g, TZ)
    day = store.load_rider("R1", T0 - 1, T0 + 1000)
    order = np.argsort(day.gps.t)
    mine = cols.rider.to_numpy() == "R1"
    np.testing.assert_array_equal(day.gps.t[order], cols.t[mine])
    np.testing.assert_array_equal(day.gps.lat[order], cols.lat[mine])
    np.testing.assert_array_equal(day.gps.lon[order], cols.lon[mine])
    np.testing.assert_array_equal(day.gps.accuracy[order], cols.accuracy[mine])  # NaN where not given
    assert len(store.load_rider("R1", T0 + 28, T0 + 63).gps) == 6  # the window, both ends included
    assert len(store.load_rider("R3", T0 - 1, T0 + 1000).gps) == 0


def test_rider_ids_of_any_length_and_script_are_stored_as_sent(store):
    riders = ["R", "R00700", "骑手-张三-0001", "x" * 199, "rider,with \"quotes\"\tand tab"]
    g = [ping(T0 + 11 * i + j, 23.74 + i * 1e-4, rider=r, **({"accuracy_m": 2.5 + j} if i % 3 else {}))
         for j, r in enumerate(riders) for i in range(7)]
    assert add_lines(store, g).pings == len(g)
    cols, _ = read_gps_messages(g, TZ)
    for r in riders:
        day = store.load_rider(r, T0 - 1, T0 + 1000)
        mine = cols.rider.to_numpy() == r
        order = np.argsort(day.gps.t)
        np.testing.assert_array_equal(day.gps.t[order], cols.t[mine])
        np.testing.assert_array_equal(day.gps.lat[order], cols.lat[mine])
        np.testing.assert_array_equal(day.gps.accuracy[order], cols.accuracy[mine])
    add_lines(store, g[::2])  # a redelivery of part of it, in another batch: written again, read once
    assert store.pings() == len(g)
    for r in riders:
        assert len(store.load_rider(r, T0 - 1, T0 + 1000).gps) == 7


def test_load_rider_has_whole_orders_that_overlap_the_window_and_the_presence_state_at_its_start(store):
    p = [
        ev("online", T0 - 5 * 3600, None, platform_="meituan"),
        ev("online", T0 - 4 * 3600, None, platform_="eleme"),
        ev("offline", T0 - 3 * 3600, None, platform_="eleme"),
        ev("accepted", T0 - 7200, "OLD"), ev("delivered", T0 - 6000, "OLD"),  # over before the window
        ev("accepted", T0 - 900, "SPAN"), ev("picked_up", T0 - 300, "SPAN"), ev("delivered", T0 + 300, "SPAN"),
        ev("accepted", T0 + 600, "IN"), ev("delivered", T0 + 1200, "IN"),
        ev("accepted", T0 + 1700, "LATER"), ev("delivered", T0 + 2400, "LATER"),  # after the window
        ev("accepted", T0 - 1800, "OPEN"),  # never ended: active throughout
        ev("accepted", T0 - 600, "R2ORDER", rider="R2"),
    ]
    add_lines(store, [], p)
    day = store.load_rider("R1", T0, T0 + 1500)
    assert [o.order_id for o in day.orders] == ["OPEN", "SPAN", "IN"]
    span = day.orders[1]
    assert (span.accepted, span.picked_up, span.ended, span.end_kind) == (T0 - 900, T0 - 300, T0 + 300, "delivered")
    # the last presence event of each platform before the window says the state at its start
    assert [(e.platform, e.online, e.t) for e in day.presence] == [
        ("meituan", True, T0 - 5 * 3600), ("eleme", False, T0 - 3 * 3600)]


def chunk_rows(store, rider="R1"):
    with store.engine.connect() as c:
        return c.execute(sa.text("SELECT hour, n, received_at FROM trajectory_gps_chunk WHERE rider_id = :r "
                                 "ORDER BY hour, received_at"), {"r": rider}).all()


def test_compaction_merges_a_closed_hours_chunks_into_one_and_reads_the_same(store):
    hour = int(T0 // 3600)
    g = [ping(T0 + 5 * i, 23.74 + i * 1e-5, accuracy_m=4.0 + i % 3) for i in range(60)]
    for k in range(12):  # live batches: a few fixes each, some sent twice
        add_lines(store, g[5 * k:5 * k + 6], now=100.0 + k)
    add_lines(store, [ping(T0 + 3600 + 5 * i) for i in range(3)], now=200.0)  # the next hour, still open
    add_lines(store, [ping(T0 + 10, rider="R2")], now=50.0)  # received before the lookback
    before = store.load_rider("R1", T0 - 1, T0 + 7300)
    assert len(chunk_rows(store)) == 13

    merged = store.compact(received_since=90.0, closed_before=T0 + 3600 + 3600)
    assert (merged.groups, merged.chunks) == (1, 12)
    assert chunk_rows(store) == [(hour, 60, 111.0), (hour + 1, 3, 200.0)]  # the latest receipt kept
    after = store.load_rider("R1", T0 - 1, T0 + 7300)
    for a, b in ((before.gps.t, after.gps.t), (before.gps.lat, after.gps.lat), (before.gps.accuracy, after.gps.accuracy)):
        np.testing.assert_array_equal(a, b)
    assert store.pings() == 64 and len(chunk_rows(store, "R2")) == 1

    assert store.compact(received_since=90.0, closed_before=T0 + 7200) == Compacted(0, 0)  # nothing more to do
    add_lines(store, [g[7], ping(T0 + 3001, 23.8)], now=300.0)  # a late chunk: one new fix
    assert store.compact(received_since=250.0, closed_before=T0 + 7200) == Compacted(1, 2)
    assert chunk_rows(store)[0] == (hour, 61, 300.0) and store.pings() == 65


# ---------------------------------------------------------------- holds and retention

def test_freeze_keeps_held_feeds_and_purge_deletes_the_rest(store):
    old, recent = 1000.0, 5000.0
    held_gps = [ping(T0 + 10 * i) for i in range(30)]  # T0 .. T0+290
    other_gps = [ping(T0 + 4000 + 10 * i) for i in range(30)]
    other_rider = [ping(T0 + 10 * i, rider="R2") for i in range(30)]  # same time, other rider
    add_lines(store, held_gps + other_gps + other_rider, [ev("accepted", T0 + 100), ev("accepted", T0 + 5000, "O2")],
              now=old)
    add_lines(store, [ping(T0 + 9000 + i) for i in range(5)], [ev("online", T0 + 9000, None)], now=recent)
    store.freeze("R1", T0 - 60, T0 + 300, "CASE-1")
    store.freeze("R1", T0 - 60, T0 + 300, "CASE-1")  # idempotent
    assert store.holds() == [("CASE-1", "R1", T0 - 60, T0 + 300)]
    with store.engine.connect() as c:  # the hold's events span: here just the window (O1 is inside)
        assert c.execute(sa.text("SELECT ev_t0, ev_t1 FROM trajectory_evidence_hold")).one() == (T0 - 60, T0 + 300)
    purged = store.purge(older_than=2000.0)
    assert (purged.pings, purged.events) == (60, 1)
    assert len(store.load_rider("R1", T0 - 3600, T0 + 3600).gps) == 30  # held
    assert len(store.load_rider("R2", T0 - 3600, T0 + 3600).gps) == 0  # not held: another rider
    assert len(store.load_rider("R1", T0 + 3600, T0 + 9999).gps) == 5  # recent
    assert store.load_rider("R1", T0 - 3600, T0 + 3600).orders[0].order_id == "O1"
    assert store.release("CASE-1") == 1
    assert store.purge(older_than=2000.0).pings == 30
    assert store.pings() == 5


def test_replies_first_answer_wins(store):
    first = store.save_reply(request_id="q", case_id="c", rider_id="r", type_="AssessmentReady", envelope=b'{"a":1}')
    second = store.save_reply(request_id="q", case_id="c", rider_id="r", type_="AssessmentReady", envelope=b'{"a":2}')
    assert first == second == b'{"a":1}' and store.reply_for("q") == b'{"a":1}' and store.reply_for("x") is None
    assert store.purge(older_than=1e12).replies == 1


def test_ingest_of_the_seed_case(store):
    msgs = platform(lines(SEED, "platform.jsonl")) + gps(lines(SEED, "gps.jsonl"))
    res, bad = ingest(store, msgs, tz=TZ)
    assert bad == [] and res.events_stored == 10
    distinct = len({ln for ln in lines(SEED, "gps.jsonl")})
    assert res.pings_stored <= distinct and res.pings_stored == store.pings()


def test_a_hold_keeps_whole_orders_and_the_presence_state_at_its_start(store):
    p = [ev("online", T0 - 5 * 3600, None), ev("online", T0 - 3000, None, platform_="eleme"),
         ev("offline", T0 - 2500, None, platform_="eleme"),
         ev("accepted", T0 - 7 * 3600, "GONE"), ev("delivered", T0 - 6 * 3600, "GONE"),  # before all that
         ev("accepted", T0 - 1000, "SPAN"), ev("picked_up", T0 - 500, "SPAN"), ev("delivered", T0 + 100, "SPAN"),
         ev("accepted", T0 + 200, "LATE"), ev("delivered", T0 + 2000, "LATE")]
    add_lines(store, [ping(T0 - 600), ping(T0 + 150), ping(T0 + 1000)], p, now=1000.0)
    before = store.load_rider("R1", T0, T0 + 300)
    store.freeze("R1", T0, T0 + 300, "CASE-2")
    purged = store.purge(older_than=2000.0)
    assert (purged.pings, purged.events) == (2, 2)  # the pings outside, the order over before it
    after = store.load_rider("R1", T0, T0 + 300)
    assert (after.orders, after.presence) == (before.orders, before.presence)
    assert [o.order_id for o in after.orders] == ["SPAN", "LATE"]
    assert [(e.platform, e.online) for e in after.presence] == [("meituan", True), ("eleme", False)]
    assert len(after.gps) == 1
