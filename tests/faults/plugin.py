"""The fault suite's pytest plugin (loaded with ``-p tests.faults.plugin`` from pyproject.toml):
the ``reliability`` fixture, the ``--faults-full`` and ``--reliability-report`` options.

Every scenario records a row -- what ran, under what load, what was injected, and what was lost,
duplicated or leaked -- and asserts that those are zero. ``make faults`` runs all of it
(``--faults-full``) and writes the rows to docs/reliability.md; ``make test`` (and so CI) runs the
fast part, and the long scenarios (marked ``faults_full``) skip there with the reason shown."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Row:
    group: int  # the numbered list: 1 broker, 2 service kills, 3 database, 4 poison, ...
    scenario: str
    load: str
    injected: str
    lost: int | str
    duplicated: int | str
    leaked: int | str
    detail: str = ""
    test: str = ""


@dataclass
class Reliability:
    rows: list[Row] = field(default_factory=list)
    current: str = ""

    def record(self, group: int, scenario: str, *, load: str, injected: str, lost: int | str = 0,
               duplicated: int | str = 0, leaked: int | str = 0, detail: str = "") -> Row:
        row = Row(group, scenario, load, injected, lost, duplicated, leaked, detail, self.current)
        self.rows.append(row)
        return row


_RELIABILITY = Reliability()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("faults")
    g.addoption("--faults-full", action="store_true", help="run the long fault scenarios too (make faults)")
    g.addoption("--reliability-report", default=None, help="write the fault suite's table to this file")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults_full: a long fault scenario, run by make faults (--faults-full)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--faults-full"):
        return
    skip = pytest.mark.skip(reason="a long fault scenario: run by `make faults` (--faults-full)")
    for item in items:
        if "faults_full" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Reliability:
    _RELIABILITY.current = request.node.nodeid
    return _RELIABILITY


GROUPS = {
    1: "Kafka broker killed during a replay",
    2: "Services killed during the seed case",
    3: "PostgreSQL restarted under API load",
    4: "Poison messages on every topic",
    5: "Bad input at every door",
    6: "Hostile users",
    7: "Privacy",
}


def _cell(v: object) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = session.config.getoption("--reliability-report")
    if not path:
        return
    rows = sorted(_RELIABILITY.rows, key=lambda r: r.group)
    outcome = "passed" if exitstatus == 0 else f"FAILED (exit status {int(exitstatus)}): see its output"
    out = [
        "# Reliability: faults, bad input and hostile users",
        "",
        f"Written by `make faults` on {time.strftime('%Y-%m-%d %H:%M %Z')} ({platform.node()}, "
        f"{platform.machine()}, Python {platform.python_version()}); the suite "
        f"{outcome}.",
        "Each row is one scenario as it ran: the figures in *lost*, *duplicated* and *leaked* are counted",
        "by the test (and asserted to be zero), not written by hand. The source of each row is the test named",
        "under it. `make test` (CI) runs the fast scenarios; the long ones (broker, service and database",
        "restarts) run with `make faults`.",
        "",
    ]
    for g, title in GROUPS.items():
        mine = [r for r in rows if r.group == g]
        out += [f"## {g}. {title}", ""]
        if not mine:
            out += ["(no scenario of this group ran)", ""]
            continue
        out += ["| scenario | load | injected | lost | duplicated | leaked | detail |", "|---|---|---|---|---|---|---|"]
        out += [f"| {_cell(r.scenario)} | {_cell(r.load)} | {_cell(r.injected)} | {_cell(r.lost)} | "
                f"{_cell(r.duplicated)} | {_cell(r.leaked)} | {_cell(r.detail)} |" for r in mine]
        out += ["", "Tests: " + ", ".join(sorted({f"`{r.test}`" for r in mine})), ""]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")
