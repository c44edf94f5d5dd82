"""Settings from the environment (``XJ_`` prefix). The only place that reads ``os.environ``."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.timeutil import DEFAULT_TZ, check_zone


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="XJ_", extra="ignore")

    timezone: str = DEFAULT_TZ
    data_dir: Path = Path("var")
    database_url: str | None = None
    bus: str = "memory"
    kafka_bootstrap: str = "127.0.0.1:9092"
    http_port: int = 8000
    workers: int = 0  # processes for batch work; 0: one per core
    smtp_host: str | None = None
    smtp_port: int = 25
    sms_gateway_url: str | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return check_zone(v)
