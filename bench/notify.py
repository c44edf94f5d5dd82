"""`make bench-notify`: notifications per second through the email and webhook channels on
loopback, against a real SMTP server (aiosmtpd) and a real HTTP receiver (uvicorn), each in a
process of its own.

Three figures per channel:
- channel: ``send()`` alone, many at once (no database): what the adapter can push;
- dispatcher: notifications recorded beforehand in SQLite, then claimed, sent and their
  outcomes written by the dispatcher, as the worker does;
- plus, once, events recorded per second (decode, route, render, insert) without sending.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
INSURERS = 50  # recipients the notifications are spread over (one insurer alone gets 4 slots)
SECRET = "whsec_" + base64.b64encode(b"bench-secret-bench-secret-32byte").decode()


# ---------------------------------------------------------------- receivers (child processes)

def serve_smtp(port: int) -> None:
    from aiosmtpd.controller import Controller

    class Count:
        n = 0

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            Count.n += 1
            return "250 OK"

    c = Controller(Count(), hostname="127.0.0.1", port=port)
    c.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()
        print(Count.n, flush=True)


def serve_http(port: int) -> None:
    import uvicorn

    count = 0

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        nonlocal count
        if scope["type"] != "http":
            return
        more = True
        while more:
            msg = await receive()
            more = msg.get("more_body", False)
        if scope["method"] == "POST":
            count += 1
            body = b'{"ok":true}'
        else:
            body = str(count).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def start(kind: str, port: int) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-m", "bench.notify", f"--serve-{kind}", str(port)], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True)
    wait_port(port)
    return p


# ---------------------------------------------------------------- measurements

def notification(channel: str, k: int):  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    from services.notify.domain.model import Notification

    now = datetime.now(UTC)
    body = orjson.dumps({"type": "case.opened", "timestamp": now.isoformat(),
                         "data": {"case_id": f"c{k}", "case_number": f"XJ-{k}", "status": "opened",
                                  "insurer_code": "BENCH"}}).decode()
    return Notification(
        id=str(uuid.uuid4()), event_id=f"ev-{k}", case_id=f"c{k}", role="insurer", channel=channel,
        recipient=f"BENCH{k % INSURERS}" if channel == "webhook" else f"claims{k % INSURERS}@bench.example", template="t", lang="zh",
        subject=f"【衔接】新的理赔争议调解案件 XJ-{k}", body=body if channel == "webhook" else "您好：\n\n" + "案件详情。\n" * 20,
        html=None if channel == "webhook" else "<p>您好</p>" * 20, state="pending", attempts=1,
        next_attempt_at=now, last_error=None, created_at=now, sent_at=None, case_number=f"XJ-{k}")


async def channel_only(ch, channel: str, n: int, concurrency: int) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    items = [notification(channel, k) for k in range(n)]
    lat: list[float] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(x) -> None:  # type: ignore[no-untyped-def]
        async with sem:
            t = time.perf_counter()
            r = await ch.send(x)
            lat.append(time.perf_counter() - t)
            if not r.ok:
                raise SystemExit(f"{channel} send failed: {r.error}")

    t0 = time.perf_counter()
    await asyncio.gather(*(one(x) for x in items))
    return time.perf_counter() - t0, lat


async def run(args: argparse.Namespace) -> list[tuple[str, ...]]:
    from datetime import UTC, datetime

    from services.notify.adapters import migrate
    from services.notify.adapters.channels.email import SmtpEmailChannel
    from services.notify.adapters.channels.webhook import WebhookChannel
    from services.notify.adapters.sql import SqlInsurerDirectory, set_webhook
    from services.notify.bootstrap import bootstrap
    from services.notify.domain.model import Draft
    from services.notify.settings import NotifySettings
    from shared.db import make_engine
    from tests.unit.notify.builders import envelope, opened

    work = ROOT / "var" / "bench" / "notify"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    smtp_port, http_port = free_port(), free_port()
    smtp, http = start("smtp", smtp_port), start("http", http_port)
    rows: list[tuple[str, ...]] = []
    try:
        url = args.database_url or f"sqlite:///{work / 'notify.db'}"
        engine = make_engine(url)
        if engine.dialect.name == "postgresql":
            migrate.downgrade(engine, "base")  # a clean slate
        settings = NotifySettings(data_dir=work, smtp_host="127.0.0.1", smtp_port=smtp_port,
                                  smtp_connections=args.smtp_connections, notify_concurrency=args.concurrency,
                                  notify_poll=0.05, database_url=None, sms_gateway_url=None)
        app = bootstrap(engine=engine, settings=settings)
        for i in range(INSURERS):
            set_webhook(engine, f"BENCH{i}", f"http://127.0.0.1:{http_port}/hook/{i}", SECRET)
        db = engine.dialect.name

        def row(what: str, path: str, n: int, secs: float, lat: list[float] | None = None) -> None:
            q = statistics.quantiles(lat, n=100) if lat and len(lat) > 2 else None
            rows.append((what, path, str(n), f"{secs:.2f}", f"{n / secs:,.0f}",
                         f"{q[49] * 1000:.1f}" if q else "-", f"{q[98] * 1000:.1f}" if q else "-"))

        # channels alone
        email = SmtpEmailChannel(host="127.0.0.1", port=smtp_port, sender=settings.smtp_from,
                                 connections=args.smtp_connections, timeout=30)
        secs, lat = await channel_only(email, "email", args.n, args.concurrency)
        row("email", "channel", args.n, secs, lat)
        await email.aclose()
        hook = WebhookChannel(SqlInsurerDirectory(engine), timeout=10, max_connections=args.concurrency,
                              allow_private=True)  # the bench's receiver is on loopback
        secs, lat = await channel_only(hook, "webhook", args.n, args.concurrency)
        row("webhook", "channel", args.n, secs, lat)
        await hook.aclose()

        # the dispatcher, from the database
        for channel in ("email", "webhook"):
            now = datetime.now(UTC)
            drafts = [Draft(id=str(uuid.uuid4()), event_id=f"{channel}-{k}", case_id=f"c{k}", role="insurer",
                            channel=channel, recipient=(x := notification(channel, k)).recipient, template="t",
                            lang="zh", subject=x.subject, body=x.body, html=x.html, case_number=x.case_number)
                      for k in range(args.n)]
            for i in range(0, len(drafts), 500):
                app.store.record_event(event_id=f"bench-{channel}-{i}", event_type="Bench", case_id="bench",
                                       drafts=drafts[i:i + 500], case=None, now=now)
            t0 = time.perf_counter()
            await app.dispatcher.run_until_idle(timeout=600)
            secs = time.perf_counter() - t0
            sent = sum(1 for d in drafts[:: max(1, args.n // 50)] if app.store.get(d.id).state == "sent")
            if sent != len(drafts[:: max(1, args.n // 50)]):
                raise SystemExit(f"{channel}: not everything was sent")
            row(channel, f"dispatcher ({db})", args.n, secs)
        await app.aclose()

        # recording events (decode, route, render, insert), no sending
        envs = [envelope(opened(case_id=f"r{k}", case_number=f"XJ-R{k}", insurer_code="BENCH0")) for k in range(args.events)]
        t0 = time.perf_counter()
        for e in envs:
            app.recorder.record_envelope(e)
        secs = time.perf_counter() - t0
        rows.append(("record", f"event -> 3 notifs ({db})", str(args.events), f"{secs:.2f}",
                     f"{args.events / secs:,.0f} ev/s", "-", "-"))
        engine.dispose()
    finally:
        for p in (smtp, http):
            p.send_signal(2)
        counts = [p.communicate(timeout=20)[0].strip() for p in (smtp, http)]
    print(f"receivers saw: smtp {counts[0] or '?'} messages", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="notifications per channel and path")
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--smtp-connections", type=int, default=8)
    ap.add_argument("--database-url", default=None, help="default: SQLite under var/bench/notify (a PostgreSQL "
                    "URL is wiped of notify's tables first)")
    ap.add_argument("--serve-smtp", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--serve-http", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_smtp:
        serve_smtp(args.serve_smtp)
        return 0
    if args.serve_http:
        serve_http(args.serve_http)
        return 0
    print(f"notify on loopback: {args.n} notifications per row, {args.concurrency} in flight, "
          f"{args.smtp_connections} SMTP connections, {os.cpu_count()} cores", flush=True)
    rows = asyncio.run(run(args))
    head = ("channel", "path", "n", "seconds", "per second", "p50 ms", "p99 ms")
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    for r in (head, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
