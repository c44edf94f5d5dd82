"""The time check the way a mediator reaches it (DATA_CONTRACT §6): the rider's feeds posted, the
case opened with the reported place and the (late) reported time, evidence asked for at once. The
signed packet's ``location_check`` equals ``assess DIR`` on the same files, field for field, also
when the GPS was silent over the place (an unseen pass) and when a second pass is about as likely;
the mediator's desk then says both passes."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from services.embedded import running_system
from tests.e2e.test_web_http import signed_in
from tests.support.evidence_path import late_day, open_and_request, packet_assessment, upload

pytestmark = pytest.mark.integration


def test_the_served_time_check_is_the_batch_one_and_the_desk_says_both_passes(tmp_path: Path) -> None:
    day, batch, (other, unseen, plain) = late_day(tmp_path)
    incidents = {r["incident_id"]: r for r in map(orjson.loads, (day / "incidents.jsonl").read_bytes().splitlines())}
    with running_system(tmp_path / "var", f"sqlite:///{tmp_path / 'xj.db'}") as s:
        s.tokens = {"mediator": s.add_user("mediator", "王调解", office="xiacheng"),
                    "feed": s.add_user("feed", "platform feed")}
        s.add_user("insurer", "PICC claims", insurer="PICC")
        with s.client("feed") as feed, s.client("mediator") as m:
            upload(feed, (day / "platform.jsonl").read_bytes(), (day / "gps.jsonl").read_bytes(), random.Random(7))
            cases = {iid: open_and_request(m, incidents[iid]) for iid in (other, unseen, plain)}
            for iid, cid in cases.items():
                served = packet_assessment(m, cid)
                assert served["location_check"] == batch[iid]["location_check"], iid
                assert served["explanation_en"] == batch[iid]["explanation_en"], iid
        with signed_in(s) as desk:
            page = desk.get(f"/cases/{cases[other]}?lang=en").text
            lc = batch[other]["location_check"]
            assert 'id="time-check"' in page and 'id="time-check-other"' in page
            assert f"also passed the reported place at {lc['other_pass_at'][11:19]}" in page
            assert "Also passed the reported place (as likely)" in page
            page = desk.get(f"/cases/{cases[unseen]}?lang=en").text
            assert "GPS was silent from" in page
