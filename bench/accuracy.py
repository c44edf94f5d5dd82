"""`make bench-accuracy`: how often the engine is right, on simulated days and on the public scenarios.

For each preset (``dirty``, ``indoor``, ``harder``, ``streets``; see ``tests.support.simulate.preset``) and
each seed, a day is simulated and written to ``var/bench/accuracy/<preset>-<seed>/``, read back
with the batch command's reader, and every incident assessed; the public scenarios
(``tests/data/scenarios``) are scored the same way. Printed per set:

* ``n``: incidents (``clean``: at least 2 min from a phase change; ``near``: closer);
* ``abstain``: share answered ``insufficient_data``;
* ``phase clean`` / ``phase near``: share of the *decided* incidents of that category whose phase
  is right (an abstention is neither right nor wrong: it is counted in ``abstain``);
* ``phase all``: share right over every incident, abstentions counted as wrong;
* ``cd``: share of decided incidents whose ``continuous_delivery`` is right;
* the most frequent confusions (truth -> answer).

The figures are reproducible: the simulator is deterministic for a seed. ``--json`` also writes
them as one JSON object per set.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Params
from shared.timeutil import iso_local
from tests.support import simulate as sim

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "data" / "scenarios"
OUT = ROOT / "var" / "bench" / "accuracy"
TZ = "Asia/Shanghai"


@dataclass
class Score:
    name: str
    # by truth category: clean, boundary, and aftermath (DATA_CONTRACT §5 rule 6) where a scenario has it
    n: Counter[str] = field(default_factory=lambda: Counter({"clean": 0, "boundary": 0}))
    decided: Counter[str] = field(default_factory=lambda: Counter({"clean": 0, "boundary": 0}))
    right: Counter[str] = field(default_factory=lambda: Counter({"clean": 0, "boundary": 0}))
    cd_decided: int = 0
    cd_right: int = 0
    abstained: int = 0
    errors: int = 0
    confusions: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, truth: dict[str, Any], got: dict[str, Any]) -> None:
        cat = truth["category"]
        self.n[cat] += 1
        if "error" in got:
            self.errors += 1
        if got["phase"] == "insufficient_data":
            self.abstained += 1
            self.confusions[f"{truth['phase']}->insufficient_data"] += 1
            return
        self.decided[cat] += 1
        self.right[cat] += got["phase"] == truth["phase"]
        if got["phase"] != truth["phase"]:
            self.confusions[f"{truth['phase']}->{got['phase']}"] += 1
        self.cd_decided += 1
        self.cd_right += got["continuous_delivery"] == truth["continuous_delivery"]

    def merge(self, other: Score) -> None:
        for d, o in ((self.n, other.n), (self.decided, other.decided), (self.right, other.right)):
            for k in d:
                d[k] += o[k]
        self.cd_decided += other.cd_decided
        self.cd_right += other.cd_right
        self.abstained += other.abstained
        self.errors += other.errors
        self.confusions.update(other.confusions)
        self.seconds += other.seconds

    def figures(self) -> dict[str, Any]:
        total = sum(self.n.values())

        def share(a: int, b: int) -> float | None:
            return round(a / b, 4) if b else None

        return {
            "set": self.name, "n": total, "n_clean": self.n["clean"], "n_near": self.n["boundary"],
            "abstain": share(self.abstained, total),
            "phase_clean": share(self.right["clean"], self.decided["clean"]),
            "phase_near": share(self.right["boundary"], self.decided["boundary"]),
            "phase_all": share(sum(self.right.values()), total),
            "cd": share(self.cd_right, self.cd_decided),
            "errors": self.errors,
            "confusions": dict(self.confusions.most_common(6)),
            "seconds": round(self.seconds, 1),
        }


def score_dir(directory: Path, name: str, params: Params) -> Score:
    t = time.perf_counter()
    feeds = load_dir(directory, TZ)
    cache = {r: analyse(d, params) for r, d in feeds.days.items()}
    got = {i.incident_id: assess(cache[i.rider_id], i, params, lambda x: iso_local(x, TZ))
           for i in feeds.incidents if i.rider_id in cache}
    sc = Score(name)
    for line in (directory / "truth.jsonl").read_bytes().splitlines():
        if line.strip():
            tr = orjson.loads(line)
            sc.add(tr, got.get(tr["incident_id"], {"phase": "insufficient_data", "error": "not assessed"}))
    sc.seconds = time.perf_counter() - t
    return sc


def simulated(preset: str, seed: int, riders: int, regenerate: bool) -> Path:
    d = OUT / f"{preset}-{seed}-{riders}"
    if regenerate or not (d / "truth.jsonl").exists():
        opts = replace(sim.preset(preset), seed=seed, riders=riders)
        sim.write_day(d, sim.simulate(opts))
    return d


def show(f: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{v:.4f}"

    conf = ", ".join(f"{k} {v}" for k, v in f["confusions"].items())
    return (f"{f['set']:<22} n {f['n']:>5} ({f['n_clean']} clean, {f['n_near']} near)  abstain {pct(f['abstain'])}  "
            f"phase clean {pct(f['phase_clean'])}  near {pct(f['phase_near'])}  all {pct(f['phase_all'])}  "
            f"cd {pct(f['cd'])}  errors {f['errors']}  [{f['seconds']:.0f} s]\n{'':<22} misses: {conf or '-'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="dirty,indoor,harder,streets")
    ap.add_argument("--seeds", default="101,102,103,104,201,202,203,204,205,206",
                    help="comma-separated simulator seeds (a day each)")
    ap.add_argument("--riders", type=int, default=20, help="riders per simulated day")
    ap.add_argument("--no-scenarios", action="store_true", help="skip the public scenarios")
    ap.add_argument("--regenerate", action="store_true", help="simulate the days again even if written")
    ap.add_argument("--json", type=Path, help="also write the figures here, one JSON object per line")
    args = ap.parse_args(argv)
    params = Params()
    rows: list[dict[str, Any]] = []
    seeds = [int(s) for s in args.seeds.split(",") if s]
    for preset in [p for p in args.presets.split(",") if p]:
        total = Score(f"{preset} ({len(seeds)} days)")
        for seed in seeds:
            total.merge(score_dir(simulated(preset, seed, args.riders, args.regenerate), f"{preset}-{seed}", params))
        rows.append(total.figures())
        print(show(rows[-1]), flush=True)
    if not args.no_scenarios:
        total = Score("public scenarios")
        for d in sorted(p for p in SCENARIOS.iterdir() if (p / "truth.jsonl").exists()):
            total.merge(score_dir(d, d.name, params))
        rows.append(total.figures())
        print(show(rows[-1]), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
