"""SMS: a JSON POST to ``XJ_SMS_GATEWAY_URL`` (``{"id", "phone", "text", "case_number"}``), or,
without a gateway (the embedded default), lines appended to a readable outbox under
``XJ_DATA_DIR`` (``sms-outbox.txt`` for people, ``sms-outbox.jsonl`` for programs)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson

from services.notify.adapters.channels.http import HttpPoster
from services.notify.domain.model import DeliveryResult, Notification


def sms_json(n: Notification) -> dict[str, str | None]:
    return {"id": n.id, "phone": n.recipient, "text": n.body, "case_number": n.case_number}


class SmsGatewayChannel:
    def __init__(self, url: str, *, timeout: float = 10.0, max_connections: int = 32) -> None:
        self.url = url
        self.http = HttpPoster(timeout=timeout, max_connections=max_connections)

    async def send(self, notification: Notification) -> DeliveryResult:
        return await self.http.post(self.url, orjson.dumps(sms_json(notification)),
                                    {"content-type": "application/json", "idempotency-key": notification.id})

    async def aclose(self) -> None:
        await self.http.aclose()


class SmsOutboxChannel:
    def __init__(self, data_dir: Path) -> None:
        self.text_path = data_dir / "sms-outbox.txt"
        self.jsonl_path = data_dir / "sms-outbox.jsonl"
        self._lock = threading.Lock()

    def _write(self, n: Notification) -> None:
        self.text_path.parent.mkdir(parents=True, exist_ok=True)
        at = datetime.now(UTC)
        case = f" · case {n.case_number}" if n.case_number else ""
        block = f"--- {at.isoformat(timespec='seconds')} · to {n.recipient}{case} · id {n.id}\n{n.body}\n\n"
        line = orjson.dumps({**sms_json(n), "at": at.isoformat()}) + b"\n"
        with self._lock:
            with self.text_path.open("a", encoding="utf-8") as f:
                f.write(block)
            with self.jsonl_path.open("ab") as fb:
                fb.write(line)

    async def send(self, notification: Notification) -> DeliveryResult:
        try:
            await asyncio.to_thread(self._write, notification)
        except OSError as e:
            return DeliveryResult.failed(f"sms outbox: {e}")
        return DeliveryResult.sent()

    async def aclose(self) -> None:
        return None
