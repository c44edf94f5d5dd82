"""``python -m services up | serve | demo``"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="replay the seed case end to end; artefacts under var/demo/")
    sub.add_parser("up", help="all three services in one process, in-process bus and SQLite; HTTP on XJ_HTTP_PORT")
    sub.add_parser("serve", help="the HTTP door as its own process (at scale: XJ_BUS=kafka, XJ_DATABASE_URL); "
                                 "run the trajectory and notify workers beside it")
    args = parser.parse_args(argv)
    if args.cmd in ("up", "serve"):
        import logging

        from services.bootstrap import serve

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return serve(only="mediation" if args.cmd == "serve" else None)
    if args.cmd == "demo":
        from services import demo

        return demo.main()
    return 2


if __name__ == "__main__":
    sys.exit(main())
