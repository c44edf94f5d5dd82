"""Settings of the notify service: the shared ones (``XJ_`` prefix) plus its own."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from shared.config import Settings


class NotifySettings(Settings):
    """``XJ_SMTP_FROM``, ``XJ_PUBLIC_BASE_URL``, ``XJ_NOTIFY_*``: everything notify reads."""

    smtp_from: str = "衔接调解 <noreply@xianjie.local>"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool | None = None  # None: use STARTTLS when the server offers it
    smtp_connections: int = Field(default=4, ge=1, le=64)  # kept open and reused
    public_base_url: str = ""  # links in messages; default http://127.0.0.1:$XJ_HTTP_PORT
    digest_at: str = "08:00"  # XJ_DIGEST_AT: local time of the daily digest (HH:MM)
    webhook_allow_private: bool = False  # XJ_WEBHOOK_ALLOW_PRIVATE: tests post webhooks to loopback
    staff_lang: str = "zh"  # language of mediators' emails

    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_backoff_base: float = Field(default=5.0, gt=0)  # seconds before the 2nd attempt (at most)
    notify_backoff_cap: float = Field(default=3600.0, gt=0)  # longest wait between attempts
    notify_timeout_email: float = Field(default=30.0, gt=0)
    notify_timeout_webhook: float = Field(default=10.0, gt=0)
    notify_timeout_sms: float = Field(default=10.0, gt=0)
    notify_concurrency: int = Field(default=32, ge=1, le=1000)  # sends in flight at once
    notify_per_recipient: int = Field(default=4, ge=1, le=1000)  # of which to one recipient (insurer)
    notify_group: str = "notify"  # XJ_NOTIFY_GROUP: the consumer group reading case events
    notify_poll: float = Field(default=1.0, gt=0)  # seconds between looks for due notifications
    notify_directory_ttl: float = Field(default=1.0, ge=0)  # seconds an insurer's webhook settings are cached
    notify_secret_overlap_hours: float = Field(default=24.0, ge=0)  # old webhook secret stays valid

    @field_validator("public_base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("XJ_PUBLIC_BASE_URL must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("digest_at")
    @classmethod
    def _at(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", v.strip()):
            raise ValueError("XJ_DIGEST_AT must be HH:MM")
        return v.strip()

    @model_validator(mode="after")
    def _default_base(self) -> NotifySettings:
        if not self.public_base_url:
            self.public_base_url = f"http://127.0.0.1:{self.http_port}"
        return self

    @field_validator("staff_lang")
    @classmethod
    def _lang(cls, v: str) -> str:
        if v not in ("zh", "en"):
            raise ValueError("XJ_STAFF_LANG must be zh or en")
        return v

    def timeouts(self) -> dict[str, float]:
        return {"email": self.notify_timeout_email, "webhook": self.notify_timeout_webhook,
                "sms": self.notify_timeout_sms}


def notify_settings(settings: Settings) -> NotifySettings:
    """Notify's settings from whatever settings a host process holds (``python -m services up``
    hands its own): the shared values are kept, notify's own come from the environment."""
    if isinstance(settings, NotifySettings):
        return settings
    known = NotifySettings.model_fields
    return NotifySettings(**{k: v for k, v in settings.model_dump().items() if k in known})
