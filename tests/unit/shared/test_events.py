"""Events are read by version: a payload written before optional fields were added still reads (the
additions are optional), and a version this service does not read is refused with a clear error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.events import AssessmentReady, AssessmentRequested, Envelope, EventError, decode

pytestmark = pytest.mark.unit


def test_a_payload_from_before_the_optional_fields_still_reads() -> None:
    env = AssessmentReady(request_id="q", case_id="c", rider_id="r", assessment={"phase": "idle"}, timeline=[],
                          orders=[], track=[], window=(0.0, 1.0)).envelope(key="c", producer="test")
    old = env.model_copy(update={"data": {k: v for k, v in env.data.items() if k != "gap_flags"}})
    ev = decode(Envelope.from_bytes(old.to_bytes()))
    assert isinstance(ev, AssessmentReady) and ev.gap_flags == []
    req = AssessmentRequested(request_id="q", case_id="c", rider_id="r", incident_at=datetime(2026, 5, 14, tzinfo=UTC))
    data = {k: v for k, v in req.model_dump(mode="json").items() if k != "claimed_at"}
    back = decode(req.envelope(key="c", producer="test").model_copy(update={"data": data}))
    assert isinstance(back, AssessmentRequested) and back.claimed_at is None


@pytest.mark.parametrize("version", [0, 2, 99])
def test_a_version_this_service_does_not_read_is_refused(version: int) -> None:
    env = AssessmentRequested(request_id="q", case_id="c", rider_id="r",
                              incident_at=datetime(2026, 5, 14, tzinfo=UTC)).envelope(key="c", producer="test")
    with pytest.raises(EventError, match=f"version {version}: this service reads version 1"):
        decode(env.model_copy(update={"version": version}))
