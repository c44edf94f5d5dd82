"""Gap flags on Kafka equal the batch engine's on every public scenario: each scenario's feeds,
its riders renamed so that scenarios sharing a rider do not meet, are replayed into Kafka with
``python -m services.trajectory replay`` and read by ONE trajectory worker as its own OS process on
PostgreSQL; every gap between orders that the batch engine classifies is flagged with the same
phase (the embedded default's twin: tests/integration/test_gap_flags.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse
from services.trajectory.domain.model import Params
from shared import topics
from tests.support.evidence_path import DAYS

from .procs import end_offsets, processes, read_since, start_worker_at_end

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"


def renamed(src: Path, dst: Path, prefix: str) -> Path:
    """``src`` with every rider id prefixed (and event ids kept: identity is per rider)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("platform.jsonl", "gps.jsonl"):
        out = []
        for line in (src / name).read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                out.append(line)  # a bad line stays bad
                continue
            if isinstance(obj, dict) and isinstance(obj.get("rider_id"), str):
                obj["rider_id"] = prefix + obj["rider_id"]
            out.append(orjson.dumps(obj))
        (dst / name).write_bytes(b"\n".join(out) + b"\n")
    return dst


def test_flags_equal_the_batch_engine_on_every_public_scenario(kafka_bootstrap: str, fresh_database,
                                                                tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    want: dict[tuple[str, float], str] = {}  # (rider, gap start) -> the batch engine's phase
    days = []
    for i, src in enumerate(DAYS):
        day = renamed(src, tmp_path / src.name, f"K{run}{i}-")
        days.append(day)
        for rider, d in load_dir(day, TZ).days.items():
            for g in analyse(d, Params()).timeline.gaps:
                if np.isfinite(g.start) and np.isfinite(g.end):
                    want[(rider, round(g.start, 3))] = g.phase.value
    assert len(want) > 20 and len({r for r, _ in want}) >= len(DAYS)
    env = {**os.environ, "XJ_DATABASE_URL": fresh_database("postgresql"), "XJ_DATA_DIR": str(tmp_path / "var"),
           "XJ_KAFKA_BOOTSTRAP": kafka_bootstrap, "XJ_WORKER_GROUP": f"xj-flags-{run}", "XJ_GAP_SETTLE_S": "0.2",
           "XJ_GAP_SYNC_MAX_S": "120"}
    subprocess.run([sys.executable, "-m", "services.trajectory", "replay", str(tmp_path / "none")], env=env,
                   capture_output=True, timeout=60)  # the topics exist before anyone subscribes
    assert start_worker_at_end(kafka_bootstrap, env["XJ_WORKER_GROUP"])
    since = end_offsets(kafka_bootstrap, (topics.GAP_FLAGGED,))
    with processes(tmp_path, env) as procs:
        procs.start("worker", "services.trajectory", "worker")
        for day in days:
            r = subprocess.run([sys.executable, "-m", "services.trajectory", "replay", str(day), "--speedup", "0"],
                               env=env, capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stderr
        mine = f"K{run}".encode()

        def flags(recs: list) -> dict[tuple[str, float], str]:
            out = {}
            for m in recs:
                if m.key and m.key.startswith(mine):
                    f = orjson.loads(m.value)["data"]
                    out[(f["rider_id"], round(datetime.fromisoformat(f["start"]).timestamp(), 3))] = f["phase"]
            return out

        got = flags(read_since(kafka_bootstrap, since, lambda recs: set(flags(recs)) >= set(want), timeout=180,
                               check=procs.check_alive))
    missing = sorted(set(want) - set(got))
    assert not missing, f"{len(missing)} of {len(want)} gaps not flagged: {missing[:5]}"
    assert {k: got[k] for k in want} == want
    # gaps no next order closed (the rider went offline, or 30 min passed) are idle, or not yet judged
    assert all(p in ("idle", None) for k, p in got.items() if k not in want)
