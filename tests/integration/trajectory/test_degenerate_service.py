"""Issue 17 part 1 through the running system: tiny and degenerate rider-days stored in a
FeedStore (SQLite) and assessed by ``assess_request`` get an answer or an honest abstention, never
AssessmentFailed for an engine fault; and the batch command agrees with the service on them."""

from __future__ import annotations

import itertools
import tempfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.adapters.store import FeedStore, migrate
from services.trajectory.domain.model import Params
from services.trajectory.entrypoints import cli
from services.trajectory.service_layer.handlers import assess_request, ingest
from shared.db import make_engine
from shared.events import AssessmentFailed, AssessmentReady, AssessmentRequested
from tests.unit.trajectory.builders import T0
from tests.unit.trajectory.test_degenerate import rider_days, write_dir

from .helpers import gps, lines, platform

pytestmark = pytest.mark.integration
TZ = "Asia/Shanghai"
_ids = itertools.count()


@pytest.fixture(scope="module")
def sqlite_store():
    with tempfile.TemporaryDirectory() as tmp:
        eng = make_engine(f"sqlite:///{Path(tmp) / 'xj.db'}")
        migrate(eng)
        yield FeedStore(eng)
        eng.dispose()


def _request(rider: str, at_ms: int) -> AssessmentRequested:
    n = next(_ids)
    return AssessmentRequested(request_id=f"req-{n}", case_id=f"CASE-{n}", rider_id=rider,
                               incident_at=datetime.fromtimestamp(at_ms / 1000, ZoneInfo(TZ)))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(rider_days)
def test_service_answers_every_tiny_rider_day_as_the_batch_does(sqlite_store, rd):
    prefix = f"S{next(_ids)}-"  # a rider of its own per example: the store is shared by the examples
    rider_tag = prefix + "0"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_dir(d, [rd], prefix)
        batch = [orjson.loads(x) for x in cli.assess_all(load_dir(d, TZ), Params(), TZ, 1)]
        ingest(sqlite_store, gps(lines(d, "gps.jsonl")) + platform(lines(d, "platform.jsonl")), tz=TZ)
        incidents = [orjson.loads(x) for x in lines(d, "incidents.jsonl")]
    for inc, want in zip(incidents, batch, strict=True):
        ev = assess_request(sqlite_store, _request(rider_tag, inc["at"]), Params(), TZ)
        if isinstance(ev, AssessmentFailed):
            # only a rider with nothing stored (an order event without its acceptance is no order)
            assert "nothing to assess" in ev.reason and not rd[0] and not rd[2], ev.reason
            assert want["phase"] == "insufficient_data"
            continue
        assert isinstance(ev, AssessmentReady), getattr(ev, "reason", "")
        got = ev.assessment
        assert got["phase"] == want["phase"], (rd, inc, got.get("explanation_en"), want.get("explanation_en"))
        assert got["continuous_delivery"] == want["continuous_delivery"]
        if got["phase"] == "insufficient_data":
            assert got["continuous_delivery"] is None


def test_two_fixes_ten_seconds_apart_through_the_service(sqlite_store):
    """The issue's crash case: before, the service answered AssessmentFailed ("operands could not
    be broadcast together")."""
    prefix = f"S{next(_ids)}-"
    rider = prefix + "0"
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_dir(d, [([(400.0, 0.0, 0.0), (410.0, 5.0, 0.0)], 3, True, [500.0])], prefix)
        ingest(sqlite_store, gps(lines(d, "gps.jsonl")) + platform(lines(d, "platform.jsonl")), tz=TZ)
    ev = assess_request(sqlite_store, _request(rider, int((T0 + 500) * 1000)), Params(), TZ)
    assert isinstance(ev, AssessmentReady), getattr(ev, "reason", "")
    assert ev.assessment["phase"] == "delivering" and ev.assessment["continuous_delivery"] is True
