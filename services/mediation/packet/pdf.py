"""The printable evidence packet: an A4 PDF for an insurer's claims officer, from the signed
packet alone.

Chinese and English labels throughout. Chinese text uses reportlab's built-in CID font
STSong-Light (Adobe-GB1; the reader's PDF viewer supplies the glyphs, no font file is shipped),
Latin text Helvetica, digests Courier. The map and the timeline are the packet's own figure
scenes (``figures.scenes_from_sections``) drawn with reportlab graphics, so the print shows the
signed figures. The output is reproducible: reportlab's invariant mode fixes the dates and the
document id, so the same packet gives the same bytes. The packet id and the SHA-256 of the packet
file are in the PDF's metadata (subject and keywords).
"""

from __future__ import annotations

import io
from typing import Any
from xml.sax.saxutils import escape

from reportlab.graphics.shapes import Circle as RLCircle
from reportlab.graphics.shapes import Drawing, Group, Polygon, PolyLine, String
from reportlab.graphics.shapes import Line as RLLine
from reportlab.graphics.shapes import Rect as RLRect
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from services.mediation.domain.coverage import settle_with
from services.mediation.packet.canonical import FIGURES, SECTIONS, packet_sha256
from services.mediation.packet.figures import (
    PHASES,
    Circle,
    Line,
    Poly,
    Rect,
    Scene,
    Text,
    scenes_from_sections,
)

CJK = "STSong-Light"
LATIN = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"
MONO = "Courier"
INK = colors.HexColor("#222222")
MUTED = colors.HexColor("#666666")
ACCENT = colors.HexColor("#1F4E79")
RULE = colors.HexColor("#C8C8C8")
SHADE = colors.HexColor("#F2F4F7")
YES = colors.HexColor("#1E7B1E")
NO = colors.HexColor("#B22222")
MARGIN = 15 * mm
VERIFY_COMMAND = "python -m services.mediation packets verify FILE"


def _fonts() -> None:
    if CJK not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK))


# ----------------------------------------------------------------------------------------------
# styles and small builders


def _style(name: str, size: float, *, font: str = CJK, leading: float | None = None, color: Any = INK,
           space_before: float = 0, space_after: float = 0, cjk: bool = True) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=font, fontSize=size, leading=leading or size * 1.45, textColor=color,
                          spaceBefore=space_before, spaceAfter=space_after, alignment=TA_LEFT,
                          wordWrap="CJK" if cjk else None)


S_TITLE = _style("title", 22, leading=28)
S_SUB = _style("sub", 12.5, leading=18, color=ACCENT)
S_META = _style("meta", 8.5, color=MUTED)
S_H = _style("h", 13, leading=18, color=ACCENT, space_before=10, space_after=4)
S_BODY = _style("body", 9.5)
S_EN = _style("en", 9.5, font=LATIN, cjk=False)
S_CELL = _style("cell", 8.8, leading=12)
S_CELL_EN = _style("cell_en", 8.8, font=LATIN, leading=12, cjk=False)
S_LABEL = _style("label", 8, leading=11, color=colors.HexColor("#333333"))
S_MONO = _style("mono", 7.4, font=MONO, leading=10, cjk=False)
S_SMALL = _style("small", 8, color=MUTED)
S_BIG = _style("big", 14, leading=19)


def _latin(c: str) -> bool:
    """Whether Helvetica (WinAnsi) has the character; the rest is set in the CJK font."""
    try:
        c.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def mixed(text: Any, *, bold: bool = False) -> str:
    """Paragraph markup for any text: runs Helvetica has in Helvetica (Latin letters, digits,
    punctuation), everything else (Chinese, full-width punctuation) in the CJK font."""
    s = "—" if text is None or text == "" else str(text)
    out: list[str] = []
    run, latin = "", None
    for c in s:
        is_latin = _latin(c)
        if latin is not None and is_latin != latin:
            out.append(_run(run, latin, bold))
            run = ""
        run += c
        latin = is_latin
    if run:
        out.append(_run(run, bool(latin), bold))
    return "".join(out)


def _run(text: str, latin: bool, bold: bool) -> str:
    font = (LATIN_BOLD if bold else LATIN) if latin else CJK
    return f'<font name="{font}">{escape(text)}</font>'


SEP = f'<font name="{LATIN}">  \u00b7  </font>'


def bi(zh: str, en: str, *, en_bold: bool = False) -> str:
    """Paragraph markup: Chinese, then English."""
    return f"{mixed(zh)} {mixed(en, bold=en_bold)}"


CELL_MAX_CHARS = 1200  # a table row cannot break across pages: longer free text is cut in print


def val(s: Any, style: ParagraphStyle = S_CELL) -> Paragraph:
    text = "" if s is None else str(s)
    if len(text) > CELL_MAX_CHARS:
        return Paragraph(mixed(text[:CELL_MAX_CHARS] + " …") + "<br/>" +
                         mixed(f"（全文 {len(text)} 字见证据包 JSON 文件 full text, {len(text)} characters, in the JSON file）"),
                         style)
    return Paragraph(mixed(s), style)


def label(zh: str, en: str) -> Paragraph:
    return Paragraph(f'{mixed(zh)}<br/><font color="#666666">{mixed(en)}</font>', S_LABEL)


def heading(num: int, zh: str, en: str) -> Paragraph:
    return Paragraph(f"{mixed(f'{num}. ')}{mixed(zh)}{mixed('  ')}{mixed(en, bold=True)}", S_H)


def _kv_table(rows: list[tuple[Paragraph, Any]], widths: tuple[float, ...]) -> Table:
    """Label/value rows; with four widths, two label/value pairs per row."""
    if len(widths) == 4:
        pairs = [rows[i:i + 2] for i in range(0, len(rows), 2)]
        data = [[c for pair in p for c in pair] + ["", ""] * (2 - len(p)) for p in pairs]
        shade = [("BACKGROUND", (0, 0), (0, -1), SHADE), ("BACKGROUND", (2, 0), (2, -1), SHADE)]
    else:
        data = [[a, b] for a, b in rows]
        shade = [("BACKGROUND", (0, 0), (0, -1), SHADE)]
    t = Table(data, colWidths=list(widths), hAlign="LEFT")
    t.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        *shade,
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, RULE),
        ("LINEABOVE", (0, 0), (-1, 0), 0.4, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
        ("LEFTPADDING", (0, 0), (-1, -1), 5),
    ]))
    return t


def _hm(iso: str | None) -> str:
    """``14:02:00`` of an ISO local time (its own wall clock)."""
    return "—" if not iso else iso[11:19]


def _when(iso: str | None) -> str:
    """``2025-05-14 14:02:00 (+08:00)``."""
    if not iso:
        return "—"
    return f"{iso[:10]} {iso[11:19]} ({iso[19:] or 'UTC'})"


def _phase(p: Any) -> str:
    if not isinstance(p, str):
        return "—"
    if p == "insufficient_data":
        return "待定（数据不足） undetermined (insufficient data)"
    _c, zh, en = PHASES.get(p, ("", p, p))
    return f"{zh} {en}"


def _yes_no(b: Any) -> str:
    return "是 YES" if b is True else "否 NO" if b is False else "—"


UNDETERMINED_TEXT = "待定 UNDETERMINED"


def undetermined(packet: dict[str, Any]) -> bool:
    """Whether the packet's assessment abstained (``insufficient_data``, ``continuous_delivery``
    null): then continuous delivery and cover are undetermined, never "no", in packets made before
    coverage said so too."""
    a = _dict(packet.get("assessment"))
    return a.get("phase") == "insufficient_data" or ("continuous_delivery" in a and a["continuous_delivery"] is None)


def _finding_word(b: Any, open_: bool) -> str:
    """Yes / no of a finding; undetermined (待定) when the assessment abstained."""
    return UNDETERMINED_TEXT if open_ or b is None else _yes_no(b)


def settle_lines(packet: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What evidence would settle an undetermined packet, as its coverage names it (packets made
    before it did: the general list)."""
    cov = _dict(packet.get("coverage"))
    zh, en = _list(cov.get("settle_with_zh")), _list(cov.get("settle_with_en"))
    if not zh and not en:
        z, e = settle_with(_dict(packet.get("assessment")))
        zh, en = list(z), list(e)
    return [str(x) for x in zh], [str(x) for x in en]


def _relative(minutes: Any) -> str:
    """A signed difference from the reported time in words ("早 7.5 分钟 · 7.5 min before"), never "-7.5"."""
    if not isinstance(minutes, int | float):
        return "—"
    n = f"{abs(minutes):g}"
    if abs(minutes) < 0.05:
        return "同一时刻 · at the reported time"
    return f"早 {n} 分钟 · {n} min before" if minutes < 0 else f"晚 {n} 分钟 · {n} min after"


def _yes_no_undetermined(b: Any) -> str:
    """A finding: yes, no, or undetermined (null): never "no" for an abstention."""
    return "是 YES" if b is True else "否 NO" if b is False else "待定 UNDETERMINED"


# ----------------------------------------------------------------------------------------------
# figures


def _colour(c: str | None) -> Any:
    return None if c is None else colors.HexColor(c)


def scene_drawing(scene: Scene, width: float) -> Drawing:
    """A figure scene as a reportlab drawing ``width`` points wide."""
    _fonts()
    k = width / scene.width
    H = scene.height
    g = Group()
    for it in scene.items:
        if isinstance(it, Rect):
            r = RLRect(it.x, H - it.y - it.h, it.w, it.h, fillColor=_colour(it.fill), strokeColor=_colour(it.stroke),
                       strokeWidth=it.width if it.stroke else 0)
            if it.opacity < 1:
                r.fillOpacity = it.opacity
            g.add(r)
        elif isinstance(it, Line):
            g.add(RLLine(it.x1, H - it.y1, it.x2, H - it.y2, strokeColor=_colour(it.stroke), strokeWidth=it.width,
                         strokeDashArray=list(it.dash) or None, strokeLineCap=1))
        elif isinstance(it, Poly):
            flat = [v for x, y in it.points for v in (x, H - y)]
            if it.closed:
                g.add(Polygon(flat, fillColor=_colour(it.fill), strokeColor=_colour(it.stroke),
                              strokeWidth=it.width if it.stroke else 0, strokeLineJoin=1))
            else:
                g.add(PolyLine(flat, strokeColor=_colour(it.stroke), strokeWidth=it.width, strokeLineJoin=1,
                               strokeLineCap=1, strokeDashArray=list(it.dash) or None))
        elif isinstance(it, Circle):
            g.add(RLCircle(it.cx, H - it.cy, it.r, fillColor=_colour(it.fill), strokeColor=_colour(it.stroke),
                           strokeWidth=it.width if it.stroke else 0))
        elif isinstance(it, Text) and it.text:
            _add_text(g, it, H)
    g.transform = (k, 0, 0, k, 0, 0)
    d = Drawing(width, H * k)
    d.add(g)
    return d


def _runs(text: str) -> list[tuple[str, bool]]:
    """The text cut into runs that Helvetica has (True) and runs for the CJK font (False)."""
    out: list[tuple[str, bool]] = []
    for c in text:
        latin = _latin(c)
        if out and out[-1][1] == latin:
            out[-1] = (out[-1][0] + c, latin)
        else:
            out.append((c, latin))
    return out


def _add_text(g: Group, it: Text, height: float) -> None:
    """A figure label, each run in its own font, placed by the label's anchor."""
    runs = [(t, (LATIN_BOLD if it.bold else LATIN) if latin else CJK) for t, latin in _runs(it.text)]
    widths = [pdfmetrics.stringWidth(t, f, it.size) for t, f in runs]
    total = sum(widths)
    x = it.x - (total if it.anchor == "end" else total / 2 if it.anchor == "middle" else 0.0)
    for (t, f), w in zip(runs, widths, strict=True):
        g.add(String(x, height - it.y, t, fontName=f, fontSize=it.size, fillColor=_colour(it.fill)))
        x += w


class _Framed(Flowable):  # type: ignore[misc]  # reportlab has no type hints
    """A drawing with a thin frame."""

    def __init__(self, drawing: Drawing) -> None:
        super().__init__()
        self.drawing = drawing
        self.width, self.height = drawing.width, drawing.height

    def draw(self) -> None:
        self.drawing.drawOn(self.canv, 0, 0)
        self.canv.setStrokeColor(RULE)
        self.canv.setLineWidth(0.5)
        self.canv.rect(0, 0, self.width, self.height)


# ----------------------------------------------------------------------------------------------
# the document


def _numbered_canvas(case_number: str, packet_id: str) -> type[Canvas]:
    class NumberedCanvas(Canvas):  # type: ignore[misc]
        """Writes "page x of y" once the number of pages is known."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (reportlab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for n, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self._furniture(n, total)
                super().showPage()
            super().save()

        def _furniture(self, n: int, total: int) -> None:
            w, h = A4
            self.saveState()
            self.setStrokeColor(RULE)
            self.setLineWidth(0.5)
            self.line(MARGIN, h - 11 * mm, w - MARGIN, h - 11 * mm)
            self.line(MARGIN, 11 * mm, w - MARGIN, 11 * mm)
            self.setFillColor(MUTED)
            self.setFont(CJK, 8)
            self.drawString(MARGIN, h - 9.5 * mm, "证据包")
            self.setFont(LATIN, 8)
            self.drawString(MARGIN + 26, h - 9.5 * mm, f"Evidence packet  ·  {case_number}")
            self.drawRightString(w - MARGIN, h - 9.5 * mm, "Xianjie")
            self.setFont(LATIN, 7.5)
            self.drawString(MARGIN, 7.5 * mm, f"packet {packet_id}")
            self.setFont(CJK, 8)
            label_zh = f"第 {n} / {total} 页"
            label_en = f"  Page {n} of {total}"
            en_w = self.stringWidth(label_en, LATIN, 8)
            self.drawRightString(w - MARGIN - en_w, 7.5 * mm, label_zh)
            self.setFont(LATIN, 8)
            self.drawRightString(w - MARGIN, 7.5 * mm, label_en)
            self.restoreState()

    return NumberedCanvas


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _finding_box(packet: dict[str, Any], width: float) -> Table:
    a = packet.get("assessment") or {}
    cov = packet.get("coverage") or {}
    cd = a.get("continuous_delivery")
    covered = cov.get("covered")
    open_ = undetermined(packet)

    def verdict(b: Any) -> str:
        colour = "#B8860B" if open_ or b is None else "#1E7B1E" if b is True else "#B22222"
        return f'<font color="{colour}">{mixed(_finding_word(b, open_), bold=True)}</font>'

    conf = a.get("confidence")
    rows = [
        [label("事发时所处阶段", "Phase at the incident"), Paragraph(mixed(_phase(a.get("phase")), bold=True), S_BIG)],
        [label("是否属于连续配送", "Continuous delivery"), Paragraph(verdict(cd), S_BIG)],
        [label("置信度", "Confidence"), Paragraph(mixed(f"{conf:.2f}" if isinstance(conf, int | float) else None), S_BIG)],
        [label("保单是否承保", "Covered by the policy"),
         Paragraph(verdict(covered) + mixed(f"   （条款 clause {cov.get('clause_id') or '—'}）"), S_BIG)],
    ]
    if open_:
        rows.append([label("如何认定", "What would settle it"),
                     Paragraph(mixed("证据不足以判断，结论待定，并非“否”；补充证据见第 1 节。 Not enough evidence to decide: "
                                     "undetermined, not \"no\"; the evidence that would settle it is in section 1."),
                               S_CELL)])
    t = Table(rows, colWidths=[width * 0.34, width * 0.66], hAlign="LEFT")
    t.setStyle(TableStyle([
        ("BOX", (0, 0), (-1, -1), 1.2, ACCENT),
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#F5F8FC")),
        ("LINEBELOW", (0, 0), (-1, -2), 0.4, RULE),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
        ("LEFTPADDING", (0, 0), (-1, -1), 7),
    ]))
    return t


_DQ = {
    "gps_points_raw": ("收到的定位点", "GPS fixes received"),
    "gps_points_used": ("采用的定位点", "GPS fixes used"),
    "gps_duplicates": ("重复点（已去除）", "duplicates removed"),
    "gps_outliers": ("异常跳点（已去除）", "outliers removed"),
    "gps_inaccurate": ("精度不足的点", "inaccurate fixes"),
    "clock_skew_s": ("手机时钟偏差（秒）", "phone clock skew (s)"),
    "clock_skew_events": ("校准时钟用的事件数", "events for clock check"),
    "gps_coverage_30min": ("前后15分钟定位覆盖率", "GPS coverage ±15 min"),
}
_LC = {
    "distance_m": ("距报告地点（米）", "from reported place (m)"),
    "nearest_at": ("最接近该地点的时刻", "nearest to it"),
    "nearest_distance_m": ("最近距离（米）", "nearest distance (m)"),
    "minutes_from_reported": ("与报告时间相比", "against the reported time"),
    "phase_at_nearest": ("经过该地点时所处阶段", "phase when he passed it"),
    "continuous_delivery_at_nearest": ("经过时是否连续配送", "continuous delivery then"),
    "other_pass_at": ("也曾经过该地点（同样可能）", "also passed it (as likely)"),
    "phase_at_other_pass": ("那次经过时所处阶段", "phase then"),
    "continuous_delivery_at_other_pass": ("那次是否连续配送", "continuous delivery then"),
}
_AM = {  # DATA_CONTRACT §5 rule 6
    "start_at": ("事发后停留开始", "aftermath: stay from"),
    "end_at": ("停留结束", "stay until"),
    "minutes": ("停留时长（分钟）", "stayed (min)"),
    "offline_at": ("停留后下线", "went offline at"),
    "minutes_since_previous_order": ("距上一单结束（分钟）", "since last order (min)"),
}


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _bullets(lines: list[Any], style: ParagraphStyle) -> list[Paragraph]:
    bullet = ParagraphStyle(style.name + "_bullet", parent=style, leftIndent=11, bulletIndent=1,
                            bulletFontName=LATIN, bulletFontSize=style.fontSize, spaceAfter=1.5)
    return [Paragraph(mixed(s), bullet, bulletText="\u2022") for s in lines]


def _story(packet: dict[str, Any], sha: str) -> list[Any]:
    W = A4[0] - 2 * MARGIN
    kv = (W * 0.3, W * 0.7)
    kv4 = (W * 0.2, W * 0.3, W * 0.2, W * 0.3)
    case = _dict(packet.get("case"))
    inc = _dict(case.get("incident"))
    a = _dict(packet.get("assessment"))
    cov = _dict(packet.get("coverage"))
    rider = _dict(case.get("rider"))
    consent = _dict(case.get("consent"))
    track = _dict(packet.get("track"))
    window = _dict(track.get("window"))
    tz = str(packet.get("timezone") or "")
    sig = _dict(packet.get("signature"))
    story: list[Any] = []

    # title and the finding at a glance
    story += [
        Paragraph(f'{mixed("证据包")} <font size="20">{mixed("Evidence packet", bold=True)}</font>', S_TITLE),
        Paragraph(f"{mixed('案件编号 Case number: ')}{mixed(case.get('case_number'), bold=True)}", S_SUB),
        Paragraph(SEP.join([bi("证据包编号", f"packet id {packet.get('packet_id') or '—'}"),
                            bi("生成于", f"created {_when(packet.get('created_at'))}"),
                            bi("时区", f"time zone {tz or '—'}"), mixed(packet.get("format"))]), S_META),
        Spacer(1, 8),
        _finding_box(packet, W),
        Spacer(1, 4),
    ]

    # 1. the finding, in words
    story.append(heading(1, "认定与理由", "Finding and reasons"))
    story += _bullets(_list(a.get("explanation")), S_BODY)
    story.append(Spacer(1, 3))
    story += _bullets(_list(a.get("explanation_en")), S_EN)
    if undetermined(packet):
        zh, en = settle_lines(packet)
        story.append(Spacer(1, 4))
        story.append(Paragraph(f"<b>{mixed('结论待定。可据以认定的证据：')}</b> "
                               f"{mixed('Undetermined. Evidence that would settle it:', bold=True)}", S_BODY))
        story += _bullets(zh, S_BODY)
        story += _bullets(en, S_EN)
    story.append(Spacer(1, 6))
    prev, nxt, pw = _dict(a.get("previous_order")), _dict(a.get("next_order")), _dict(a.get("phase_window"))
    rows = [
        (label("该阶段的起止", "This phase lasted"), val(f"{_hm(pw.get('from'))} – {_hm(pw.get('to'))}")),
        (label("两单间隔（分钟）", "Gap between orders (min)"), val(a.get("gap_minutes"))),
        (label("上一单", "Previous order"),
         val(f"{prev.get('order_id')}, {prev.get('how') or 'ended'} {_hm(prev.get('ended'))}" if prev else None)),
        (label("下一单", "Next order"),
         val(f"{nxt.get('order_id')}, accepted {_hm(nxt.get('accepted'))}" if nxt else None)),
    ]
    lc = _dict(a.get("location_check"))
    for k, (zh, en) in _LC.items():
        if k in lc:
            v = lc[k]
            shown = (_hm(v) if k in ("nearest_at", "other_pass_at") else _phase(v) if k.startswith("phase_at_")
                     else _yes_no_undetermined(v) if k.startswith("continuous_delivery_at_")
                     else _relative(v) if k == "minutes_from_reported" else v)
            rows.append((label(zh, en), val(shown)))
    am = _dict(a.get("aftermath"))
    for k, (zh, en) in _AM.items():
        if k in am:
            v = am[k]
            rows.append((label(zh, en), val(_hm(v) if k.endswith("_at") else v)))
    story.append(_kv_table(rows, kv4))

    # 2. case facts
    loc = inc.get("location")
    short = [
        (label("保险公司", "Insurer"), val(case.get("insurer_code"))),
        (label("保单号", "Policy number"), val(case.get("policy_number"))),
        (label("理赔号", "Claim number"), val(case.get("claim_number"))),
        (label("骑手（已脱敏）", "Rider (masked)"),
         Paragraph(SEP.join(mixed(x) for x in (rider.get("name"), rider.get("phone"), rider.get("rider_id"))), S_CELL)),
        (label("事发时间", "Incident time"), val(_when(inc.get("at")))),
        (label("事发地点 (WGS-84)", "Incident place"),
         val(f"{loc.get('lat')}, {loc.get('lon')}" if isinstance(loc, dict) else None)),
        (label("骑手授权使用轨迹", "Rider's consent"),
         Paragraph(SEP.join(mixed(x) for x in (_yes_no(consent.get("given")), _when(consent.get("at")),
                                                consent.get("method"))), S_CELL)),
        (label("授权范围", "Scope of the consent"), val(consent.get("scope"))),
    ]
    long = [
        (label("经过", "What happened"), val(inc.get("description"))),
        (label("伤情", "Injury"), val(inc.get("injury"))),
        (label("拒赔理由", "Insurer's reason for refusal"), val(case.get("denial_reason"))),
    ]
    for att in case.get("attachments") or []:  # listed in the signed case section (name, kind, size, SHA-256)
        long.append((label("附件", "Attachment"), Paragraph(SEP.join(mixed(x) for x in (
            att.get("name"), att.get("kind"), f"{att.get('size')} B", f"SHA-256 {att.get('sha256')}",
            att.get("added_by"), _when(att.get("added_at")))), S_CELL)))
    story.append(KeepTogether([heading(2, "案件事实", "Case facts"), _kv_table(short, kv4)]))
    story.append(_kv_table(long, (kv4[0], W - kv4[0])))

    # 3, 4. figures
    scenes = _scenes(packet)
    n_points = len(track.get("points") or [])
    window_text = f"{_when(window.get('from'))} – {_hm(window.get('to'))}"
    if "map.svg" in scenes:
        d = scene_drawing(scenes["map.svg"], W)
        story.append(KeepTogether([
            heading(3, "轨迹图", "Map of the trajectory"), _Framed(d), Spacer(1, 2),
            Paragraph(f"{mixed('仅含事发前后窗口内的定位点；与证据包中的 map.svg 相同。')} "
                      f"{mixed(f'Only the GPS fixes inside the window {window_text} ({n_points} fixes); ')}"
                      f"{mixed('the same figure as map.svg in the packet.')}", S_SMALL),
        ]))
    if "timeline.svg" in scenes:
        d = scene_drawing(scenes["timeline.svg"], W)
        story.append(KeepTogether([heading(4, "时间线", "Timeline"), _Framed(d)]))

    # 5. coverage
    rows = [
        (label("险种", "Product"), val(cov.get("product"))),
        (label("适用条款", "Clause"),
         val(f"{cov.get('clause_id') or '—'}  ({_finding_word(cov.get('covered'), undetermined(packet))})")),
        (label("条款原文", "Clause (Chinese)"), val(cov.get("clause_text_zh"))),
        (label("条款（英文）", "Clause (English)"), val(cov.get("clause_text_en"))),
    ]
    story.append(KeepTogether([heading(5, "保险条款", "Policy clause"), _kv_table(rows, kv)]))

    # 6. orders
    orders = [o for o in _list(packet.get("orders")) if isinstance(o, dict)]
    head = [label("订单", "Order"), label("平台", "Platform"), label("接单", "Accepted"), label("到店", "Arrived"),
            label("取餐", "Picked up"), label("结束", "Ended"), label("结果", "Outcome")]
    outcome = {"delivered": "送达 delivered", "cancelled": "取消 cancelled"}
    body = [[val(o.get("order_id")), val(o.get("platform")), val(_hm(o.get("accepted"))), val(_hm(o.get("arrived"))),
             val(_hm(o.get("picked_up"))), val(_hm(o.get("ended"))),
             val(outcome.get(o.get("end_kind") or "", o.get("end_kind") or "未结束 open"))] for o in orders]
    if not body:
        body = [[val("窗口内无订单 no orders in the window"), "", "", "", "", "", ""]]
    t = Table([head, *body], colWidths=[W * f for f in (0.2, 0.12, 0.12, 0.12, 0.12, 0.12, 0.2)],
              hAlign="LEFT", repeatRows=1)
    t.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), SHADE),
        ("LINEBELOW", (0, 0), (-1, -1), 0.4, RULE),
        ("LINEABOVE", (0, 0), (-1, 0), 0.4, RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 4),
    ]))
    day = str(window.get("from") or "")[:10]
    story.append(KeepTogether([
        heading(6, "窗口内的订单", "Orders in the window"), t, Spacer(1, 2),
        Paragraph(f"{mixed('当地时间；不含窗口外的订单。')} "
                  f"{mixed(f'Local times ({tz}) on {day}; orders outside the window are not included.')}", S_SMALL),
    ]))

    # 7. data quality
    dq = _dict(a.get("data_quality"))
    rows = [(label(*_DQ.get(k, (k, k))),
             val(f"{v * 100:.0f}%" if k == "gps_coverage_30min" and isinstance(v, int | float) else v))
            for k, v in dq.items()]
    if rows:
        story.append(KeepTogether([heading(7, "数据质量", "Data quality"), _kv_table(rows, kv4)]))

    # 8. integrity
    manifest = _dict(_get(packet, "manifest", "sections"))
    mrows = [(label(*_SECTION_NAMES.get(k, (k, k))), Paragraph(_t(manifest.get(k)), S_MONO))
             for k in (*SECTIONS, *FIGURES)]
    rows = [
        (label("摘要算法", "Manifest algorithm"), val(_get(packet, "manifest", "algorithm"))),
        *mrows,
        (label("签名算法", "Signature algorithm"), val(sig.get("alg"))),
        (label("签名密钥编号", "Signing key id"), Paragraph(_t(sig.get("key_id")), S_MONO)),
        (label("签名公钥", "Public key (base64)"), Paragraph(_t(sig.get("public_key")), S_MONO)),
        (label("签名值", "Signature (base64)"), Paragraph(_t(sig.get("value")), S_MONO)),
        (label("证据包文件 SHA-256", "SHA-256 of the packet file"), Paragraph(_t(sha), S_MONO)),
    ]
    how = [
        Paragraph(mixed("如何验证：在证据包的 JSON 文件（而非本打印件）上运行"), S_BODY),
        Paragraph(mixed("How to verify: run, on the packet's JSON file (not on this printout):"), S_EN),
        Paragraph(escape(VERIFY_COMMAND), _style("cmd", 9.5, font=MONO, cjk=False, leading=15)),
        Paragraph(mixed("在调解机构以外核验时，加上 --keys 文件夹（内含公布的公钥文件）。 Outside the mediation office, add "
                        "--keys FOLDER, a folder holding the published public key file."), S_SMALL),
        Paragraph(mixed("命令逐一核对各部分的 SHA-256 摘要和 Ed25519 签名，并确认签名密钥是公布的密钥（编号见上）；"
                        "有效时退出码为 0，无效为 1。本打印件只是签名文件的呈现，证据以文件为准。"), S_BODY),
        Paragraph(mixed("It checks each section's SHA-256 digest and the Ed25519 signature, and that the signing key "
                        "is a published one (key id above); exit status 0 when valid, 1 when not. This printout "
                        "renders the signed file; the file is the evidence."), S_EN),
    ]
    story.append(KeepTogether([heading(8, "完整性与验证", "Integrity and verification"), _kv_table(rows, kv),
                               Spacer(1, 6), *how]))
    return story


def _t(s: Any) -> str:
    return escape("—" if s is None or s == "" else str(s))


_SECTION_NAMES = {
    "case": ("案件事实", "case"),
    "assessment": ("轨迹认定", "assessment"),
    "coverage": ("保险条款", "coverage"),
    "timeline": ("阶段时间线", "timeline"),
    "orders": ("订单", "orders"),
    "track": ("轨迹点", "track"),
    "map.svg": ("轨迹图", "map.svg"),
    "timeline.svg": ("时间线图", "timeline.svg"),
}


def _scenes(packet: dict[str, Any]) -> dict[str, Scene]:
    try:
        return scenes_from_sections(packet)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):  # unusable sections: no figures
        return {}


def render_pdf(packet: dict[str, Any]) -> bytes:
    """The printable PDF of a signed packet (A4; same packet, same bytes)."""
    _fonts()
    sha = packet_sha256(packet)
    case_number = str(_get(packet, "case", "case_number") or "")
    packet_id = str(packet.get("packet_id") or "")
    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=16 * mm, bottomMargin=16 * mm,
        title=f"证据包 Evidence packet {case_number}", author="Xianjie 衔接",
        subject=f"packet_id={packet_id}; sha256={sha}",
        keywords=[f"packet_id={packet_id}", f"sha256={sha}", f"case_number={case_number}",
                  f"format={packet.get('format')}"],
        creator="Xianjie evidence packets", invariant=1, lang="zh-CN",
    )
    doc.build(_story(packet, sha), canvasmaker=_numbered_canvas(case_number, packet_id))
    return buf.getvalue()
