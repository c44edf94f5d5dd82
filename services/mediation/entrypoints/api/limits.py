"""Body limits per door (pure ASGI, before anything reads the body): feeds (NDJSON, gzip accepted
with ``Content-Encoding: gzip``, the limit applying to the unpacked bytes), attachments (one file
plus the multipart framing), and every other request (JSON, forms). Larger is 413, naming the
limit; a body declared larger is refused before a byte of it is read."""

from __future__ import annotations

import re
import zlib
from typing import Any

from fastapi.responses import JSONResponse

MIB = 1 << 20
MULTIPART_SLACK = 256 << 10  # the form's other fields and boundaries around the file
_ATTACH = re.compile(r"^(/api/v1)?/cases/[^/]+/attachments/?$")  # the API's and the desk's upload


class BodyLimits:
    def __init__(self, app: Any, *, json_limit: int, feed_limit: int, attachment_limit: int) -> None:
        self.app = app
        self.json_limit, self.feed_limit, self.attachment_limit = json_limit, feed_limit, attachment_limit

    def door(self, path: str) -> tuple[int, str]:
        if path.startswith("/api/v1/feeds/") or path == "/api/v1/packets/verify":
            return self.feed_limit, "feeds" if "feeds" in path else "packets"
        if _ATTACH.match(path):
            return self.attachment_limit + MULTIPART_SLACK, "attachments"
        return self.json_limit, "JSON requests"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit, what = self.door(scope.get("path", ""))
        shown = self.attachment_limit if what == "attachments" else limit
        chunked = gzip = False
        for k, v in scope.get("headers", ()):
            if k == b"content-length" and (not v.isdigit() or int(v) > limit):
                await _refuse(scope, receive, send, shown, what)
                return
            chunked = chunked or k == b"transfer-encoding"
            gzip = gzip or (k == b"content-encoding" and v.strip().lower() == b"gzip")
        if gzip and what == "feeds":
            await self._gunzip(scope, receive, send, limit)
            return
        if gzip:
            await JSONResponse({"detail": "Content-Encoding gzip is accepted on the feeds only"},
                               status_code=415)(scope, receive, send)
            return
        if chunked:
            await self._counted(scope, receive, send, limit, shown, what)
            return
        await self.app(scope, receive, send)

    async def _read(self, receive: Any, limit: int) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _counted(self, scope: Any, receive: Any, send: Any, limit: int, shown: int, what: str) -> None:
        body = await self._read(receive, limit)
        if body is None:
            await _refuse(scope, receive, send, shown, what)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _gunzip(self, scope: Any, receive: Any, send: Any, limit: int) -> None:
        packed = await self._read(receive, limit)
        if packed is None:
            await _refuse(scope, receive, send, limit, "feeds")
            return
        d = zlib.decompressobj(wbits=31)
        try:
            body = d.decompress(packed, limit + 1)
            if len(body) > limit or d.unconsumed_tail:
                await _refuse(scope, receive, send, limit, "feeds (unpacked)")
                return
            if not d.eof:
                raise zlib.error("truncated gzip stream")
        except zlib.error as e:
            await JSONResponse({"detail": f"invalid request: body: not a gzip stream ({e})"},
                               status_code=400)(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers", ())
                   if k not in (b"content-encoding", b"content-length", b"transfer-encoding")]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.app({**scope, "headers": headers}, _replay(body, receive), send)


def _replay(body: bytes, receive: Any) -> Any:
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay


async def _refuse(scope: Any, receive: Any, send: Any, limit: int, what: str) -> None:
    size = f"{limit / MIB:g} MiB" if limit >= MIB else f"{limit} bytes"
    await JSONResponse({"detail": f"body larger than the limit of {size} ({limit} bytes) for {what}",
                        "limit": limit}, status_code=413)(scope, receive, send)
