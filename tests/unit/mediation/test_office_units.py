"""Pure parts of the office features: deadlines from settings, the base URL default, content
sniffing, the SSRF address rules, the digest's hour, insurer lists and phone matching."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest

from services.mediation.domain.model import Status
from services.mediation.service_layer.office import configured_insurers, sniff
from services.mediation.settings import MediationSettings
from services.notify.adapters.channels.ssrf import refused
from services.notify.entrypoints.scheduler import next_digest
from services.notify.settings import NotifySettings

pytestmark = pytest.mark.unit


def test_deadlines_are_settings(monkeypatch):
    monkeypatch.setenv("XJ_DEADLINE_OPENED_H", "48.5")
    monkeypatch.setenv("XJ_DEADLINE_ESCALATED_H", "0")
    hours = MediationSettings().deadline_hours()
    assert hours[Status.OPENED] == 48.5
    assert Status.ESCALATED not in hours  # 0: no deadline
    assert hours[Status.PROPOSAL_SENT] == 168  # the default kept


def test_public_base_url_follows_the_port(monkeypatch):
    monkeypatch.delenv("XJ_PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("XJ_HTTP_PORT", "8123")
    assert MediationSettings().public_base_url == "http://127.0.0.1:8123"
    assert NotifySettings().public_base_url == "http://127.0.0.1:8123"
    monkeypatch.setenv("XJ_PUBLIC_BASE_URL", "https://xj.example.org/")
    assert MediationSettings().public_base_url == "https://xj.example.org"
    assert NotifySettings().public_base_url == "https://xj.example.org"


@pytest.mark.parametrize("data, kind", [
    (b"%PDF-1.7\n", "application/pdf"), (b"\xff\xd8\xff\xdb", "image/jpeg"), (b"\x89PNG\r\n\x1a\n....", "image/png"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00", "image/heic"), (b"GIF89a", None), (b"<html>%PDF-", None), (b"", None),
])
def test_content_type_by_magic_bytes(data, kind):
    assert sniff(data) == kind


@pytest.mark.parametrize("addr, bad", [
    ("127.0.0.1", True), ("10.0.0.1", True), ("172.16.5.4", True), ("192.168.1.1", True), ("169.254.169.254", True),
    ("169.254.1.1", True), ("100.100.100.200", True), ("::1", True), ("fe80::1", True), ("fd00:ec2::254", True),
    ("::ffff:10.0.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True), ("8.8.8.8", False), ("2606:4700::1111", False),
])
def test_ssrf_address_rules(addr, bad):
    assert (refused(ipaddress.ip_address(addr)) is not None) is bad


def test_next_digest_hour_in_local_time():
    # 23:30 UTC on 6 Dec is 07:30 on 7 Dec in Shanghai: today's 08:00 is 30 min away
    day, when = next_digest(datetime(2026, 12, 6, 23, 30, tzinfo=UTC), "08:00", "Asia/Shanghai")
    assert str(day) == "2026-12-07" and when == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    # past the hour: due now (a worker started late still sends today's)
    now = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    assert next_digest(now, "08:00", "Asia/Shanghai") == (now.date(), now)


def test_insurer_list():
    assert configured_insurers("PICC:中国人保, CPIC ,") == {"PICC": "中国人保", "CPIC": ""}
