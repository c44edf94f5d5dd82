"""Policy coverage: per insurance product, which phases are covered, and under which clause.

Rider accident products differ: some cover only the delivery itself, some the whole continuous-
delivery period (the seed case's "reasonable connection between consecutive orders"), some any
time the rider is online. The packet states which clause the assessed phase falls under.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class Finding:
    product: str
    phase: str
    covered: bool
    clause_id: str | None
    clause_text_zh: str
    clause_text_en: str

    def as_dict(self) -> dict[str, object]:
        return {"product": self.product, "phase": self.phase, "covered": self.covered, "clause_id": self.clause_id,
                "clause_text_zh": self.clause_text_zh, "clause_text_en": self.clause_text_en}


def finding(product_code: str, phase: str) -> Finding:
    product = PRODUCTS[product_code]
    for c in product.clauses:
        if phase in c.phases:
            return Finding(product.code, phase, True, c.clause_id, c.text_zh, c.text_en)
    if phase == "insufficient_data":
        return Finding(product.code, phase, False, None, "轨迹数据不足以判断事发时所处阶段，需补充证据。",
                       "The trajectory cannot decide the phase at the incident; more evidence is needed.")
    return Finding(product.code, phase, False, None, f"事发时所处阶段（{phase}）不在《{product.name_zh}》的承保范围内。",
                   f"The phase at the incident ({phase}) is outside the cover of '{product.name_en}'.")
