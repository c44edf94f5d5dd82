"""Group 4: poison messages on every topic a service consumes. On each -- ``rider.gps``,
``rider.platform-events`` and ``trajectory.assessment-requested`` (trajectory),
``trajectory.assessment-ready`` (mediation), ``mediation.case-events`` (notify);
``trajectory.gap-flagged`` has no consumer -- four poisons are produced, each followed by a good
message with the same key (so on the same partition, after it): bytes that are not JSON, a valid
envelope of an unknown schema version, valid JSON of the wrong shape, and a huge message (near the
broker's 1 MiB limit). Each poison must land on ``<topic>.dlq`` with the reason in its ``error``
header, and every good message after it must have been handled: the ping or platform event
stored, the assessment request answered, the evidence request marked failed, the case event
recorded by notify.

Two variants: the embedded runtime on the in-process bus (fast, CI) and the three services as
OS processes on a Kafka broker and a PostgreSQL cluster of the test's own (``make faults``)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.mediation.adapters.tables import EvidenceRequestRow
from services.mediation.domain.model import Role
from services.mediation.schemas import CaseCreate
from services.mediation.service_layer.cases import Mediation
from services.mediation.settings import MediationSettings
from services.trajectory.adapters.store import FeedStore
from shared import topics
from shared.bus import InMemoryBus, Message
from shared.db import unit_of_work
from shared.events import AssessmentFailed, AssessmentRequested, Envelope, StatusChanged
from tests.faults.plugin import Reliability

CONSUMED = (topics.GPS, topics.PLATFORM_EVENTS, topics.ASSESSMENT_REQUESTED, topics.ASSESSMENT_READY,
            topics.CASE_EVENTS)
KINDS = ("not JSON", "wrong version", "wrong shape", "huge")
HUGE = 1_040_000  # bytes: the broker takes a record batch of up to 1 MiB + 12 (message.max.bytes)
INCIDENT_AT = datetime(2025, 5, 14, 14, 0, tzinfo=UTC)
FEEDS = (topics.GPS, topics.PLATFORM_EVENTS)


def expected_reason(topic: str, kind: str) -> str:
    """What the ``error`` header must say (lower case): the reason, not just that it failed."""
    if topic in FEEDS:
        return "not json" if kind == "not JSON" else "missing"
    return "version 99" if kind == "wrong version" else "not an event envelope"


@dataclass
class Plan:
    """The messages of the scenario and how to tell that the good ones were handled."""

    rider: str
    case_id: str
    case_number: str
    evidence_requests: list[str]  # pending evidence requests of the case, one per good message
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def key(self, topic: str) -> str:
        return self.case_id if topic in (topics.ASSESSMENT_READY, topics.CASE_EVENTS) else self.rider

    def poison(self, topic: str, kind: str) -> bytes:
        if kind == "not JSON":
            return b"\xff\xfe\x00 this is not JSON {" + self.run.encode()
        if kind == "wrong version":
            type_ = {topics.ASSESSMENT_REQUESTED: "AssessmentRequested", topics.ASSESSMENT_READY: "AssessmentFailed",
                     topics.CASE_EVENTS: "StatusChanged"}.get(topic, "GpsPing")
            return Envelope(id=f"poison-{self.run}", type=type_, version=99, occurred_at=INCIDENT_AT, producer="fault-test",
                            key=self.key(topic), data={"case_id": self.case_id, "rider_id": self.rider}).to_bytes()
        if kind == "wrong shape":
            return b'{"rider_id": ["' + self.rider.encode() + b'"], "ts": "yesterday", "hello": {"world": 1}}'
        pad = HUGE - 200
        return b'{"rider_id": "' + self.rider.encode() + b'", "pad": "' + b"x" * pad + b'"}'

    def good(self, topic: str, i: int) -> bytes:
        if topic == topics.GPS:
            ts = int(INCIDENT_AT.timestamp() * 1000) + i * 5000
            return (f'{{"rider_id": "{self.rider}", "ts": {ts}, "lat": 23.75{i}, "lon": 114.71{i}, '
                    f'"accuracy_m": 10.0}}').encode()
        if topic == topics.PLATFORM_EVENTS:
            return (f'{{"event_id": "{self.event_id(i)}", "kind": "presence", "type": "online", '
                    f'"rider_id": "{self.rider}", "platform": "meituan", "ts": "2025-05-14 13:2{i}:00"}}').encode()
        if topic == topics.ASSESSMENT_REQUESTED:
            ev = AssessmentRequested(request_id=self.request_id(i), case_id=self.case_id, rider_id=self.rider,
                                     incident_at=INCIDENT_AT)
            return ev.envelope(key=self.rider, producer="fault-test").to_bytes()
        if topic == topics.ASSESSMENT_READY:
            ev2 = AssessmentFailed(request_id=self.evidence_requests[i], case_id=self.case_id,
                                   reason=f"fault test {self.run} {i}")
            return ev2.envelope(key=self.case_id, producer="fault-test").to_bytes()
        ev3 = StatusChanged(case_id=self.case_id, case_number=self.case_number, status="escalated",
                            actor="mediator:fault", insurer_code="PICC", from_status="opened",
                            reason=f"fault test {i}")
        return ev3.envelope(key=self.case_id, producer="fault-test", event_id=self.case_event_id(i)).to_bytes()

    def event_id(self, i: int) -> str:
        return f"pe-{self.run}-{i}"

    def request_id(self, i: int) -> str:
        return f"rq-{self.run}-{i}"

    def case_event_id(self, i: int) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"xj-fault/{self.run}/{i}"))

    def messages(self, topic: str) -> list[tuple[str, bytes, tuple[tuple[str, bytes], ...]]]:
        """(key, value, headers): poison, good, poison, good, ... The poisons carry a ``poison``
        header (kept on the dead-letter copy) so that the test knows which is which."""
        out = []
        for i, kind in enumerate(KINDS):
            out.append((self.key(topic), self.poison(topic, kind), (("poison", f"{self.run}:{kind}".encode()),)))
            out.append((self.key(topic), self.good(topic, i), (("good", f"{self.run}:{i}".encode()),)))
        return out

    def handled(self, engine: Engine, topic: str) -> int:
        """How many of the topic's good messages have had their effect."""
        n = len(KINDS)
        with engine.connect() as c:
            if topic == topics.GPS:
                return FeedStore(engine).pings(self.rider)
            if topic == topics.PLATFORM_EVENTS:
                return int(c.execute(text("SELECT count(*) FROM trajectory_platform_event WHERE rider_id = :r"),
                                     {"r": self.rider}).scalar() or 0)
            if topic == topics.ASSESSMENT_REQUESTED:
                ids = [self.request_id(i) for i in range(n)]
                rows = c.execute(text("SELECT request_id FROM trajectory_assessment_reply WHERE case_id = :c"),
                                 {"c": self.case_id}).scalars().all()
                return len(set(ids) & set(rows))
            if topic == topics.ASSESSMENT_READY:
                rows = c.execute(text("SELECT id FROM mediation_evidence_request WHERE case_id = :c "
                                      "AND state = 'failed'"), {"c": self.case_id}).scalars().all()
                return len(set(self.evidence_requests) & set(rows))
            rows = c.execute(text("SELECT event_id FROM notify_consumed_event WHERE case_id = :c"),
                             {"c": self.case_id}).scalars().all()
            return len({self.case_event_id(i) for i in range(n)} & set(rows))


def prepare(engine: Engine, settings: MediationSettings) -> Plan:
    """A case (opened through the service, as the API would) and pending evidence requests of it."""
    med = Mediation(engine, settings)
    _, token = med.add_user(role=Role.MEDIATOR, name="王调解")
    med.add_user(role=Role.INSURER, name="PICC claims", insurer_code="PICC")  # a known insurer code
    actor = med.authenticate(token)
    assert actor is not None
    rider = f"R-POISON-{uuid.uuid4().hex[:6]}"
    cmd = CaseCreate.model_validate({
        "rider": {"id": rider, "name": "李明", "phone": "13800138000"},
        "insurer_code": "PICC", "policy_number": "PICC-2025-0001", "claim_number": "CLM-POISON",
        "incident": {"at": INCIDENT_AT.isoformat(), "location": None, "description": "fell", "injury": "hand"},
        "denial_reason": "late", "consent": {"given": True, "at": "2025-05-20T10:00:00+08:00", "method": "written"},
    })
    row, _ = med.open_case(actor=actor, cmd=cmd)
    requests = [str(uuid.uuid4()) for _ in KINDS]
    with unit_of_work(engine) as s:
        for rid in requests:
            s.add(EvidenceRequestRow(id=rid, case_id=row.id, requested_at=datetime.now(UTC), state="pending"))
    return Plan(rider, row.id, row.case_number, requests)


@dataclass
class Outcome:
    topic: str
    dead: dict[str, str]  # poison kind -> error header of its dead letter
    dead_goods: int  # good messages that were dead-lettered (must be 0)
    duplicated: int  # poisons dead-lettered more than once
    handled: int
    altered: list[str] = field(default_factory=list)


def judge(plan: Plan, topic: str, dead_letters: Sequence[Message], handled: int) -> Outcome:
    dead: dict[str, str] = {}
    seen: dict[str, int] = {}
    altered: list[str] = []  # dead letters neither the poison's value nor a marked prefix of it
    dead_goods = 0
    for m in dead_letters:
        p, g = m.header("poison"), m.header("good")
        if g is not None and g.decode().startswith(plan.run + ":"):
            dead_goods += 1
        if p is None or not p.decode().startswith(plan.run + ":"):
            continue
        kind = p.decode().split(":", 1)[1]
        seen[kind] = seen.get(kind, 0) + 1
        dead[kind] = (m.header("error") or b"").decode(errors="replace")
        original = plan.poison(topic, kind)
        cut = m.header("truncated-from")
        if m.value != original and not (cut == str(len(original)).encode() and original.startswith(m.value)):
            altered.append(kind)
    return Outcome(topic, dead, dead_goods, sum(n - 1 for n in seen.values()), handled, altered)


def record_and_check(reliability: Reliability, outcomes: list[Outcome], load: str, injected: str) -> None:
    for o in outcomes:
        with_reason = [k for k in KINDS if expected_reason(o.topic, k) in o.dead.get(k, "").lower()]
        reasons = "; ".join(f"{k}: {o.dead.get(k, '(not dead-lettered)')[:90]}" for k in KINDS)
        reliability.record(4, f"{o.topic}: not JSON / wrong version / wrong shape / huge", load=load,
                           injected=injected, lost=len(KINDS) - o.handled, duplicated=o.duplicated, leaked=0,
                           detail=f"dead-lettered {len(with_reason)}/{len(KINDS)} with reason; good messages after "
                                  f"them handled {o.handled}/{len(KINDS)}; reasons: {reasons}")
        print(o.topic, o.handled, reasons)
    for o in outcomes:
        missing = [k for k in KINDS if not o.dead.get(k, "").strip()]
        assert not missing, f"{o.topic}: poisons not dead-lettered with a reason: {missing}"
        vague = {k: o.dead[k] for k in KINDS if expected_reason(o.topic, k) not in o.dead[k].lower()}
        assert not vague, f"{o.topic}: the error header does not name the reason: {vague}"
        assert o.handled == len(KINDS), f"{o.topic}: only {o.handled}/{len(KINDS)} good messages handled"
        assert not o.altered, f"{o.topic}: dead letters that are not the poison's value: {o.altered}"
        assert o.dead_goods == 0, f"{o.topic}: {o.dead_goods} good messages dead-lettered"
        assert o.duplicated == 0, f"{o.topic}: poisons dead-lettered {o.duplicated} times too often"


# ---------------------------------------------------------------- the in-process bus


async def _embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Plan, dict[str, list[Message]], Engine]:
    from services.bootstrap import database
    from services.mediation.entrypoints import worker as runtime
    from services.notify.entrypoints.worker import run as run_notify
    from services.trajectory.bootstrap import bootstrap as trajectory

    monkeypatch.setenv("XJ_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("XJ_DATABASE_URL", f"sqlite:///{tmp_path / 'xj.db'}")
    monkeypatch.setenv("XJ_BUS", "memory")
    settings = MediationSettings()
    engine = database(settings)
    plan = prepare(engine, settings)
    bus = InMemoryBus()
    stop = asyncio.Event()
    mediation = Mediation(engine, settings)
    poke = asyncio.Event()
    tasks = [asyncio.create_task(trajectory(engine=engine, bus=bus).run_handlers(stop)),
             asyncio.create_task(run_notify(bus, engine, settings, stop))]
    runtime.subscribe(mediation, bus, settings.key_dir, poke)
    tasks.append(asyncio.create_task(runtime.relay_outbox(mediation, bus, poke, stop)))
    await asyncio.sleep(0.2)  # the services subscribe (trajectory migrates first, in a thread)
    await bus.start()
    try:
        for topic in CONSUMED:
            for key, value, headers in plan.messages(topic):
                await bus.publish(topic, key, value, headers)
        await bus.drain(60)
        deadline = asyncio.get_running_loop().time() + 30
        while any(plan.handled(engine, t) < len(KINDS) for t in CONSUMED):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
            await bus.drain(30)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await bus.stop()
    return plan, {t: list(bus.logs.get(topics.dead_letter(t), [])) for t in CONSUMED}, engine


def test_poison_on_every_topic_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          reliability: Reliability) -> None:
    plan, dead, engine = asyncio.run(_embedded(tmp_path, monkeypatch))
    try:
        outcomes = [judge(plan, t, dead[t], plan.handled(engine, t)) for t in CONSUMED]
    finally:
        engine.dispose()
    record_and_check(reliability, outcomes, load=f"embedded runtime, in-process bus, SQLite; "
                     f"{2 * len(KINDS)} messages per topic", injected="4 poisons per topic, each before a good message")


# ---------------------------------------------------------------- Kafka, three processes


def _read_dead_letters(bootstrap: str, plan: Plan, until: Callable[[dict[str, list[Message]]], bool],
                       timeout: float, check: Callable[[], None]) -> dict[str, list[Message]]:
    from shared.bus_kafka import record_message
    from tests.integration.kafka.procs import partitions, read_since

    since = {tp: 0 for t in CONSUMED for tp in partitions(bootstrap, topics.dead_letter(t))}
    out: dict[str, list[Message]] = {}

    def split(records: list[Any]) -> dict[str, list[Message]]:
        by: dict[str, list[Message]] = {t: [] for t in CONSUMED}
        for r in records:
            src = r.topic[: -len(".dlq")]
            by[src].append(record_message(r))
        return by

    def enough(records: list[Any]) -> bool:
        nonlocal out
        out = split(records)
        return until(out)

    read_since(bootstrap, since, enough, timeout=timeout, check=check)
    return out


@pytest.mark.faults_full
@pytest.mark.integration
def test_poison_on_every_topic_on_kafka(private_kafka: Any, private_postgres: Any, tmp_path: Path,
                                        reliability: Reliability) -> None:
    from services.bootstrap import database
    from services.embedded import free_port
    from services.trajectory.entrypoints.replay import ensure_topics
    from tests.integration.kafka.procs import base_env, processes, producer, readyz, wait

    bootstrap = private_kafka.bootstrap
    port = free_port()
    env = base_env(XJ_DATABASE_URL=private_postgres.url, XJ_DATA_DIR=str(tmp_path / "var"),
                   XJ_KAFKA_BOOTSTRAP=bootstrap, XJ_BUS="kafka", XJ_HTTP_PORT=str(port),
                   XJ_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", XJ_WORKER_GROUP="xj-poison",
                   XJ_GAP_SETTLE_S="0.2", XJ_NOTIFY_POLL="0.05")
    ensure_topics(bootstrap, (*topics.ALL, *map(topics.dead_letter, topics.ALL)), 3)
    settings = MediationSettings(database_url=private_postgres.url, data_dir=tmp_path / "var")
    engine = database(settings)
    plan = prepare(engine, settings)
    try:
        with processes(tmp_path, env) as procs:
            procs.start("trajectory", "services.trajectory", "worker")
            procs.start("mediation", "services", "serve")
            notify = procs.start("notify", "services.notify", "worker")
            wait("mediation /readyz", lambda: readyz(f"http://127.0.0.1:{port}"), 90, procs.check_alive)
            wait("notify worker running", lambda: "notify worker running" in notify.log.read_text(errors="replace"),
                 60, procs.check_alive)
            prod = producer(bootstrap, {"message.max.bytes": HUGE + 8192})
            try:
                for topic in CONSUMED:
                    for key, value, headers in plan.messages(topic):  # one at a time, each acknowledged
                        errors: list[Any] = []
                        prod.produce(topic, value, key=key.encode(), headers=list(headers),
                                     on_delivery=lambda err, _msg, errors=errors: errors.append(err))
                        assert prod.flush(30) == 0 and errors == [None], (topic, errors)
            finally:
                prod.close()

            def all_handled() -> bool:
                return all(plan.handled(engine, t) >= len(KINDS) for t in CONSUMED)

            with contextlib.suppress(AssertionError):  # judged below, with the counts
                wait("every good message handled", all_handled, 120, procs.check_alive, every=0.5)
            dead = _read_dead_letters(
                bootstrap, plan,
                lambda by: all(len({m.header("poison") for m in by[t] if m.header("poison")}) >= len(KINDS)
                               for t in CONSUMED), 60, procs.check_alive)
            procs.check_alive()
            outcomes = [judge(plan, t, dead.get(t, []), plan.handled(engine, t)) for t in CONSUMED]
    finally:
        engine.dispose()
    record_and_check(reliability, outcomes, load=f"3 services as OS processes on Kafka + PostgreSQL; "
                     f"{2 * len(KINDS)} messages per topic",
                     injected=f"4 poisons per topic (the huge one {HUGE} bytes), each before a good message")
