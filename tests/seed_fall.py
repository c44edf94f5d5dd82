"""The seed case had Li Ming sat down for a quarter of an hour after his fall (DATA_CONTRACT §5
rule 6): the ``seed-case-between`` rider-day with 15 minutes of fixes at the place of the fall
inserted at the reported time (14:10), and everything after it (his fixes, the next order, going
offline) 15 minutes later. The next order is then accepted at 14:28, 26 minutes after the last
one ended at 14:02: by rule 6, a connection between orders. Used by the engine's and the running
system's tests alike."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent
SEED = ROOT / "data" / "scenarios" / "seed-case-between"
SIT_S = 15 * 60.0
FALL_AT = "2025-05-14T14:10:00+08:00"


def _epoch_ms(ts: str | int) -> int:
    if isinstance(ts, int):
        return ts
    if "T" in ts:
        return int(datetime.fromisoformat(ts).timestamp() * 1000)
    return int(datetime.fromisoformat(ts.replace(" ", "T") + "+08:00").timestamp() * 1000)


def write_seed_sat(out: Path, sit_s: float = SIT_S) -> Path:
    """Write the rider-day into ``out`` (platform.jsonl, gps.jsonl, incidents.jsonl, truth.jsonl)."""
    out.mkdir(parents=True, exist_ok=True)
    fall_ms = _epoch_ms(FALL_AT)
    shift_ms = int(sit_s * 1000)
    plat = []
    for line in (SEED / "platform.jsonl").read_bytes().splitlines():
        ev = orjson.loads(line)
        t = _epoch_ms(ev["ts"])
        if t >= fall_ms:
            ev["ts"] = t + shift_ms
        plat.append(ev)
    fixes = [orjson.loads(x) for x in (SEED / "gps.jsonl").read_bytes().splitlines() if x.strip()]
    fixes.sort(key=lambda f: f["ts"])
    before = [f for f in fixes if f["ts"] < fall_ms]
    after = [{**f, "ts": f["ts"] + shift_ms} for f in fixes if f["ts"] >= fall_ms]
    here = after[0]  # where he was when he fell
    rng = np.random.default_rng(14)
    sat = [{"rider_id": here["rider_id"], "ts": int(fall_ms + k * 20_000),
            "lat": round(here["lat"] + rng.normal(0, 3e-5), 6), "lon": round(here["lon"] + rng.normal(0, 3e-5), 6),
            "accuracy_m": 12.0} for k in range(int(sit_s // 20))]
    gps = before + sat + after
    inc = orjson.loads((SEED / "incidents.jsonl").read_bytes().splitlines()[0])
    inc["incident_id"] = "LIMING-sat"
    (out / "platform.jsonl").write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in plat))
    (out / "gps.jsonl").write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in gps))
    (out / "incidents.jsonl").write_bytes(orjson.dumps(inc) + b"\n")
    truth = {"incident_id": "LIMING-sat", "phase": "connecting", "continuous_delivery": True, "category": "aftermath"}
    (out / "truth.jsonl").write_bytes(orjson.dumps(truth) + b"\n")
    return out
