"""Domain exceptions; api.py maps them to HTTP status codes in one place."""

from __future__ import annotations


class NotifyError(Exception):
    """Base of notify's domain errors."""


class NotificationNotFound(NotifyError):
    def __init__(self, notification_id: str) -> None:
        super().__init__(f"no notification {notification_id}")
        self.notification_id = notification_id


class NotReplayable(NotifyError):
    """Only a dead notification can be replayed (a pending one is still being tried)."""

    def __init__(self, notification_id: str, state: str) -> None:
        super().__init__(f"notification {notification_id} is {state}; only dead ones can be replayed")
        self.notification_id = notification_id
        self.state = state


class WebhookConfigError(NotifyError, ValueError):
    """A webhook URL or secret that cannot be used; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
