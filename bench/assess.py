"""`make bench`: the batch assessment of a generated day of ~1M pings (130 riders, 5 s, ISO
timestamps) beside the time orjson and the standard library's json take merely to parse the same
files, line by line.

Each measured command runs as its own process; wall time and that process's peak resident memory
(from wait4) are reported, best and median of a few runs, the commands taking turns run by run so
that a change in the machine's load falls on all of them. Target (issue 15): assess at most 2x
the orjson parse, under 1 GB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
PARSE_ONLY = """
import json, sys
for name in ("platform.jsonl", "gps.jsonl", "incidents.jsonl"):
    with open(sys.argv[1] + "/" + name, encoding="utf-8") as f:
        for line in f:
            json.loads(line)
"""
ORJSON_PARSE = """
import orjson, sys
for name in ("platform.jsonl", "gps.jsonl", "incidents.jsonl"):
    with open(sys.argv[1] + "/" + name, "rb") as f:
        for line in f:
            orjson.loads(line)
"""
ORJSON, STDLIB, ASSESS = "orjson.loads every line", "json.loads every line (stdlib)", "assess DIR"


def measure(cmd: list[str]) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user + system, its forked workers included)
    of one child process. On a loaded machine the CPU time says more than the wall time."""
    t = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        p = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read().decode() if p.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default=str(ROOT / "var" / "bench" / "day-1m"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--regenerate", action="store_true")
    args = ap.parse_args(argv)
    day = Path(args.dir)
    if args.regenerate or not (day / "gps.jsonl").exists():
        print(f"generating the benchmark day in {day} ...", flush=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tests.support.simulate", str(day), "--preset", "bench"],
                       check=True, cwd=ROOT)
        print(f"  generated in {time.perf_counter() - t:.1f} s")
    pings, events, incidents = ((day / n).read_bytes().count(b"\n")
                                for n in ("gps.jsonl", "platform.jsonl", "incidents.jsonl"))
    size = sum((day / n).stat().st_size for n in ("gps.jsonl", "platform.jsonl", "incidents.jsonl")) / 2**20
    print(f"day: {pings:,} pings, {events:,} platform events, {incidents:,} incidents, {size:.0f} MiB")

    commands = {
        ORJSON: [sys.executable, "-c", ORJSON_PARSE, str(day)],
        STDLIB: [sys.executable, "-c", PARSE_ONLY, str(day)],
        ASSESS: [sys.executable, "-m", "services.trajectory", "assess", str(day)],
    }
    runs: dict[str, list[tuple[float, float, float]]] = {label: [] for label in commands}
    for _ in range(args.runs):
        for label, cmd in commands.items():
            runs[label].append(measure(cmd))
    rows = {}
    for label, done in runs.items():
        walls, cpus = [w for w, _, _ in done], [c for _, _, c in done]
        rows[label] = {"walls_s": walls, "best_s": min(walls), "median_s": statistics.median(walls),
                       "peak_rss_mib": max(r for _, r, _ in done), "cpu_s": cpus, "median_cpu_s": statistics.median(cpus)}
    load = os.getloadavg()[0]
    print(f"\n| {'command':<32} | best (s) | median (s) | median CPU (s) | peak RSS (MiB) |")
    print(f"|{'-' * 34}|---------:|-----------:|---------------:|---------------:|")
    for label, r in rows.items():
        print(f"| {label:<32} | {r['best_s']:8.2f} | {r['median_s']:10.2f} | {r['median_cpu_s']:14.2f} "
              f"| {r['peak_rss_mib']:14.0f} |")
    ours = rows[ASSESS]
    per_run = [a[0] / o[0] for a, o in zip(runs[ASSESS], runs[ORJSON], strict=True)]
    ratio = ours["median_s"] / rows[ORJSON]["median_s"]
    ratio_stdlib = ours["median_s"] / rows[STDLIB]["median_s"]
    print(f"\nassess / orjson parse (median): {ratio:.2f}  (target <= 2.00; per run "
          f"{', '.join(f'{x:.2f}' for x in per_run)})")
    print(f"assess / stdlib json parse (median): {ratio_stdlib:.2f}")
    print(f"CPU time, assess / orjson parse (median): {ours['median_cpu_s'] / rows[ORJSON]['median_cpu_s']:.2f}")
    print(f"peak memory of assess: {ours['peak_rss_mib']:.0f} MiB (target < 1024); load average {load:.1f}")
    out = ROOT / "var" / "bench" / "assess.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"pings": pings, "events": events, "incidents": incidents, **rows, "ratio_orjson": ratio,
                                 "ratio_stdlib": ratio_stdlib, "load_average": load},
                                 option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
