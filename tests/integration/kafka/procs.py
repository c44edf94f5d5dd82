"""Helpers of the multi-process Kafka tests: services as OS processes (always stopped: SIGTERM,
then SIGKILL), consumer groups started at the topics' current end (so a shared development broker's
history is not replayed into a fresh database), reading a topic from given offsets, and a local
HTTP receiver for webhooks."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stopped: bool = False  # stopped (or killed) by the test on purpose

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Procs:
    """Processes started by a test; :meth:`stop_all` ends every one that still runs."""

    log_dir: Path
    env: dict[str, str]
    running: list[Proc] = field(default_factory=list)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        log = self.log_dir / f"{name}.log"
        out = log.open("wb")
        p = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env={**self.env, **(env or {})},
                             stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        proc = Proc(name, p, log)
        self.running.append(proc)
        return proc

    def check_alive(self) -> None:
        """Raise if a process exited that the test did not stop itself."""
        for p in self.running:
            if p.popen.poll() is not None and not p.stopped:
                raise AssertionError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")

    @staticmethod
    def stop(p: Proc, grace: float = 15.0) -> int:
        p.stopped = True
        if p.popen.poll() is None:
            p.popen.send_signal(signal.SIGTERM)
            try:
                p.popen.wait(grace)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(10)
        return p.popen.returncode

    @staticmethod
    def kill(p: Proc) -> None:
        p.stopped = True
        p.popen.kill()
        p.popen.wait(10)

    def stop_all(self) -> None:
        for p in self.running:
            p.stopped = True
        for p in self.running:  # SIGTERM to all first: they shut down in parallel
            if p.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.running:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(10)


@contextlib.contextmanager
def processes(log_dir: Path, env: dict[str, str]) -> Iterator[Procs]:
    procs = Procs(log_dir, env)
    try:
        yield procs
    finally:
        procs.stop_all()


def partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
    finally:
        c.close()


def end_offsets(bootstrap: str, topic_names: Iterable[str]) -> dict[TopicPartition, int]:
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(t, p) for t in topic_names for p in sorted(c.partitions_for_topic(t) or ())]
        return dict(c.end_offsets(tps)) if tps else {}
    finally:
        c.close()


def start_group_at_end(bootstrap: str, group: str, topic_names: Iterable[str]) -> bool:
    """Commit ``group``'s offsets at the topics' current end, so its first member starts there and
    not at the broker's history. Refused by the broker (False) while the group has members."""
    from kafka.structs import OffsetAndMetadata

    ends = end_offsets(bootstrap, topic_names)
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        c.commit({tp: _offset_and_metadata(OffsetAndMetadata, off) for tp, off in ends.items()})
        return True
    except Exception:
        return False
    finally:
        c.close()


def group_lag(bootstrap: str, group: str, topic_names: Iterable[str]) -> int:
    """Records of ``topic_names`` that ``group`` has not committed yet."""
    ends = end_offsets(bootstrap, topic_names)
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(max(0, end - (c.committed(TopicPartition(tp.topic, tp.partition)) or 0)) for tp, end in ends.items())
    finally:
        c.close()


def worker_lag(bootstrap: str, worker_group: str, topic_names: Iterable[str] | None = None) -> int:
    """Records of ``topic_names`` (default: all the worker reads) its consumer groups have not committed."""
    from services.trajectory.entrypoints.stream import consumer_groups

    return sum(group_lag(bootstrap, group, [t for t in names if topic_names is None or t in topic_names])
               for group, names in consumer_groups(worker_group).items())


def start_worker_at_end(bootstrap: str, worker_group: str) -> bool:
    """:func:`start_group_at_end` for every consumer group of a trajectory worker."""
    from services.trajectory.entrypoints.stream import consumer_groups

    return all([start_group_at_end(bootstrap, g, ts) for g, ts in consumer_groups(worker_group).items()])


def _offset_and_metadata(cls: Any, offset: int) -> Any:
    try:
        return cls(offset, "", -1)  # kafka-python >= 2.0.3: (offset, metadata, leader_epoch)
    except TypeError:
        return cls(offset, "")


def read_since(bootstrap: str, since: dict[TopicPartition, int], until: Callable[[list[Any]], bool],
               timeout: float = 60.0, check: Callable[[], None] | None = None) -> list[Any]:
    """Records of the partitions in ``since`` from those offsets on, until ``until(records)``."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tps = list(since)
    c.assign(tps)
    for tp in tps:
        c.seek(tp, since[tp])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(got):
            for recs in c.poll(timeout_ms=300).values():
                got.extend(recs)
            if check is not None:
                check()
    finally:
        c.close()
    return got


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """An HTTP server on a free loopback port, in a thread, that records every POST."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="webhook-receiver")

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """``python -m ARGS`` in the repository; its standard output (it must succeed)."""
    r = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def readyz(base: str) -> bool:
    """The mediation service at ``base`` answers ``/readyz`` with 200."""
    import httpx

    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def simulated_day(day: Path, run: dict[str, Any], *, riders: int, seed: int) -> tuple[dict[str, Any], list[Any]]:
    """``simulate`` a clean day of ``riders`` into ``day`` and ``assess`` it with the batch command:
    its answers by incident id, and the incidents."""
    import orjson

    r = subprocess.run([sys.executable, "-m", "tests.support.simulate", str(day), "--riders", str(riders),
                        "--preset", "clean", "--seed", str(seed)], **run)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "services.trajectory", "assess", str(day)], **run)
    assert r.returncode == 0, r.stderr
    batch = {o["incident_id"]: o for o in map(orjson.loads, r.stdout.splitlines())}
    incidents = [orjson.loads(x) for x in (day / "incidents.jsonl").read_bytes().splitlines() if x.strip()]
    return batch, incidents


def base_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XJ_")}
    env["XJ_WEBHOOK_ALLOW_PRIVATE"] = "1"  # the tests' webhook receivers listen on loopback
    env.update(values)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait(what: str, fn, timeout: float, check=None, every: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll ``fn`` until it returns something true (calling ``check`` first each time)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if check is not None:
            check()
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
