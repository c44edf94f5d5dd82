"""An event is its (platform, rider, event id) (DATA_CONTRACT §1). Every public scenario with its
event ids renumbered from 1 per platform and rider, as platforms really send them, gets the very
answers the original gets, and a rider on two platforms that both number from 1 keeps both."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from services.trajectory.adapters.feeds import assemble, load_dir, read_platform
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Params
from shared.timeutil import iso_local
from tests.support.renumber import renumbered, renumbered_copy

pytestmark = pytest.mark.unit

SCENARIOS = Path(__file__).resolve().parents[2] / "data" / "scenarios"
DAYS = sorted(p for p in SCENARIOS.iterdir() if (p / "incidents.jsonl").exists())
TZ = "Asia/Shanghai"


def answers(directory: Path) -> list[dict]:
    feeds = load_dir(directory, TZ)
    params = Params()
    cache = {r: analyse(d, params) for r, d in feeds.days.items()}
    return [assess(cache[i.rider_id], i, params, iso_local) for i in feeds.incidents]


@pytest.mark.parametrize("d", DAYS, ids=[d.name for d in DAYS])
def test_renumbered_ids_give_the_same_answers(d: Path, tmp_path: Path) -> None:
    copy = renumbered_copy(d, tmp_path / d.name)
    rows = [orjson.loads(x) for x in (copy / "platform.jsonl").read_bytes().splitlines()]
    spaces = {(r["platform"], r["rider_id"]) for r in rows}
    ids = [r["event_id"] for r in rows]
    assert ids[0] == "1" and (len(spaces) == 1 or len(set(ids)) < len(ids))  # ids repeat across spaces
    assert answers(copy) == answers(d)


def test_two_platforms_numbering_from_one_keep_both_riders_orders() -> None:
    B = 1778724000000  # 2026-05-14T10:00:00+08:00, epoch ms
    lines = [
        {"event_id": "1", "kind": "presence", "type": "online", "rider_id": "R1", "platform": "meituan", "ts": B + 0},
        {"event_id": "1", "kind": "presence", "type": "online", "rider_id": "R1", "platform": "eleme", "ts": B + 1_000},
        {"event_id": "2", "kind": "order", "type": "accepted", "rider_id": "R1", "platform": "meituan",
         "ts": B + 100_000, "order_id": "A"},
        {"event_id": "2", "kind": "order", "type": "accepted", "rider_id": "R1", "platform": "eleme",
         "ts": B + 200_000, "order_id": "B"},
        {"event_id": "2", "kind": "order", "type": "accepted", "rider_id": "R2", "platform": "eleme",
         "ts": B + 200_000, "order_id": "C"},
        {"event_id": "2", "kind": "order", "type": "accepted", "rider_id": "R1", "platform": "eleme",
         "ts": B + 200_000, "order_id": "B"},  # the same event sent twice: one event
        {"event_id": "3", "kind": "order", "type": "delivered", "rider_id": "R1", "platform": "eleme",
         "ts": B + 300_000, "order_id": "B"},
    ]
    events, problems = read_platform(b"\n".join(orjson.dumps(x) for x in lines), "platform", TZ)
    assert problems == []
    days = assemble(events)
    r1_orders, r1_presence = days["R1"]
    assert [(o.platform, o.order_id, o.ended) for o in r1_orders] == [("meituan", "A", None), ("eleme", "B", B / 1000 + 300)]
    assert {p.platform for p in r1_presence} == {"meituan", "eleme"}
    assert [o.order_id for o in days["R2"][0]] == ["C"]


def test_renumbering_repeats_ids() -> None:
    raw = b"\n".join(orjson.dumps({"event_id": f"x{k}", "platform": p, "rider_id": "R"})
                     for k, p in enumerate(["a", "b", "a", "b"]))
    assert [orjson.loads(x)["event_id"] for x in renumbered(raw).splitlines()] == ["1", "1", "2", "2"]
