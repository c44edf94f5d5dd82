"""Contract lines arriving as bus messages read exactly like the same lines in a file, with problems
pointing at the message (index + 1) that holds them."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from services.trajectory.adapters.feeds import (
    message_lines,
    read_gps,
    read_gps_messages,
    read_platform,
    read_platform_messages,
)

pytestmark = pytest.mark.unit

TZ = "Asia/Shanghai"


def ping(k: int, **over) -> bytes:
    obj = {"rider_id": f"R{k % 3}", "ts": 1778724000000 + 5000 * k, "lat": 23.74 + k * 1e-5, "lon": 114.7,
           "accuracy_m": 5.0 + k % 4, "crs": ["wgs84", "gcj02", "bd09"][k % 3]}
    obj.update(over)
    return orjson.dumps(obj)


def test_messages_read_like_the_file_of_the_same_lines():
    values = [ping(k) for k in range(40)]
    cols, problems = read_gps_messages(values, TZ)
    ref, ref_problems = read_gps(b"\n".join(values), "x", TZ)
    assert problems == ref_problems == []
    for name in ("t", "lat", "lon", "accuracy", "line"):
        np.testing.assert_array_equal(getattr(cols, name), getattr(ref, name))
    assert cols.rider.to_list() == ref.rider.to_list()
    assert cols.line.tolist() == list(range(1, 41))


def test_each_bad_message_is_named_by_its_position():
    values = [ping(0), b"not json", ping(1, ts="whenever"), b"", b"   ", ping(2, lat=95.0), b"[1, 2]", ping(3)]
    cols, problems = read_gps_messages(values, TZ, "rider.gps")
    assert [p.line for p in problems] == [2, 3, 4, 5, 6, 7]
    assert all(p.source == "rider.gps" for p in problems)
    assert "empty" in problems[2].message and "timestamp" in problems[1].message
    assert cols.line.tolist() == [1, 8]


def test_a_pretty_printed_message_is_one_line():
    pretty = orjson.dumps(orjson.loads(ping(5)), option=orjson.OPT_INDENT_2)
    assert b"\n" in pretty
    values = [ping(0), pretty, b'{"rider_id":\n "R1", oops', ping(1).replace(b",", b",\r\n")]
    cols, problems = read_gps_messages(values, TZ)
    assert [p.line for p in problems] == [3]
    assert cols.line.tolist() == [1, 2, 4]
    data, _ = message_lines(values)
    assert data.count(b"\n") == len(values) - 1


def test_platform_messages():
    ev = {"event_id": "e1", "kind": "order", "type": "accepted", "rider_id": "R1", "platform": "meituan",
          "ts": "2026-05-14T10:00:00+08:00", "order_id": "O1", "merchant": {"lat": 23.75, "lon": 114.71}, "crs": "gcj02"}
    values = [orjson.dumps(ev), b"", orjson.dumps(dict(ev, type="teleported")),
              orjson.dumps(dict(ev, event_id="e2", kind="presence", type="online"))]
    events, problems = read_platform_messages(values, TZ)
    assert [p.line for p in problems] == [2, 3]
    assert [e.line for e, _ in events] == [1, 4]
    ref, _ = read_platform(values[0], "x", TZ)
    assert events[0] == ref[0]  # converted to WGS-84 alike
