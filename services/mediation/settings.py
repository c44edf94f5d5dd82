"""Settings of the mediation service (``XJ_`` prefix)."""

from __future__ import annotations

from pathlib import Path

from shared.config import Settings


class MediationSettings(Settings):
    office: str = "default"  # the office a new mediator belongs to
    evidence_window_min: float = 30.0  # trajectory shared in a packet: ± this around the incident
    status_max_failures: int = 10  # wrong access codes before a case number is locked
    status_lock_minutes: int = 15
    # wrong access codes from one client (any case numbers) within status_lock_minutes before that
    # client is locked out too: guesses sprayed over many case numbers stay under each case's limit
    status_client_max_failures: int = 30
    public_base_url: str = "http://127.0.0.1:8000"
    max_body_bytes: int = 64 << 20  # feeds may be large; anything larger is refused with 413
    auth_cache_s: float = 5.0  # how long a checked bearer token is remembered
    read_cache_s: float = 1.0  # how long another process's change may take to show in reads
    mediation_group: str = "mediation"  # XJ_MEDIATION_GROUP: the consumer group reading assessments

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"
