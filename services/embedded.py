"""A whole embedded system (trajectory, mediation, notify in one process, in-process bus) serving
real HTTP on a free loopback port, in a background thread, for tests and the demo."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class System:
    base_url: str
    data_dir: Path
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, who: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        headers.update(kw.pop("headers", {}))
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kw)

    def add_user(self, role: str, name: str, insurer: str | None = None, office: str | None = None,
                 email: str | None = None) -> str:
        from services.mediation.bootstrap import bootstrap
        from services.mediation.domain.model import Role
        from shared.bus import InMemoryBus

        service = bootstrap(bus=InMemoryBus())
        try:
            _, token = service.mediation.add_user(role=Role(role), name=name, insurer_code=insurer, office=office,
                                                  email=email)
        finally:
            service.engine.dispose()
        return token


@contextmanager
def running_system(data_dir: Path, database_url: str, env: dict[str, str] | None = None):
    """Set the environment, start the system, yield it, stop it, restore the environment."""
    port = free_port()
    values = {"XJ_DATA_DIR": str(data_dir), "XJ_DATABASE_URL": database_url, "XJ_HTTP_PORT": str(port),
              "XJ_BUS": "memory", "XJ_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **(env or {})}
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    ready, failed = threading.Event(), []
    holder: dict[str, Any] = {}

    def main() -> None:
        from services.bootstrap import run

        async def go() -> None:
            holder["loop"] = asyncio.get_running_loop()
            holder["stop"] = asyncio.Event()
            started = asyncio.Event()

            async def signal() -> None:
                await started.wait()
                ready.set()

            t = asyncio.create_task(signal())
            await run(port=port, ready=started, stop=holder["stop"])
            t.cancel()

        try:
            asyncio.run(go())
        except BaseException as e:  # surface start-up errors in the test
            failed.append(e)
            ready.set()

    thread = threading.Thread(target=main, daemon=True, name="xianjie")
    thread.start()
    try:
        if not ready.wait(60) or failed:
            raise RuntimeError(f"system did not start: {failed[:1]}")
        system = System(f"http://127.0.0.1:{port}", data_dir, database_url)
        yield system
    finally:
        loop, stop = holder.get("loop"), holder.get("stop")
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def wait_for(fn, timeout: float = 30.0, every: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met in {timeout} s; last value {last!r}")
