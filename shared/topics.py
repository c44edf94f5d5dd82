"""Topic names and keys, in one place. Every rider-feed topic is keyed by ``rider_id`` so one
rider's events stay in order on one partition; case events are keyed by ``case_id``."""

from __future__ import annotations

PLATFORM_EVENTS = "rider.platform-events"  # DATA_CONTRACT §1 lines, key rider_id
GPS = "rider.gps"  # DATA_CONTRACT §2 lines, key rider_id
ASSESSMENT_REQUESTED = "trajectory.assessment-requested"  # key rider_id
ASSESSMENT_READY = "trajectory.assessment-ready"  # key case_id
GAP_FLAGGED = "trajectory.gap-flagged"  # key rider_id
CASE_EVENTS = "mediation.case-events"  # key case_id

ALL = (PLATFORM_EVENTS, GPS, ASSESSMENT_REQUESTED, ASSESSMENT_READY, GAP_FLAGGED, CASE_EVENTS)


def dead_letter(topic: str) -> str:
    """Where messages a consumer of ``topic`` could not handle go, with the reason in a header."""
    return f"{topic}.dlq"
