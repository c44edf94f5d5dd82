"""Settings of the mediation service (``XJ_`` prefix)."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from services.mediation.domain.model import Status
from shared.config import Settings


class MediationSettings(Settings):
    office: str = "default"  # the office a new mediator belongs to
    evidence_window_min: float = 30.0  # trajectory shared in a packet: ± this around the incident
    status_max_failures: int = 10  # wrong access codes before a case number is locked
    status_lock_minutes: int = 15
    # wrong access codes from one client (any case numbers) within status_lock_minutes before that
    # client is locked out too: guesses sprayed over many case numbers stay under each case's limit
    status_client_max_failures: int = 30
    public_base_url: str = ""  # XJ_PUBLIC_BASE_URL; default http://127.0.0.1:$XJ_HTTP_PORT
    max_body_bytes: int = 64 << 20  # feeds (NDJSON, after gzip is undone): larger is refused with 413
    max_json_bytes: int = 1 << 20  # every JSON request
    max_attachment_bytes: int = 20 << 20  # one attachment
    # the office a rider is told to call: XJ_OFFICE_NAME / XJ_OFFICE_PHONE, and per office code
    # XJ_OFFICES="xiacheng=下城区人民调解委员会|0571-85000000;binjiang=滨江调解中心|0571-86000000"
    office_name: str = "衔接调解中心"
    office_phone: str = ""
    offices: str = ""
    insurers: str = ""
    webhook_allow_private: bool = False  # XJ_WEBHOOK_ALLOW_PRIVATE: webhooks to loopback/private hosts (tests)  # XJ_INSURERS: known insurer codes besides those with accounts, "PICC:中国人保,CPIC"
    overdue_check_s: float = 60.0  # XJ_OVERDUE_CHECK_S: how often the scheduler looks for overdue cases
    # XJ_DEADLINE_<STATUS>_H: hours a case may stay in a status (decimals allowed); unset: the default
    deadline_opened_h: float | None = None
    deadline_evidence_requested_h: float | None = None
    deadline_evidence_ready_h: float | None = None
    deadline_under_review_h: float | None = None
    deadline_proposal_sent_h: float | None = None
    deadline_insurer_accepted_h: float | None = None
    deadline_insurer_rejected_h: float | None = None
    deadline_escalated_h: float | None = None
    deadline_resolved_h: float | None = None
    deadline_withdrawn_h: float | None = None
    auth_cache_s: float = 5.0  # how long a checked bearer token is remembered
    read_cache_s: float = 1.0  # how long another process's change may take to show in reads
    mediation_group: str = "mediation"  # XJ_MEDIATION_GROUP: the consumer group reading assessments

    @model_validator(mode="after")
    def _base_url(self) -> MediationSettings:
        self.public_base_url = (self.public_base_url or f"http://127.0.0.1:{self.http_port}").rstrip("/")
        return self

    def deadline_hours(self) -> dict[Status, float]:
        """Hours per status: the defaults, overridden by XJ_DEADLINE_<STATUS>_H (0 or less: none)."""
        from services.mediation.domain.deadlines import DEFAULT_HOURS

        hours = dict(DEFAULT_HOURS)
        for st in Status:
            v = getattr(self, f"deadline_{st.value}_h", None)
            if v is not None:
                if v > 0:
                    hours[st] = float(v)
                else:
                    hours.pop(st, None)
        return hours

    def office_contact(self, code: str | None) -> dict[str, str]:
        """The name and phone of an office, as the rider's page shows them."""
        for part in self.offices.split(";"):
            key, _, rest = part.partition("=")
            if key.strip() and key.strip() == (code or ""):
                name, _, phone = rest.partition("|")
                return {"name": name.strip() or self.office_name, "phone": phone.strip() or self.office_phone}
        return {"name": self.office_name, "phone": self.office_phone}

    @property
    def key_dir(self) -> Path:
        return self.data_dir / "keys"
