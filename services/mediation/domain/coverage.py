"""Policy coverage: per insurance product, which phases are covered, and under which clause.

Rider accident products differ: some cover only the delivery itself, some the whole continuous-
delivery period (the seed case's "reasonable connection between consecutive orders"), some any
time the rider is online. The packet states which clause the assessed phase falls under.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Clause:
    clause_id: str
    phases: frozenset[str]
    text_zh: str
    text_en: str


@dataclass(frozen=True)
class Product:
    code: str
    name_zh: str
    name_en: str
    clauses: tuple[Clause, ...]


CONTINUOUS = frozenset({"to_pickup", "at_merchant", "delivering", "connecting"})

PRODUCTS: dict[str, Product] = {p.code: p for p in (
    Product("delivering-only", "配送期间意外险", "Accident cover while delivering", (
        Clause("art-3.1", frozenset({"delivering"}),
               "第三条第一款：被保险人在取餐后至送达前的配送途中遭受意外伤害的，保险人承担保险责任。",
               "Art. 3(1): the insurer is liable for accidental injury suffered between pickup and delivery of an order."),
    )),
    Product("continuous-delivery", "连续配送意外险", "Accident cover for continuous delivery", (
        Clause("art-3.1", frozenset({"delivering", "at_merchant", "to_pickup"}),
               "第三条第一款：被保险人自接单起至送达止的工作期间遭受意外伤害的，保险人承担保险责任。",
               "Art. 3(1): the insurer is liable for accidental injury suffered from accepting an order until its delivery."),
        Clause("art-3.2", frozenset({"connecting"}),
               "第三条第二款：完成上一单后前往下一单的连续配送合理衔接期间（间隔不超过 30 分钟、持续在线、未停留休息）视为工作期间。",
               "Art. 3(2): the reasonable connection between consecutive orders (at most 30 minutes apart, online throughout, "
               "no rest stop) counts as working time."),
    )),
    Product("online-time", "在线时段意外险", "Accident cover for online time", (
        Clause("art-2", frozenset(CONTINUOUS | {"idle"}),
               "第二条：被保险人在配送平台在线接单期间遭受意外伤害的，保险人承担保险责任。",
               "Art. 2: the insurer is liable for accidental injury suffered while the rider is online on a delivery platform."),
    )),
)}
DEFAULT_PRODUCT = "continuous-delivery"


UNDETERMINED = "insufficient_data"  # the engine's abstention: undetermined (待定), never "no"


@dataclass(frozen=True)
class Finding:
    """What the packet says about cover. ``covered`` is None when the phase is undetermined: the
    trajectory abstained, so the policy can be neither applied nor refused on it; ``settle_zh`` /
    ``settle_en`` then name the evidence that would settle it."""

    product: str
    phase: str
    covered: bool | None
    clause_id: str | None
    clause_text_zh: str
    clause_text_en: str
    settle_zh: tuple[str, ...] = ()
    settle_en: tuple[str, ...] = ()

    @property
    def outcome(self) -> str:
        """``covered``, ``not_covered`` or ``undetermined``."""
        return "undetermined" if self.covered is None else "covered" if self.covered else "not_covered"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "product": self.product, "phase": self.phase, "covered": self.covered, "outcome": self.outcome,
            "clause_id": self.clause_id, "clause_text_zh": self.clause_text_zh, "clause_text_en": self.clause_text_en}
        if self.covered is None:
            out.update(settle_with_zh=list(self.settle_zh), settle_with_en=list(self.settle_en))
        return out


def is_undetermined(phase: object, continuous_delivery: object = False) -> bool:
    """Whether an assessment abstained: its phase is ``insufficient_data`` or it carries
    ``continuous_delivery: null``."""
    return phase == UNDETERMINED or continuous_delivery is None


_SETTLE_GPS = ("骑手手机或平台在事发前后 30 分钟内的定位记录（GPS 轨迹）",
               "GPS fixes of the rider's phone or the platform for the 30 minutes around the incident")
_SETTLE_ORDERS = ("平台当天的订单与上下线记录（接单、到店、取餐、送达、取消的时间）",
                  "the platform's order and online records for the day (times of accepting, arriving, pickup, "
                  "delivery, cancellation)")
_SETTLE_NEXT = ("事发后骑手是否正前往下一单：平台的派单、接单或抢单记录",
                "whether the rider was heading to a next order: the platform's dispatch, offer or acceptance records")
_SETTLE_OTHER = ("能确定事发时间与地点的其他记录：报警回执、急诊或就医记录、目击者说明、平台客服记录",
                 "other records of the time and place: a police receipt, the emergency or clinic record, a witness "
                 "statement, the platform's support log")


# what the rider reads (status page, status API) while his case rests on an undetermined assessment
RIDER_UNDETERMINED_ZH = ("轨迹证据的结论是“待定”：现有的订单和定位记录不足以判断事发时您是否在连续配送中，这不等于“不赔”。"
                         "如果您有事发时的其他记录（平台订单或接单截图、报警回执、就医记录、目击者），请交给调解员。")
RIDER_UNDETERMINED_EN = ("The trajectory evidence is undetermined: the order and GPS records cannot tell whether you were "
                         "in continuous delivery at the time, which is not a \"no\". If you have other records of that "
                         "moment (screenshots of the platform's orders, a police receipt, a clinic record, a witness), "
                         "give them to your mediator.")
OPEN_STATUSES = frozenset({"evidence_ready", "under_review", "proposal_sent", "insurer_rejected", "escalated"})


def rider_note(phase: str | None, status: str, lang: str) -> str | None:
    """The plain words for the rider when his case rests on an undetermined assessment; None otherwise."""
    if phase is None or not is_undetermined(phase) or status not in OPEN_STATUSES:
        return None
    return RIDER_UNDETERMINED_EN if lang == "en" else RIDER_UNDETERMINED_ZH


def settle_with(assessment: Mapping[str, Any] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The evidence that would settle an undetermined assessment, most useful first, in Chinese
    and in English: what the feeds lacked (GPS around the incident, the platform's orders), then
    records made outside the feeds."""
    a = assessment or {}
    dq = a.get("data_quality") if isinstance(a.get("data_quality"), Mapping) else {}
    items: list[tuple[str, str]] = []
    used, coverage = dq.get("gps_points_used"), dq.get("gps_coverage_30min")
    if not used or (isinstance(coverage, int | float) and coverage < 0.5) or not dq:
        items.append(_SETTLE_GPS)
    if not a.get("previous_order") and not a.get("next_order"):
        items.append(_SETTLE_ORDERS)
    elif a.get("previous_order") and not a.get("next_order"):
        items.append(_SETTLE_NEXT)
    items.append(_SETTLE_OTHER)
    return tuple(zh for zh, _ in items), tuple(en for _, en in items)


def finding(product_code: str, phase: str, assessment: Mapping[str, Any] | None = None) -> Finding:
    """The cover of ``phase`` under the product. An undetermined phase (``insufficient_data``) is
    neither covered nor refused: ``covered`` is None, with what would settle it (from
    ``assessment``, the engine's answer, when given)."""
    product = PRODUCTS[product_code]
    if is_undetermined(phase, (assessment or {}).get("continuous_delivery", False)):
        zh, en = settle_with(assessment)
        return Finding(product.code, phase, None, None,
                       f"待定：轨迹数据不足以判断事发时所处阶段，能否适用《{product.name_zh}》的条款取决于补充证据。",
                       f"Undetermined: the trajectory cannot decide the phase at the incident; whether "
                       f"'{product.name_en}' applies depends on further evidence.", zh, en)
    for c in product.clauses:
        if phase in c.phases:
            return Finding(product.code, phase, True, c.clause_id, c.text_zh, c.text_en)
    return Finding(product.code, phase, False, None, f"事发时所处阶段（{phase}）不在《{product.name_zh}》的承保范围内。",
                   f"The phase at the incident ({phase}) is outside the cover of '{product.name_en}'.")
