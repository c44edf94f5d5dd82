"""Domain errors; the API maps them to HTTP status codes in one place."""

from __future__ import annotations

from services.mediation.domain.model import Status


class DomainError(Exception):
    pass


class NotFound(DomainError):
    pass


class Forbidden(DomainError):
    pass


class Conflict(DomainError):
    pass


class IllegalTransition(Conflict):
    def __init__(self, current: Status, to: Status | str, allowed: list[Status]) -> None:
        self.current, self.to, self.allowed = current, to, allowed
        names = ", ".join(s.value for s in allowed) or "none"
        super().__init__(f"cannot move from {current.value} to {to if isinstance(to, str) else to.value}; "
                         f"allowed from {current.value}: {names}")


class ConsentMissing(Conflict):
    pass
