"""Webhook targets that must not be reached: loopback, private, link-local, cloud metadata,
multicast, reserved and unspecified addresses, judged by the addresses the host name resolves to
(every one of them), at registration and again before each send; a name that resolves to
127.0.0.1 (``localhost``) is refused as 127.0.0.1 is. ``XJ_WEBHOOK_ALLOW_PRIVATE=1`` lifts the
check (tests, a claims system on the same private network)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from services.notify.domain.errors import WebhookConfigError

METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
            ipaddress.ip_address("100.100.100.200")}  # AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba Cloud


def refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address may not be a webhook target; None if it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return refused(ip.ipv4_mapped)
    if ip in METADATA:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "a reserved address"
    if ip.is_private or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10")):
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return "a reserved address"
    return None


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise WebhookConfigError("url", f"the webhook host {host!r} does not resolve ({e})") from e
    return [ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos]


def check_target(url: str, *, allow_private: bool = False) -> None:
    """WebhookConfigError (field ``url``) when the URL's host is, or resolves to, a refused address."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise WebhookConfigError("url", f"a webhook URL with a bad port: {e}") from e
    for ip in resolve(host, port):
        why = refused(ip)
        if why is not None:
            raise WebhookConfigError("url", f"the webhook host {host!r} resolves to {ip}, {why}: refused "
                                            "(XJ_WEBHOOK_ALLOW_PRIVATE=1 allows it)")


async def acheck_target(url: str, *, allow_private: bool = False) -> str | None:
    """The reason a send must not go to ``url`` now; None if it may."""
    if allow_private:
        return None
    try:
        await asyncio.to_thread(check_target, url)
    except WebhookConfigError as e:
        return str(e)
    return None


class GuardedResolver:
    """An aiohttp resolver that refuses refused addresses at connect time: the address checked is
    the address connected to, so a name re-pointed between the check and the send (DNS rebinding)
    cannot reach a private host. TLS still verifies the certificate against the name."""

    def __init__(self) -> None:
        self._inner: Any = None  # made inside the running loop, on first use

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        if self._inner is None:
            from aiohttp.resolver import DefaultResolver

            self._inner = DefaultResolver()
        found = await self._inner.resolve(host, port, family)
        for r in found:
            why = refused(ipaddress.ip_address(str(r["host"]).split("%")[0]))
            if why is not None:
                raise OSError(errno.EACCES, f"{host!r} resolves to {r['host']}, {why}: refused")
        return found

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
