"""Rule 6 (falls) and the time check, measured on simulated days.

``python -m bench.rules make DIR``: simulated days with falls between orders (share ``--falls`` of
the gaps after an order) and with half the incidents reported 4-12 minutes off at the right place.
``python -m bench.rules score DIR [--engine PATH]``: runs ``python -m services.trajectory assess``
of the engine at PATH (default: this tree; give an export of an older commit for a "before"
figure) on every day and prints:

* falls: the share answered as rule 6 says (phase and continuous_delivery as the truth);
* other incidents: accuracy on clean and boundary instants, and of continuous_delivery;
* reported times off: the share whose ``location_check.phase_at_nearest`` is the phase when the
  rider was at the place, the share whose ``phase`` is still the phase at the reported time, and
  how often a time check fires on an incident whose place was given for the reported time; and
  how often a second pass is named (``phase_at_other_pass``), and whether the truth is one of the two.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent


def make(out: Path, days: int, riders: int, falls: float, seed0: int) -> None:
    from tests.support import simulate as sim

    for k in range(days):
        opts = replace(sim.preset("dirty"), riders=riders, seed=seed0 + k, fall_rate=falls, time_off_rate=0.5,
                       garbage=0)
        sim.write_day(out / f"day-{k + 1}", sim.simulate(opts))
    print(f"{days} days of {riders} riders -> {out}", file=sys.stderr)


def _lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def score(root: Path, engine: Path) -> dict[str, tuple[int, int]]:
    tally: dict[str, list[int]] = {}

    def count(name: str, ok: bool) -> None:
        t = tally.setdefault(name, [0, 0])
        t[0] += int(ok)
        t[1] += 1

    for d in sorted(p for p in root.iterdir() if (p / "truth.jsonl").exists()):
        out = subprocess.run([sys.executable, "-m", "services.trajectory", "assess", str(d.resolve())],
                             cwd=engine, capture_output=True, check=True).stdout
        got = {r["incident_id"]: r for r in (orjson.loads(x) for x in out.splitlines())}
        located = {r["incident_id"] for r in _lines(d / "incidents.jsonl") if r.get("location")}
        for t in _lines(d / "truth.jsonl"):
            g = got[t["incident_id"]]
            ok = g["phase"] == t["phase"] and g["continuous_delivery"] == t["continuous_delivery"]
            if t["category"] == "aftermath":
                count("falls: answered by rule 6", ok)
                count(f"falls: {t['phase']}", ok)
                continue
            count(f"other: {t['category']}", ok)
            count("other: continuous_delivery", g["continuous_delivery"] == t["continuous_delivery"])
            lc = g.get("location_check") or {}
            if "time_off_s" in t:
                there = lc.get("phase_at_nearest")
                count("time off: phase_at_nearest right", there == t["phase_at_place"])
                if t["place_category"] == "clean":
                    count("time off: phase_at_nearest right (clean place time)", there == t["phase_at_place"])
                count("time off: continuous_delivery_at_nearest right",
                      lc.get("continuous_delivery_at_nearest") == t["continuous_delivery_at_place"])
                count("time off: phase at the reported time right", ok)
                if t.get("away_at_reported_time"):  # the time check has something to find
                    count("time off, away then: phase_at_nearest right", there == t["phase_at_place"])
                    count("time off, away then: phase_at_nearest one of the visit's",
                          there in t["phases_during_visit"])
                    if "phase_at_other_pass" in lc:  # two passes about as likely, saying different things
                        count("time off, away then, two passes named: the truth is one of them",
                              t["phase_at_place"] in (there, lc["phase_at_other_pass"]))
                    count("time off, away then: phase_at_nearest right, or the other pass named",
                          t["phase_at_place"] in (there, lc.get("phase_at_other_pass")))
                else:
                    count("time off, there then too: no time check fired", there is None)
            elif t["incident_id"] in located:
                count("time right: no time check fired", "phase_at_nearest" not in lc)
            if "phase_at_nearest" in lc:
                count("time check fired: a second pass named too", "phase_at_other_pass" in lc)
    return {k: (v[0], v[1]) for k, v in sorted(tally.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir", type=Path)
    m.add_argument("--days", type=int, default=6)
    m.add_argument("--riders", type=int, default=10)
    m.add_argument("--falls", type=float, default=0.2)
    m.add_argument("--seed", type=int, default=600)
    s = sub.add_parser("score")
    s.add_argument("dir", type=Path)
    s.add_argument("--engine", type=Path, default=ROOT)
    args = ap.parse_args(argv)
    if args.cmd == "make":
        make(args.dir, args.days, args.riders, args.falls, args.seed)
        return 0
    for name, (ok, n) in score(args.dir, args.engine).items():
        print(f"{name:58s} {ok:5d} / {n:5d} = {ok / n:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
