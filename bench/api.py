"""`make bench-api`: the public status endpoint and case reads under concurrent load, beside a bare
FastAPI endpoint in the same run. Target: at least a third of the bare endpoint's throughput.

Both servers run as their own processes (`python -m services up` on SQLite, and uvicorn with
bench/bare.py), one worker each; the load comes from this process with a fixed number of
concurrent connections for a fixed time, the same generator for every endpoint."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from services.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


async def load(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> dict[str, float]:
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=10) as client:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    r = await client.get(url)
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                lat.append(time.perf_counter() - t)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {"rps": len(lat) / wall, "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "errors": errors, "n": len(lat)}


def wrk(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> dict[str, float]:
    """The same measurement with wrk (C, from Debian's packages), when it is installed: a Python
    load generator on two cores saturates before the servers do."""
    cmd = ["wrk", "-t2", f"-c{concurrency}", f"-d{int(seconds)}s", "--latency", url]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(tag: str) -> float:
        for line in out.splitlines():
            parts = line.split()
            if parts[:1] == [tag]:
                v = parts[1]
                return float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
        return float("nan")

    rps = next(float(line.split()[1]) for line in out.splitlines() if line.startswith("Requests/sec"))
    non2xx = next((int(line.split()[-1]) for line in out.splitlines() if "Non-2xx" in line), 0)
    return {"rps": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%"), "errors": non2xx, "n": 0}


def wait_up(url: str, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args(argv)
    data = Path(tempfile.mkdtemp(prefix="xj-bench-api-"))
    env = {**os.environ, "XJ_DATA_DIR": str(data), "XJ_DATABASE_URL": f"sqlite:///{data / 'xianjie.db'}"}
    env.pop("XJ_BUS", None)
    port, bare_port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "services", "up"], cwd=ROOT,
                                      env={**env, "XJ_HTTP_PORT": str(port)}, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(bare_port),
                                       "--log-level", "warning", "--no-access-log"], cwd=ROOT, env=env))
        base = f"http://127.0.0.1:{port}"
        wait_up(f"{base}/healthz")
        wait_up(f"http://127.0.0.1:{bare_port}/bare")

        def cli(*a: str) -> str:
            return subprocess.run([sys.executable, "-m", "services.mediation", *a], cwd=ROOT, env=env, check=True,
                                  capture_output=True, text=True).stdout.strip()

        token = cli("users", "add", "--role", "mediator", "--name", "bench")
        cli("users", "add", "--role", "insurer", "--name", "bench insurer", "--insurer", "PICC")
        auth = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{base}/api/v1/cases", headers=auth, json={
            "rider": {"id": "R1", "name": "李明", "phone": "13800138000"}, "insurer_code": "PICC",
            "policy_number": "P1", "claim_number": "C1", "incident": {"at": "2025-05-14T14:10:00+08:00"},
            "consent": {"given": True, "method": "written"}}).json()
        rows = {
            "bare FastAPI endpoint": (f"http://127.0.0.1:{bare_port}/bare", {}),
            "GET /api/v1/status/{number}?code=": (
                f"{base}/api/v1/status/{created['case_number']}?code={created['rider_access_code']}", {}),
            "GET /api/v1/cases/{id} (mediator)": (f"{base}/api/v1/cases/{created['case_id']}", auth),
        }
        results = {}
        use_wrk = shutil.which("wrk") is not None
        for label, (url, headers) in rows.items():
            asyncio.run(load(url, headers, 1.0, args.concurrency))  # warm up
            results[label] = (wrk(url, headers, args.seconds, args.concurrency) if use_wrk
                              else asyncio.run(load(url, headers, args.seconds, args.concurrency)))
        bare = results["bare FastAPI endpoint"]["rps"]
        print(f"\n{args.concurrency} concurrent connections, {args.seconds:.0f} s each, one server process each, "
              f"load from {'wrk' if use_wrk else 'httpx'}\n")
        print("| endpoint | requests/s | p50 (ms) | p99 (ms) | errors | share of bare |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, r in results.items():
            print(f"| {label} | {r['rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']:.0f} | "
                  f"{r['rps'] / bare:.2f} |")
        print("\ntarget: each endpoint at least 0.33 of the bare endpoint's throughput")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
