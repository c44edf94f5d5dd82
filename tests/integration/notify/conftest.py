"""Real peers on loopback for notify's integration tests: an SMTP server (aiosmtpd), an HTTP
receiver (stdlib ThreadingHTTPServer) whose paths can fail or hang, and migrated databases
(SQLite; PostgreSQL through the shared ``fresh_database`` fixture of tests/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from services.notify.adapters import migrate
from services.notify.settings import NotifySettings
from shared.db import make_engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(pred: Callable[[], bool], timeout: float = 5.0, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


async def until_async(pred: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- SMTP

@dataclass
class SmtpSink:
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    peers: set[Any] = field(default_factory=set)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
        self.messages.append(msg)  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.peers.add(session.peer)
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


# ---------------------------------------------------------------- HTTP receiver

@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)


Behaviour = Callable[[int], tuple[int, float]]  # nth request on the path (1-based) -> (status, seconds to hang)


class Receiver:
    """A real HTTP server on loopback. ``on(path, fn)`` sets how a path answers: by default
    200 at once. A hang lasts its seconds or until the receiver stops."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.behaviour: dict[str, Behaviour] = {}
        self.counts: dict[str, int] = {}
        self.released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    n = receiver.counts[self.path] = receiver.counts.get(self.path, 0) + 1
                    receiver.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                     body, time.monotonic()))
                status, hang = receiver.behaviour.get(self.path, lambda n: (200, 0.0))(n)
                if hang:
                    receiver.released.wait(hang)
                with contextlib.suppress(OSError):
                    payload = b'{"ok":true}' if status < 300 else b'{"error":"nope"}'
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def on(self, path: str, fn: Behaviour) -> None:
        self.behaviour[path] = fn

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    try:
        yield r
    finally:
        r.stop()


# ---------------------------------------------------------------- databases

def migrated(url: str) -> Engine:
    engine = make_engine(url)
    migrate.upgrade(engine)
    return engine


def sqlite_engine(path: Path) -> Engine:
    return migrated(f"sqlite:///{path}")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = sqlite_engine(tmp_path / "notify.db")
    yield e
    e.dispose()


def settings_for(tmp_path: Path, **kw: Any) -> NotifySettings:
    base: dict[str, Any] = {
        "data_dir": tmp_path, "database_url": None, "smtp_host": None, "sms_gateway_url": None,
        "public_base_url": "http://127.0.0.1:8000", "timezone": "Asia/Shanghai",
        "notify_max_attempts": 4, "notify_backoff_base": 0.05, "notify_backoff_cap": 0.2,
        "notify_poll": 0.02, "notify_timeout_email": 3.0, "notify_timeout_webhook": 1.0,
        "notify_timeout_sms": 1.0, "notify_directory_ttl": 0.0, "smtp_from": "Xianjie <noreply@xianjie.example>",
    }
    return NotifySettings(**{**base, **kw})
