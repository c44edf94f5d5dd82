"""``python -m services demo`` (and, with the mediation service, ``up``)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo", help="replay the seed case end to end; artefacts under var/demo/")
    args = parser.parse_args(argv)
    if args.cmd == "demo":
        from services import demo

        return demo.main()
    return 2


if __name__ == "__main__":
    sys.exit(main())
