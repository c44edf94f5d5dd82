"""Everything the pages say, in Chinese (the default) and English. Status labels and next steps
are the API's (one wording for the JSON status and the page); the rest lives here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from services.mediation.entrypoints.api.rider import NEXT_EN, NEXT_ZH, STATUS_EN, STATUS_ZH

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

# key -> (zh, en); ``{name}`` placeholders are filled by ``str.format``
MESSAGES: dict[str, tuple[str, str]] = {
    "app": ("衔接 · 骑手理赔争议调解", "Xianjie · rider insurance disputes"),
    "your_office": ("您的调解机构", "Your mediation office"),
    "desk": ("调解工作台", "Mediator desk"),
    "portal": ("保险公司门户", "Insurer portal"),
    "status_title": ("案件进度查询", "Case status"),
    "skip": ("跳到正文", "Skip to content"),
    "switch_lang": ("English", "中文"),
    "switch_lang_label": ("切换到英文", "Switch to Chinese"),
    "tools": ("语言和账户", "Language and account"),
    "signed_in_as": ("当前用户：{name}", "Signed in as {name}"),
    "sign_out": ("退出", "Sign out"),
    # sign-in
    "sign_in": ("登录", "Sign in"),
    "sign_in_intro": ("请输入管理员为您创建账户时打印的访问令牌。",
                      "Enter the access token printed when your account was created."),
    "token": ("访问令牌", "Access token"),
    "token_help": ("由 python -m services.mediation users add 生成；请勿与他人共享。",
                   "From python -m services.mediation users add; never share it."),
    "bad_token": ("令牌无效或账户已停用。", "This token is not valid, or the account is disabled."),
    "feed_token": ("这是数据接口令牌，不能用于登录网页。", "This is a data-feed token; it cannot sign in to the pages."),
    "signed_out": ("您已退出。", "You are signed out."),
    # case list
    "cases": ("案件", "Cases"),
    "new_case": ("新建案件", "New case"),
    "search": ("搜索", "Search"),
    "search_help": ("案件编号、骑手姓名、编号或手机号、理赔号、保单号", "case number, rider name, id or phone, claim, policy"),
    "status": ("状态", "Status"),
    "any": ("全部", "Any"),
    "insurer": ("保险公司", "Insurer"),
    "overdue": ("超期", "Overdue"),
    "overdue_yes": ("仅超期", "Overdue only"),
    "overdue_no": ("未超期", "Not overdue"),
    "filter": ("筛选", "Filter"),
    "clear": ("清除", "Clear"),
    "case_number": ("案件编号", "Case number"),
    "rider": ("骑手", "Rider"),
    "incident_at": ("事发时间", "Incident"),
    "due": ("期限", "Due"),
    "phase": ("事发时阶段", "Phase at the incident"),
    "no_cases": ("没有符合条件的案件。", "No cases match."),
    "total": ("共 {n} 件", "{n} in all"),
    "prev": ("上一页", "Previous"),
    "next": ("下一页", "Next"),
    "near_deadlines": ("临近期限", "Deadlines coming up"),
    "near_none": ("48 小时内没有到期的案件。", "Nothing falls due in the next 48 hours."),
    "overdue_count": ("{n} 件已超期", "{n} overdue"),
    "due_in": ("还剩 {h}", "{h} left"),
    "overdue_by": ("已超期 {h}", "{h} overdue"),
    "hours": ("{n} 小时", "{n} h"),
    "days": ("{n} 天", "{n} d"),
    "minutes": ("{n} 分钟", "{n} min"),
    # new case
    "new_case_intro": ("请先取得骑手对调取轨迹的单独同意，再勾选同意项。", "Record the rider's separate consent before requesting his trajectory."),
    "rider_name": ("骑手姓名", "Rider's name"),
    "rider_id": ("骑手平台编号", "Rider's platform id"),
    "rider_phone": ("手机号", "Mobile number"),
    "rider_phone_help": ("用于短信通知；不会出现在证据包中。", "For SMS updates; never shown in an evidence packet."),
    "rider_lang": ("通知语言", "Language of his messages"),
    "lang_zh": ("中文", "Chinese"),
    "lang_en": ("英文", "English"),
    "insurance": ("保险", "Insurance"),
    "insurer_code": ("保险公司代码", "Insurer code"),
    "policy_number": ("保单号", "Policy number"),
    "claim_number": ("理赔号", "Claim number"),
    "product": ("险种", "Product"),
    "product_default": ("保险公司默认险种", "The insurer's default"),
    "incident": ("事故", "Incident"),
    "incident_time": ("事发时间（{tz}）", "Time of the incident ({tz})"),
    "location": ("事发地点（可选）", "Place of the incident (optional)"),
    "place": ("事发地点", "Place of the incident"),
    "lat": ("纬度", "Latitude"),
    "lon": ("经度", "Longitude"),
    "crs": ("坐标系", "Coordinate system"),
    "crs_wgs84": ("WGS-84（GPS）", "WGS-84 (GPS)"),
    "crs_gcj02": ("GCJ-02（高德、腾讯地图）", "GCJ-02 (Amap, Tencent maps)"),
    "crs_bd09": ("BD-09（百度地图）", "BD-09 (Baidu maps)"),
    "description": ("经过", "What happened"),
    "injury": ("伤情", "Injury"),
    "denial_reason": ("保险公司拒赔理由", "The insurer's reason for refusing"),
    "consent": ("同意", "Consent"),
    "consent_given": ("骑手同意调取事发前后的轨迹和订单记录，仅用于本案", "The rider agrees that his trajectory and orders around the incident may be obtained, for this case only"),
    "consent_help": ("依据《个人信息保护法》，没有单独同意不得调取轨迹。", "Under PIPL no trajectory may be obtained without his separate consent."),
    "consent_method": ("同意方式", "How he consented"),
    "consent_at": ("同意时间（{tz}）", "When he consented ({tz})"),
    "consent_scope": ("同意范围", "Scope"),
    "method_written": ("书面签字", "Signed in writing"),
    "method_in_person": ("当面口头", "In person, orally"),
    "method_sms": ("短信回复", "By SMS reply"),
    "method_phone": ("电话录音", "Recorded phone call"),
    "method_app": ("应用内确认", "In the app"),
    "open_case": ("立案", "Open the case"),
    "cancel": ("取消", "Cancel"),
    "fix_errors": ("请修改以下内容：", "Please correct the following:"),
    "invalid_field": ("{field}：{msg}", "{field}: {msg}"),
    "required": ("必填", "required"),
    "invalid": ("格式不正确", "not valid"),
    "consent_method_needed": ("请选择同意方式", "say how he consented"),
    # created
    "created_title": ("已立案：{number}", "Case opened: {number}"),
    "created_intro": ("请把以下信息交给骑手（可打印本页作为受理回执）。查询码只显示这一次。",
                      "Give the rider the following (print this page as his receipt). The access code is shown only this once."),
    "access_code": ("查询码", "Access code"),
    "status_link": ("查询链接", "Status link"),
    "print": ("打印回执", "Print the receipt"),
    "to_case": ("打开案件", "Open the case"),
    # case page
    "case_title": ("案件 {number}", "Case {number}"),
    "back_to_list": ("返回案件列表", "Back to the cases"),
    "summary": ("概况", "Summary"),
    "since": ("自 {at}", "since {at}"),
    "opened_at": ("立案时间", "Opened"),
    "office": ("调解站", "Office"),
    "no_location": ("未提供", "not given"),
    "consent_yes": ("已同意（{method}，{at}）", "Given ({method}, {at})"),
    "consent_no": ("未同意", "Not given"),
    "next_steps": ("下一步", "Next steps"),
    "re_request": ("重新调取轨迹证据", "Request the evidence again"),
    "reason": ("理由或备注", "Reason or note"),
    "reason_help": ("会记入案件历史和审计记录。", "Goes into the case history and the audit trail."),
    "no_steps": ("此状态下没有可执行的操作。", "Nothing can be done in this status."),
    "evidence_disabled": ("骑手尚未同意调取轨迹，不能申请证据（《个人信息保护法》第二十九条）。如骑手同意，请另行立案并记录同意。",
                          "The rider has not consented to the use of his trajectory, so no evidence may be requested (PIPL art. 29). If he consents, open a new case recording it."),
    "evidence_pending": ("正在分析轨迹，本页会自动刷新。", "The trajectory is being analysed; this page refreshes itself."),
    "assessment": ("轨迹分析结论", "What the trajectory shows"),
    "no_packet": ("尚无证据包。", "No evidence packet yet."),
    "continuous": ("属于连续配送", "Continuous delivery"),
    "not_continuous": ("不属于连续配送", "Not continuous delivery"),
    "cover_undetermined": ("是否承保：待定（需补充证据）", "Cover: undetermined (more evidence needed)"),
    "aftermath_row": ("事发后停留（不计为休息）", "Aftermath of the incident (not a break)"),
    "aftermath_line": ("事发后骑手在事发地点停留 {minutes} 分钟（{start}–{end}）{offline}：这是事故造成的停留，不计为休息（规则 6）。",
                       "After the incident the rider stayed {minutes} min at the place ({start}–{end}){offline}: caused by the incident, not counted as a break (rule 6)."),
    "aftermath_offline": ("，并于 {at} 下线", ", and went offline at {at}"),
    "time_check_line": ("报告的事发时间可能有误：骑手于 {at} 经过报告地点（约 {d} 米，{rel}），当时{phase}，{cd}。时间线上以蓝色虚线标出。",
                        "The reported time may be off: the rider passed the reported place at {at} (about {d} m, {rel}); he was then {phase}, which {cd}. Marked on the timeline with a dashed blue line."),
    "time_check_line_unseen": ("报告的事发时间可能有误：骑手的定位在 {from_} 至 {to} 之间中断，报告地点正在这两个定位点之间的路上，按匀速行驶推算骑手约于 {at} 经过该地点（{rel}），当时{phase}，{cd}。时间线上以蓝色虚线标出。",
                               "The reported time may be off: the rider's GPS was silent from {from_} to {to} and the reported place lies on his way between those fixes; riding steadily he passed it at about {at} ({rel}); he was then {phase}, which {cd}. Marked on the timeline with a dashed blue line."),
    "time_check_other_line": ("骑手于 {at} 也经过报告地点（{rel}），当时{phase}，{cd}。两次经过同样可能，仅凭轨迹无法确定是哪一次；时间线上也以蓝色虚线标出。",
                              "He also passed the reported place at {at} ({rel}); he was then {phase}, which {cd}. Both passes are about as likely: the track alone cannot tell which is meant. Also marked with a dashed blue line."),
    "then_continuous": ("属于连续配送", "counts as continuous delivery"),
    "then_not_continuous": ("不属于连续配送", "does not count as continuous delivery"),
    "then_undetermined": ("是否属于连续配送待定", "may or may not count as continuous delivery: undetermined"),
    "rel_before": ("比报告时间早 {n} 分钟", "{n} minutes before the reported time"),
    "rel_after": ("比报告时间晚 {n} 分钟", "{n} minutes after the reported time"),
    "passed_row": ("经过报告地点", "Passed the reported place"),
    "passed_also_row": ("也经过报告地点（同样可能）", "Also passed the reported place (as likely)"),
    "confidence": ("置信度", "Confidence"),
    "coverage": ("保险条款", "Policy clause"),
    "covered": ("在保险责任范围内", "Covered by the policy"),
    "not_covered": ("不在保险责任范围内", "Not covered by the policy"),
    "undetermined": ("待定", "Undetermined"),
    "continuous_undetermined": ("待定：无法判断是否属于连续配送", "Undetermined: cannot tell whether this was continuous delivery"),
    "coverage_undetermined": ("待定：能否承保取决于补充证据", "Undetermined: cover depends on further evidence"),
    "undetermined_note": ("轨迹数据不足以作出判断。这是“待定”：既不是“否”，也不能作为拒赔的理由；补充下列证据后可以认定。",
                          "The trajectory data cannot decide. This is undetermined: neither a \"no\" nor a ground to "
                          "refuse the claim; the evidence below would settle it."),
    "settle_with": ("可据以认定的证据", "Evidence that would settle it"),
    "evidence_not_shared": ("调解员审查证据并发出调解方案后，您才能看到本案的证据包。目前您可以看到案件及其状态。",
                            "You will see this case's evidence once the mediator has reviewed it and sent the proposal. "
                            "Until then you see the case and its status."),
    "packets": ("证据包记录", "Evidence packets"),
    "packet_current": ("当前", "current"),
    "packet_sent": ("已随调解方案发给保险公司", "sent to the insurer with the proposal"),
    "packet_sent_at": ("发送于 {at}", "sent {at}"),
    "packet_not_sent": ("尚未发给保险公司", "not sent to the insurer"),
    "packet_stale": ("发给保险公司的证据包不是当前证据包：证据已更新，请重新发送调解方案。",
                     "The packet sent to the insurer is not the current one: the evidence changed since; send the "
                     "proposal again."),
    "outcome_covered": ("在保险责任范围内", "covered"),
    "outcome_not_covered": ("不在保险责任范围内", "not covered"),
    "outcome_undetermined": ("待定", "undetermined"),
    "outcome_unknown": ("—", "—"),
    "history_packet": ("证据包 {id}", "packet {id}"),
    "figures": ("轨迹图与时间线", "Map and timeline"),
    "map_alt": ("事发前后 {n} 个定位点的轨迹图，标出事发地点和商家", "Map of {n} GPS fixes around the incident, with the incident and merchants marked"),
    "timeline_alt": ("订单、配送阶段和事发时刻的时间线", "Timeline of the orders, delivery phases and the incident"),
    "orders_timeline": ("订单与阶段时间线", "Orders and phases"),
    "from": ("开始", "From"),
    "to": ("结束", "To"),
    "orders": ("订单", "Orders"),
    "order": ("订单号", "Order"),
    "platform": ("平台", "Platform"),
    "accepted": ("接单", "Accepted"),
    "arrived": ("到店", "At merchant"),
    "picked_up": ("取餐", "Picked up"),
    "ended": ("结束", "Ended"),
    "incident_marker": ("事发", "Incident"),
    "data_quality": ("数据质量", "Data quality"),
    "gps_used": ("使用定位点 {used} / {raw}", "GPS fixes used {used} of {raw}"),
    "clock_skew": ("平台时钟偏差 {s} 秒", "platform clock skew {s} s"),
    "history": ("案件历史", "Case history"),
    "when": ("时间", "When"),
    "who": ("操作人", "Who"),
    "audit": ("审计记录", "Audit trail"),
    "audit_intact": ("完整：{n} 条记录的哈希链校验通过", "Intact: the hash chain of {n} entries checks out"),
    "audit_broken": ("审计链被破坏", "The audit chain is broken"),
    "action": ("操作", "Action"),
    "hash": ("哈希", "Hash"),
    "notifications": ("已发送的通知", "Notifications sent"),
    "gap_flags": ("订单间隔标记", "Gaps between orders, as flagged"),
    "gap_flags_note": ("轨迹服务在订单结束时对每个两单间隔所作的判断（早于任何理赔申请的记录）。",
                       "How the trajectory service judged each gap between orders when the orders closed."),
    "gap_from_to": ("间隔", "Gap"),
    "flagged_at": ("标记时间", "Flagged at"),
    "no_notifications": ("尚无通知。", "Nothing sent yet."),
    "notifications_unavailable": ("通知服务未启用。", "The notification service is not running here."),
    "recipient": ("收件人", "Recipient"),
    "channel": ("渠道", "Channel"),
    "message": ("内容", "Message"),
    "delivery": ("投递状态", "Delivery"),
    "downloads": ("证据包下载", "Evidence packet"),
    "download_json": ("下载 JSON（已签名）", "Download JSON (signed)"),
    "download_pdf": ("下载 PDF", "Download PDF"),
    "packet_id": ("证据包编号", "Packet id"),
    "packet_created": ("生成时间", "Built"),
    # flashes
    "flash_evidence": ("已申请调取轨迹证据。", "Evidence requested."),
    "flash_moved": ("案件状态已更新为：{status}", "The case is now: {status}"),
    "flash_illegal": ("无法从“{current}”变更为“{to}”。当前可执行：{allowed}", "Cannot move from “{current}” to “{to}”. Allowed now: {allowed}"),
    "flash_consent": ("骑手尚未同意，不能调取轨迹。", "The rider has not consented: no trajectory may be requested."),
    "flash_responded": ("已提交答复：{status}", "Your answer was recorded: {status}"),
    "none_allowed": ("无", "none"),
    # insurer
    "your_cases": ("本公司的案件", "Your company's cases"),
    "packet_title": ("证据包 · 案件 {number}", "Evidence packet · case {number}"),
    "signature": ("签名校验", "Signature check"),
    "sig_valid": ("签名有效：由已公布的密钥 {key} 签名，各部分摘要一致，内容未被改动。",
                  "Valid: signed with published key {key}; every section matches its digest; nothing was changed."),
    "sig_invalid": ("签名无效，请勿依赖本证据包：", "Not valid; do not rely on this packet:"),
    "sha256": ("文件 SHA-256", "File SHA-256"),
    "respond": ("答复", "Your answer"),
    "go_respond": ("去答复", "Answer"),
    "end_delivered": ("已送达", "delivered"),
    "end_cancelled": ("已取消", "cancelled"),
    "platform_meituan": ("美团", "Meituan"),
    "platform_eleme": ("饿了么", "Ele.me"),
    "decision": ("决定", "Decision"),
    "accept": ("同意理赔", "Accept the claim"),
    "reject": ("拒绝", "Reject"),
    "submit_answer": ("提交答复", "Send the answer"),
    "reason_needed": ("拒绝时请写明理由。", "Give a reason when rejecting."),
    "decision_needed": ("请选择同意或拒绝。", "Choose accept or reject."),
    "cannot_respond": ("当前状态下无需答复。", "No answer is expected in this status."),
    "denial": ("拒赔理由", "Reason given for refusing"),
    "masked_note": ("骑手姓名和手机号已部分隐藏。", "The rider's name and number are partly hidden."),
    "facts": ("案件事实", "Facts of the case"),
    # rider
    "status_intro": ("请输入受理回执上的案件编号和查询码。", "Enter the case number and access code from your receipt."),
    "code": ("查询码", "Access code"),
    "check": ("查询", "Check"),
    "not_matched": ("案件编号或查询码不正确，请核对受理回执后重试。",
                    "The case number or access code is not right. Check your receipt and try again."),
    "locked": ("尝试次数过多，请于 {at} 之后再试。", "Too many tries. Please try again after {at}."),
    "locked_plain": ("尝试次数过多，请稍后再试。", "Too many tries. Please try again later."),
    "fill_both": ("请填写案件编号和查询码。", "Fill in the case number and the access code."),
    "your_case": ("您的案件 {number}", "Your case {number}"),
    "next_step": ("下一步", "What happens next"),
    "deadline": ("预计在此之前有进展", "Expected progress by"),
    "last_update": ("最近更新", "Last update"),
    "sent_to_you": ("我们发给您的消息", "What we sent you"),
    "state_sent": ("已发送", "sent"),
    "state_sending": ("发送中", "sending"),
    "state_failed": ("发送失败", "not delivered"),
    "channel_sms": ("短信", "SMS"),
    "channel_email": ("邮件", "email"),
    "channel_webhook": ("接口推送", "webhook"),
    "role_rider": ("骑手", "rider"),
    "role_insurer": ("保险公司", "insurer"),
    "role_mediator": ("调解员", "mediator"),
    "system": ("系统", "System"),
    "help_contact": ("如有疑问，请联系为您受理案件的社区调解站。", "Questions? Contact the community mediation office that took your case."),
    "check_another": ("查询其他案件", "Check another case"),
    # errors
    "error": ("出错了", "Something went wrong"),
    "e403": ("您无权查看此页面。", "You may not see this page."),
    "e404": ("找不到该页面或案件。", "No such page or case."),
    "e409": ("操作未完成：{detail}", "Not done: {detail}"),
    "e422": ("请求内容不正确。", "The request was not valid."),
    "e500": ("服务器出错，已记录。请稍后重试。", "A server error; it was logged. Please try again later."),
    "e503": ("数据库暂时不可用，请稍后重试。", "The database is unavailable; try again shortly."),
    "csrf": ("表单已过期或不是从本站提交的。请刷新页面后重试。",
             "This form has expired or did not come from this site. Reload the page and try again."),
    "home": ("返回首页", "Back to the start"),
}

PHASES: dict[str, tuple[str, str]] = {
    "to_pickup": ("前往取餐", "heading to a pickup"),
    "at_merchant": ("在商家取餐", "at the merchant"),
    "delivering": ("配送中", "delivering"),
    "connecting": ("两单之间的合理衔接", "between consecutive orders"),
    "idle": ("空闲（未接单）", "idle (no order)"),
    "offline": ("离线", "offline"),
    "insufficient_data": ("待定（数据不足，无法判断）", "undetermined (not enough data to tell)"),
}

# the buttons that move a case, as verbs
ACTIONS: dict[str, tuple[str, str]] = {
    "evidence_requested": ("调取轨迹证据", "Request the trajectory evidence"),
    "under_review": ("开始审查", "Start the review"),
    "proposal_sent": ("向保险公司发送调解方案", "Send the proposal to the insurer"),
    "resolved": ("确认赔付，标记为已解决", "Payment confirmed: resolved"),
    "closed": ("结案", "Close the case"),
    "escalated": ("转交上级部门", "Escalate"),
    "withdrawn": ("撤回案件", "Withdraw the case"),
    "opened": ("退回“已立案”", "Back to “opened”"),
    "evidence_ready": ("标记证据已生成", "Mark evidence ready"),
    "insurer_accepted": ("同意理赔", "Accept the claim"),
    "insurer_rejected": ("拒绝理赔", "Reject the claim"),
}
DANGER = frozenset({"withdrawn", "escalated", "closed", "insurer_rejected"})

AUDIT_ACTIONS: dict[str, tuple[str, str]] = {
    "case_opened": ("立案", "case opened"),
    "evidence_requested": ("申请证据", "evidence requested"),
    "packet_built": ("生成证据包", "evidence packet built"),
    "evidence_failed": ("证据生成失败", "evidence failed"),
    "status_changed": ("状态变更", "status changed"),
    "insurer_responded": ("保险公司答复", "insurer answered"),
}

CONSENT_METHODS = ("written", "in_person", "sms", "phone", "app")


def status_label(status: str | None, lang: str) -> str:
    if status is None:
        return ""
    return (STATUS_EN if lang == "en" else STATUS_ZH).get(status, status)


def next_step(status: str, lang: str) -> str:
    return (NEXT_EN if lang == "en" else NEXT_ZH).get(status, "")


def _pick(table: Mapping[str, tuple[str, str]], key: str, lang: str) -> str:
    pair = table.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]


def phase_label(phase: str | None, lang: str) -> str:
    return "" if phase is None else _pick(PHASES, phase, lang)


def action_label(status: str, lang: str) -> str:
    return _pick(ACTIONS, status, lang)


def audit_action(action: str, lang: str) -> str:
    return _pick(AUDIT_ACTIONS, action, lang)


def translator(lang: str) -> Callable[..., str]:
    """``_("key", name=...)`` in the given language; an unknown key shows as itself."""

    def _(key: str, /, **params: Any) -> str:
        text = _pick(MESSAGES, key, lang)
        return text.format(**params) if params else text

    return _


def label(prefix: str, value: str | None, lang: str) -> str:
    """The translation of ``prefix + value`` when there is one, else the value itself."""
    if not value:
        return "—"
    return _pick(MESSAGES, prefix + value, lang) if prefix + value in MESSAGES else value


def pick_lang(value: str | None) -> str | None:
    return value if value in LANGS else None
