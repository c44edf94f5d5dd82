"""The seed case of the Heyuan Daily article, replayed through the engine.

Rider Li Ming fell in the rain at 14:10, fifteen minutes off the order record's "delivering"
status; the insurer refused. Two variants of his day: the next order accepted just before the
fall, and accepted just after it. Both must come out as continuous delivery.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Params
from shared.config import Settings
from shared.timeutil import iso_local

SEED = Path(__file__).resolve().parent.parent / "tests" / "data" / "scenarios"
CASES = {
    "seed-case-accepted": "下一单已在摔倒前接单 / next order accepted before the fall",
    "seed-case-between": "下一单在摔倒后才接单 / next order accepted after the fall",
}
PHASE_ZH = {"to_pickup": "前往取餐", "at_merchant": "到店等餐", "delivering": "配送中", "connecting": "两单之间的合理衔接",
            "idle": "空闲", "offline": "下线", "insufficient_data": "数据不足"}


def main() -> int:
    settings = Settings()
    out_dir = settings.data_dir / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)
    params = Params()
    ok = True
    for name, title in CASES.items():
        feeds = load_dir(SEED / name, settings.timezone)
        print(f"\n=== {name}: {title}")
        for p in feeds.problems:
            print(f"  skipped {p}", file=sys.stderr)
        results = []
        for inc in feeds.incidents:
            day = feeds.days[inc.rider_id]
            res = assess(analyse(day, params), inc, params, lambda t: iso_local(t, settings.timezone))
            results.append(res)
            verdict = "属于连续配送 (continuous delivery)" if res["continuous_delivery"] else "不属于连续配送 (not continuous delivery)"
            print(f"  事发 incident {inc.incident_id} at {inc.at_text}")
            print(f"  阶段 phase: {PHASE_ZH[res['phase']]} ({res['phase']}), {verdict}, 置信度 confidence {res['confidence']}")
            for zh, en in zip(res["explanation"], res["explanation_en"], strict=True):
                print(f"   - {zh}\n     {en}")
            ok &= bool(res["continuous_delivery"])
        path = out_dir / f"{name}.assessment.json"
        path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
        print(f"  written: {path}")
    print("\n结论 Conclusion: " + ("两种情形下，摔倒都发生在连续配送期间，保险应予理赔。 In both variants the fall happened during continuous delivery."
                                  if ok else "The engine did not find continuous delivery: see above."))
    return 0 if ok else 1
