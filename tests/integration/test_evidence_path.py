"""Read your writes on the embedded default (API_CONTRACT, "Evidence: what the system promises"):
a mediator uploads a rider's feeds in pieces, opens the case and asks for evidence at once; the
signed packet's assessment equals ``assess DIR`` on the same files, on every public scenario. The
feeds go up with their event ids renumbered from 1 per platform and rider, as platforms send them,
and are compared with ``assess`` on the original files. Uploading them again stores nothing new and
counts every line as a duplicate.

``make evidence-loop`` runs this module N times (default 20) and counts the runs that differed."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from services.embedded import running_system
from tests.support.evidence_path import (
    DAYS,
    batch_answers,
    differences,
    open_and_request,
    packet_assessment,
    upload,
)
from tests.support.renumber import renumbered

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("day", DAYS, ids=[d.name for d in DAYS])
def test_evidence_right_after_upload_equals_assess(day: Path, tmp_path: Path) -> None:
    batch = batch_answers(day)
    incidents = [orjson.loads(x) for x in (day / "incidents.jsonl").read_bytes().splitlines() if x.strip()]
    platform = renumbered((day / "platform.jsonl").read_bytes())
    gps = (day / "gps.jsonl").read_bytes()
    rng = random.Random(day.name)
    with running_system(tmp_path / "var", f"sqlite:///{tmp_path / 'xj.db'}") as s:
        s.tokens = {"mediator": s.add_user("mediator", "王调解", office="xiacheng"),
                    "insurer": s.add_user("insurer", "PICC claims", insurer="PICC"),
                    "feed": s.add_user("feed", "platform feed")}
        with s.client("feed") as feed, s.client("mediator") as m:
            first = upload(feed, platform, gps, rng)
            cases = {inc["incident_id"]: open_and_request(m, inc) for inc in incidents}
            wrong = {iid: d for iid, cid in cases.items() if (d := differences(packet_assessment(m, cid), batch[iid]))}
            assert wrong == {}, f"{len(wrong)} of {len(cases)} packets differ from assess: {wrong}"
            again = upload(feed, platform, gps, rng)
            assert again == {"accepted": first["accepted"], "duplicates": first["accepted"]}
