"""The trajectory worker as production runs it (``run_worker``: the faust app of ``make_app``, its
agents and its ``PingConsumer``), for the bus contract suite. One thing differs: the feed store
appends what each unit of work stored to the file ``XJ_CT_LOG``, once its transaction committed,
in the order the units ran -- one JSON line per ping (``rider``, ``t``) or platform event
(``rider``, ``event``). With ``XJ_CT_STUCK=<rider>|<t or event id>`` the unit of work holding that
ping or event never returns (the database hangs): it writes ``{"stuck": true}`` and waits, so that
the test can kill the process with that batch in hand.

    python -m tests.contract.worker_proc    # with the worker's XJ_ settings in the environment
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from services.trajectory.adapters import store as store_module
from services.trajectory.entrypoints.stream import run_worker

LOG = os.environ["XJ_CT_LOG"]
STUCK = os.environ.get("XJ_CT_STUCK", "")


def rows(gps: Any, events: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if gps is not None:
        out += [{"rider": r, "t": t} for r, t in zip(gps.rider.to_list(), gps.t.tolist(), strict=True)]
    out += [{"rider": ev.rider_id, "event": ev.event_id} for ev, _t, _raw in events]
    return out


def mark(row: dict[str, Any]) -> str:
    return f"{row['rider']}|{row['t'] if 't' in row else row['event']}"


def append(lines: list[dict[str, Any]]) -> None:
    with open(LOG, "a", encoding="utf-8") as f:
        f.writelines(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)


class RecordingStore(store_module.FeedStore):
    def add(self, **kw: Any) -> Any:
        got = rows(kw.get("gps"), kw.get("events", ()))
        if STUCK and any(mark(x) == STUCK for x in got):
            append([{"stuck": True}])
            threading.Event().wait()  # the database never answers; the test kills the process
        stored = super().add(**kw)
        append(got)
        return stored


def open_store(engine: Any) -> RecordingStore:
    store_module.migrate(engine)
    return RecordingStore(engine)


if __name__ == "__main__":
    store_module.open_store = open_store  # run_worker imports it when it runs
    sys.exit(run_worker(loglevel="warn"))
