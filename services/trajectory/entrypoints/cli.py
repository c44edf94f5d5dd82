"""Command line of the trajectory service."""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import orjson

from services.trajectory.adapters.feeds import Feeds, load_dir, prefetch_gps
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Incident, Params, Phase
from shared.timeutil import iso_local

logger = logging.getLogger(__name__)


def cmd_assess(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not directory.is_dir():
        print(f"assess: {directory} is not a directory", file=sys.stderr)
        return 2
    # polars parses the GPS file (without the GIL, no zone needed) while the settings load
    with ThreadPoolExecutor(1) as pool:
        gps = pool.submit(prefetch_gps, directory)
        from shared.config import Settings

        settings = Settings()
        feeds = load_dir(directory, settings.timezone, gps)
    workers = settings.workers or (os.cpu_count() or 1)
    for p in feeds.problems:
        print(f"{directory / p.source}:{p.line}: skipped: {p.message}", file=sys.stderr)
    lines = assess_all(feeds, Params(), settings.timezone, workers)
    out = sys.stdout.buffer
    out.write(b"".join(lines))
    out.flush()
    failed = [orjson.loads(line) for line in lines if b'"error"' in line]
    failed = [r for r in failed if "error" in r]
    for r in failed:
        print(f"assess: incident {r['incident_id']} (rider {r['rider_id']}) could not be assessed: {r['error']}",
              file=sys.stderr)
    return 1 if failed else 0


# Riders are independent: with several cores, each worker process (forked, so it shares the
# parsed feeds without copying them) assesses whole riders and sends back finished JSON lines.
_JOB: tuple[Feeds, Params, str, list[list[int]]] | None = None


def assess_all(feeds: Feeds, params: Params, tz: str, workers: int) -> list[bytes]:
    """One JSON line per incident, in input order."""
    global _JOB
    by_rider: dict[str, list[int]] = {}
    for i, inc in enumerate(feeds.incidents):
        by_rider.setdefault(inc.rider_id, []).append(i)
    groups = list(by_rider.values())
    out: list[bytes] = [b""] * len(feeds.incidents)
    if workers < 2 or len(groups) < 8 or "fork" not in mp.get_all_start_methods():
        for k in range(len(groups)):
            for i, line in _assess_group(feeds, params, tz, groups[k]):
                out[i] = line
        return out
    _JOB = (feeds, params, tz, groups)
    try:
        chunks = [list(range(k, len(groups), workers)) for k in range(workers)]
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            futures = [pool.submit(_run_chunk, c) for c in chunks]
            for chunk, fut in zip(chunks, futures, strict=True):
                try:
                    done = fut.result()
                except Exception:  # a worker died (killed, out of memory): its riders again, here
                    logger.exception("assessment worker failed; assessing its %d riders in the main process", len(chunk))
                    done = _run_chunk(chunk)
                for i, line in done:
                    out[i] = line
    finally:
        _JOB = None
    return out


def _run_chunk(group_ids: list[int]) -> list[tuple[int, bytes]]:
    assert _JOB is not None
    feeds, params, tz, groups = _JOB
    return [x for k in group_ids for x in _assess_group(feeds, params, tz, groups[k])]


def _assess_group(feeds: Feeds, params: Params, tz: str, indices: list[int]) -> list[tuple[int, bytes]]:
    shown: dict[float, str] = {}  # a rider's order times are shown again and again

    def fmt(t: float) -> str:
        s = shown.get(t)
        if s is None:
            s = shown[t] = iso_local(t, tz)
        return s

    rider = feeds.incidents[indices[0]].rider_id
    day = feeds.days.get(rider)
    analysis = None
    fault: str | None = None
    if day is not None:
        try:
            analysis = analyse(day, params)
        except Exception as e:  # one rider's fault never costs another rider's answer
            logger.exception("rider %s: analysis failed", rider)
            fault = f"{type(e).__name__}: {e}"[:500]
    done = []
    for i in indices:
        inc = feeds.incidents[i]
        res: dict[str, object]
        if analysis is None and fault is None:
            res = _abstention(inc, "没有该骑手的任何记录，无法判断。",
                              "There are no records of this rider: no finding is possible.")
        elif analysis is None:
            res = _failed(inc, fault or "")
        else:
            try:
                res = assess(analysis, inc, params, fmt)
                done.append((i, orjson.dumps(res, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"))
                continue
            except Exception as e:
                logger.exception("incident %s: assessment failed", inc.incident_id)
                res = _failed(inc, f"{type(e).__name__}: {e}"[:500])
        done.append((i, orjson.dumps(res, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"))
    return done


def _abstention(inc: Incident, zh: str, en: str) -> dict[str, object]:
    return {"incident_id": inc.incident_id, "rider_id": inc.rider_id, "at": inc.at_text,
            "phase": Phase.INSUFFICIENT_DATA.value, "continuous_delivery": None, "confidence": 0.0,
            "explanation": [zh], "explanation_en": [en]}


def _failed(inc: Incident, error: str) -> dict[str, object]:
    """The line of an incident the engine could not assess: an abstention carrying the error."""
    res = _abstention(inc, "评估出错，无法判断（错误已记录）。",
                      "The assessment failed on this rider's data: no finding (the error is recorded).")
    res["error"] = error
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m services.trajectory")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("assess", help="assess every incident of a rider-day folder (DATA_CONTRACT §6)")
    p.add_argument("dir")
    w = sub.add_parser("worker", help="run the trajectory service on Kafka (faust; XJ_KAFKA_BOOTSTRAP)")
    w.add_argument("--loglevel", default="warn", choices=["crit", "error", "warn", "info", "debug"])
    r = sub.add_parser("replay", help="produce a scenario's feeds into Kafka in time order")
    r.add_argument("dir")
    r.add_argument("--speedup", type=float, default=0.0,
                   help="feed time runs this many times faster than real time; 0: as fast as possible")
    r.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (default XJ_KAFKA_BOOTSTRAP)")
    args = parser.parse_args(argv)
    if args.cmd == "assess":
        return cmd_assess(args)
    if args.cmd == "worker":
        logging.getLogger().setLevel(logging.INFO if args.loglevel in ("info", "debug") else logging.WARNING)
        from services.trajectory.entrypoints.stream import run_worker

        return run_worker(loglevel=args.loglevel)
    if args.cmd == "replay":
        from services.trajectory.entrypoints.replay import main as replay_main

        return replay_main(Path(args.dir), speedup=args.speedup, bootstrap=args.bootstrap)
    return 2
