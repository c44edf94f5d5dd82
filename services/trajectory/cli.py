"""Command line of the trajectory service."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import orjson

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Params, Phase
from shared.config import Settings
from shared.timeutil import iso_local

logger = logging.getLogger(__name__)


def cmd_assess(args: argparse.Namespace) -> int:
    settings = Settings()
    tz = settings.timezone
    directory = Path(args.dir)
    if not directory.is_dir():
        print(f"assess: {directory} is not a directory", file=sys.stderr)
        return 2
    feeds = load_dir(directory, tz)
    for p in feeds.problems:
        print(f"{directory / p.source}:{p.line}: skipped: {p.message}", file=sys.stderr)
    params = Params()
    analyses = {}
    out = sys.stdout.buffer

    def fmt(t: float) -> str:
        return iso_local(t, tz)

    for inc in feeds.incidents:
        day = feeds.days.get(inc.rider_id)
        if day is None:
            res = {"incident_id": inc.incident_id, "rider_id": inc.rider_id, "at": inc.at_text,
                   "phase": Phase.INSUFFICIENT_DATA.value, "continuous_delivery": False, "confidence": 0.0,
                   "explanation": ["没有该骑手的任何记录，无法判断。"],
                   "explanation_en": ["There are no records of this rider: no finding is possible."]}
        else:
            if inc.rider_id not in analyses:
                analyses[inc.rider_id] = analyse(day, params)
            res = assess(analyses[inc.rider_id], inc, params, fmt)
        out.write(orjson.dumps(res, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    out.flush()
    return 0


def cmd_simulate(argv: list[str]) -> int:
    from services.trajectory import simulate

    return simulate.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if argv[:1] == ["simulate"]:
        return cmd_simulate(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m services.trajectory")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("assess", help="assess every incident of a rider-day folder (DATA_CONTRACT §6)")
    p.add_argument("dir")
    sub.add_parser("simulate", help="write simulated rider-days (see simulate --help)")
    args = parser.parse_args(argv)
    if args.cmd == "assess":
        return cmd_assess(args)
    return 2
