"""GPS chunks: how a batch of fixes is packed into rows and read back."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from services.trajectory.adapters.feeds import read_gps_messages
from services.trajectory.adapters.store import CHUNK_COLS, FIX, pack, unpack

pytestmark = pytest.mark.unit
T0 = 1778724000.0  # 2026-05-14 10:00 +08:00, on the hour
COL = {c: i for i, c in enumerate(CHUNK_COLS)}


def fixes(rows: list[tuple[str, float, float, float | None]]):
    lines = [orjson.dumps({"rider_id": r, "ts": int(t * 1000), "lat": lat, "lon": 114.7,
                           **({} if acc is None else {"accuracy_m": acc})}) for r, t, lat, acc in rows]
    cols, problems = read_gps_messages(lines, "Asia/Shanghai")
    assert problems == []
    return cols


def test_a_chunk_per_rider_and_hour_in_time_order_with_repeats_dropped():
    rows = [("B", T0 + 3700, 23.2, None), ("A", T0 + 20, 23.1, 5.0), ("A", T0 + 10, 23.0, 4.0),
            ("A", T0 + 20, 23.1, 5.0),  # a repeat within the batch
            ("A", T0 + 20, 23.1, 6.0),  # same time and place, another accuracy: another fix
            ("A", T0 + 3600, 23.3, None), ("B", T0 + 5, 23.4, 3.0)]
    chunks = pack(fixes(rows), received_at=42.0).rows()
    got = {(c[COL["rider_id"]], c[COL["hour"]]): c for c in chunks}
    h = int(T0 // 3600)
    assert set(got) == {("A", h), ("A", h + 1), ("B", h), ("B", h + 1)}
    a = got[("A", h)]
    assert (a[COL["n"]], a[COL["t0"]], a[COL["t1"]], a[COL["received_at"]]) == (3, T0 + 10, T0 + 20, 42.0)
    f = np.frombuffer(a[COL["data"]], dtype=FIX)
    assert f["t"].tolist() == [T0 + 10, T0 + 20, T0 + 20] and sorted(f["accuracy"][1:].tolist()) == [5.0, 6.0]
    assert np.isnan(np.frombuffer(got[("A", h + 1)][COL["data"]], dtype=FIX)["accuracy"]).all()  # not given: NaN
    assert sum(c[COL["n"]] for c in chunks) == 6


def test_the_digest_is_the_set_of_fixes_not_their_order():
    rows = [("A", T0 + 5 * i, 23.0 + i * 1e-4, 4.0) for i in range(20)]
    (one,) = pack(fixes(rows), 1.0).rows()
    (other_order,) = pack(fixes(rows[::-1] + rows[:3]), 2.0).rows()
    (fewer,) = pack(fixes(rows[1:]), 1.0).rows()
    assert one[COL["digest"]] == other_order[COL["digest"]] and one[COL["data"]] == other_order[COL["data"]]
    assert fewer[COL["digest"]] != one[COL["digest"]]


def test_unpack_reads_a_fix_stored_in_two_chunks_once_within_the_window():
    rows = [("A", T0 + 5 * i, 23.0 + i * 1e-4, None) for i in range(10)]
    (first,) = pack(fixes(rows[:6]), 1.0).rows()
    (second,) = pack(fixes(rows[4:]), 2.0).rows()  # a redelivery overlapping the first batch
    got = unpack([second[COL["data"]], first[COL["data"]]], T0 + 10, T0 + 40)
    assert got["t"].tolist() == [T0 + 5 * i for i in range(2, 9)]
    assert unpack([]).size == 0
