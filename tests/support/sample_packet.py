"""The seed case as an evidence packet's inputs: the rider-day of a scenario folder assessed by the
trajectory engine, with a made-up case around it (for the tests, the demo and the reviewers'
sample PDF). Reads files; the packet builder itself does not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Params
from shared.timeutil import iso_local

SEED_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "scenarios" / "seed-case-between"

# a made-up case; the rider's name and phone are raw here, as the case record holds them
SAMPLE_CASE: dict[str, Any] = {
    "case_number": "XJ-2025-000123",
    "insurer_code": "PINGAN-GD",
    "policy_number": "P44160020250001",
    "claim_number": "CLM-2025-05-0087",
    "incident": {
        "description": "雨天送餐途中摔倒，右手骨折。fell in the rain on the way to the next pickup",
        "injury": "右手第五掌骨骨折 fracture of the right fifth metacarpal",
    },
    "denial_reason": "受伤时间与订单记录相差15分钟，事发时订单未显示配送中状态。"
                     "The injury time differs from the order record by 15 minutes.",
    "consent": {"given": True, "at": "2025-05-20T10:05:00+08:00", "method": "written",
                "scope": "事发前后各30分钟的轨迹，仅用于本案 trajectory ±30 min around the incident, this case only"},
    "rider": {"rider_id": "R-LIMING", "name": "李明", "phone": "13812345678"},
}

SAMPLE_COVERAGE: dict[str, Any] = {
    "product": "continuous-delivery",
    "phase": "connecting",
    "covered": True,
    "clause_id": "art-3.2",
    "clause_text_zh": "第三条第二款：完成上一单后前往下一单的连续配送合理衔接期间（间隔不超过 30 分钟、持续在线、"
                      "未停留休息）视为工作期间。",
    "clause_text_en": "Art. 3(2): the reasonable connection between consecutive orders (at most 30 minutes apart, "
                      "online throughout, no rest stop) counts as working time.",
}


def seed_inputs(directory: Path = SEED_DIR, *, tz: str = "Asia/Shanghai", window_min: float = 30.0,
                packet_id: str = "6f1c2a52-0d5e-4c3b-9a47-3e2f1d0c9b8a",
                created_at: datetime = datetime(2025, 5, 21, 2, 30, tzinfo=UTC)) -> dict[str, Any]:
    """Keyword arguments for ``build_packet``: the first incident of the folder, assessed, with the
    whole day's track, orders and timeline (the builder keeps only the window)."""
    feeds = load_dir(directory, tz)
    inc = feeds.incidents[0]
    params = Params()
    analysis = analyse(feeds.days[inc.rider_id], params)
    assessment = assess(analysis, inc, params, lambda t: iso_local(t, tz))
    case = {**SAMPLE_CASE, "incident": {**SAMPLE_CASE["incident"], "at": inc.at, "location": inc.location}}
    coverage = {**SAMPLE_COVERAGE, "phase": assessment["phase"]}
    track = list(zip(analysis.track_t.tolist(), analysis.track_lat.tolist(), analysis.track_lon.tolist(), strict=True))
    return {
        "packet_id": packet_id, "created_at": created_at, "case": case, "assessment": assessment,
        "coverage": coverage, "timeline": analysis.timeline.segments, "orders": analysis.timeline.orders,
        "track": track, "window": (inc.at - window_min * 60, inc.at + window_min * 60), "tz": tz,
    }
