"""Group 5 of the fault suite: bad input at every door.

The rule: bad input gets a clear error naming what was wrong and never loses anything else. A bad
line in a feed is reported (with its line) and skipped while every good line is kept exactly; a bad
request is a 4xx naming the field; nothing a client sends produces a 500 or a crash.

- the feed readers (files and bus messages) under property-based fuzzing: good lines mixed with
  mutated lines (fields dropped, wrong types, NaN and infinities, huge numbers, timestamps and
  coordinates at and past their limits, identifiers empty, 10,000 characters long, in any script
  or full of control characters) and with arbitrary bytes and JSON;
- schemathesis against the API's OpenAPI document, as each role, asserting no 5xx anywhere;
- bodies over the limit refused with 413 at every door that takes a body.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson
import pytest
import requests
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error

from services.embedded import System, running_system
from services.trajectory.adapters.feeds import (
    read_gps,
    read_gps_messages,
    read_incidents,
    read_platform,
    read_platform_messages,
)
from tests.conftest import need_postgres
from tests.faults.bad_input_helpers import (
    ANY,
    BAD,
    GOOD,
    GPS_FIELDS,
    INCIDENT_FIELDS,
    PLATFORM_FIELDS,
    TZ,
    Line,
    Tally,
    any_line,
    bad_gps,
    bad_incident,
    bad_platform,
    feed,
    good_gps,
    good_incident,
    good_platform,
    join,
)
from tests.integration.mediation.test_api import case_body

pytestmark = pytest.mark.integration

FAST_EXAMPLES, FULL_EXAMPLES = 100, 2000  # per property: `make test` / `make faults` (--faults-full)


@pytest.fixture
def fuzz(request: pytest.FixtureRequest) -> settings:
    """Hypothesis settings of a feed property: a quick run in CI, a long one under ``make faults``."""
    n = FULL_EXAMPLES if request.config.getoption("--faults-full") else FAST_EXAMPLES
    return settings(max_examples=n, deadline=None, suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])


# ---------------------------------------------------------------- feed readers: checks


def _same_float(a: float, b: float) -> bool:
    return a == b or (a == 0 and b == 0)


def account(lines: list[Line], kept: list[int], problems: list[Any], tally: Tally, *, blank_reported: bool) -> list[str]:
    """Check what a reader did with ``lines`` (kept: the line numbers that came out; problems: the
    reported ones) and add it to the tally. Returns what went wrong, for the example's assertion."""
    wrong: list[str] = []
    out, said = Counter(kept), Counter(p.line for p in problems)
    messages = {p.line: p.message for p in problems}
    tally.examples += 1
    tally.lines += len(lines)
    dup = sum(c - 1 for c in out.values() if c > 1) + sum(c - 1 for c in said.values() if c > 1)
    if dup:
        tally.duplicated += dup
        wrong.append(f"{dup} line(s) kept or reported twice: {sorted(out.items())} {sorted(said.items())}")
    stray = (set(out) | set(said)) - set(range(1, len(lines) + 1))
    if stray:
        wrong.append(f"line numbers that are not lines of the input: {sorted(stray)}")
    for no, line in enumerate(lines, start=1):
        if line.kind == GOOD:
            tally.good += 1
            if not out[no]:
                tally.lost += 1
                wrong.append(f"good line {no} lost ({messages.get(no)!r}): {line.raw[:200]!r}")
            if said[no]:
                wrong.append(f"good line {no} reported: {messages[no]!r}")
        elif line.kind == BAD:
            tally.bad += 1
            if out[no]:
                tally.leaked += 1
                wrong.append(f"bad line {no} ({line.what}) kept: {line.raw[:200]!r}")
            if not said[no]:
                wrong.append(f"bad line {no} ({line.what}) not reported: {line.raw[:200]!r}")
            elif line.fragment.lower() not in messages[no].lower():
                wrong.append(f"bad line {no} ({line.what}): message {messages[no]!r} does not name {line.fragment!r}")
        elif not line.raw.strip() and not blank_reported:
            if out[no] or said[no]:
                wrong.append(f"blank line {no} kept or reported")
        elif out[no] + said[no] != 1:
            wrong.append(f"line {no} ({line.what}) kept {out[no]}x and reported {said[no]}x: {line.raw[:200]!r}")
    for p in problems:
        if not p.message or not isinstance(p.message, str):
            wrong.append(f"problem without a message: {p!r}")
    return wrong


def check_gps(lines: list[Line], cols: Any, problems: list[Any], tally: Tally, blank_reported: bool = False) -> None:
    kept = cols.line.tolist()
    wrong = account(lines, kept, problems, tally, blank_reported=blank_reported)
    riders = cols.rider.to_list()
    assert len(riders) == len(kept) == cols.t.size == cols.lat.size == cols.lon.size
    at = {no: i for i, no in enumerate(kept)}
    for no, line in enumerate(lines, start=1):
        if line.kind != GOOD or no not in at:
            continue
        i, e = at[no], line.expect
        got = (riders[i], float(cols.t[i]), float(cols.lat[i]), float(cols.lon[i]))
        if got[0] != e["rider"] or abs(got[1] - e["t"]) > 1e-4 or not _same_float(got[2], e["lat"]) \
                or not _same_float(got[3], e["lon"]):
            tally.lost += 1
            wrong.append(f"good line {no} changed: {got!r} != {(e['rider'], e['t'], e['lat'], e['lon'])!r}"
                         f" from {line.raw[:200]!r}")
    if not np.all(np.isfinite(cols.t)) or not np.all(np.isfinite(cols.lat)) or not np.all(np.isfinite(cols.lon)):
        wrong.append("a kept ping has a non-finite instant or coordinate")
    assert not wrong, "\n".join(wrong)


def check_platform(lines: list[Line], events: list[Any], problems: list[Any], tally: Tally,
                   blank_reported: bool = False) -> None:
    kept = [ev.line for ev, _ in events]
    wrong = account(lines, kept, problems, tally, blank_reported=blank_reported)
    at = {ev.line: (ev, t) for ev, t in events}
    for no, line in enumerate(lines, start=1):
        if line.kind != GOOD or no not in at:
            continue
        ev, t = at[no]
        e = line.expect
        got = (ev.rider_id, ev.kind, ev.type, ev.merchant, ev.customer)
        if got != (e["rider"], e["kind"], e["type"], e["merchant"], e["customer"]) or abs(t - e["t"]) > 1e-4:
            tally.lost += 1
            wrong.append(f"good line {no} changed: {got!r}, {t} from {line.raw[:200]!r}")
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------- feed readers: files


def _row(reliability: Any, scenario: str, tally: Tally, injected: str, what: str) -> None:
    reliability.record(
        5, scenario, load=f"{tally.examples} generated {what} × ≤50 lines ({tally.lines:,} lines, {tally.good:,} good)",
        injected=injected, lost=tally.lost, duplicated=tally.duplicated, leaked=tally.leaked,
        detail=f"{tally.bad:,} certainly-bad lines each reported with its line number and the field at fault; "
               f"{tally.lines - tally.good - tally.bad:,} arbitrary or blank lines each kept or reported exactly once")


INJECTED_LINES = ("fields dropped or null, wrong types, NaN/±Infinity, 1e308 and 1e400, timestamps in year 1/1999/"
                  "2100/9999 and in epoch s/µs/negative, odd ISO offsets, lat/lon at and past ±90/±180 and (0,0), "
                  "ids empty/blank/10k chars/any script/control chars, truncated lines, arbitrary bytes and JSON, "
                  "CRLF and blank lines")


def test_gps_file_reader_keeps_every_good_line_and_names_every_bad_one(reliability, fuzz):
    tally = Tally()

    @fuzz
    @given(lines=feed(good_gps(), bad_gps(), GPS_FIELDS), ending=st.sampled_from([b"\n", b"\n", b"\r\n"]),
           final=st.sampled_from([b"", b"\n", b"\n\n"]))
    def run(lines: list[Line], ending: bytes, final: bytes) -> None:
        cols, problems = read_gps(join(lines, ending, final), "gps.jsonl", TZ)
        check_gps(lines, cols, problems, tally)

    try:
        run()
    finally:
        _row(reliability, "GPS file reader fuzzed (read_gps)", tally, INJECTED_LINES, "GPS files")
    assert tally.lost == tally.duplicated == tally.leaked == 0


def test_clean_gps_file_fast_path_keeps_extreme_good_lines(reliability, fuzz):
    """Only good lines (and certainly-bad JSON objects): polars' one-pass read, not the line-by-line one."""
    tally = Tally()

    @fuzz
    @given(lines=st.lists(st.one_of(good_gps(), good_gps(), bad_gps().filter(lambda x: x.raw.startswith(b"{")
                                                                              and x.raw.endswith(b"}"))),
                          min_size=1, max_size=40))
    def run(lines: list[Line]) -> None:
        lines = [Line(x.kind, x.raw.strip(), x.expect, x.fragment, x.what) for x in lines]
        cols, problems = read_gps(join(lines, b"\n", b"\n"), "gps.jsonl", TZ)
        check_gps(lines, cols, problems, tally)

    try:
        run()
    finally:
        _row(reliability, "GPS file reader fuzzed, objects only (polars fast path)", tally,
             "good pings at their extremes beside certainly-bad JSON objects", "GPS files")
    assert tally.lost == tally.duplicated == tally.leaked == 0


def test_platform_file_reader_keeps_every_good_line_and_names_every_bad_one(reliability, fuzz):
    tally = Tally()

    @fuzz
    @given(lines=feed(good_platform(), bad_platform(), PLATFORM_FIELDS), ending=st.sampled_from([b"\n", b"\r\n"]))
    def run(lines: list[Line], ending: bytes) -> None:
        events, problems = read_platform(join(lines, ending, b"\n"), "platform.jsonl", TZ)
        check_platform(lines, events, problems, tally)

    try:
        run()
    finally:
        _row(reliability, "Platform-event file reader fuzzed (read_platform)", tally,
             INJECTED_LINES + "; unknown kinds and types, places that are not objects or out of range",
             "platform files")
    assert tally.lost == tally.duplicated == tally.leaked == 0


def test_incident_file_reader_keeps_every_good_line_and_names_every_bad_one(reliability, fuzz):
    tally = Tally()

    @fuzz
    @given(lines=feed(good_incident(), bad_incident(), INCIDENT_FIELDS), ending=st.sampled_from([b"\n", b"\r\n"]))
    def run(lines: list[Line], ending: bytes) -> None:
        incidents, problems = read_incidents(join(lines, ending, b""), "incidents.jsonl", TZ)
        # incidents carry no line number: they come out in input order, so the lines kept are
        # the non-blank lines not reported, in order
        said = {p.line for p in problems}
        kept = [no for no, x in enumerate(lines, start=1) if x.raw.strip() and no not in said]
        wrong: list[str] = []
        if len(kept) != len(incidents):
            wrong.append(f"{len(incidents)} incidents out of {len(kept)} lines neither blank nor reported")
            tally.lost += max(0, len(kept) - len(incidents))
        wrong += account(lines, kept[:len(incidents)], problems, tally, blank_reported=False)
        for no, inc in zip(kept, incidents, strict=False):
            e = lines[no - 1].expect
            if lines[no - 1].kind == GOOD and ((inc.incident_id, inc.rider_id, inc.location) != (
                    e["id"], e["rider"], e["location"]) or abs(inc.at - e["t"]) > 1e-4):
                tally.lost += 1
                wrong.append(f"good line {no} changed: {inc!r}")
        assert not wrong, "\n".join(wrong)

    try:
        run()
    finally:
        _row(reliability, "Incident file reader fuzzed (read_incidents)", tally, INJECTED_LINES, "incident files")
    assert tally.lost == tally.duplicated == tally.leaked == 0


# ---------------------------------------------------------------- feed readers: bus messages


@st.composite
def _message(draw: st.DrawFn, line: st.SearchStrategy[Line]) -> Line:
    """A line as one bus message: as is, pretty-printed over several lines, or padded."""
    x = draw(line)
    if x.kind == GOOD and draw(st.booleans()):
        pretty = orjson.dumps(orjson.loads(x.raw), option=orjson.OPT_INDENT_2)
        eol = draw(st.sampled_from([b"\n", b"\r\n"]))
        return Line(GOOD, pretty.replace(b"\n", eol) + draw(st.sampled_from([b"", b"\n", b" \r\n"])), x.expect,
                    what="good, pretty-printed")
    return x


def _messages(good: st.SearchStrategy[Line], bad: st.SearchStrategy[Line],
              required: tuple[str, ...]) -> st.SearchStrategy[list[Line]]:
    garbage = st.binary(max_size=60).map(lambda b: Line(ANY, b, what="arbitrary bytes (any newlines)"))
    empty = st.sampled_from([b"", b"\n", b" \n\t\r\n"]).map(lambda b: Line(ANY, b, what="empty message"))
    return st.lists(st.one_of(_message(good), _message(good), _message(bad), any_line(required), garbage, empty),
                    min_size=1, max_size=50)


def test_gps_messages_each_kept_or_reported_exactly_once(reliability, fuzz):
    tally = Tally()

    @fuzz
    @given(lines=_messages(good_gps(), bad_gps(), GPS_FIELDS))
    def run(lines: list[Line]) -> None:
        cols, problems = read_gps_messages([x.raw for x in lines], TZ, "rider.gps")
        check_gps(lines, cols, problems, tally, blank_reported=True)

    try:
        run()
    finally:
        _row(reliability, "GPS bus messages fuzzed (read_gps_messages)", tally,
             INJECTED_LINES + "; empty messages, pretty-printed JSON, bytes with newlines inside",
             "message batches")
    assert tally.lost == tally.duplicated == tally.leaked == 0


def test_platform_messages_each_kept_or_reported_exactly_once(reliability, fuzz):
    tally = Tally()

    @fuzz
    @given(lines=_messages(good_platform(), bad_platform(), PLATFORM_FIELDS))
    def run(lines: list[Line]) -> None:
        events, problems = read_platform_messages([x.raw for x in lines], TZ, "rider.platform-events")
        check_platform(lines, events, problems, tally, blank_reported=True)

    try:
        run()
    finally:
        _row(reliability, "Platform-event bus messages fuzzed (read_platform_messages)", tally,
             INJECTED_LINES + "; empty messages, pretty-printed JSON, bytes with newlines inside",
             "message batches")
    assert tally.lost == tally.duplicated == tally.leaked == 0


# ---------------------------------------------------------------- the HTTP API

BODY_LIMIT = 256 * 1024  # XJ_MAX_BODY_BYTES of the system under test: small, so 413s are cheap to provoke
JSON_LIMIT = 64 * 1024  # XJ_MAX_JSON_BYTES: every other door
ATTACHMENT_LIMIT = 128 * 1024  # XJ_MAX_ATTACHMENT_BYTES: the attachment doors (plus the multipart framing)
ROLES = ("mediator", "insurer", "feed", None)


@contextmanager
def _system(d: Path, url: str) -> Iterator[System]:
    """The whole embedded system serving real HTTP, with a user of each role and one open case (of
    insurer PICC, the insurer user's) to aim at."""
    with running_system(d / "var", url, env={"XJ_MAX_BODY_BYTES": str(BODY_LIMIT), "XJ_MAX_JSON_BYTES": str(JSON_LIMIT),
                                             "XJ_MAX_ATTACHMENT_BYTES": str(ATTACHMENT_LIMIT)}) as s:
        s.tokens = {
            "mediator": s.add_user("mediator", "王调解", office="xiacheng", email="wang@example.org"),
            "insurer": s.add_user("insurer", "PICC claims", insurer="PICC", email="claims@picc.example"),
            "feed": s.add_user("feed", "meituan feed"),
        }
        with s.client("mediator") as m:
            r = m.post("/api/v1/cases", json=case_body())
            assert r.status_code == 201, r.text
            s.case = r.json()  # type: ignore[attr-defined]
        yield s


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The system on SQLite (the API's behaviour at the door does not depend on the database)."""
    d = tmp_path_factory.mktemp("bad-input")
    with _system(d, f"sqlite:///{d / 'xj.db'}") as s:
        yield s


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api_each_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The system on SQLite and on PostgreSQL, for what only PostgreSQL refuses (NUL in text)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("api")
        return
    base = sa.make_url(need_postgres())
    name = f"xj_bad_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        with _system(tmp_path_factory.mktemp("bad-input-pg"),
                     base.set(database=name).render_as_string(hide_password=False)) as s:
            yield s
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    """The feed endpoints' bodies: NDJSON text as generated (anything else as JSON)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value, default=str).encode()  # negative mode: numbers, big integers, objects...


@dataclass
class ApiTally:
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    not_json: list[str] = field(default_factory=list)
    unsatisfiable: int = 0


def _fixed(op: Any, s: System) -> dict[str, Any]:
    """Path parameters that name something real, so that a request gets past the 404."""
    real = {"case_id": s.case["case_id"], "case_number": s.case["case_number"], "code": "PICC"}
    names = {p.name for p in op.path_parameters}
    return {k: v for k, v in real.items() if k in names}


def fuzz_operation(op: Any, s: System, who: str | None, mode: GenerationMode, n: int, fixed: dict[str, Any],
                   tally: ApiTally) -> None:
    headers = {"Authorization": f"Bearer {s.tokens[who]}"} if who else {}
    session = requests.Session()

    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode, path_parameters=fixed or None))
    def run(case: Case) -> None:
        try:
            r = case.call(base_url=s.base_url, session=session, headers=headers, timeout=30)
        except Exception as e:  # the server hung up, or never answered
            tally.crashes.append(f"{op.label} as {who}: {type(e).__name__}: {e}\n{case.as_curl_command()}")
            return
        tally.requests += 1
        tally.by_status[r.status_code] += 1
        try:
            case.validate_response(r, checks=[not_a_server_error])
        except (Exception, BaseExceptionGroup) as e:  # schemathesis' FailureGroup
            if len(tally.server_errors) < 20:
                tally.server_errors.append(f"{op.label} as {who} -> {r.status_code} {r.text[:300]!r}\n"
                                           f"{case.as_curl_command(headers=headers, base_url=s.base_url)}\n{e}")
            else:
                tally.server_errors.append(op.label)
        ctype = (r.headers.get("content-type") or [""])[0]
        if r.status_code >= 400 and not ctype.startswith("application/json"):
            tally.not_json.append(f"{op.label} as {who} -> {r.status_code} {ctype}")

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters): nothing to send
        tally.unsatisfiable += 1
    finally:
        session.close()


FAST_PER_ROLE = {"mediator": 10, "insurer": 4, "feed": 3, None: 2}  # examples per operation, mode and target
FULL_PER_ROLE = {"mediator": 150, "insurer": 50, "feed": 30, None: 20}


def test_schemathesis_no_5xx_on_any_operation_as_any_role(api, reliability):
    """Every operation of the OpenAPI document, as each role and anonymously, with valid and
    invalid inputs (schemathesis' positive and negative modes), aimed at random ids and at a real
    case: no answer is a 5xx, every error is JSON."""
    schemathesis_run(api, reliability, FAST_PER_ROLE, "API fuzzed from its OpenAPI document (schemathesis)")


@pytest.mark.faults_full
def test_schemathesis_long_run(api_each_db, reliability):
    schemathesis_run(api_each_db, reliability, FULL_PER_ROLE, "API fuzzed from its OpenAPI document (schemathesis, "
                     f"long run, {api_each_db.database_url.split(':')[0]})")


def schemathesis_run(api: System, reliability: Any, per_role: dict[str | None, int], scenario: str) -> None:
    doc = requests.get(f"{api.base_url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    ops = [r.ok() for r in schema.get_all_operations()]
    tally = ApiTally()
    t0 = time.monotonic()
    try:
        for op in ops:
            for who in ROLES:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    for fixed in ({}, _fixed(op, api)) if _fixed(op, api) else ({},):
                        fuzz_operation(op, api, who, mode, per_role[who], fixed, tally)
    finally:
        _api_row(reliability, scenario, ops, tally, t0)
    assert not tally.crashes, "\n\n".join(tally.crashes[:5])
    assert not tally.server_errors, "\n\n".join(tally.server_errors[:5])
    assert not tally.not_json, tally.not_json[:10]
    assert tally.requests > 10 * len(ops)


def _api_row(reliability: Any, scenario: str, ops: list[Any], tally: ApiTally, t0: float) -> None:
    reliability.record(
        5, scenario,
        load=f"{len(ops)} operations × {len(ROLES) - 1} roles and anonymous × valid/invalid inputs × random/real "
             f"ids: {tally.requests:,} requests in {time.monotonic() - t0:.0f} s",
        injected="schemathesis-generated paths, queries, headers and bodies (positive and negative modes)",
        lost=0, duplicated=0, leaked=len(tally.server_errors) + len(tally.crashes),
        detail=f"{len(tally.server_errors)} of {tally.requests:,} requests answered 5xx, {len(tally.crashes)} "
               f"unanswered; statuses {dict(sorted(tally.by_status.items()))}")


# ---------------------------------------------------------------- bodies over the limit

WEB_FORMS = ["/signin", "/signout", "/cases/new", "/cases/{case_id}/transitions", "/insurer/cases/{case_id}/response",
             "/cases/{case_id}/correct", "/cases/{case_id}/attachments"]


def door_limit(path: str) -> tuple[int, int]:
    """(bytes refused above, the limit the 413 names) of a door: feeds and packet checks, attachments
    (the file's limit, plus the multipart framing around it), every other (JSON, forms)."""
    from services.mediation.entrypoints.api.limits import MULTIPART_SLACK

    if path.startswith("/api/v1/feeds/") or path == "/api/v1/packets/verify":
        return BODY_LIMIT, BODY_LIMIT
    if path.rstrip("/").endswith("/attachments"):
        return ATTACHMENT_LIMIT + MULTIPART_SLACK, ATTACHMENT_LIMIT
    return JSON_LIMIT, JSON_LIMIT


def _doors(s: System) -> list[tuple[str, str]]:
    """Every (method, path) that takes a body: the API's, from its OpenAPI document, and the web forms."""
    doc = requests.get(f"{s.base_url}/openapi.json", timeout=30).json()
    real = {"case_id": s.case["case_id"], "case_number": s.case["case_number"], "code": "PICC",
            "notification_id": "n-1"}
    out = [(m.upper(), p.format(**real)) for p, ops in doc["paths"].items() for m in ops
           if m in ("post", "put", "patch")]
    return out + [("POST", p.format(**real)) for p in WEB_FORMS]


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    line = b'{"rider_id":"R-BIG","ts":1778722521218,"lat":23.7,"lon":114.6}\n'
    block = (line * (size // len(line) + 1))[:size]
    while total > 0:
        yield block[:total]
        total -= len(block)


def test_oversized_bodies_are_413_at_every_door(api, reliability):
    """One byte over the limit, declared (Content-Length) or streamed (chunked, no length), as each
    role and anonymously: 413 with a JSON error naming the limit, never a 500 and never a read."""
    doors = _doors(api)
    answers: Counter[int] = Counter()
    wrong: list[str] = []
    for who in ("mediator", "feed", None):
        with api.client(who) as c:
            for method, path in doors:
                over, named = door_limit(path)
                for how in ("declared", "chunked"):
                    body = b"".join(_chunks(over + 1)) if how == "declared" else _chunks(over + 1)
                    r = c.request(method, path, content=body, headers={"content-type": "application/x-ndjson"})
                    answers[r.status_code] += 1
                    if r.status_code != 413 or not r.headers.get("content-type", "").startswith("application/json") \
                            or str(named) not in r.json().get("detail", ""):
                        wrong.append(f"{method} {path} as {who}, {how}: {r.status_code} {r.text[:200]!r}")
    reliability.record(
        5, "Bodies one byte over the limit at every door", load=f"{len(doors)} doors (API and web forms) × "
        f"3 callers × declared/chunked = {sum(answers.values())} requests of {BODY_LIMIT + 1:,} bytes",
        injected="the door's limit + 1 bytes (feeds XJ_MAX_BODY_BYTES, attachments XJ_MAX_ATTACHMENT_BYTES + framing, "
                 "else XJ_MAX_JSON_BYTES), with Content-Length and with chunked transfer encoding",
        lost=0, duplicated=0, leaked=len(wrong),
        detail=f"answers {dict(sorted(answers.items()))}; {len(wrong)} not a JSON 413")
    assert not wrong, "\n".join(wrong)


def test_feed_upload_at_the_limit_is_kept_whole_and_one_byte_more_is_413(api, reliability):
    """The limit is the limit: a GPS upload of exactly XJ_MAX_BODY_BYTES is read, every line counted;
    one byte more is refused before any of it is published (nothing half-ingested)."""
    line = b'{"rider_id":"R-LIMIT","ts":1778722521218,"lat":23.7,"lon":114.6}\n'
    n = BODY_LIMIT // len(line)
    body = line * n
    body += b" " * (BODY_LIMIT - len(body))  # padded to exactly the limit: a whitespace-only last line
    with api.client("feed") as c:
        ok = c.post("/api/v1/feeds/gps", content=body)
        over_declared = c.post("/api/v1/feeds/gps", content=body + b"\n")
        over_chunked = c.post("/api/v1/feeds/gps", content=iter([body[:1000], body[1000:] + b"\n"]))
    assert ok.status_code == 200, ok.text
    accepted = ok.json()["accepted"]
    reliability.record(
        5, "GPS upload at the body limit and one byte over", load=f"{n:,} pings in {BODY_LIMIT:,} bytes",
        injected="the same upload + 1 byte (declared and chunked)", lost=n - accepted, duplicated=max(0, accepted - n),
        leaked=0, detail=f"at the limit: 200, {accepted:,} of {n:,} pings accepted, rejected {ok.json()['rejected']}; "
                         f"one byte over: {over_declared.status_code} declared, {over_chunked.status_code} chunked")
    assert accepted == n and ok.json()["rejected"] == []
    assert over_declared.status_code == 413 and over_chunked.status_code == 413, (over_declared.text, over_chunked.text)


# ---------------------------------------------------------------- regressions: bugs these scenarios found


@pytest.mark.parametrize("url", ["http://[", "https://[::1", "http://]x[/", "http://[not-ipv6]/hook"])
def test_unreadable_webhook_url_is_422_naming_url(api, url):
    """schemathesis found that a URL urlsplit cannot read ("Invalid IPv6 URL") was a 500; and
    a URL error was reported as the secret's."""
    with api.client("mediator") as c:
        r = c.put("/api/v1/insurers/PICC/webhook", json={"url": url, "secret": "whsec_" + "A" * 32})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("invalid request: url") and r.json()["errors"][0]["loc"] == ["body", "url"]


def test_streamed_body_over_the_limit_is_413_and_under_it_is_read(api):
    """A chunked body (no Content-Length) slipped past the limit and was read whole, however big."""
    line = b'{"rider_id":"R-CHUNK","ts":1778722521218,"lat":23.7,"lon":114.6}\n'
    with api.client("feed") as c:
        small = c.post("/api/v1/feeds/gps", content=iter([line, line, line]))
        big = c.post("/api/v1/feeds/gps", content=iter([line] * (BODY_LIMIT // len(line) + 1)))
    assert small.status_code == 200 and small.json()["accepted"] == 3, small.text
    assert big.status_code == 413 and str(BODY_LIMIT) in big.json()["detail"]


def test_nul_in_an_identifier_is_refused_at_the_door(api):
    """A rider id (or platform, order, event id) holding NUL was answered "accepted" by the feed
    endpoints, then dead-lettered by the PostgreSQL store, which cannot hold NUL in text: now the
    line is rejected, naming the field, and the good lines beside it are accepted."""
    good = b'{"rider_id":"R-NUL-OK","ts":1778722521218,"lat":23.7,"lon":114.6}'
    with api.client("feed") as c:
        gps = c.post("/api/v1/feeds/gps", content=b'{"rider_id":"R\\u0000X","ts":1778722521218,"lat":23.7,'
                                                    b'"lon":114.6}\n' + good + b"\n")
        platform = c.post("/api/v1/feeds/platform-events", content=b"\n".join(
            b'{"kind":"presence","type":"online","rider_id":"R-NUL-OK","ts":1778722521218,%s}' % extra
            for extra in (b'"platform":"m\\u0000t"', b'"event_id":"\\u0000"', b'"platform":"meituan"')))
        orders = c.post("/api/v1/feeds/platform-events", content=b'{"kind":"order","type":"accepted","rider_id":'
                        b'"R-NUL-OK","ts":1778722521218,"order_id":"O\\u00001"}')
    assert gps.json() == {"accepted": 1, "duplicates": 0, "rejected": [{"line": 1, "error": "field 'rider_id' contains a NUL character"}]}
    assert platform.json()["accepted"] == 1
    assert [(x["line"], x["error"]) for x in platform.json()["rejected"]] == [
        (1, "field 'platform' contains a NUL character"), (2, "field 'event_id' contains a NUL character")]
    assert orders.json()["rejected"] == [{"line": 1, "error": "field 'order_id' contains a NUL character"}]


# ---------------------------------------------------------------- extremes at the API


def _leaves(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path, obj


def _with(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    out = json.loads(json.dumps(body))
    o = out
    for k in path[:-1]:
        o = o[k]
    o[path[-1]] = value
    return out


def _max_lengths(s: System) -> list[tuple[tuple[str, ...], int]]:
    """(path, maxLength) of the free-text fields of a new case, from the OpenAPI document."""
    doc = requests.get(f"{s.base_url}/openapi.json", timeout=30).json()
    schemas = doc["components"]["schemas"]

    def walk(name: str, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], int]]:
        for k, prop in schemas[name]["properties"].items():
            refs = [prop.get("$ref", "")] + [x.get("$ref", "") for x in prop.get("anyOf", [])]
            ref = next((r for r in refs if r), None)
            if ref:
                yield from walk(ref.rsplit("/", 1)[1], (*path, k))
            elif prop.get("type") == "string" and "maxLength" in prop and "pattern" not in prop:
                yield (*path, k), prop["maxLength"]

    return list(walk("CaseCreate", ()))


GOOD_TIMES = ["2000-01-01T00:00:00+14:00", "2000-01-01T00:00:00Z", "2099-12-31T23:59:59-12:00",
              "2026-05-14T14:02:11", "2026-05-14T14:02:11.123456+05:45", 1778722521, "2026-05-14T14:02:11+23:59"]
BAD_TIMES = ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z",
             "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z", -62135596800, 253402300799, 1e20, -1, "yesterday", "",
             "2026-02-30T00:00:00Z", "2026-05-14T24:00:01Z", "2026-05-14T14:02:11+24:00", True, [2026], {}]
GOOD_PLACES = [{"lat": 90, "lon": 180}, {"lat": -90, "lon": -180, "crs": "bd09"}, {"lat": 5e-324, "lon": -0.0},
               {"lat": 89.9999999, "lon": 179.9999999, "crs": "gcj02"}]
BAD_PLACES = [({"lat": 90.0000001, "lon": 0}, "lat"), ({"lat": 0, "lon": -180.0000001}, "lon"),
              ({"lat": 1e308, "lon": 1}, "lat"), ({"lat": 1, "lon": "east"}, "lon"), ({"lat": 1}, "lon"),
              ({"lat": 1, "lon": 1, "crs": "utm"}, "crs"), ({"lat": 1, "lon": 1, "alt": 3}, "alt")]
ODD_TEXT = ["\u202e\u202d" * 40, "😀" * 100, "\x01\x02\x1b[31m\x7f", "' OR 1=1 --", "<script>alert(1)</script>",
            "Ａ" * 100, "e\u0301" * 50]


def test_timestamps_coordinates_and_identifiers_at_their_extremes(api_each_db, reliability):
    """Every field of a new case at and past its limits, and NUL in each text field (which
    PostgreSQL text cannot hold): an accepted value makes a case that every read serves; a refused
    one is a 422 naming its field. Nothing is a 5xx."""
    s = api_each_db
    base = case_body()
    sent: list[tuple[str, Any, int, str]] = []  # (field, value, status, detail)
    made: list[str] = []
    with s.client("mediator") as m:
        def post(field: str, body: dict[str, Any], raw: bytes | None = None) -> None:
            r = m.post("/api/v1/cases", content=raw or json.dumps(body).encode(),
                       headers={"content-type": "application/json"})
            sent.append((field, body, r.status_code, r.text[:300]))
            if r.status_code == 201:
                made.append(r.json()["case_id"])

        for path, value in _leaves(base):
            if isinstance(value, str) and path[-1] not in ("at",):
                post(".".join(path), _with(base, path, value[:3] + "\x00" + value[3:]))
        for where in (("incident", "at"), ("consent", "at")):
            for t in GOOD_TIMES + BAD_TIMES:
                post(".".join(where), _with(base, where, t))
        for place in GOOD_PLACES:
            post("incident.location", _with(base, ("incident", "location"), place))
        for place, _ in BAD_PLACES:
            post("incident.location", _with(base, ("incident", "location"), place))
        lat = '"lat": ' + json.dumps(base["incident"]["location"]["lat"])
        for token in ("NaN", "Infinity", "-Infinity", "1e400"):  # JSON has no such numbers; Python's json reads them
            raw = json.dumps(base).replace(lat, '"lat": ' + token, 1)
            assert raw != json.dumps(base)
            post("incident.location.lat", {"lat": token}, raw.encode())
        for path in (("rider", "id"), ("rider", "name"), ("policy_number",), ("claim_number",)):
            for text in [*ODD_TEXT, "x" * 100, "x" * 101, "x" * 10_000]:
                post(".".join(path), _with(base, path, text))
        for t in ("x" * 2000, "x" * 2001):
            post("denial_reason", _with(base, ("denial_reason",), t))
        # every text field filled to the longest the OpenAPI document allows must be kept, on every database
        full_length: list[dict[str, Any]] = []
        for path, most in _max_lengths(s):
            for ch in ("x", "李"):
                full_length.append(_with(base, path, ch * most))
                post(".".join(path), full_length[-1])
        reads = []
        for cid in made:
            for path in (f"/api/v1/cases/{cid}", f"/api/v1/cases/{cid}/audit", f"/api/v1/cases/{cid}/notifications"):
                reads.append((path, m.get(path).status_code))
        reads.append(("/api/v1/cases?q=", m.get("/api/v1/cases", params={"q": "😀", "limit": 200}).status_code))
        reads.append(("/", m.get("/api/v1/cases", params={"limit": 200}).status_code))

    five = [x for x in sent if x[2] >= 500] + [(p, None, c, "") for p, c in reads if c >= 500]
    unnamed = [x for x in sent if x[2] == 422 and x[0].split(".")[-1] not in x[3]]
    nul_kept = [x for x in sent if x[2] < 400 and "\\u0000" in json.dumps(x[1])]
    bad_kept = [x for x in sent if x[2] < 400 and (
        any(x[1] == _with(base, w, t) for w in (("incident", "at"), ("consent", "at")) for t in BAD_TIMES)
        or any(x[1] == _with(base, ("incident", "location"), p) for p, _ in BAD_PLACES))]
    good_refused = [x for x in sent if x[2] != 201 and (x[1] in full_length or
        any(x[1] == _with(base, w, t) for w in (("incident", "at"), ("consent", "at")) for t in GOOD_TIMES)
        or any(x[1] == _with(base, ("incident", "location"), p) for p in GOOD_PLACES))]
    reliability.record(
        5, f"Case fields at their extremes ({s.database_url.split(':')[0]})",
        load=f"{len(sent)} new cases, then {len(reads)} reads of the {len(made)} accepted",
        injected="NUL in each text field; timestamps in year 1/1999/2100/9999 with ±14:00 offsets, epoch "
                 "extremes; lat/lon at and past ±90/±180, NaN/±Infinity/1e400; ids of 100/101/10,000 chars, "
                 "bidi controls, emoji, escapes",
        lost=len(good_refused), duplicated=0, leaked=len(nul_kept) + len(bad_kept),
        detail=f"{sum(x[2] >= 500 for x in sent)} of {len(sent)} answered 5xx; "
               f"answers {dict(sorted(Counter(x[2] for x in sent).items()))}, {len(unnamed)} 422s not naming the "
               f"field; reads {dict(Counter(c for _, c in reads))}")
    odd = [x for x in sent if x[2] not in (201, 422)]
    assert not odd, odd[:5]
    assert not five, five[:5]
    assert not unnamed, unnamed[:5]
    assert not nul_kept, nul_kept[:5]
    assert not bad_kept, bad_kept[:5]
    assert not good_refused, good_refused[:5]


BODIES = {"/api/v1/cases/{case_id}/transitions": {"to": "escalated"},  # valid, so that the parameter is at fault
          "/api/v1/cases/{case_id}": {"reason": "a correction that changes nothing"},
          "/api/v1/cases/{case_id}/insurer-response": {"decision": "reject", "reason": "no cover"},
          "/api/v1/insurers/{code}/webhook": {"url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "A" * 32}}
ODD_IDS = ["\x00", "a\x00b", "x" * 10_000, "😀", "\u202e", "..", "%2F..%2F", " ", "-1", "1e400", "NaN", "null",
           "' OR '1'='1", "\x1b[2J"]


def test_identifiers_at_their_extremes_in_paths_and_queries(api_each_db, reliability):
    """Every path parameter and text query of the API holding NUL, 10,000 characters, emoji, bidi
    controls, traversal, numbers that are not: a 404 (nothing by that name) or a 422 naming the
    parameter; never a 5xx, never a 409 from a database that could not take the value."""
    s = api_each_db
    doc = requests.get(f"{s.base_url}/openapi.json", timeout=30).json()
    real = {"case_id": s.case["case_id"], "case_number": s.case["case_number"], "code": "PICC", "notification_id": "n",
            "attachment_id": "a"}
    answers: list[tuple[str, str, str, int, str]] = []
    with s.client("mediator") as m, s.client("insurer") as ins:
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")
                          and p["schema"].get("type", "string") == "string" or "anyOf" in p["schema"]]
                for p in params:
                    for odd in ODD_IDS:
                        values = {**real}
                        query: dict[str, str] = {"code": "00000000"} if "{case_number}" in path else {}
                        if p["in"] == "path":
                            values[p["name"]] = quote(odd, safe="")
                        else:
                            query[p["name"]] = odd
                        url = path.format(**values)
                        for c in (m, ins):
                            if path.endswith("/attachments") and method == "post":  # multipart, valid
                                r = c.post(url, params=query, data={"kind": "photo"},
                                           files={"file": ("p.png", b"\x89PNG\r\n\x1a\n0", "image/png")})
                            else:
                                r = c.request(method.upper(), url, params=query, json=BODIES.get(path))
                            answers.append((method.upper(), url[:80], p["name"], r.status_code, r.text[:200]))
    five = [a for a in answers if a[3] >= 500]
    stored = [a for a in answers if a[3] == 409 and "could not be stored" in a[4]]
    unnamed = [a for a in answers if a[3] == 422 and a[2] not in a[4]]
    reliability.record(
        5, f"Identifiers at their extremes in paths and queries ({s.database_url.split(':')[0]})",
        load=f"{len(answers)} requests (mediator and insurer) over every path parameter and text query",
        injected="NUL, 10,000 chars, emoji, bidi control, '..', encoded slashes, SQL quotes, 'NaN', terminal escapes",
        lost=0, duplicated=0, leaked=len(five) + len(stored),
        detail=f"answers {dict(sorted(Counter(a[3] for a in answers).items()))}; {len(five)} 5xx, "
               f"{len(stored)} database refusals, {len(unnamed)} 422s not naming the parameter")
    assert not five, five[:5]
    assert not stored, "\n".join(map(str, sorted({a[:3] for a in stored})))
    assert not unnamed, sorted({a[:3] + (a[4],) for a in unnamed})[:10]


def test_huge_offset_of_dead_notifications_is_422(api):
    """schemathesis found GET /notifications/dead?offset=3064437168354182232745795867639808 a 500
    (an integer past SQL's range)."""
    with api.client("mediator") as c:
        r = c.get("/api/v1/notifications/dead", params={"offset": 3064437168354182232745795867639808})
        ok = c.get("/api/v1/notifications/dead", params={"offset": 1_000_000})
    assert r.status_code == 422 and "offset" in r.json()["detail"], r.text
    assert ok.status_code == 200 and ok.json() == []
