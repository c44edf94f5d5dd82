"""``make demo``: the seed case of the Heyuan Daily article, end to end, on the embedded default.

Rider Li Ming fell in the rain at 14:10, fifteen minutes off the order record's "delivering"
status; his insurer refused to pay. Here a community mediator settles it with Xianjie: the rider's
feeds come in, a case is opened with his consent, the trajectory evidence is assessed, signed and
verified, the insurer accepts, the case is resolved, and everyone is told. Everything goes through
the real HTTP API of a system running in this process (trajectory, mediation and notify on the
in-process bus and SQLite). Artefacts land in var/demo/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from services.embedded import free_port, running_system, wait_for

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"
PHASE_ZH = {"to_pickup": "前往取餐", "at_merchant": "到店等餐", "delivering": "配送中", "connecting": "两单之间的合理衔接",
            "idle": "空闲", "offline": "下线", "insufficient_data": "数据不足"}


def say(step: str, zh: str, en: str) -> None:
    print(f"\n[{step}] {zh}\n      {en}", flush=True)


class _Hooks(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Hooks.received.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def main() -> int:
    out = ROOT / "var" / "demo"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    hook_port = free_port()
    hooks = ThreadingHTTPServer(("127.0.0.1", hook_port), _Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    incident = json.loads((SEED / "incidents.jsonl").read_text().splitlines()[0])
    try:
        # the demo's webhook receiver listens on loopback, which the SSRF guard refuses otherwise
        with running_system(out, f"sqlite:///{out / 'xianjie.db'}", env={"XJ_WEBHOOK_ALLOW_PRIVATE": "1"}) as s:
            say("0", f"系统已启动（内嵌模式）：{s.base_url}", f"System up (embedded default) at {s.base_url}")
            mediator = s.add_user("mediator", "王调解员", office="下城社区", email="mediator@xiacheng.example")
            insurer = s.add_user("insurer", "某保险公司理赔部", insurer="PICC", email="claims@insurer.example")
            feed = s.add_user("feed", "平台数据接口")
            with s.client() as c:
                c.headers["Authorization"] = f"Bearer {mediator}"
                c.put("/api/v1/insurers/PICC/webhook",
                      json={"url": f"http://127.0.0.1:{hook_port}/claims", "secret": "whsec_eGlhbmppZS1kZW1vLXdlYmhvb2stc2VjcmV0LTMyYnl0ZXMh"})
                c.headers["Authorization"] = f"Bearer {feed}"
                p = c.post("/api/v1/feeds/platform-events", content=(SEED / "platform.jsonl").read_bytes()).json()
                g = c.post("/api/v1/feeds/gps", content=(SEED / "gps.jsonl").read_bytes()).json()
                say("1", f"骑手当天的数据已导入：平台事件 {p['accepted']} 条，定位点 {g['accepted']} 个。",
                    f"The rider's day is in: {p['accepted']} platform events, {g['accepted']} GPS fixes.")

                c.headers["Authorization"] = f"Bearer {mediator}"
                r = c.post("/api/v1/cases", json={
                    "rider": {"id": incident["rider_id"], "name": "李明", "phone": "13800138000"},
                    "insurer_code": "PICC", "policy_number": "PICC-RIDER-2025-0514", "claim_number": "CLM-2025-0088",
                    "incident": {"at": incident["at"], "location": incident["location"],
                                 "description": "雨天送餐途中摔倒，右手骨折", "injury": "右手掌骨骨折"},
                    "denial_reason": "事发时间与订单“配送中”状态相差15分钟，不属于工作期间",
                    "consent": {"given": True, "method": "written", "scope": "仅限本案事发前后的轨迹"},
                }).json()
                cid, number, code = r["case_id"], r["case_number"], r["rider_access_code"]
                say("2", f"调解员立案：案件号 {number}，骑手已书面同意使用其轨迹（仅限本案）。骑手查询码 {code}。",
                    f"The mediator opens case {number} with the rider's written consent; rider access code {code}.")

                report = medical_report_pdf()
                att = c.post(f"/api/v1/cases/{cid}/attachments", data={
                    "kind": "medical_report", "description": "浙江省人民医院骨科诊断证明（右手第五掌骨骨折）"},
                    files={"file": ("诊断证明-李明.pdf", report, "application/pdf")}).json()
                say("2b", f"调解员上传医院诊断证明（{att['size']} 字节，SHA-256 {att['sha256'][:16]}…）。",
                    f"The mediator attaches the hospital's medical report ({att['size']} bytes, "
                    f"SHA-256 {att['sha256'][:16]}…).")

                c.post(f"/api/v1/cases/{cid}/evidence-requests")
                case = wait_for(lambda: (x := c.get(f"/api/v1/cases/{cid}").json())["status"] == "evidence_ready" and x)
                raw = c.get(f"/api/v1/cases/{cid}/evidence-packet").content
                packet = json.loads(raw)
                a = packet["assessment"]
                cd = a["continuous_delivery"]  # None: undetermined (待定), never "no"
                say("3", f"轨迹证据已生成：事发时处于「{PHASE_ZH.get(a['phase'], a['phase'])}」，"
                    f"{'是否属于连续配送待定' if cd is None else '属于连续配送' if cd else '不属于连续配送'}"
                    f"（置信度 {a['confidence']}）。",
                    f"Evidence ready: the rider was '{a['phase']}' at the fall; continuous delivery: "
                    f"{'undetermined' if cd is None else 'yes' if cd else 'no'} (confidence {a['confidence']}).")
                for zh, en in zip(a["explanation"], a.get("explanation_en", a["explanation"]), strict=False):
                    print(f"      - {zh}\n        {en}")
                differ = _differs_from_assess(a, incident["incident_id"])
                if differ:
                    say("3!", f"证据包与批量评估 assess 不一致：{differ}", f"The packet differs from `assess`: {differ}")
                    return 1
                print("      与同一数据的批量评估（python -m services.trajectory assess）一致 / "
                      "the same answer as `python -m services.trajectory assess` on the same files")
                for item in packet["case"].get("attachments", []):
                    print(f"      附件 attachment (signed in the packet): {item['name']} · {item['kind']} · "
                          f"{item['size']} B · sha256 {item['sha256']} · {item['added_by']} · {item['added_at']}")
                cov = packet["coverage"]
                print(f"      条款 clause {cov['clause_id']}: {cov['clause_text_zh']}")
                (out / f"{number}.packet.json").write_bytes(raw)  # exactly as signed
                pdf = c.get(f"/api/v1/cases/{cid}/evidence-packet", params={"format": "pdf"}).content
                (out / f"{number}.packet.pdf").write_bytes(pdf)
                verdict = subprocess.run([sys.executable, "-m", "services.mediation", "packets", "verify",
                                          str(out / f"{number}.packet.json")], capture_output=True, text=True,
                                         env={**os.environ, "XJ_DATA_DIR": str(out)})
                say("4", f"证据包已签名（Ed25519）并验证：{verdict.stdout.strip()}；PDF 已写入 var/demo/{number}.packet.pdf。",
                    f"Packet signed (Ed25519) and verified: {verdict.stdout.strip()}; PDF written to var/demo/{number}.packet.pdf.")

                for to, why in (("under_review", "审查轨迹证据"), ("proposal_sent", "摔倒发生在两单之间的合理衔接阶段，建议理赔")):
                    c.post(f"/api/v1/cases/{cid}/transitions", json={"to": to, "reason": why})
                say("5", "调解员审查后向保险公司发送调解方案。", "The mediator reviews and sends the proposal to the insurer.")
                c.headers["Authorization"] = f"Bearer {insurer}"
                c.post(f"/api/v1/cases/{cid}/insurer-response",
                       json={"decision": "accept", "reason": "证据显示属于连续配送的合理衔接，同意赔付"})
                say("6", "保险公司核验证据后同意赔付。", "The insurer checks the evidence and accepts the claim.")
                c.headers["Authorization"] = f"Bearer {mediator}"
                c.post(f"/api/v1/cases/{cid}/transitions", json={"to": "resolved", "reason": "赔付已确认"})
                case = c.get(f"/api/v1/cases/{cid}").json()
                trail = c.get(f"/api/v1/cases/{cid}/audit").json()
                say("7", f"案件已解决。状态历程：{' → '.join(h['to'] for h in case['history'])}；审计链完整：{trail['intact']}。",
                    f"Case resolved. History: {' → '.join(h['to'] for h in case['history'])}; audit chain intact: {trail['intact']}.")
                c.headers.pop("Authorization")
                st = c.get(f"/api/v1/status/{number}", params={"code": code}).json()
                say("8", f"骑手用手机查询：{st['status_label']}。{st['next_step']}",
                    f"The rider checks on his phone: {st['status']} — status page {s.base_url}/status?case={number}&code={code}")
                c.headers["Authorization"] = f"Bearer {mediator}"
                notes = wait_for(lambda: _sent(c, cid), timeout=20)
                say("9", f"各方通知（{len(notes)} 条）：", f"Notifications ({len(notes)}):")
                for n in notes:
                    print(f"      - {n.get('channel')} → {n.get('recipient')}: {n.get('state')} ({n.get('template', '')})")
                print(f"      webhook 已收到 {len(_Hooks.received)} 次签名回调 / signed webhooks received: {len(_Hooks.received)}")
                (out / f"{number}.case.json").write_text(json.dumps(case, ensure_ascii=False, indent=1, default=str))
    finally:
        hooks.shutdown()
    print(f"\n结论 Conclusion: 摔倒发生在连续配送期间，保险公司已赔付。The fall happened during continuous delivery; "
          f"the insurer paid.\nArtefacts: {out}")
    return 0


DECIDING = (("phase",), ("continuous_delivery",), ("previous_order", "order_id"), ("next_order", "order_id"),
            ("data_quality", "gps_coverage_30min"), ("location_check", "distance_m"))


def _differs_from_assess(served: dict[str, Any], incident_id: str) -> list[str]:
    """What decides the case, as the signed packet says it, against the batch command on the same
    files: the running system must give the engine's answer on all of the rider's data."""
    r = subprocess.run([sys.executable, "-m", "services.trajectory", "assess", str(SEED)], capture_output=True,
                       timeout=120, check=True)
    batch = next(a for a in map(json.loads, r.stdout.splitlines()) if a["incident_id"] == incident_id)

    def pick(a: Any, path: tuple[str, ...]) -> Any:
        for p in path:
            a = a.get(p) if isinstance(a, dict) else None
        return a

    return [f"{'.'.join(p)}: {pick(served, p)!r} != {pick(batch, p)!r}" for p in DECIDING
            if pick(served, p) != pick(batch, p)]


def medical_report_pdf() -> bytes:
    """A one-page hospital report, made for the demo (reportlab, CJK font built in)."""
    import io

    from reportlab.lib.pagesizes import A5
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen.canvas import Canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A5, invariant=True)
    c.setTitle("诊断证明书")
    lines = [("STSong-Light", 16, "浙江省人民医院 诊断证明书"), ("STSong-Light", 11, ""),
             ("STSong-Light", 11, "姓名：李明　性别：男　就诊日期：2025-05-14"),
             ("STSong-Light", 11, "诊断：右手第五掌骨骨折（闭合性）"),
             ("STSong-Light", 11, "处理：手法复位，石膏外固定，休息六周。"),
             ("STSong-Light", 11, "医师：张医生（骨科）"), ("Helvetica", 9, "Demo document generated by Xianjie")]
    y = 540
    for font, size, text in lines:
        c.setFont(font, size)
        c.drawString(40, y, text)
        y -= 26
    c.showPage()
    c.save()
    return buf.getvalue()


def _sent(c: Any, cid: str) -> list[dict[str, Any]] | None:
    r = c.get(f"/api/v1/cases/{cid}/notifications")
    if r.status_code != 200:
        return None
    items = r.json()
    items = items.get("items", items) if isinstance(items, dict) else items
    return items if items and all(n.get("state") in ("sent", "dead") for n in items) else None
