"""Public scenarios as platforms really number their events: each platform numbers each rider's
events from "1" in its own space (DATA_CONTRACT §1), so ids repeat across platforms and riders."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson


def renumbered(platform_jsonl: bytes) -> bytes:
    """The same lines with ``event_id`` renumbered 1, 2, ... per (platform, rider), in line order;
    a line repeated (same id before) keeps the number its first copy got."""
    counters: dict[tuple[str, str], int] = defaultdict(int)
    given: dict[tuple[str, str, str], str] = {}
    out = []
    for line in platform_jsonl.splitlines():
        if not line.strip():
            out.append(line)
            continue
        obj = orjson.loads(line)
        key = (str(obj.get("platform", "")), str(obj.get("rider_id", "")))
        old = (*key, str(obj.get("event_id")))
        if old not in given:
            counters[key] += 1
            given[old] = str(counters[key])
        obj["event_id"] = given[old]
        out.append(orjson.dumps(obj))
    return b"\n".join(out) + b"\n"


def renumbered_copy(src: Path, dst: Path) -> Path:
    """``src`` scenario copied to ``dst`` with renumbered platform events."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("gps.jsonl", "incidents.jsonl", "truth.jsonl"):
        if (src / name).exists():
            (dst / name).write_bytes((src / name).read_bytes())
    (dst / "platform.jsonl").write_bytes(renumbered((src / "platform.jsonl").read_bytes()))
    return dst
