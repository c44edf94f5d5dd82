"""Notify's settings: XJ_ environment, defaults, and a host process's settings carried over."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.notify.settings import NotifySettings, notify_settings
from shared.config import Settings

pytestmark = pytest.mark.unit


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XJ_NOTIFY_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("XJ_SMTP_FROM", "Claims desk <desk@xj.example>")
    monkeypatch.delenv("XJ_PUBLIC_BASE_URL", raising=False)
    s = NotifySettings()
    assert s.notify_max_attempts == 3 and s.smtp_from == "Claims desk <desk@xj.example>"
    assert s.public_base_url == "http://127.0.0.1:8000"
    assert s.timeouts() == {"email": 30.0, "webhook": 10.0, "sms": 10.0}


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XJ_PUBLIC_BASE_URL", "xj.example")
    with pytest.raises(ValidationError):
        NotifySettings()
    monkeypatch.setenv("XJ_PUBLIC_BASE_URL", "https://xj.example/")
    assert NotifySettings().public_base_url == "https://xj.example"
    with pytest.raises(ValidationError):
        NotifySettings(staff_lang="fr")


def test_host_settings_are_carried_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XJ_NOTIFY_CONCURRENCY", "7")
    host = Settings(smtp_host="mail.example", smtp_port=2525, data_dir=Path("/tmp/xj"))
    s = notify_settings(host)
    assert (s.smtp_host, s.smtp_port, s.data_dir, s.notify_concurrency) == ("mail.example", 2525, Path("/tmp/xj"), 7)
    assert notify_settings(s) is s
