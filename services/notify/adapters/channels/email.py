"""Email: real SMTP (``XJ_SMTP_HOST``/``XJ_SMTP_PORT``), plain text with an HTML alternative,
connections kept open and reused; or, when no SMTP host is set (the embedded default), a
readable mail outbox file under ``XJ_DATA_DIR``."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

import aiosmtplib

from services.notify.domain.model import DeliveryResult, Notification

logger = logging.getLogger(__name__)


def _address(value: str) -> str:
    """``Name <addr>`` with a non-ASCII name encoded (RFC 2047)."""
    name, addr = parseaddr(value)
    return formataddr((name, addr), charset="utf-8") if name else addr


def build_message(n: Notification, sender: str) -> Message:
    """Plain text, and an HTML alternative when there is one, in UTF-8. Built with the
    compat32 MIME classes: the same message as EmailMessage's, at a tenth of the cost."""
    text = MIMEText(n.body, "plain", "utf-8")
    if n.html:
        msg: Message = MIMEMultipart("alternative")
        msg.attach(text)
        msg.attach(MIMEText(n.html, "html", "utf-8"))
    else:
        msg = text
    msg["From"] = _address(sender)
    msg["To"] = n.recipient
    subject = n.subject or ""
    msg["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")  # type: ignore[assignment]
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<{n.id}@notify.xianjie>"  # the same on every attempt: receivers can dedupe
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Xianjie-Notification"] = n.id
    if n.case_number:
        msg["X-Xianjie-Case"] = n.case_number
    return msg


class SmtpEmailChannel:
    def __init__(self, *, host: str, port: int, sender: str, username: str | None = None,
                 password: str | None = None, start_tls: bool | None = None, connections: int = 4,
                 timeout: float = 30.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.start_tls, self.timeout = username, password, start_tls, timeout
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[aiosmtplib.SMTP] = []

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.timeout,
                                 start_tls=self.start_tls)
        await client.connect()
        if self.username:
            await client.login(self.username, self.password or "")
        return client

    async def send(self, notification: Notification) -> DeliveryResult:
        msg = build_message(notification, self.sender)
        async with self._slots:
            for fresh in (False, True):  # a kept connection the server dropped: once more, anew
                client: aiosmtplib.SMTP | None = None if fresh or not self._idle else self._idle.pop()
                reused = client is not None
                try:
                    if client is None or not client.is_connected:
                        client = await self._connect()
                    await client.send_message(msg)
                    self._idle.append(client)
                    client = None
                    return DeliveryResult.sent()
                except aiosmtplib.SMTPRecipientsRefused as e:
                    permanent = all(r.code >= 500 for r in e.recipients)
                    return DeliveryResult.failed(f"recipient refused: {e}", permanent=permanent)
                except aiosmtplib.SMTPServerDisconnected as e:
                    if reused:
                        continue
                    return DeliveryResult.failed(f"SMTP disconnected: {e}")
                except aiosmtplib.SMTPResponseException as e:
                    return DeliveryResult.failed(f"SMTP {e.code}: {e.message}")
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
                    return DeliveryResult.failed(f"{type(e).__name__}: {e}")
                finally:
                    if client is not None:
                        client.close()
            return DeliveryResult.failed("SMTP server dropped the connection")

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for c in idle:
            try:
                await asyncio.wait_for(c.quit(), 2)
            except Exception:
                c.close()


class FileMailChannel:
    """Emails appended to a text file a person can read (no SMTP server configured)."""

    def __init__(self, path: Path, sender: str) -> None:
        self.path, self.sender = path, sender
        self._lock = threading.Lock()

    def _write(self, n: Notification) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        block = (f"===== {datetime.now(UTC).isoformat(timespec='seconds')} · id {n.id}\n"
                 f"From: {self.sender}\nTo: {n.recipient}\nSubject: {n.subject or ''}\n\n{n.body.rstrip()}\n\n")
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(block)

    async def send(self, notification: Notification) -> DeliveryResult:
        try:
            await asyncio.to_thread(self._write, notification)
        except OSError as e:
            return DeliveryResult.failed(f"mail outbox: {e}")
        return DeliveryResult.sent()

    async def aclose(self) -> None:
        return None
