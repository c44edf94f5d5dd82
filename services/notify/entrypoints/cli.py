"""``python -m services.notify worker|digest|dead|replay|migrate|webhook``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from services.notify.settings import NotifySettings
from shared.bus import make_bus

logger = logging.getLogger("services.notify")


async def worker(settings: NotifySettings) -> int:
    from services.notify.bootstrap import bootstrap

    bus = make_bus(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    notify = bootstrap(settings=settings, bus=bus)  # subscribed before the bus starts
    await bus.start()
    logger.info("notify worker running", extra={"bus": settings.bus, "smtp": settings.smtp_host})
    try:
        await notify.run(stop)
    finally:
        await bus.stop()
        notify.engine.dispose()
    return 0


async def digest(settings: NotifySettings, day: date | None) -> int:
    from services.notify.bootstrap import bootstrap

    notify = bootstrap(settings=settings)
    day = day or datetime.now(ZoneInfo(settings.timezone)).date()
    try:
        ids = notify.recorder.record_digests(day=day)
        await notify.dispatcher.run_until_idle(timeout=max(60.0, settings.notify_timeout_email * 2))
        states = [notify.store.get(i).state for i in ids]
    finally:
        await notify.aclose()
        notify.engine.dispose()
    sent = states.count("sent")
    print(f"digest of {day}: {len(ids)} recorded, {sent} sent"
          + (f", {len(ids) - sent} left to the worker's retries" if sent < len(ids) else ""))
    return 0 if sent == len(ids) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.notify")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("worker", help="consume case events and send notifications until stopped")
    d = sub.add_parser("digest", help="send each mediator today's digest of overdue cases (once a day)")
    d.add_argument("--day", type=date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)")
    sub.add_parser("migrate", help="bring notify's tables to the latest schema")
    dl = sub.add_parser("dead", help="list dead notifications")
    dl.add_argument("--limit", type=int, default=50)
    r = sub.add_parser("replay", help="try a dead notification again")
    r.add_argument("id")
    w = sub.add_parser("webhook", help="set an insurer's webhook URL and secret (rotates the secret)")
    w.add_argument("code")
    w.add_argument("url")
    w.add_argument("secret", help="whsec_ + base64")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = NotifySettings()
    if args.cmd == "worker":
        return asyncio.run(worker(settings))
    if args.cmd == "digest":
        return asyncio.run(digest(settings, args.day))
    from services.notify.adapters.sql import set_webhook
    from services.notify.bootstrap import bootstrap
    from services.notify.domain.errors import NotifyError

    notify = bootstrap(settings=settings, channels={})  # its tables brought up to date; nothing is sent
    engine, store = notify.engine, notify.store
    try:
        if args.cmd == "dead":
            for n in store.dead(limit=args.limit):
                print(f"{n.id}  {n.channel:7} {n.recipient:30} case {n.case_number or '-':16} "
                      f"attempts {n.attempts}  {n.last_error or ''}")
        elif args.cmd == "replay":
            n = store.replay(args.id, now=datetime.now(UTC))
            print(f"{n.id} {n.state}")
        elif args.cmd == "webhook":
            from services.notify.adapters.channels.ssrf import check_target

            check_target(args.url, allow_private=settings.webhook_allow_private)
            info = set_webhook(engine, args.code, args.url, args.secret)
            print(f"{info['code']} {info['url']} ({info['secrets']} valid secrets)")
    except NotifyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
