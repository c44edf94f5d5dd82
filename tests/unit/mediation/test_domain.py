"""The case lifecycle, coverage, deadlines and the audit chain: pure rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.mediation.domain import audit, deadlines, lifecycle
from services.mediation.domain.coverage import PRODUCTS, finding
from services.mediation.domain.errors import Forbidden, IllegalTransition
from services.mediation.domain.model import (
    SYSTEM,
    Actor,
    Case,
    Consent,
    Incident,
    Rider,
    Role,
    Status,
)
from shared.events import StatusChanged

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 14, 8, 0, tzinfo=UTC)
MED = Actor(Role.MEDIATOR, "m1", "王调解", office="xiacheng")
INS = Actor(Role.INSURER, "i1", "PICC claims", insurer_code="PICC")
OTHER_INS = Actor(Role.INSURER, "i2", "Other", insurer_code="OTHER")


def case(status: Status = Status.OPENED) -> Case:
    return Case("c1", "XJ260514-AB12", status, Rider("R1", "李明", "13800138000"), "PICC", "P-1", "CL-1",
                "continuous-delivery", Incident(NOW - timedelta(hours=5)), "15 minutes off delivering",
                Consent(True, NOW, "written"), "xiacheng", "m1", NOW, NOW)


HAPPY = [(Status.EVIDENCE_REQUESTED, MED), (Status.EVIDENCE_READY, SYSTEM), (Status.UNDER_REVIEW, MED),
         (Status.PROPOSAL_SENT, MED), (Status.INSURER_ACCEPTED, INS), (Status.RESOLVED, MED), (Status.CLOSED, MED)]


def test_the_happy_path_records_who_when_from_to_and_why():
    c = case()
    for k, (to, actor) in enumerate(HAPPY):
        c, events = lifecycle.transition(c, to, actor, f"step {k}", NOW + timedelta(minutes=k))
        assert c.status is to
        assert isinstance(events[0], StatusChanged) and events[0].status == to.value
        rec = c.history[-1]
        assert (rec.actor, rec.to_status, rec.reason, rec.at) == (actor.label, to, f"step {k}", NOW + timedelta(minutes=k))
    assert [r.to_status for r in c.history] == [s for s, _ in HAPPY]
    assert lifecycle.allowed(Status.CLOSED, Role.MEDIATOR) == []


def test_an_illegal_move_is_refused_with_the_allowed_ones():
    with pytest.raises(IllegalTransition) as e:
        lifecycle.transition(case(), Status.RESOLVED, MED, "", NOW)
    assert set(e.value.allowed) == {Status.EVIDENCE_REQUESTED, Status.ESCALATED, Status.WITHDRAWN}
    assert "evidence_requested" in str(e.value)


@pytest.mark.parametrize("status", list(Status))
def test_every_status_is_in_the_table_and_reachable_moves_are_statuses(status):
    assert status in lifecycle.TRANSITIONS
    for to, roles in lifecycle.TRANSITIONS[status].items():
        assert isinstance(to, Status) and roles


def test_roles_are_enforced():
    with pytest.raises(Forbidden):
        lifecycle.transition(case(Status.PROPOSAL_SENT), Status.INSURER_ACCEPTED, MED, "", NOW)
    with pytest.raises(Forbidden):
        lifecycle.transition(case(Status.EVIDENCE_REQUESTED), Status.EVIDENCE_READY, MED, "", NOW)
    with pytest.raises(Forbidden):
        lifecycle.transition(case(Status.PROPOSAL_SENT), Status.INSURER_ACCEPTED, OTHER_INS, "", NOW)
    moved, _ = lifecycle.transition(case(Status.PROPOSAL_SENT), Status.INSURER_REJECTED, INS, "not covered", NOW)
    assert moved.status is Status.INSURER_REJECTED
    # several rounds of talks: back to review after a refusal
    again, _ = lifecycle.transition(moved, Status.UNDER_REVIEW, MED, "new evidence", NOW)
    assert again.status is Status.UNDER_REVIEW


def test_coverage_names_the_clause():
    f = finding("continuous-delivery", "connecting")
    assert f.covered and f.clause_id == "art-3.2" and "衔接" in f.clause_text_zh
    assert not finding("delivering-only", "connecting").covered
    assert finding("delivering-only", "delivering").covered
    assert finding("online-time", "idle").covered
    assert not finding("online-time", "offline").covered
    assert finding("online-time", "offline").outcome == "not_covered"
    for p in PRODUCTS.values():
        assert p.clauses and all(c.text_en and c.text_zh for c in p.clauses)


@pytest.mark.parametrize("product", list(PRODUCTS))
def test_undetermined_is_neither_covered_nor_refused(product):
    """insufficient_data is its own outcome: covered is None (not False), the texts say 待定 /
    undetermined, and they name what evidence would settle it."""
    no_gps = {"phase": "insufficient_data", "continuous_delivery": None,
              "data_quality": {"gps_points_used": 0, "gps_coverage_30min": 0.0}}
    f = finding(product, "insufficient_data", no_gps)
    assert f.covered is None and f.outcome == "undetermined" and f.clause_id is None
    assert f.clause_text_zh.startswith("待定") and f.clause_text_en.startswith("Undetermined")
    assert "不在" not in f.clause_text_zh and "outside the cover" not in f.clause_text_en
    d = f.as_dict()
    assert d["covered"] is None and d["outcome"] == "undetermined"
    assert any("GPS" in s for s in d["settle_with_en"]) and any("定位" in s for s in d["settle_with_zh"])
    assert any("order" in s for s in d["settle_with_en"])  # no order either: the platform's records
    assert len(d["settle_with_zh"]) == len(d["settle_with_en"])
    # the aftermath case: GPS was fine, the previous order known, no next one: ask for that
    after = finding(product, "insufficient_data", {
        "continuous_delivery": None, "previous_order": {"order_id": "A"},
        "data_quality": {"gps_points_used": 300, "gps_coverage_30min": 1.0}})
    assert not any("GPS" in s for s in after.settle_en)
    assert any("next order" in s for s in after.settle_en)
    # a determined finding carries no settle list
    assert "settle_with_en" not in finding(product, "offline").as_dict()


def test_deadlines_flag_overdue_cases():
    c = case(Status.PROPOSAL_SENT)
    due = deadlines.due_at(c)
    assert due == NOW + timedelta(hours=168)
    assert not deadlines.overdue(c, NOW + timedelta(hours=100))
    assert deadlines.overdue(c, NOW + timedelta(hours=169))
    assert deadlines.due_at(case(Status.CLOSED)) is None
    custom = {Status.PROPOSAL_SENT: 24.0}
    assert deadlines.overdue(c, NOW + timedelta(hours=25), custom)


def chain(n: int) -> list[audit.Entry]:
    out: list[audit.Entry] = []
    for k in range(n):
        out.append(audit.append(out[-1] if out else None, "c1", f"2026-05-14T08:0{k}:00+00:00", "mediator:m1",
                                "step", {"k": k}))
    return out


def test_audit_chain_detects_any_edit_removal_or_reorder():
    entries = chain(5)
    assert audit.verify(entries) == []
    edited = list(entries)
    edited[2] = replace(edited[2], data={"k": 99})
    assert "entry 3 (step) was altered" in audit.verify(edited)
    removed = entries[:2] + entries[3:]
    assert audit.verify(removed)
    swapped = list(entries)
    swapped[1], swapped[2] = replace(entries[2], seq=2), replace(entries[1], seq=3)
    assert audit.verify(swapped)


def test_the_rider_is_told_undetermined_while_the_case_rests_on_it():
    from services.mediation.domain.coverage import is_undetermined, rider_note

    assert is_undetermined("insufficient_data") and is_undetermined("connecting", None)
    assert not is_undetermined("idle", False) and not is_undetermined("connecting", True)
    zh = rider_note("insufficient_data", "evidence_ready", "zh")
    en = rider_note("insufficient_data", "proposal_sent", "en")
    assert zh is not None and "待定" in zh and "不等于“不赔”" in zh
    assert en is not None and "undetermined" in en and "mediator" in en
    assert rider_note("idle", "evidence_ready", "zh") is None  # a finding is not announced here
    assert rider_note("insufficient_data", "resolved", "zh") is None  # settled: nothing to add
    assert rider_note(None, "opened", "en") is None
